// CUDA kernels of multi-head attention on [batch, length, heads * head_dim] buffers, with the semantics of
// backends/cpu/attention.hpp: each (batch, head) pair's small GEMMs read q, k, v and write out and the gradients in
// place (no split or merged head copies), through cuBLAS strided-batched GEMMs, one call per head over the batch or
// one per batch item over the heads, whichever is fewer. A warp-per-row kernel does scale + mask + softmax, another
// the softmax gradient; the backward pass works through the batch in chunks to bound its dS scratch.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/blas.cuh"
#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

using kernels::AttentionArgs;

namespace attention_detail {

inline cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                           int k, const float* alpha, const float* a, int lda, long long sa,
                                           const float* b, int ldb, long long sb, const float* beta, float* c, int ldc,
                                           long long sc, int count) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, count);
}
inline cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                           int k, const double* alpha, const double* a, int lda, long long sa,
                                           const double* b, int ldb, long long sb, const double* beta, double* c,
                                           int ldc, long long sc, int count) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, count);
}

/// One operand of the per-pair GEMMs: the row-major matrix of pair (b, h) starts at ptr + b * batch + h * head,
/// b counted from the first batch item of the call, its rows ld apart.
template <typename P>
struct PairMatrix {
  P* ptr;
  int64_t ld, batch, head;
};

/// Zeroes C [m, n] of the nb * heads pairs: the product of an empty inner dimension.
template <typename T>
__global__ void zero_pairs_kernel(PairMatrix<T> c, int64_t nb, int64_t heads, int64_t m, int64_t n) {
  const int64_t total = nb * heads * m * n;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t col = i % n, r = i / n, row = r % m, pair = r / m;
    c.ptr[(pair / heads) * c.batch + (pair % heads) * c.head + row * c.ld + col] = T(0);
  }
}

/// C_bh [m, n] = op(A_bh) @ op(B_bh) (row-major, C overwritten) for the nb batch items of the call and every head.
/// A row-major product is the column-major product C^T = op(B)^T op(A)^T, so B goes to cuBLAS first. The pairs of
/// one call share one stride: a head's pairs are `batch` apart, a batch item's pairs `head` apart.
template <typename T>
void pairs_gemm(int64_t nb, int64_t heads, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                PairMatrix<const T> a, PairMatrix<const T> b, PairMatrix<T> c) {
  if (nb <= 0 || heads <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    zero_pairs_kernel<T><<<blocks_for(nb * heads * m * n), kThreads, 0, stream()>>>(c, nb, heads, m, n);
    SIGLITE_CUDA_LAUNCHED();
    return;
  }
  // A stored matrix of one row may come with any row stride (the MAP head's broadcast probe); cuBLAS still wants
  // at least the row's length.
  const auto ld = [](int64_t rows, int64_t cols, int64_t given) {
    return static_cast<int>(rows == 1 ? std::max(given, cols) : given);
  };
  const int lda = ld(trans_a ? k : m, trans_a ? m : k, a.ld), ldb = ld(trans_b ? n : k, trans_b ? k : n, b.ld),
            ldc = ld(m, n, c.ld);
  const T one = 1, zero = 0;
  cublasHandle_t h = blas();
  SIGLITE_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  const auto call = [&](const T* pa, const T* pb, T* pc, int64_t sa, int64_t sb, int64_t sc, int64_t count) {
    SIGLITE_CUBLAS_CHECK(gemm_strided_batched(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                              trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                                              static_cast<int>(m), static_cast<int>(k), &one, pb, ldb, sb, pa, lda, sa,
                                              &zero, pc, ldc, sc, static_cast<int>(count)));
  };
  if (heads <= nb) {
    for (int64_t hd = 0; hd < heads; ++hd)
      call(a.ptr + hd * a.head, b.ptr + hd * b.head, c.ptr + hd * c.head, a.batch, b.batch, c.batch, nb);
  } else {
    for (int64_t bi = 0; bi < nb; ++bi)
      call(a.ptr + bi * a.batch, b.ptr + bi * b.batch, c.ptr + bi * c.batch, a.head, b.head, c.head, heads);
  }
}

