// Memory and time of the sigmoid loss, forward + backward in float: the tiled loss at a large batch
// (default n = 16384, d = 768), where the naive one would need n*n*4 bytes per [n, n] tensor (1 GiB
// at 16384), and both side by side at a batch the naive one can afford (default 4096).
// Memory is the peak of the CPU allocator's bytes in use beyond what was in use before the call
// (the inputs). Prints a table, then one JSON line.
//
//   bench_loss_memory [--n 16384] [--d 768] [--tile 256] [--naive-n 4096] [--repeats 1]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <omp.h>

#include <siglite/loss/sigmoid.hpp>
#include <siglite/siglite.hpp>

namespace {

using siglite::Allocator;
using siglite::Tensor;
using siglite::loss::SigmoidImpl;

constexpr double kMiB = 1024.0 * 1024.0;

struct Run {
  int64_t n = 0, d = 0;
  double forward_s = 0, backward_s = 0;
  int64_t peak_forward = 0, peak_total = 0;  // bytes beyond the inputs
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// n unit rows of size d, as a leaf that requires grad (the loss takes L2-normalised embeddings).
Tensor<float> embeddings(int64_t n, int64_t d, siglite::Generator& gen) {
  siglite::NoGradGuard no_grad;
  return siglite::l2_normalize(Tensor<float>::randn({n, d}, gen)).detach().set_requires_grad();
}

/// Forward + backward once; the best of `repeats` times, the largest peak.
Run measure(SigmoidImpl impl, int64_t n, int64_t d, int64_t tile, int repeats) {
  siglite::Generator gen(42);
  const Tensor<float> img = embeddings(n, d, gen), txt = embeddings(n, d, gen);
  Run run{n, d, 1e300, 1e300, 0, 0};
  for (int rep = 0; rep < repeats; ++rep) {
    Tensor<float> tp = Tensor<float>::full({1}, std::log(10.0f)).set_requires_grad();
    Tensor<float> bias = Tensor<float>::full({1}, -10.0f).set_requires_grad();
    img.zero_grad();
    txt.zero_grad();
    Allocator& alloc = siglite::backends::of(siglite::Device::cpu()).allocator(0);
    const int64_t before = alloc.stats().bytes_in_use;
    alloc.reset_peak();
    auto t0 = std::chrono::steady_clock::now();
    Tensor<float> loss = siglite::loss::sigmoid_loss(img, txt, tp, bias, impl, tile);
    run.forward_s = std::min(run.forward_s, seconds_since(t0));
    run.peak_forward = std::max(run.peak_forward, alloc.stats().peak_bytes_in_use - before);
    t0 = std::chrono::steady_clock::now();
    loss.backward();
    run.backward_s = std::min(run.backward_s, seconds_since(t0));
    run.peak_total = std::max(run.peak_total, alloc.stats().peak_bytes_in_use - before);
    if (!std::isfinite(loss.item())) {
      std::fprintf(stderr, "bench_loss_memory: non-finite loss %g\n", static_cast<double>(loss.item()));
      std::exit(1);
    }
  }
  return run;
}

void print_row(const char* name, const Run& r) {
  const double logits = static_cast<double>(r.n) * static_cast<double>(r.n) * sizeof(float) / kMiB;
  std::printf("%-6s n=%6lld d=%4lld  forward %8.3f s  backward %8.3f s  peak beyond inputs: forward %9.1f MiB, "
              "forward+backward %9.1f MiB  (one n x n float tensor: %8.1f MiB)\n",
              name, static_cast<long long>(r.n), static_cast<long long>(r.d), r.forward_s, r.backward_s,
              r.peak_forward / kMiB, r.peak_total / kMiB, logits);
}

std::string json(const Run& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"n\":%lld,\"d\":%lld,\"forward_s\":%.4f,\"backward_s\":%.4f,\"peak_forward_bytes\":%lld,"
                "\"peak_total_bytes\":%lld}",
                static_cast<long long>(r.n), static_cast<long long>(r.d), r.forward_s, r.backward_s,
                static_cast<long long>(r.peak_forward), static_cast<long long>(r.peak_total));
  return buf;
}

int64_t arg(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = arg(argc, argv, "--n", 16384), d = arg(argc, argv, "--d", 768);
  const int64_t tile = arg(argc, argv, "--tile", 256), naive_n = arg(argc, argv, "--naive-n", 4096);
  const int repeats = static_cast<int>(arg(argc, argv, "--repeats", 1));
  std::printf("sigmoid loss, float, forward + backward, tile %lld, %d OpenMP threads\n", static_cast<long long>(tile),
              omp_get_max_threads());

  const Run tiled = measure(SigmoidImpl::Tiled, n, d, tile, repeats);
  print_row("tiled", tiled);
  // Gradients of the two embeddings are outputs the caller keeps; the engine also copies them into the
  // leaves' .grad, so up to four [n, d] tensors exist at the peak.
  const double grads = 2.0 * static_cast<double>(n * d) * sizeof(float) / kMiB;
  std::printf("       of which the two [n, d] gradients: %.1f MiB (x2 while the engine copies them into .grad)\n",
              grads);
  const Run tiled_small = measure(SigmoidImpl::Tiled, naive_n, d, tile, repeats);
  const Run naive_small = measure(SigmoidImpl::Naive, naive_n, d, tile, repeats);
  print_row("tiled", tiled_small);
  print_row("naive", naive_small);
  const double naive_logits_at_n = static_cast<double>(n) * static_cast<double>(n) * sizeof(float);
  const double naive_ratio = static_cast<double>(naive_small.peak_total) /
                             (static_cast<double>(naive_n) * static_cast<double>(naive_n) * sizeof(float));
  std::printf("naive at n=%lld: the logits alone take n*n*4 = %.0f MiB; measured at n=%lld its peak is %.1f n x n "
              "tensors, so about %.0f MiB at n=%lld\n",
              static_cast<long long>(n), naive_logits_at_n / kMiB, static_cast<long long>(naive_n), naive_ratio,
              naive_ratio * naive_logits_at_n / kMiB, static_cast<long long>(n));
  std::printf("{\"bench\":\"sigmoid_loss_memory\",\"dtype\":\"float\",\"tile\":%lld,\"threads\":%d,\"tiled\":%s,"
              "\"tiled_small\":%s,\"naive_small\":%s,\"naive_logits_bytes_at_n\":%.0f,"
              "\"naive_peak_in_logit_tensors\":%.2f}\n",
              static_cast<long long>(tile), omp_get_max_threads(), json(tiled).c_str(),
              json(tiled_small).c_str(), json(naive_small).c_str(), naive_logits_at_n, naive_ratio);
  return 0;
}
