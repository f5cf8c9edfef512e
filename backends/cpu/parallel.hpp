// OpenMP helpers of the CPU backend.
#pragma once
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace siglite::cpu {

/// Work below this many elements runs on one thread: spawning costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Calls f(begin, end) on disjoint chunks of [0, n) in parallel; `cost` is the work per index
/// in elements, used to decide whether threads are worth starting.
template <typename F>
void parallel_for(int64_t n, int64_t cost, F&& f) {
  if (n <= 0) return;
  const bool par = n > 1 && n * cost >= kParallelGrain && max_threads() > 1;
  if (!par) {
    f(int64_t{0}, n);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t b = t * chunk, e = b + chunk < n ? b + chunk : n;
    if (b < e) f(b, e);
  }
#else
  f(int64_t{0}, n);
#endif
}

}  // namespace siglite::cpu
