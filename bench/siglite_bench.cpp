// siglite-bench: the figures a user compares first, one mode per run, a JSON line at the end.
//
//   siglite-bench train --preset bench-tiny --batch 256 [--steps 5] [--warmup 2] [--save-init DIR]
//       full SigLIP training steps (forward, tiled sigmoid loss, backward, AdamW) on a fixed random batch:
//       pairs/s of the median step, the step's GEMM FLOPs and their rate against raw oneDNN sgemm.
//       --save-init DIR writes the initial weights (HF names, config.json) and the batch, so another
//       framework can run the identical step (bench/compare.py does).
//   siglite-bench infer --preset b16 --batch 8 [--steps 5]      image-tower images/s without a graph, with
//       the tower's GEMM FLOPs and their rate against raw oneDNN sgemm
//   (train and infer also report the threads' float multiply-add peak, fma_peak_gflops, and the model's
//   rate against it, peak_utilisation; and the step's or pass's products alone, its linear and attention ops
//   timed shape by shape with nothing between them: products_seconds, products_per_s, seconds_over_products)
//   siglite-bench loss --n 16384 --d 768 [--steps 3]            tiled loss forward + backward against the
//       plain GEMMs it contains (the forward logits, then in backward the logits again and the two
//       gradient products), and its peak memory beyond the inputs
//   siglite-bench attention --batch 256 --len 64 --heads 3 [--head-dim 64] [--steps 10]   the packed
//       self-attention op alone on random [batch, len, 3 * heads * head-dim] projections: forward without a
//       graph, and forward + backward, each as seconds and GFLOP/s of its products (QK^T and PV, and in
//       backward the four gradient products), against the threads' float multiply-add peak
// Common: --threads N (OpenMP threads), --seed N. Every mode reports peak_rss_mib (the process's peak
// resident set, getrusage).
// train, infer and loss also take --device cpu|cuda[:N] (default cpu) and --precision fp32|tf32 (default fp32:
// float32 products; tf32: float32 products on TF32 tensor cores where the device has them, see
// set_float32_matmul_precision; the CPU computes float32 either way), and report both as "device" and
// "precision". On another device than the CPU the model, the batch and the embeddings are moved there, every timed
// region ends with a host read that waits for the device, and the CPU-only figures (oneDNN sgemm, the FMA peak) are
// left out: instead device_gemm_gflops (the device's GEMM kernel on a 4096^3 product) and
// device_flop_utilisation, peak_device_mib (the device allocator's peak during the timed steps; loss: beyond the
// inputs) and peak_host_rss_mib (the process's peak resident set, as peak_rss_mib on the CPU).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <siglite/io/checkpoint.hpp>
#include <siglite/loss/sigmoid.hpp>
#include <siglite/optim/optim.hpp>
#include <siglite/siglite.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#ifdef SIGLITE_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

using namespace siglite;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage =
    "usage: siglite-bench train|infer|loss|attention [--preset NAME] [--batch N] [--steps N] [--warmup N]\n"
    "                     [--threads N] [--seed N] [--n N] [--d N] [--tile N] [--save-init DIR]\n"
    "                     [--len N] [--heads N] [--head-dim N]\n"
    "                     [--device cpu|cuda[:N]] [--precision fp32|tf32]   (train, infer, loss)\n";

struct Args {
  std::string mode;
  std::map<std::string, std::string> values;
  std::string get(const std::string& k, const std::string& def) const {
    const auto it = values.find(k);
    return it == values.end() ? def : it->second;
  }
  int64_t num(const std::string& k, int64_t def) const {
    const auto it = values.find(k);
    if (it == values.end()) return def;
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(it->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != it->second.size() || it->second.empty())
      throw Error("siglite-bench: --" + k + " needs an integer, got '" + it->second + "'");
    return v;
  }
};

