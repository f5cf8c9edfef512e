// CUDA kernels of the tiled sigmoid loss (docs/loss.md): for each pair of a row tile i and a column tile j, a
// cuBLAS GEMM fills a [tile, tile] buffer with X_i Y_j^T, then one kernel turns it into the tile's loss terms
// (forward) or into t G, the gradient of the tile's products (backward), which two more GEMMs with beta = 1 add to
// dX_i and dY_j. t = exp(t'), b and the upstream gradient g are read by the kernels, never by the host. The n x n
// logits are never held: one tile buffer, and a few doubles per block of the tile kernel.
//
// The math functions are called as ::exp etc. (CUDA's float and double overloads): unqualified, the tensor ops
// siglite::exp etc. would hide them where a translation unit includes both.
//
// Determinism: the tile kernel always runs with the same number of blocks, and block k adds its sum to the double
// acc[k] (launches are ordered on the stream, so no atomics); a last one-block kernel adds the acc[k] in order.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/cub.cuh>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/cuda/gemm.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

namespace loss_detail {

/// Blocks of the tile kernels: one per row of a tile, at most this many (then each takes every kMaxBlocks-th row).
constexpr int64_t kMaxBlocks = 1024;

/// The sum of v over the block (kThreads threads), valid in thread 0; the order of the additions is fixed.
__device__ inline double block_sum(double v) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const double total = Reduce(storage).Sum(v);
  __syncthreads();  // the storage may be used again by the caller's next block_sum
  return total;
}

/// acc[blockIdx.x] += the sum over the tile of -log_sigmoid(label * (t s + b)), s [rows, cols] with leading
/// dimension ld and label +1 where c == r + diag, else -1. As on the CPU: -log_sigmoid(-x) = softplus(x) =
/// max(x, 0) + log1p(exp(-|x|)) in T, and the positive pair's term softplus(x) - x, its logit subtracted in double.
template <typename T>
__global__ void sigmoid_loss_tile_kernel(const T* s, int64_t rows, int64_t cols, int64_t ld, int64_t diag,
                                         const T* t_prime, const T* bias, double* acc) {
  const T t = ::exp(t_prime[0]), b = bias[0];
  double sum = 0;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* sr = s + r * ld;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T logit = t * sr[c] + b;
      sum += static_cast<double>((logit < T(0) ? T(0) : logit) + ::log1p(::exp(-::fabs(logit))));
      if (c == r + diag) sum -= static_cast<double>(logit);
    }
  }
  const double total = block_sum(sum);
  if (threadIdx.x == 0) acc[blockIdx.x] += total;
}

/// Overwrites the tile s (as sigmoid_loss_tile_kernel's) with t G, where z = t s and G = (sigmoid(z + b) -
/// [c == r + diag]) * g[0] / divisor, and adds sum(G) to acc_g[blockIdx.x] and sum(G .* z) to acc_gz[blockIdx.x].
template <typename T>
__global__ void sigmoid_loss_tile_backward_kernel(T* s, int64_t rows, int64_t cols, int64_t ld, int64_t diag,
                                                  const T* t_prime, const T* bias, const T* g, double divisor, double* acc_g,
                                                  double* acc_gz) {
  const T t = ::exp(t_prime[0]), b = bias[0], scale = static_cast<T>(static_cast<double>(g[0]) / divisor);
  double sum_g = 0, sum_gz = 0;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* sr = s + r * ld;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T z = t * sr[c];
      T grad = scale / (T(1) + ::exp(-(z + b)));
      if (c == r + diag) grad -= scale;
      sum_g += static_cast<double>(grad);
      sum_gz += static_cast<double>(grad * z);
      sr[c] = t * grad;
    }
  }
  const double total_g = block_sum(sum_g), total_gz = block_sum(sum_gz);
  if (threadIdx.x == 0) {
    acc_g[blockIdx.x] += total_g;
    acc_gz[blockIdx.x] += total_gz;
  }
}

/// out[0] = (acc[0] + ... + acc[count - 1]) / divisor, one block of kThreads threads, in a fixed order.
template <typename T>
__global__ void sigmoid_loss_total_kernel(const double* acc, int64_t count, double divisor, T* out) {
  double sum = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) sum += acc[k];
  const double total = block_sum(sum);
  if (threadIdx.x == 0) out[0] = static_cast<T>(total / divisor);
}

/// The smallest tile edge the GPU takes, whatever the caller asks: smaller products leave it idle between launches
/// (a float tile of 4096^2 is 64 MiB).
constexpr int64_t kMinTile = 4096;

/// The tiling of a block of n x m logits: square tiles of edge tb, nti row tiles and ntj column tiles, the tile
/// kernels on `blocks` blocks.
struct Tiling {
  int64_t tb, nti, ntj, blocks;
  explicit Tiling(const kernels::SigmoidLossArgs& a)
      : tb(std::max<int64_t>(1, std::min(std::max(a.tile, kMinTile), std::max(a.n, a.m)))),
        nti((a.n + tb - 1) / tb), ntj((a.m + tb - 1) / tb), blocks(tb < kMaxBlocks ? tb : kMaxBlocks) {}
};

}  // namespace loss_detail