template <typename T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// The warp's maximum (NaN lanes are passed over, as by a running `x > max` comparison).
template <typename T>
__device__ inline T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    const T other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

// Rounded products that nvcc may not fuse with a following add, so that scale * s + mask rounds as on the CPU.
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return ::exp(x); }

/// The warp of each thread and the number of warps of the grid, for warp-per-row loops.
__device__ inline int64_t warp_index() { return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; }
__device__ inline int64_t warp_count() { return (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5; }

/// p rows (pair, i) of `rows` = batch * heads * lq, each lk long, in place: s = scores * scale + mask, then
/// softmax(s), or zeros where every s is -inf. One warp per row.
template <typename T>
__global__ void scores_softmax_kernel(T* p, AttentionArgs<T> a, int64_t rows) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t lk = a.lk;
  const T neg_inf = -cuda::infinity<T>();
  for (int64_t r = warp_index(); r < rows; r += warp_count()) {
    T* row = p + r * lk;
    const int64_t pair = r / a.lq, i = r % a.lq, b = pair / a.heads, h = pair % a.heads;
    const T* m = a.mask ? a.mask + b * a.mask_batch + h * a.mask_head + i * a.mask_row : nullptr;
    T mx = neg_inf;
    for (int64_t j = lane; j < lk; j += 32) {
      T s = mul_rn(row[j], a.scale);
      if (m) s += m[j * a.mask_col];
      row[j] = s;
      mx = s > mx ? s : mx;
    }
    mx = warp_max(mx);
    if (mx == neg_inf) {  // a fully masked row attends to nothing (warp-uniform: every lane holds the maximum)
      for (int64_t j = lane; j < lk; j += 32) row[j] = T(0);
      continue;
    }
    T sum = 0;
    for (int64_t j = lane; j < lk; j += 32) {
      const T e = exp_of(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    for (int64_t j = lane; j < lk; j += 32) row[j] /= sum;
  }
}

/// ds = p .* (ds - rowsum(ds .* p)) * scale in place, for `rows` rows of lk (ds holds dP = gout v^T). One warp per
/// row.
template <typename T>
__global__ void softmax_grad_kernel(const T* p, T* ds, int64_t rows, int64_t lk, T scale) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  for (int64_t r = warp_index(); r < rows; r += warp_count()) {
    const T* pr = p + r * lk;
    T* d = ds + r * lk;
    T dot = 0;
    for (int64_t j = lane; j < lk; j += 32) dot += d[j] * pr[j];
    dot = warp_sum(dot);
    for (int64_t j = lane; j < lk; j += 32) d[j] = pr[j] * (d[j] - dot) * scale;
  }
}

/// The most elements of the backward pass's dS scratch: larger batches are worked through in chunks.
constexpr int64_t kMaxScratch = int64_t(1) << 26;

}  // namespace attention_detail

/// p[b, h] = softmax(scale * q_bh k_bh^T + mask), out_bh = p[b, h] v_bh. p [batch, heads, lq, lk] is kept
/// for the backward pass; out [batch, lq, heads * dv] is contiguous.
template <typename T>
void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p, T* out) {
  using attention_detail::pairs_gemm;
  if (a.batch <= 0 || a.heads <= 0 || a.lq <= 0) return;
  const int64_t per = a.heads * a.lq * a.lk, out_row = a.heads * a.dv;
  pairs_gemm<T>(a.batch, a.heads, false, true, a.lq, a.lk, a.dk, {q, a.q_row, a.q_batch, a.dk},
                {k, a.k_row, a.k_batch, a.dk}, {p, a.lk, per, a.lq * a.lk});
  if (a.lk > 0) {
    const int64_t rows = a.batch * a.heads * a.lq;
    attention_detail::scores_softmax_kernel<T><<<blocks_for(rows * 32), kThreads, 0, stream()>>>(p, a, rows);
    SIGLITE_CUDA_LAUNCHED();
  }
  pairs_gemm<T>(a.batch, a.heads, false, false, a.lq, a.dv, a.lk, {p, a.lk, per, a.lq * a.lk},
                {v, a.v_row, a.v_batch, a.dv}, {out, out_row, a.lq * out_row, a.dv});
}

