// CUDA optimizer updates and gradient-norm kernels (the GPU side of backends/cpu/optim.hpp). The updates are fused
// elementwise grid-stride kernels with the CPU's formulas, operation order and precision (scalars computed on the
// host in double, then rounded to T). global_norm sums squares in double: one launch per buffer writes a fixed
// number of block partials (a function of the buffer's size) to a Workspace, one final block adds them in a fixed
// order and writes norm[0]; clip_by_norm reads norm[0] in its kernels, so the host never waits for the device.
#pragma once
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

namespace optim_detail {

__device__ __forceinline__ float sqrt_(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt_(double x) { return ::sqrt(x); }

#define SIGLITE_OPTIM_GRID_STRIDE(i, n)                                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, T decay, T b1, T c1, T b2, T c2, T bc2_sqrt,
                             T eps, T step_size) {
  SIGLITE_OPTIM_GRID_STRIDE(i, n) {
    const T gi = g[i];
    const T mi = m[i] * b1 + gi * c1;
    const T vi = v[i] * b2 + gi * gi * c2;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * (mi / (sqrt_(vi) / bc2_sqrt + eps));
  }
}

template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T mom, T keep, bool use_wd, bool use_mom,
                           bool first_step, bool nesterov) {
  SIGLITE_OPTIM_GRID_STRIDE(i, n) {
    T d = use_wd ? g[i] + p[i] * wd : g[i];
    if (use_mom) {
      // torch starts the buffer at the first gradient itself, undamped.
      const T b = first_step ? d : buf[i] * mom + d * keep;
      buf[i] = b;
      d = nesterov ? d + b * mom : b;
    }
    p[i] = p[i] - lr * d;
  }
}

template <typename T>
__global__ void lion_kernel(T* p, const T* g, T* m, int64_t n, T decay, T lr, T b1, T c1, T b2, T c2) {
  SIGLITE_OPTIM_GRID_STRIDE(i, n) {
    const T c = m[i] * b1 + g[i] * c1;
    // sign(c) that keeps 0 at 0 and lets a NaN through instead of hiding it.
    const T u = c > T(0) ? T(1) : (c < T(0) ? T(-1) : c);
    p[i] = p[i] * decay - lr * u;
    m[i] = m[i] * b2 + g[i] * c2;
  }
}

/// The sum of v over a block of kThreads threads, in thread 0: warp shuffles, then warp 0 adds the warps' sums in
/// warp order. A fixed tree, so the same bits on every run.
__device__ __forceinline__ double block_sum(double v) {
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_sums[kWarps];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  return total;
}

/// Blocks (and so partial sums) of one buffer's sum of squares: a function of n only.
inline int64_t norm_blocks(int64_t n) {
  constexpr int64_t kMaxBlocks = 256, kPerThread = 8;
  const int64_t b = (n + kThreads * kPerThread - 1) / (kThreads * kPerThread);
  return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

/// partial[blockIdx.x] = the sum of x[i]^2 in double over the block's grid-stride elements.
template <typename T>
__global__ void __launch_bounds__(kThreads) sum_squares_kernel(const T* x, int64_t n, double* partial) {
  double s = 0;
  SIGLITE_OPTIM_GRID_STRIDE(i, n) s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/// norm[0] = sqrt(the sum of the n partials), added in a fixed order by one block. (A template, S = double, so that
/// every translation unit may define it.)
template <typename S>
__global__ void __launch_bounds__(kThreads) norm_total_kernel(const S* partial, int64_t n, S* norm) {
  S s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) norm[0] = ::sqrt(s);
}

/// x *= max_norm / (norm[0] + 1e-6) (rounded to T) where norm[0] is finite and that factor is below 1.
template <typename T>
__global__ void clip_kernel(T* x, int64_t n, const double* norm, double max_norm) {
  const double total = norm[0];
  if (!(::fabs(total) < CUDART_INF)) return;  // inf or NaN
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1) return;
  const T factor = static_cast<T>(coef);
  SIGLITE_OPTIM_GRID_STRIDE(i, n) x[i] = x[i] * factor;
}