Args parse(int argc, char** argv) {
  static const char* flags[] = {"preset", "batch", "steps", "warmup", "threads", "seed", "n", "d", "tile", "save-init",
                                "len",    "heads", "head-dim", "device", "precision"};
  Args a;
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fputs(kUsage, stdout);
    std::exit(argc < 2 ? 2 : 0);
  }
  a.mode = argv[1];
  if (a.mode != "train" && a.mode != "infer" && a.mode != "loss" && a.mode != "attention")
    throw Error("siglite-bench: unknown mode '" + a.mode + "' (train, infer, loss, attention)");
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    bool known = false;
    for (const char* f : flags) known = known || arg == std::string("--") + f;
    if (!known) throw Error("siglite-bench: unknown argument '" + arg + "'\n" + kUsage);
    if (i + 1 >= argc) throw Error("siglite-bench: " + arg + " needs a value");
    a.values[arg.substr(2)] = argv[++i];
  }
  if (a.mode == "attention" && (a.values.count("device") || a.values.count("precision")))
    throw Error("siglite-bench: attention runs on the CPU only; --device and --precision are for train, infer and "
                "loss");
  return a;
}

/// The device of --device (cpu when absent: "cpu", "cuda", "cuda:1"), checked to be there as samples/cli.hpp's
/// cli::device does: a device this build or this machine lacks is an Error naming the flag.
Device device_of(const Args& a) {
  const std::string text = a.get("device", "cpu");
  try {
    const Device d = Device::parse(text);
    backends::of(d);
    return d;
  } catch (const Error& e) {
    throw Error("siglite-bench: --device " + text + ": " + e.what());
  }
}

/// --precision fp32|tf32 (default fp32): sets float32_matmul_precision() for the run; returns the name.
std::string set_precision(const Args& a) {
  const std::string text = a.get("precision", "fp32");
  if (text == "fp32") {
    set_float32_matmul_precision(MatmulPrecision::Highest);
  } else if (text == "tf32") {
    set_float32_matmul_precision(MatmulPrecision::High);
  } else if (text == "bf16") {
    throw Error("siglite-bench: --precision bf16: bf16 mixed precision is not implemented yet; fp32 and tf32 are");
  } else {
    throw Error("siglite-bench: --precision " + text + ": not one of fp32, tf32, bf16");
  }
  return text;
}

/// Waits for the work queued on `device` so far: a one-element read to the host (device-to-host copies wait for the
/// device's queue). Nothing on the CPU, whose kernels have finished when they return.
void wait_for(Device device) {
  if (!device.is_cpu()) (void)Tensor<float>::zeros({1}, device).item();
}

/// The device allocator's counters, for peak_device_mib.
Allocator& device_allocator(Device device) { return backends::of(device).allocator(device.index()); }

double mib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Calls f() warmup + steps times; the seconds of each of the last `steps` calls.
template <typename F>
std::vector<double> time_calls(int64_t warmup, int64_t steps, F&& f) {
  std::vector<double> times;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const auto t0 = clock_type::now();
    f();
    if (s >= warmup) times.push_back(seconds_since(t0));
  }
  return times;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// GFLOP/s of raw oneDNN sgemm on an m x k by k x n product, best of a few runs: the ceiling the
/// step's GEMMs are compared against.
double sgemm_gflops(int64_t m, int64_t n, int64_t k) {
#ifdef SIGLITE_WITH_ONEDNN
  std::vector<float> a(size_t(m * k), 0.5f), b(size_t(k * n), 0.25f), c(size_t(m * n));
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = clock_type::now();
    dnnl::sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * double(m) * double(n) * double(k) / best / 1e9;
#else
  (void)m, (void)n, (void)k;
  return 0;
#endif
}

/// GFLOP/s of float multiply-adds on all threads, best of 5 runs: each thread runs independent chains of
/// vector FMAs on registers, enough of them to cover the FMA latency, so nothing but the FMA units limits it.
/// The build's vector width: AVX-512, else AVX2 with FMA; 0 for a build with neither.
double fma_peak_gflops() {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int lanes = 16, chains = 12;
  const auto splat = [](float x) { return _mm512_set1_ps(x); };
  const auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  const auto first = [](V a) { return _mm512_cvtss_f32(a); };
#else
  using V = __m256;
  constexpr int lanes = 8, chains = 10;  // two FMA pipes of latency 4 need 8; 10 and 2 constants fit 16 ymm
  const auto splat = [](float x) { return _mm256_set1_ps(x); };
  const auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  const auto first = [](V a) { return _mm256_cvtss_f32(a); };
#endif
  constexpr int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = clock_type::now();
    float sink = 0;
    int threads = 0;
#pragma omp parallel reduction(+ : sink, threads)
    {
      V acc[chains];
      for (int i = 0; i < chains; ++i) acc[i] = splat(1.0f + 1e-7f * float(i));
      const V b = splat(0.999999f), c = splat(1e-7f);
      for (int64_t n = 0; n < iters; ++n)
        for (int i = 0; i < chains; ++i) acc[i] = fma(acc[i], b, c);
      for (int i = 0; i < chains; ++i) sink += first(acc[i]);
      threads += 1;
    }
    const double s = seconds_since(t0);
    volatile float keep = sink;  // the chains' results are used, so the compiler keeps their FMAs
    (void)keep;
    best = std::max(best, 2.0 * lanes * chains * double(iters) * threads / s / 1e9);
  }
  return best;
