// The distributed sigmoid losses under MPI, chunked against gathered, forward + backward in float: time per step, the
// bytes each rank sends and the peak memory beyond its inputs, at the local batch b and width d given, on every rank.
// Run under mpirun; rank 0 prints one JSON line per loss:
//
//   mpirun -np 3 bench_dist_loss [--b 1024] [--d 256] [--tile 256] [--repeats 5]
//
// Bytes sent count each rank's payload: what it sends in an exchange, and for the gathered loss the share of an all-gather or a
// reduce-scatter that a ring algorithm makes each rank send ((D - 1) / D of the whole). Memory is the CPU allocator's
// peak bytes in use beyond the inputs, the largest over the ranks; time is the median over the repeats of the slowest
// rank's time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <siglite/dist/loss.hpp>
#include <siglite/dist/mpi.hpp>
#include <siglite/siglite.hpp>

namespace {

using namespace siglite;

/// A communicator that passes everything to another and counts the payload bytes this rank sends.
class Counting : public dist::Communicator {
 public:
  explicit Counting(dist::Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }
  void all_reduce_sum(const dist::Buffer& x) override {
    sent += 2 * share(x.bytes());
    inner_.all_reduce_sum(x);
  }
  void broadcast(const dist::Buffer& x, int root) override { inner_.broadcast(x, root); }
  void all_gather(const dist::Buffer& in, const dist::Buffer& out) override {
    sent += share(out.bytes());
    inner_.all_gather(in, out);
  }
  void reduce_scatter_sum(const dist::Buffer& in, const dist::Buffer& out) override {
    sent += share(in.bytes());
    inner_.reduce_scatter_sum(in, out);
  }
  std::unique_ptr<dist::Pending> exchange(const dist::Buffer& out, int to, const dist::Buffer& in, int from,
                                          int tag) override {
    sent += static_cast<double>(out.bytes());
    return inner_.exchange(out, to, in, from, tag);
  }
  void barrier() override { inner_.barrier(); }
  double sent = 0;

 private:
  double share(size_t bytes) const { return static_cast<double>(bytes) * (size() - 1) / size(); }
  dist::Communicator& inner_;
};

struct Result {
  double seconds = 0, sent = 0, peak = 0;
};

/// The largest value over the ranks, on every rank.
double max_over_ranks(dist::Communicator& comm, double v) {
  const Tensor<double> all = Tensor<double>::empty({comm.size()}, Device::cpu());
  const Tensor<double> mine = Tensor<double>::full({1}, v, Device::cpu());
  comm.all_gather(dist::buffer_of(mine), dist::buffer_of(all));
  const std::vector<double> values = all.to_vector();
  return *std::max_element(values.begin(), values.end());
}

Result measure(dist::MpiCommunicator& world, bool chunked, int64_t b, int64_t d, int64_t tile, int repeats) {
  Generator gen(42 + static_cast<uint64_t>(world.rank()));
  Tensor<float> img, txt;
  {
    NoGradGuard no_grad;
    img = l2_normalize(Tensor<float>::randn({b, d}, gen)).detach().set_requires_grad();
    txt = l2_normalize(Tensor<float>::randn({b, d}, gen)).detach().set_requires_grad();
  }
  Allocator& alloc = backends::of(Device::cpu()).allocator(0);
  std::vector<double> times;
  Result r;
  for (int rep = 0; rep < repeats; ++rep) {
    Tensor<float> tp = Tensor<float>::full({1}, std::log(10.0f)).set_requires_grad();
    Tensor<float> bias = Tensor<float>::full({1}, -10.0f).set_requires_grad();
    img.zero_grad();
    txt.zero_grad();
    Counting comm(world);
    world.barrier();
    const int64_t before = alloc.stats().bytes_in_use;
    alloc.reset_peak();
    const auto t0 = std::chrono::steady_clock::now();
    Tensor<float> loss = chunked ? dist::chunked_sigmoid_loss(comm, img, txt, tp, bias, tile)
                                 : dist::gathered_sigmoid_loss(comm, img, txt, tp, bias, tile);
    loss.backward();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(max_over_ranks(world, s));
    r.peak = std::max(r.peak, max_over_ranks(world, static_cast<double>(alloc.stats().peak_bytes_in_use - before)));
    r.sent = comm.sent;
    if (!std::isfinite(loss.item())) world.abort_job("bench_dist_loss: non-finite loss");
  }
  std::sort(times.begin(), times.end());
  r.seconds = times[times.size() / 2];
  return r;
}

int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  dist::MpiCommunicator world;
  try {
    const int64_t b = flag(argc, argv, "--b", 1024), d = flag(argc, argv, "--d", 256);
    const int64_t tile = flag(argc, argv, "--tile", 256);
    const int repeats = static_cast<int>(flag(argc, argv, "--repeats", 5));
    for (bool chunked : {true, false}) {
      const Result r = measure(world, chunked, b, d, tile, std::max(1, repeats));
      if (world.rank() == 0)
        std::printf("{\"loss\": \"%s\", \"ranks\": %d, \"b\": %lld, \"global_batch\": %lld, \"d\": %lld, "
                    "\"seconds\": %.4f, \"sent_mib_per_rank\": %.3f, \"peak_mib_per_rank\": %.3f}\n",
                    chunked ? "chunked" : "gathered", world.size(), static_cast<long long>(b),
                    static_cast<long long>(b * world.size()), static_cast<long long>(d), r.seconds,
                    r.sent / (1 << 20), r.peak / (1 << 20));
    }
  } catch (const std::exception& e) {
    world.abort_job(e.what());
  }
  return 0;
}