#undef SIGLITE_OPTIM_GRID_STRIDE

}  // namespace optim_detail

template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, const kernels::AdamWArgs& a) {
  if (n <= 0) return;
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T b1 = static_cast<T>(a.beta1), c1 = static_cast<T>(1.0 - a.beta1);
  const T b2 = static_cast<T>(a.beta2), c2 = static_cast<T>(1.0 - a.beta2);
  const T bc2_sqrt = static_cast<T>(std::sqrt(a.bias_correction2)), eps = static_cast<T>(a.eps);
  const T step_size = static_cast<T>(a.lr / a.bias_correction1);
  optim_detail::adamw_kernel<T>
      <<<blocks_for(n), kThreads, 0, stream()>>>(p, g, m, v, n, decay, b1, c1, b2, c2, bc2_sqrt, eps, step_size);
  SIGLITE_CUDA_LAUNCHED();
}

template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const kernels::SgdArgs& a) {
  if (n <= 0) return;
  const T lr = static_cast<T>(a.lr), wd = static_cast<T>(a.weight_decay);
  const T mom = static_cast<T>(a.momentum), keep = static_cast<T>(1.0 - a.dampening);
  const bool use_wd = a.weight_decay != 0, use_mom = a.momentum != 0;
  optim_detail::sgd_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(p, g, buf, n, lr, wd, mom, keep, use_wd,
                                                                        use_mom, a.first_step, a.nesterov);
  SIGLITE_CUDA_LAUNCHED();
}

template <typename T>
void lion_update(T* p, const T* g, T* m, int64_t n, const kernels::LionArgs& a) {
  if (n <= 0) return;
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay), lr = static_cast<T>(a.lr);
  const T b1 = static_cast<T>(a.beta1), c1 = static_cast<T>(1.0 - a.beta1);
  const T b2 = static_cast<T>(a.beta2), c2 = static_cast<T>(1.0 - a.beta2);
  optim_detail::lion_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(p, g, m, n, decay, lr, b1, c1, b2, c2);
  SIGLITE_CUDA_LAUNCHED();
}

/// norm[0] (device) = sqrt(sum of squares of every buffer), the same bits on every run: each buffer's fixed blocks
/// write their partial sums, in buffer order, to one Workspace, which one block then adds in a fixed order. An empty
/// list gives 0.
template <typename T>
void global_norm(const std::vector<kernels::Span<const T>>& xs, double* norm) {
  const cudaStream_t s = stream();
  int64_t total = 0;
  for (const auto& x : xs)
    if (x.n > 0) total += optim_detail::norm_blocks(x.n);
  Workspace<double> partials(total);
  int64_t offset = 0;
  for (const auto& x : xs) {
    if (x.n <= 0) continue;
    const int64_t blocks = optim_detail::norm_blocks(x.n);
    optim_detail::sum_squares_kernel<T>
        <<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(x.data, x.n, partials.get() + offset);
    SIGLITE_CUDA_LAUNCHED();
    offset += blocks;
  }
  optim_detail::norm_total_kernel<double><<<1, kThreads, 0, s>>>(partials.get(), total, norm);
  SIGLITE_CUDA_LAUNCHED();
}

/// Every kernel decides from norm[0] itself whether to scale (and leaves its buffer as it is otherwise).
template <typename T>
void clip_by_norm(const std::vector<kernels::Span<T>>& xs, const double* norm, double max_norm) {
  const cudaStream_t s = stream();
  for (const auto& x : xs) {
    if (x.n <= 0) continue;
    optim_detail::clip_kernel<T><<<blocks_for(x.n), kThreads, 0, s>>>(x.data, x.n, norm, max_norm);
    SIGLITE_CUDA_LAUNCHED();
  }
}

}  // namespace siglite::cuda