#else
  return 0;
#endif
}

/// GFLOP/s of the device's own GEMM kernel (cuBLAS on CUDA) on an m x k by k x n float product in the run's
/// precision, best of 5 after one, each waited for: the ceiling a device run's GEMMs are compared against, as
/// sgemm_gflops is on the CPU.
double device_gemm_gflops(Device device, int64_t m, int64_t n, int64_t k) {
  const Tensor<float> a = Tensor<float>::full({m, k}, 0.5f, device), b = Tensor<float>::full({k, n}, 0.25f, device);
  const Tensor<float> c = Tensor<float>::empty({m, n}, device);
  const kernels::Kernels<float>& kern = kernels::on<float>(device);
  double best = 1e300;
  for (int rep = 0; rep < 6; ++rep) {
    wait_for(device);
    const auto t0 = clock_type::now();
    kern.gemm(kernels::single_gemm<float>(false, false, m, n, k, k, n, n), a.device_ptr(), b.device_ptr(),
              c.device_ptr());
    wait_for(device);
    if (rep > 0) best = std::min(best, seconds_since(t0));
  }
  return 2.0 * double(m) * double(n) * double(k) / best / 1e9;
}

/// Multiply-add FLOPs of attention's two products, QK^T and PV, for `queries` queries a sequence over `len`
/// keys, at a total head width of `width`.
double attention_products_flops(int64_t batch, int64_t queries, int64_t len, int64_t width) {
  return 2.0 * 2.0 * double(batch) * double(queries) * double(len) * double(width);
}

/// The products of one forward pass as siglite's ops run them, each shape with how often it occurs: linear layers
/// ([rows, in] @ [in, out] with a bias) and multi-head attention. They give the pass's GEMM FLOPs, and timed alone,
/// with nothing between them, the time the pass would take if only its products took time.
struct Products {
  struct Linear {
    int64_t rows, in, out;
    bool input_grad;  // whether training takes the gradient of the layer's input (not of the patches)
    int64_t count;
  };
  /// Self: every position a query (multi_head_attention_packed); pooled: the pooled position alone
  /// (multi_head_attention_packed_at); probe: one query shared by the batch (the MAP head's multi_head_attention).
  enum class Kind { Self, Pooled, Probe };
  struct Attention {
    Kind kind;
    int64_t batch, len, heads, head_dim, count;
    int64_t queries() const { return kind == Kind::Self ? len : 1; }
  };
  std::vector<Linear> linears;
  std::vector<Attention> attentions;

  void linear(int64_t rows, int64_t in, int64_t out, int64_t count = 1, bool input_grad = true) {
    for (Linear& l : linears)
      if (l.rows == rows && l.in == in && l.out == out && l.input_grad == input_grad) {
        l.count += count;
        return;
      }
    linears.push_back({rows, in, out, input_grad, count});
  }
  void attention(Kind kind, int64_t batch, int64_t len, int64_t heads, int64_t head_dim, int64_t count = 1) {
    for (Attention& a : attentions)
      if (a.kind == kind && a.batch == batch && a.len == len && a.heads == heads && a.head_dim == head_dim) {
        a.count += count;
        return;
      }
    attentions.push_back({kind, batch, len, heads, head_dim, count});
  }
  /// An encoder layer on `len` tokens a sequence (width d, MLP width mlp): q|k|v on every token, then attention,
  /// the output projection and the MLP for every position's query, or for the pooled position's alone.
  void layer(int64_t batch, int64_t len, int64_t d, int64_t heads, int64_t mlp, bool pooled_only, int64_t count) {
    const int64_t rows = pooled_only ? batch : batch * len;
    linear(batch * len, d, 3 * d, count);
    attention(pooled_only ? Kind::Pooled : Kind::Self, batch, len, heads, d / heads, count);
    linear(rows, d, d, count);
    linear(rows, d, mlp, count);
    linear(rows, mlp, d, count);
  }
  double flops() const {
    double f = 0;
    for (const Linear& l : linears) f += 2.0 * double(l.rows) * double(l.in) * double(l.out) * double(l.count);
    for (const Attention& a : attentions)
      f += attention_products_flops(a.batch, a.queries(), a.len, a.heads * a.head_dim) * double(a.count);
    return f;
  }
};