/// Gradients of attention_forward from the output gradient gout [batch, lq, heads * dv] (contiguous):
/// gq [batch, lq, .], gk [batch, lk, .], gv [batch, lk, .] with the batch and row strides of `a` (a.gq_batch,
/// a.gq_row, ...), head h in its columns as in q, k, v; overwritten, and any of them may be null. Nothing is summed
/// over the batch: a gradient of batch stride 0 (every batch item writing the same rows) is left as the CPU's
/// sequential loop over the pairs leaves it, holding the last batch item's gradient.
template <typename T>
void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p, const T* gout, T* gq,
                        T* gk, T* gv) {
  using attention_detail::pairs_gemm;
  if (a.batch <= 0 || a.heads <= 0 || (!gq && !gk && !gv)) return;
  const int64_t ll = a.lq * a.lk, per = a.heads * ll, out_row = a.heads * a.dv, gout_batch = a.lq * out_row;
  const int64_t chunk = per > 0 ? std::clamp<int64_t>(attention_detail::kMaxScratch / per, 1, a.batch) : a.batch;
  Workspace<T> scratch(gq || gk ? chunk * per : 0);
  T* ds = scratch.get();
  for (int64_t b0 = 0; b0 < a.batch; b0 += chunk) {
    const int64_t nb = std::min(chunk, a.batch - b0);
    // The batch items of this chunk a gradient is written for, [first, first + count): all of them, or for a batch
    // stride of 0 only the batch's last item.
    const auto items = [&](int64_t g_batch) -> std::pair<int64_t, int64_t> {
      if (g_batch != 0 || a.batch == 1) return {b0, nb};
      return b0 + nb == a.batch ? std::pair<int64_t, int64_t>{a.batch - 1, 1} : std::pair<int64_t, int64_t>{b0, 0};
    };
    if (gv) {
      const auto [s, c] = items(a.gv_batch);
      pairs_gemm<T>(c, a.heads, true, false, a.lk, a.dv, a.lq, {p + s * per, a.lk, per, ll},
                    {gout + s * gout_batch, out_row, gout_batch, a.dv},
                    {gv + s * a.gv_batch, a.gv_row, a.gv_batch, a.dv});
    }
    if (!gq && !gk) continue;
    // dS = P .* (dP - rowsum(dP .* P)) * scale, with dP = gout v^T, for the chunk's pairs.
    pairs_gemm<T>(nb, a.heads, false, true, a.lq, a.lk, a.dv, {gout + b0 * gout_batch, out_row, gout_batch, a.dv},
                  {v + b0 * a.v_batch, a.v_row, a.v_batch, a.dv}, {ds, a.lk, per, ll});
    if (a.lq > 0 && a.lk > 0) {
      const int64_t rows = nb * a.heads * a.lq;
      attention_detail::softmax_grad_kernel<T>
          <<<blocks_for(rows * 32), kThreads, 0, stream()>>>(p + b0 * per, ds, rows, a.lk, a.scale);
      SIGLITE_CUDA_LAUNCHED();
    }
    if (gq) {
      const auto [s, c] = items(a.gq_batch);
      pairs_gemm<T>(c, a.heads, false, false, a.lq, a.dk, a.lk, {ds + (s - b0) * per, a.lk, per, ll},
                    {k + s * a.k_batch, a.k_row, a.k_batch, a.dk}, {gq + s * a.gq_batch, a.gq_row, a.gq_batch, a.dk});
    }
    if (gk) {
      const auto [s, c] = items(a.gk_batch);
      pairs_gemm<T>(c, a.heads, true, false, a.lk, a.dk, a.lq, {ds + (s - b0) * per, a.lk, per, ll},
                    {q + s * a.q_batch, a.q_row, a.q_batch, a.dk}, {gk + s * a.gk_batch, a.gk_row, a.gk_batch, a.dk});
    }
  }
}

}  // namespace siglite::cuda
