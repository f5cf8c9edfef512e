// CPU kernels of multi-head attention on [batch, length, heads * head_dim] buffers: each (batch, head)
// pair reads its q, k and v columns in place and writes its output columns in place, so the heads
// are never split into, or merged from, a separate [batch, heads, length, head_dim] copy. One task
// per pair, its small GEMMs run by cpu::gemm on the task's thread (oneDNN's sgemm for float, which
// runs on the calling thread inside a parallel region).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <limits>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/gemm.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

using kernels::AttentionArgs;

namespace detail {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstRows = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;

/// c [m, n] (leading dimension ldc) = op(a) @ op(b), one pair's product.
template <typename T>
void pair_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
               int64_t ldb, T* c, int64_t ldc) {
  // A stored matrix of one row may come with any row stride (the MAP head's broadcast probe); sgemm still
  // wants at least the row's length.
  const auto ld = [](int64_t rows, int64_t cols, int64_t given) { return rows == 1 ? std::max(given, cols) : given; };
  gemm(kernels::single_gemm<T>(trans_a, trans_b, m, n, k, ld(trans_a ? k : m, trans_a ? m : k, lda),
                               ld(trans_b ? n : k, trans_b ? k : n, ldb), ld(m, n, ldc)),
       a, b, c);
}

}  // namespace detail

/// p[b, h] = softmax(scale * q_bh k_bh^T + mask), out_bh = p[b, h] v_bh. p [batch, heads, lq, lk] is kept
/// for the backward pass; out [batch, lq, heads * dv] is contiguous.
template <typename T>
void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p, T* out) {
  using detail::pair_gemm;
  const int64_t pairs = a.batch * a.heads, out_row = a.heads * a.dv;
  parallel_for(pairs, a.lq * a.lk * (a.dk + a.dv), [&](int64_t begin, int64_t end) {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / a.heads, h = pair % a.heads;
      const T* qp = q + b * a.q_batch + h * a.dk;  // [lq, dk], rows a.q_row apart
      const T* kp = k + b * a.k_batch + h * a.dk;  // [lk, dk]
      const T* vp = v + b * a.v_batch + h * a.dv;  // [lk, dv]
      T* pp = p + pair * a.lq * a.lk;              // [lq, lk]
      pair_gemm(false, true, a.lq, a.lk, a.dk, qp, a.q_row, kp, a.k_row, pp, a.lk);
      for (int64_t i = 0; i < a.lq; ++i) {
        Eigen::Map<Array> row(pp + i * a.lk, a.lk);
        row *= a.scale;
        if (a.mask) {
          const T* m = a.mask + b * a.mask_batch + h * a.mask_head + i * a.mask_row;
          for (int64_t j = 0; j < a.lk; ++j) row[j] += m[j * a.mask_col];
        }
        const T mx = row.maxCoeff();
        if (mx == -std::numeric_limits<T>::infinity()) {  // a fully masked row attends to nothing
          row.setZero();
          continue;
        }
        row = (row - mx).exp();
        row /= row.sum();
      }
      pair_gemm(false, false, a.lq, a.dv, a.lk, pp, a.lk, vp, a.v_row, out + b * a.lq * out_row + h * a.dv, out_row);
    }
  });
}

/// Gradients of attention_forward from the output gradient gout [batch, lq, heads * dv] (contiguous):
/// gq [batch, lq, .], gk [batch, lk, .], gv [batch, lk, .] with the batch and row strides of `a` (a.gq_batch,
/// a.gq_row, ...), head h in its columns as in q, k, v; overwritten, and any of them may be null.
template <typename T>
void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p, const T* gout,
                        T* gq, T* gk, T* gv) {
  using detail::ConstRows;
  using detail::pair_gemm;
  const int64_t pairs = a.batch * a.heads, v_row = a.heads * a.dv;
  parallel_for(pairs, 2 * a.lq * a.lk * (a.dk + a.dv), [&](int64_t begin, int64_t end) {
    detail::RowMat<T> ds(a.lq, a.lk);
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / a.heads, h = pair % a.heads;
      const T* qp = q + b * a.q_batch + h * a.dk;         // [lq, dk], rows a.q_row apart
      const T* kp = k + b * a.k_batch + h * a.dk;         // [lk, dk]
      const T* vp = v + b * a.v_batch + h * a.dv;         // [lk, dv]
      const T* pp = p + pair * a.lq * a.lk;               // [lq, lk]
      const T* go = gout + b * a.lq * v_row + h * a.dv;   // [lq, dv], rows v_row apart
      if (gv)
        pair_gemm(true, false, a.lk, a.dv, a.lq, pp, a.lk, go, v_row, gv + b * a.gv_batch + h * a.dv, a.gv_row);
      if (!gq && !gk) continue;
      // dS = P .* (dP - rowsum(dP .* P)) * scale, with dP = gout v^T.
      pair_gemm(false, true, a.lq, a.lk, a.dv, go, v_row, vp, a.v_row, ds.data(), a.lk);
      const ConstRows<T> pm(pp, a.lq, a.lk, Eigen::OuterStride<>(a.lk));
      for (int64_t i = 0; i < a.lq; ++i) {
        const T dot = ds.row(i).dot(pm.row(i));
        ds.row(i) = (pm.row(i).array() * (ds.row(i).array() - dot) * a.scale).matrix();
      }
      if (gq)
        pair_gemm(false, false, a.lq, a.dk, a.lk, ds.data(), a.lk, kp, a.k_row, gq + b * a.gq_batch + h * a.dk,
                  a.gq_row);
      if (gk)
        pair_gemm(true, false, a.lk, a.dk, a.lq, ds.data(), a.lk, qp, a.q_row, gk + b * a.gk_batch + h * a.dk,
                  a.gk_row);
    }
  });
}

}  // namespace siglite::cpu