/// The image tower's forward products: the patch embedding, the encoder and the MAP head (q of the probe; k and
/// v of the tokens; the probe's attention, the output projection and the MLP).
void add_image_tower(Products& p, const models::VisionConfig& v, int64_t batch) {
  const int64_t patches = v.num_patches(), d = v.hidden_size, mlp = v.intermediate_size;
  p.linear(batch * patches, v.num_channels * v.patch_size * v.patch_size, d, 1, false);
  p.layer(batch, patches, d, v.num_attention_heads, mlp, false, v.num_hidden_layers);
  if (v.pooling != models::VisionPooling::Map) return;
  p.linear(1, d, d);
  p.linear(batch * patches, d, d, 2);
  p.attention(Products::Kind::Probe, batch, patches, v.num_attention_heads, d / v.num_attention_heads);
  p.linear(batch, d, d);
  p.linear(batch, d, mlp);
  p.linear(batch, mlp, d);
}

/// The text tower's forward products as siglite runs them: its last layer computes the pooled position alone
/// (one query a sequence); then the text head.
void add_text_tower(Products& p, const models::TextConfig& t, int64_t batch) {
  const int64_t len = t.max_position_embeddings, d = t.hidden_size;
  if (t.num_hidden_layers > 0) {
    p.layer(batch, len, d, t.num_attention_heads, t.intermediate_size, false, t.num_hidden_layers - 1);
    p.layer(batch, len, d, t.num_attention_heads, t.intermediate_size, true, 1);
  }
  p.linear(batch, d, t.projection_size);
}

/// One training step's forward products: both towers, and the loss's logits as one [batch, d] @ [d, batch]
/// product. The step's GEMM FLOPs count its backward at twice its forward.
Products train_step_products(const models::SiglipConfig& c, int64_t batch) {
  Products p;
  add_image_tower(p, c.vision, batch);
  add_text_tower(p, c.text, batch);
  p.linear(batch, c.text.projection_size, batch);
  return p;
}

/// Seconds of one pass's products alone: each shape timed on random inputs through the op the model calls (the
/// median of 3 calls after one), times its count. With `train`, each call is the op's forward and backward, every
/// input but the patches needing a gradient; without, the forward alone, under the caller's InferenceMode. On
/// another device than the CPU the inputs are made there and each call is waited for.
double products_seconds(const Products& p, bool train, Generator& gen, Device device) {
  const auto timed = [&](auto&& call) {
    wait_for(device);
    return median(time_calls(1, 3, [&] {
      call();
      wait_for(device);
    }));
  };
  const auto input = [&](const Shape& shape, bool grad) {
    Tensor<float> t = Tensor<float>::randn(shape, gen, 0.0f, 1.0f, device);
    return grad ? t.set_requires_grad() : t;
  };
  double total = 0;
  for (const Products::Linear& l : p.linears) {
    const Tensor<float> x = input({l.rows, l.in}, train && l.input_grad), w = input({l.out, l.in}, train),
                        b = input({l.out}, train), g = Tensor<float>::randn({l.rows, l.out}, gen, 0.0f, 1.0f, device);
    total += double(l.count) * timed([&] {
      if (train) {
        x.zero_grad(), w.zero_grad(), b.zero_grad();
        backward(linear(x, w, b), g, false);
      } else {
        linear(x, w, b);
      }
    });
  }
  for (const Products::Attention& a : p.attentions) {
    const int64_t width = a.heads * a.head_dim;
    const Tensor<float> g = Tensor<float>::randn({a.batch, a.queries(), width}, gen, 0.0f, 1.0f, device);
    std::function<Tensor<float>()> op;
    std::vector<Tensor<float>> inputs;
    if (a.kind == Products::Kind::Probe) {
      inputs = {input({1, 1, width}, train), input({a.batch, a.len, width}, train), input({a.batch, a.len, width}, train)};
      op = [&] { return multi_head_attention(inputs[0].expand({a.batch, 1, width}), inputs[1], inputs[2], a.heads); };
    } else {
      inputs = {input({a.batch, a.len, 3 * width}, train)};
      op = [&] {
        return a.kind == Products::Kind::Self ? multi_head_attention_packed(inputs[0], a.heads)
                                              : multi_head_attention_packed_at(inputs[0], a.len - 1, a.heads);
      };
    }
    total += double(a.count) * timed([&] {
      if (train) {
        for (const Tensor<float>& t : inputs) t.zero_grad();
        backward(op(), g, false);
      } else {
        op();
      }
    });
  }
  return total;
}