/// loss[0] = -sum_ij log_sigmoid(label_ij (exp(t'[0]) x_i . y_j + b[0])) / divisor, `a.tile` x `a.tile` logits at a
/// time: per tile pair, s = X_i Y_j^T (a GEMM), then the tile kernel's block sums; all summed in double.
template <typename T>
void sigmoid_loss_forward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                          const T* bias, T* loss) {
  using namespace loss_detail;
  const int64_t n = a.n, m = a.m, d = a.d;
  const Tiling tl(a);
  Workspace<double> acc(tl.blocks);
  SIGLITE_CUDA_CHECK(cudaMemsetAsync(acc.get(), 0, static_cast<size_t>(tl.blocks) * sizeof(double), stream()));
  Workspace<T> s(tl.tb * tl.tb);
  for (int64_t i = 0; i < tl.nti; ++i) {
    for (int64_t j = 0; j < tl.ntj; ++j) {
      const int64_t i0 = i * tl.tb, j0 = j * tl.tb;
      const int64_t r = std::min(tl.tb, n - i0), c = std::min(tl.tb, m - j0);
      gemm(kernels::single_gemm<T>(false, true, r, c, d, d, d, tl.tb), x + i0 * d, y + j0 * d, s.get());
      sigmoid_loss_tile_kernel<T><<<static_cast<unsigned>(tl.blocks), kThreads, 0, stream()>>>(
          s.get(), r, c, tl.tb, kernels::sigmoid_loss_diagonal(a, i0, j0), t_prime, bias, acc.get());
      SIGLITE_CUDA_LAUNCHED();
    }
  }
  sigmoid_loss_total_kernel<T><<<1, kThreads, 0, stream()>>>(acc.get(), tl.blocks, a.divisor, loss);
  SIGLITE_CUDA_LAUNCHED();
}

/// Its gradients, scaled by g[0]: per tile pair, with G = (sigmoid(Z) - labels_positive) * g[0] / divisor and Z = t X_i Y_j^T + b,
/// dX_i += t G Y_j, dY_j += t G^T X_i (GEMMs with beta = 1 on zeroed dx and dy), db = sum(G), dt' = sum(G .* (Z -
/// b)); the tiles' logits recomputed, never kept from forward.
template <typename T>
void sigmoid_loss_backward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                           const T* bias, const T* g, T* dx, T* dy, T* dt_prime, T* dbias) {
  using namespace loss_detail;
  const int64_t n = a.n, m = a.m, d = a.d;
  const Tiling tl(a);
  const auto bytes = [](int64_t rows, int64_t cols) { return static_cast<size_t>(rows * cols) * sizeof(T); };
  if (dx && n * d > 0) SIGLITE_CUDA_CHECK(cudaMemsetAsync(dx, 0, bytes(n, d), stream()));
  if (dy && m * d > 0) SIGLITE_CUDA_CHECK(cudaMemsetAsync(dy, 0, bytes(m, d), stream()));
  Workspace<double> acc(2 * tl.blocks);  // acc_g, then acc_gz
  double* acc_g = acc.get();
  double* acc_gz = acc.get() + tl.blocks;
  SIGLITE_CUDA_CHECK(cudaMemsetAsync(acc.get(), 0, static_cast<size_t>(2 * tl.blocks) * sizeof(double), stream()));
  Workspace<T> s(tl.tb * tl.tb);
  for (int64_t i = 0; i < tl.nti; ++i) {
    for (int64_t j = 0; j < tl.ntj; ++j) {
      const int64_t i0 = i * tl.tb, j0 = j * tl.tb;
      const int64_t r = std::min(tl.tb, n - i0), c = std::min(tl.tb, m - j0);
      gemm(kernels::single_gemm<T>(false, true, r, c, d, d, d, tl.tb), x + i0 * d, y + j0 * d, s.get());
      sigmoid_loss_tile_backward_kernel<T><<<static_cast<unsigned>(tl.blocks), kThreads, 0, stream()>>>(
          s.get(), r, c, tl.tb, kernels::sigmoid_loss_diagonal(a, i0, j0), t_prime, bias, g, a.divisor, acc_g, acc_gz);
      SIGLITE_CUDA_LAUNCHED();
      if (dx) gemm(kernels::single_gemm<T>(false, false, r, d, c, tl.tb, d, d, T(1), T(1)), s.get(), y + j0 * d,
                   dx + i0 * d);
      if (dy) gemm(kernels::single_gemm<T>(true, false, c, d, r, tl.tb, d, d, T(1), T(1)), s.get(), x + i0 * d,
                   dy + j0 * d);
    }
  }
  sigmoid_loss_total_kernel<T><<<1, kThreads, 0, stream()>>>(acc_gz, tl.blocks, 1.0, dt_prime);
  SIGLITE_CUDA_LAUNCHED();
  sigmoid_loss_total_kernel<T><<<1, kThreads, 0, stream()>>>(acc_g, tl.blocks, 1.0, dbias);
  SIGLITE_CUDA_LAUNCHED();
}

}  // namespace siglite::cuda
