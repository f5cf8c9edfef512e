// CUDA GEMM: the row-major, batched GEMM of backends/kernels.hpp by cuBLAS, and the deterministic column sums
// that the linear layer's bias gradient needs. cuBLAS is column-major: a row-major C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T, so the operands are passed swapped with the same transpose flags. Sizes
// beyond cuBLAS's int arguments are cut into chunks; k = 0 (C = beta * C) is a scaling kernel.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/blas.cuh"
#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

using kernels::GemmArgs;

namespace gemm_detail {

/// The largest extent of one cuBLAS call along m, n, k or the batch: a power of two below INT_MAX.
constexpr int64_t kMaxChunk = int64_t(1) << 30;

inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                const float* alpha, const float* a, int lda, long long sa, const float* b, int ldb,
                                long long sb, const float* beta, float* c, int ldc, long long sc, int batch) {
  if (batch == 1) return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                const double* alpha, const double* a, int lda, long long sa, const double* b, int ldb,
                                long long sb, const double* beta, double* c, int ldc, long long sc, int batch) {
  if (batch == 1) return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

/// The leading dimension cuBLAS gets for a column-major matrix of `rows` x `cols` stored with leading dimension
/// ld: any value will do for a single column, which then gets the smallest one cuBLAS accepts (a row-major [1, k]
/// operand may come with ld 0); otherwise ld, which must be at least `rows` and fit an int.
inline int leading_dim(const char* name, int64_t ld, int64_t rows, int64_t cols) {
  const int64_t least = std::max<int64_t>(1, rows);
  if (cols <= 1) return static_cast<int>(least);
  SIGLITE_CHECK(ld >= least, "gemm: leading dimension ", name, " = ", ld, " is below the ", least,
                " elements of a row of its matrix");
  SIGLITE_CHECK(ld <= INT_MAX, "gemm: leading dimension ", name, " = ", ld,
                " is beyond cuBLAS's int range; copy the operand to a contiguous tensor first");
  return static_cast<int>(ld);
}

/// C[b] = beta * C[b] (zeros where beta is 0, whatever C held), for a product over k = 0.
template <typename T>
__global__ void gemm_scale_kernel(T* c, int64_t batch, int64_t m, int64_t n, int64_t ldc, int64_t stride_c, T beta) {
  const int64_t total = batch * m * n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t j = idx % n, rest = idx / n, i = rest % m, bi = rest / m;
    T& v = c[bi * stride_c + i * ldc + j];
    v = beta == T(0) ? T(0) : beta * v;
  }
}

/// One cuBLAS call for a chunk whose sizes all fit an int (m, n, k > 0).
template <typename T>
void gemm_chunk(const GemmArgs<T>& g, const T* a, const T* b, T* c) {
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major views of the row-major operands: A is [k, m] (trans_a: [m, k]), B is [n, k] (trans_b: [k, n]),
  // C is [n, m].
  const int lda = g.trans_a ? leading_dim("lda", g.lda, g.m, g.k) : leading_dim("lda", g.lda, g.k, g.m);
  const int ldb = g.trans_b ? leading_dim("ldb", g.ldb, g.k, g.n) : leading_dim("ldb", g.ldb, g.n, g.k);
  const int ldc = leading_dim("ldc", g.ldc, g.n, g.m);
  cublasHandle_t h = blas();
  SIGLITE_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  SIGLITE_CUBLAS_CHECK(gemm_call(h, op_b, op_a, static_cast<int>(g.n), static_cast<int>(g.m), static_cast<int>(g.k),
                                 &g.alpha, b, ldb, g.stride_b, a, lda, g.stride_a, &g.beta, c, ldc, g.stride_c,
                                 static_cast<int>(g.batch)));
}

}  // namespace gemm_detail

/// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], row-major (backends/kernels.hpp). A batch stride of 0
/// broadcasts an operand; a C batch stride of 0 over several batch items accumulates them into the one C in batch
/// order, as the CPU does. Extents beyond cuBLAS's int range are cut into chunks (along k, the chunks after the
/// first add to C with beta = 1).
template <typename T>
void gemm(const GemmArgs<T>& g, const T* a, const T* b, T* c) {
  using gemm_detail::kMaxChunk;
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;
  if (g.batch > 1 && g.stride_c == 0) {
    GemmArgs<T> one = g;
    one.batch = 1;
    for (int64_t i = 0; i < g.batch; ++i) gemm(one, a + i * g.stride_a, b + i * g.stride_b, c);
    return;
  }
  if (g.k <= 0) {
    if (g.beta == T(1)) return;
    const int64_t total = g.batch * g.m * g.n;
    gemm_detail::gemm_scale_kernel<T>
        <<<blocks_for(total), kThreads, 0, stream()>>>(c, g.batch, g.m, g.n, g.ldc, g.stride_c, g.beta);
    SIGLITE_CUDA_LAUNCHED();
    return;
  }
  for (int64_t b0 = 0; b0 < g.batch; b0 += kMaxChunk) {
    for (int64_t i0 = 0; i0 < g.m; i0 += kMaxChunk) {
      for (int64_t j0 = 0; j0 < g.n; j0 += kMaxChunk) {
        for (int64_t k0 = 0; k0 < g.k; k0 += kMaxChunk) {
          GemmArgs<T> part = g;
          part.batch = std::min(kMaxChunk, g.batch - b0);
          part.m = std::min(kMaxChunk, g.m - i0);
          part.n = std::min(kMaxChunk, g.n - j0);
          part.k = std::min(kMaxChunk, g.k - k0);
          if (k0 > 0) part.beta = T(1);
          const T* pa = a + b0 * g.stride_a + (g.trans_a ? k0 * g.lda + i0 : i0 * g.lda + k0);
          const T* pb = b + b0 * g.stride_b + (g.trans_b ? j0 * g.ldb + k0 : k0 * g.ldb + j0);
          T* pc = c + b0 * g.stride_c + i0 * g.ldc + j0;
          gemm_detail::gemm_chunk(part, pa, pb, pc);
        }
      }
    }
  }
}

namespace gemm_detail {

/// Column sums, pass one: block (bx, by) sums the rows [by * rows_per_chunk, ...) of the columns [32 bx, 32 bx + 32)
/// in double, each of its 8 thread rows taking every 8th row, then the 8 partial sums in order; the result goes to
/// out[col] when there is one chunk, else to partial[by * cols + col].
template <typename T>
__global__ void column_sums_kernel(const T* x, int64_t rows, int64_t cols, int64_t rows_per_chunk, double* partial,
                                   T* out) {
  __shared__ double sums[8][33];
  const int64_t col = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double s = 0;
  if (col < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += static_cast<double>(x[r * cols + col]);
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    double total = 0;
    for (int k = 0; k < 8; ++k) total += sums[k][threadIdx.x];
    if (gridDim.y == 1) out[col] = static_cast<T>(total);
    else partial[blockIdx.y * cols + col] = total;
  }
}

/// Column sums, pass two: out[col] = the chunks' partial sums of col, added in chunk order.
template <typename T>
__global__ void column_sums_finish_kernel(const double* partial, int64_t chunks, int64_t cols, T* out) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < cols;
       col += int64_t(blockDim.x) * gridDim.x) {
    double total = 0;
    for (int64_t k = 0; k < chunks; ++k) total += partial[k * cols + col];
    out[col] = static_cast<T>(total);
  }
}

}  // namespace gemm_detail

/// out[c] = sum over r of x[r, c] for x [rows, cols] (row-major, contiguous), overwritten; summed in double in an
/// order fixed by rows and cols alone, so the same bits on every run (a bias gradient).
template <typename T>
void column_sums(const T* x, int64_t rows, int64_t cols, T* out) {
  if (cols <= 0) return;
  if (rows <= 0) {
    SIGLITE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(cols) * sizeof(T), stream()));
    return;
  }
  // Row chunks: enough blocks to fill the GPU (about 2048 in all), each chunk at least 128 rows.
  const int64_t col_blocks = (cols + 31) / 32;
  SIGLITE_CHECK(col_blocks <= INT_MAX, "column_sums: ", cols, " columns are too many for one grid");
  const int64_t want = std::max<int64_t>(1, 2048 / col_blocks);
  const int64_t chunks_wanted = std::min<int64_t>({(rows + 127) / 128, want, 65535});
  const int64_t rows_per_chunk = (rows + chunks_wanted - 1) / chunks_wanted;
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  Workspace<double> partial(chunks > 1 ? chunks * cols : 1);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)), block(32, 8);
  gemm_detail::column_sums_kernel<T><<<grid, block, 0, stream()>>>(x, rows, cols, rows_per_chunk, partial.get(), out);
  SIGLITE_CUDA_LAUNCHED();
  if (chunks > 1) {
    gemm_detail::column_sums_finish_kernel<T>
        <<<blocks_for(cols), kThreads, 0, stream()>>>(partial.get(), chunks, cols, out);
    SIGLITE_CUDA_LAUNCHED();
  }
}

}  // namespace siglite::cuda
