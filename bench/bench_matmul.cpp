// Matmul throughput: siglite::matmul against a direct oneDNN dnnl_sgemm call on the same shapes, inputs and
// threads. Repetitions of all benchmarks are randomly interleaved and the summary compares medians, so load
// from other processes on the machine hits both sides alike.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <siglite/siglite.hpp>

namespace {

using siglite::Tensor;

struct MatmulShape {
  int64_t m, n, k;  // [m, k] @ [k, n]
};

// Square GEMMs, then a transformer MLP's two projections (16384 tokens, width 192, hidden 768).
constexpr MatmulShape kShapes[] = {{512, 512, 512}, {1024, 1024, 1024}, {16384, 768, 192}, {16384, 192, 768}};
constexpr const char* kCounter = "GFLOP/s";

std::string shape_name(const MatmulShape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
}

/// Inputs for one shape, shared by both sides and built once: random interleaving calls each benchmark
/// function again for every repetition.
struct Operands {
  Tensor<float> a, b, c;  // c: oneDNN's preallocated output
};

const Operands& operands(size_t shape) {
  static std::map<size_t, std::unique_ptr<Operands>> cache;
  auto& slot = cache[shape];
  if (!slot) {
    const MatmulShape& s = kShapes[shape];
    siglite::Generator gen(shape + 1);
    slot = std::make_unique<Operands>(Operands{Tensor<float>::uniform({s.m, s.k}, gen, -1.0f, 1.0f),
                                               Tensor<float>::uniform({s.k, s.n}, gen, -1.0f, 1.0f),
                                               Tensor<float>::empty({s.m, s.n})});
    // Warm-up outside the timed loop: Google Benchmark sizes every repetition's iteration count from the first
    // one, so a first iteration that pays for JIT code generation, thread start-up and page faults would set it
    // to 1.
    benchmark::DoNotOptimize(siglite::matmul(slot->a, slot->b).data());
    dnnl_sgemm('N', 'N', s.m, s.n, s.k, 1.0f, slot->a.data(), s.k, slot->b.data(), s.n, 0.0f, slot->c.data(), s.n);
  }
  return *slot;
}

void set_rate(benchmark::State& state, const MatmulShape& s) {
  const double gflop = 2e-9 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
  state.counters[kCounter] = benchmark::Counter(gflop * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void bm_siglite(benchmark::State& state, size_t shape) {
  const Operands& x = operands(shape);
  for (auto _ : state) {
    Tensor<float> c = siglite::matmul(x.a, x.b);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, kShapes[shape]);
}

void bm_onednn(benchmark::State& state, size_t shape) {
  const Operands& x = operands(shape);
  const MatmulShape& s = kShapes[shape];
  for (auto _ : state) {
    // Row-major, like siglite: C[m, n] = A[m, k] B[k, n].
    const dnnl_status_t st =
        dnnl_sgemm('N', 'N', s.m, s.n, s.k, 1.0f, x.a.data(), s.k, x.b.data(), s.n, 0.0f, x.c.data(), s.n);
    if (st != dnnl_success) {
      state.SkipWithError("dnnl_sgemm failed");
      break;
    }
    benchmark::DoNotOptimize(x.c.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, s);
}

/// The console output, plus every GFLOP/s value kept per benchmark for the summary.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  // A reporter passed in does not get --benchmark_color applied, so colour only goes to a terminal.
  SummaryReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const auto it = r.counters.find(kCounter);
      if (r.error_occurred || it == r.counters.end()) continue;
      const std::string& name = r.run_name.function_name;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") medians_[name] = it->second.value;
      else if (r.run_type == Run::RT_Iteration) samples_[name].push_back(it->second.value);
    }
  }

  /// Median GFLOP/s of a benchmark (Google Benchmark's aggregate when it made one); 0 when it never ran.
  double median(const std::string& name) const {
    if (const auto it = medians_.find(name); it != medians_.end()) return it->second;
    const auto it = samples_.find(name);
    if (it == samples_.end()) return 0.0;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
  }

 private:
  std::map<std::string, double> medians_;
  std::map<std::string, std::vector<double>> samples_;
};

}  // namespace

int main(int argc, char** argv) {
  // Defaults for a plain run; flags given on the command line come later and win.
  std::vector<std::string> flags{argv[0], "--benchmark_min_time=0.1", "--benchmark_repetitions=40",
                                 "--benchmark_enable_random_interleaving=true",
                                 "--benchmark_report_aggregates_only=true"};
  flags.insert(flags.end(), argv + 1, argv + argc);
  std::vector<char*> args;
  for (std::string& f : flags) args.push_back(f.data());
  int nargs = static_cast<int>(args.size());
  benchmark::Initialize(&nargs, args.data());
  if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 1;

  // Both sides run in the same oneDNN build on its OpenMP runtime, so they share this thread count.
  const int threads = omp_get_max_threads();
  const dnnl_version_t* v = dnnl_version();
  std::printf("bench_matmul: %d OpenMP threads for both sides; oneDNN %d.%d.%d\n", threads, v->major, v->minor,
              v->patch);

  for (size_t i = 0; i < std::size(kShapes); ++i) {
    const std::string s = shape_name(kShapes[i]);
    // Wall time: the work runs on OpenMP threads, which the main thread's CPU time would not count.
    benchmark::RegisterBenchmark(("siglite/" + s).c_str(), bm_siglite, i)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("onednn/" + s).c_str(), bm_onednn, i)->UseRealTime()->Unit(benchmark::kMillisecond);
  }

  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\nmedian GFLOP/s per shape (M x N x K), OpenMP threads: %d\n", threads);
  std::printf("%-18s %14s %14s %8s\n", "shape", "siglite", "oneDNN sgemm", "ratio");
  std::string json = "{\"bench\":\"matmul\",\"threads\":" + std::to_string(threads) + ",\"shapes\":[";
  double min_ratio = -1.0;
  bool first = true;
  for (const MatmulShape& s : kShapes) {
    const std::string name = shape_name(s);
    const double sg = reporter.median("siglite/" + name), dn = reporter.median("onednn/" + name);
    if (sg <= 0.0 || dn <= 0.0) continue;  // filtered out or failed
    const double ratio = sg / dn;
    min_ratio = min_ratio < 0.0 ? ratio : std::min(min_ratio, ratio);
    std::printf("%-18s %14.1f %14.1f %8.3f\n", name.c_str(), sg, dn, ratio);
    char entry[192];
    std::snprintf(entry, sizeof entry,
                  "%s{\"m\":%lld,\"n\":%lld,\"k\":%lld,\"siglite_gflops\":%.1f,\"onednn_gflops\":%.1f,\"ratio\":%.3f}",
                  first ? "" : ",", static_cast<long long>(s.m), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), sg, dn, ratio);
    json += entry;
    first = false;
  }
  char tail[64];
  std::snprintf(tail, sizeof tail, "],\"min_ratio\":%.3f}", min_ratio < 0.0 ? 0.0 : min_ratio);
  std::printf("%s%s\n", json.c_str(), tail);
  return 0;
}