/// The figures both model modes report beside their timing: GEMM FLOPs per call, their rate, and that
/// rate against raw oneDNN sgemm on a 1024^3 product and against the threads' float multiply-add peak, both
/// measured in the same run. On another device: the rate against the device's GEMM kernel on a 4096^3 product in
/// the run's precision instead (the CPU's ceilings say nothing about it).
nlohmann::json flop_figures(double flops, double seconds, Device device) {
  if (!device.is_cpu()) {
    const double ceiling = device_gemm_gflops(device, 4096, 4096, 4096), rate = flops / seconds / 1e9;
    return {{"gemm_gflop_per_step", flops / 1e9},
            {"model_gflops", rate},
            {"device_gemm_gflops", ceiling},
            {"device_flop_utilisation", ceiling > 0 ? rate / ceiling : 0.0}};
  }
  const double ceiling = sgemm_gflops(1024, 1024, 1024), peak = fma_peak_gflops(), rate = flops / seconds / 1e9;
  return {{"gemm_gflop_per_step", flops / 1e9},
          {"model_gflops", rate},
          {"sgemm_gflops", ceiling},
          {"flop_utilisation", ceiling > 0 ? rate / ceiling : 0.0},
          {"fma_peak_gflops", peak},
          {"peak_utilisation", peak > 0 ? rate / peak : 0.0}};
}

/// The figures of a model mode's products alone (products_seconds), run after its timed steps: their seconds,
/// the rate of `items` (pairs or images) if nothing but the products took time, and the measured seconds over
/// theirs. The peak resident set is taken first, so that it is the measured steps' alone.
nlohmann::json product_figures(const Products& p, bool train, int64_t items, double seconds, Generator& gen,
                               Device device) {
  const double rss = peak_rss_mib(), alone = products_seconds(p, train, gen, device);
  return {{"peak_rss_mib", rss},
          {"products_seconds", alone},
          {"products_per_s", double(items) / alone},
          {"seconds_over_products", seconds / alone}};
}

Tensor<float> random_images(const models::VisionConfig& v, int64_t batch, Generator& gen) {
  Tensor<float> x = Tensor<float>::empty({batch, v.num_channels, v.image_size, v.image_size});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(2.0 * gen.uniform() - 1.0);
  return x;
}

Tensor<int64_t> random_ids(const models::TextConfig& t, int64_t batch, Generator& gen) {
  Tensor<int64_t> ids = Tensor<int64_t>::empty({batch, t.max_position_embeddings});
  for (int64_t i = 0; i < ids.numel(); ++i)
    ids.data()[i] = static_cast<int64_t>(gen.uniform() * double(t.vocab_size - 1));
  for (int64_t r = 0; r < batch; ++r) ids.data()[(r + 1) * t.max_position_embeddings - 1] = t.vocab_size - 1;  // EOS
  return ids;
}

nlohmann::json bench_train(const Args& a, Device device) {
  const models::SiglipConfig cfg = models::SiglipConfig::preset(a.get("preset", "bench-tiny"));
  const int64_t batch = a.num("batch", 256), steps = a.num("steps", 5), warmup = a.num("warmup", 2);
  const auto seed = static_cast<uint64_t>(a.num("seed", 0));
  models::SigLIP<float> model(cfg, seed);
  Generator gen(seed + 1);
  const Tensor<float> images = random_images(cfg.vision, batch, gen);
  const Tensor<int64_t> ids = random_ids(cfg.text, batch, gen);
  if (a.values.count("save-init")) {
    const std::string dir = a.get("save-init", "");
    io::save_pretrained(model, dir);
    const std::vector<int64_t> idv = ids.to_vector();
    const std::vector<float> idf(idv.begin(), idv.end());  // exact: ids are far below 2^24
    io::save_safetensors(
        std::filesystem::path(dir) / "batch.safetensors",
        io::TensorMap{{"pixel_values", images}, {"input_ids", Tensor<float>::from_vector(idf, ids.shape())}});
  }
  // To the device (on the CPU, the same tensors): the model before its optimizer is made.
  model.to(device);
  const Tensor<float> pixels = images.to(device);
  const Tensor<int64_t> tokens = ids.to(device);
  optim::NamedParams params = model.named_parameters();
  optim::AdamWOptions ao;
  ao.lr = 1e-3;
  ao.beta2 = 0.95;
  ao.weight_decay = 1e-4;
  optim::AdamW opt(optim::split_decay(params), ao);

  std::vector<double> losses;
  wait_for(device);
  device_allocator(device).reset_peak();
  // loss.item() reads the loss to the host after the update is queued: on a device it waits for the whole step.
  const std::vector<double> times = time_calls(warmup, steps, [&] {
    opt.zero_grad();
    const auto out = model.forward(pixels, tokens);
    Tensor<float> loss = loss::sigmoid_loss(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  });
  const int64_t peak_device = device_allocator(device).stats().peak_bytes_in_use;
  const double step_s = median(times);
  nlohmann::json j = {{"mode", "train"},
                      {"preset", a.get("preset", "bench-tiny")},
                      {"batch", batch},
                      {"step_seconds", times},
                      {"seconds", step_s},
                      {"pairs_per_s", double(batch) / step_s},
                      {"first_loss", losses.front()},
                      {"losses", losses}};
  if (!device.is_cpu()) j["peak_device_mib"] = mib(peak_device);
  const Products products = train_step_products(cfg, batch);
  j.update(flop_figures(3.0 * products.flops(), step_s, device));
  j.update(product_figures(products, true, batch, step_s, gen, device));
  return j;
}

nlohmann::json bench_infer(const Args& a, Device device) {
  const models::SiglipConfig cfg = models::SiglipConfig::preset(a.get("preset", "b16"));
  const int64_t batch = a.num("batch", 8), steps = a.num("steps", 5), warmup = a.num("warmup", 1);
  const auto seed = static_cast<uint64_t>(a.num("seed", 0));
  models::SigLIP<float> model(cfg, seed);
  Generator gen(seed + 1);
  const Tensor<float> images = random_images(cfg.vision, batch, gen);
  if (a.values.count("save-init")) {
    const std::string dir = a.get("save-init", "");
    io::save_pretrained(model, dir);
    io::save_safetensors(std::filesystem::path(dir) / "batch.safetensors", io::TensorMap{{"pixel_values", images}});
  }
  model.to(device);
  const Tensor<float> pixels = images.to(device);
  InferenceMode inference;
  double checksum = 0;
  wait_for(device);
  device_allocator(device).reset_peak();
  // Reading the first element to the host waits for the pass on a device.
  const std::vector<double> times = time_calls(warmup, steps, [&] {
    const Tensor<float> e = model.image_embeddings(pixels);
    checksum = device.is_cpu() ? e.at({0, 0}) : e.slice(0, 0, 1).slice(1, 0, 1).item();
  });
  const int64_t peak_device = device_allocator(device).stats().peak_bytes_in_use;
  const double s = median(times);
  nlohmann::json j = {{"mode", "infer"}, {"preset", a.get("preset", "b16")}, {"batch", batch}, {"step_seconds", times},
                      {"seconds", s},    {"images_per_s", double(batch) / s},  {"first_embedding", checksum}};
  if (!device.is_cpu()) j["peak_device_mib"] = mib(peak_device);
  Products products;
  add_image_tower(products, cfg.vision, batch);
  j.update(flop_figures(products.flops(), s, device));
  j.update(product_figures(products, false, batch, s, gen, device));
  return j;
}

nlohmann::json bench_loss(const Args& a, Device device) {
  const int64_t n = a.num("n", 16384), d = a.num("d", 768), steps = a.num("steps", 3), tile = a.num("tile", 256);
  Generator gen(static_cast<uint64_t>(a.num("seed", 0)));
  Tensor<float> img, txt;
  {
    NoGradGuard no_grad;
    img = l2_normalize(Tensor<float>::randn({n, d}, gen, 0.0f, 1.0f, device)).detach().set_requires_grad();
    txt = l2_normalize(Tensor<float>::randn({n, d}, gen, 0.0f, 1.0f, device)).detach().set_requires_grad();
  }
  Allocator& alloc = device_allocator(device);
  std::vector<double> loss_times, gemm_times;
  int64_t peak = 0;
  for (int64_t s = 0; s < steps; ++s) {
    Tensor<float> tp = Tensor<float>::full({1}, std::log(10.0f), device).set_requires_grad();
    Tensor<float> bias = Tensor<float>::full({1}, -10.0f, device).set_requires_grad();
    img.zero_grad();
    txt.zero_grad();
    wait_for(device);
    const int64_t before = alloc.stats().bytes_in_use;
    alloc.reset_peak();
    auto t0 = clock_type::now();
    Tensor<float> loss = loss::sigmoid_loss(img, txt, tp, bias, loss::SigmoidImpl::Tiled, tile);
    loss.backward();
    wait_for(device);
    loss_times.push_back(seconds_since(t0));
    peak = std::max(peak, alloc.stats().peak_bytes_in_use - before);
    SIGLITE_CHECK(std::isfinite(loss.item()), "siglite-bench: non-finite loss");

    // The same GEMMs, tile by tile as the loss runs them, with nothing between them.
    const kernels::Kernels<float>& gemm = kernels::on<float>(device);
    Tensor<float> dx = Tensor<float>::zeros({n, d}, device), dy = Tensor<float>::zeros({n, d}, device);
    const int64_t nt = (n + tile - 1) / tile;
    if (!device.is_cpu()) {
      // One queue: the tile pairs in the loss kernels' order, into one tile buffer, then a wait.
      const int64_t tb = std::min(tile, n);
      const Tensor<float> zt = Tensor<float>::empty({tb, tb}, device);
      wait_for(device);
      t0 = clock_type::now();
      for (int64_t pass = 0; pass < 2; ++pass) {
        for (int64_t i = 0; i < nt; ++i) {
          for (int64_t j = 0; j < nt; ++j) {
            const int64_t i0 = i * tile, j0 = j * tile;
            const int64_t r = std::min(tile, n - i0), c = std::min(tile, n - j0);
            gemm.gemm(kernels::single_gemm<float>(false, true, r, c, d, d, d, tb), img.device_ptr() + i0 * d,
                      txt.device_ptr() + j0 * d, zt.device_ptr());
            if (pass == 1) {
              gemm.gemm(kernels::single_gemm<float>(false, false, r, d, c, tb, d, d, 1.0f, 1.0f), zt.device_ptr(),
                        txt.device_ptr() + j0 * d, dx.device_ptr() + i0 * d);
              gemm.gemm(kernels::single_gemm<float>(true, false, c, d, r, tb, d, d, 1.0f, 1.0f), zt.device_ptr(),
                        img.device_ptr() + i0 * d, dy.device_ptr() + j0 * d);
            }
          }
        }
      }
      wait_for(device);
      gemm_times.push_back(seconds_since(t0));
      continue;
    }
    t0 = clock_type::now();
#pragma omp parallel
    {
      std::vector<float> zt(size_t(tile * tile));
      for (int64_t pass = 0; pass < 2; ++pass) {
        for (int64_t sh = 0; sh < nt; ++sh) {
#pragma omp for schedule(static)
          for (int64_t i = 0; i < nt; ++i) {
            const int64_t j = (i + sh) % nt, i0 = i * tile, j0 = j * tile;
            const int64_t r = std::min(tile, n - i0), c = std::min(tile, n - j0);
            gemm.gemm(kernels::single_gemm<float>(false, true, r, c, d, d, d, tile), img.data() + i0 * d,
                      txt.data() + j0 * d, zt.data());
            if (pass == 1) {
              gemm.gemm(kernels::single_gemm<float>(false, false, r, d, c, tile, d, d, 1.0f, 1.0f), zt.data(),
                        txt.data() + j0 * d, dx.data() + i0 * d);
              gemm.gemm(kernels::single_gemm<float>(true, false, c, d, r, tile, d, d, 1.0f, 1.0f), zt.data(),
                        img.data() + i0 * d, dy.data() + j0 * d);
            }
          }
        }
      }
    }
    gemm_times.push_back(seconds_since(t0));
  }
  const double tl = median(loss_times), tg = median(gemm_times);
  nlohmann::json j = {{"mode", "loss"},
                      {"n", n},
                      {"d", d},
                      {"tile", tile},
                      {"loss_seconds", loss_times},
                      {"gemm_seconds", gemm_times},
                      {"seconds", tl},
                      {"gemm_only_seconds", tg},
                      {"loss_over_gemm", tl / tg},
                      {"peak_beyond_inputs_mib", mib(peak)}};
  if (!device.is_cpu()) j["peak_device_mib"] = mib(peak);  // the device allocator's peak beyond the inputs
  return j;
}

nlohmann::json bench_attention(const Args& a) {
  const int64_t batch = a.num("batch", 256), len = a.num("len", 64), heads = a.num("heads", 3);
  const int64_t head_dim = a.num("head-dim", 64), steps = a.num("steps", 10), warmup = a.num("warmup", 2);
  if (batch < 1 || len < 1 || heads < 1 || head_dim < 1)
    throw Error("siglite-bench attention: --batch, --len, --heads and --head-dim must be positive");
  Generator gen(static_cast<uint64_t>(a.num("seed", 0)));
  const Tensor<float> qkv = Tensor<float>::randn({batch, len, 3 * heads * head_dim}, gen).set_requires_grad();
  const Tensor<float> grad = Tensor<float>::randn({batch, len, heads * head_dim}, gen);
  const std::vector<double> forward = time_calls(warmup, steps, [&] {
    NoGradGuard no_grad;
    multi_head_attention_packed(qkv, heads);
  });
  const std::vector<double> both = time_calls(warmup, steps, [&] {
    qkv.zero_grad();  // each call then stores its gradient afresh instead of adding it to the last one
    backward(multi_head_attention_packed(qkv, heads), grad, false);
  });
  // Backward runs four products of the forward's size, so forward + backward is three times the forward.
  const double products = attention_products_flops(batch, len, len, heads * head_dim);
  const double forward_rate = products / median(forward) / 1e9, both_rate = 3.0 * products / median(both) / 1e9;
  const double peak = fma_peak_gflops();
  return {{"mode", "attention"},
          {"batch", batch},
          {"len", len},
          {"heads", heads},
          {"head_dim", head_dim},
          {"forward_seconds", forward},
          {"forward_backward_seconds", both},
          {"seconds", median(both)},
          {"forward_gflops", forward_rate},
          {"forward_backward_gflops", both_rate},
          {"fma_peak_gflops", peak},
          {"forward_backward_peak_utilisation", peak > 0 ? both_rate / peak : 0.0}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
#ifdef _OPENMP
    if (a.values.count("threads")) omp_set_num_threads(static_cast<int>(a.num("threads", 1)));
#endif
    const bool attention = a.mode == "attention";  // CPU only, without --device and --precision
    const Device device = attention ? Device::cpu() : device_of(a);
    const std::string precision = attention ? "" : set_precision(a);
    nlohmann::json j = a.mode == "train"   ? bench_train(a, device)
                       : a.mode == "infer" ? bench_infer(a, device)
                       : attention         ? bench_attention(a)
                                           : bench_loss(a, device);
    if (!attention) {
      j["device"] = device.str();
      j["precision"] = precision;
    }
    j["threads"] = omp_get_max_threads();
    if (!j.contains("peak_rss_mib")) j["peak_rss_mib"] = peak_rss_mib();
    if (!device.is_cpu()) {  // the host's figure, named so beside the device's
      j["peak_host_rss_mib"] = j["peak_rss_mib"];
      j.erase("peak_rss_mib");
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
