// CPU kernels of multi-head attention on [batch, length, heads * head_dim] buffers: each (batch, head)
// pair reads its q, k and v columns in place and writes its output columns in place, so the heads
// are never split into, or merged from, a separate [batch, heads, length, head_dim] copy. One task
// per pair, its small GEMMs run by Eigen on the task's thread.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <limits>
#include <vector>

#include "backends/cpu/parallel.hpp"

namespace siglite::cpu {

using kernels::AttentionArgs;

namespace detail {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstRows = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using Rows = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

}  // namespace detail

/// p[b, h] = softmax(scale * q_bh k_bh^T + mask), out_bh = p[b, h] v_bh. p [batch, heads, lq, lk] is kept
/// for the backward pass; out [batch, lq, heads * dv] is contiguous.
template <typename T>
void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p, T* out) {
  using detail::ConstRows;
  using detail::Rows;
  const int64_t pairs = a.batch * a.heads, out_row = a.heads * a.dv;
  parallel_for(pairs, a.lq * a.lk * (a.dk + a.dv), [&](int64_t begin, int64_t end) {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / a.heads, h = pair % a.heads;
      const ConstRows<T> qm(q + b * a.q_batch + h * a.dk, a.lq, a.dk, Eigen::OuterStride<>(a.q_row));
      const ConstRows<T> km(k + b * a.k_batch + h * a.dk, a.lk, a.dk, Eigen::OuterStride<>(a.k_row));
      const ConstRows<T> vm(v + b * a.v_batch + h * a.dv, a.lk, a.dv, Eigen::OuterStride<>(a.v_row));
      Rows<T> pm(p + pair * a.lq * a.lk, a.lq, a.lk, Eigen::OuterStride<>(a.lk));
      pm.noalias() = qm * km.transpose();
      for (int64_t i = 0; i < a.lq; ++i) {
        Eigen::Map<Array> row(pm.data() + i * a.lk, a.lk);
        row *= a.scale;
        if (a.mask) {
          const T* m = a.mask + b * a.mask_batch + h * a.mask_head + i * a.mask_row;
          for (int64_t j = 0; j < a.lk; ++j) row[j] += m[j * a.mask_col];
        }
        T mx = row.maxCoeff();
        if (mx == -std::numeric_limits<T>::infinity()) mx = 0;  // a fully masked row stays finite
        row = (row - mx).exp();
        row /= row.sum();
      }
      Rows<T> om(out + b * a.lq * out_row + h * a.dv, a.lq, a.dv, Eigen::OuterStride<>(out_row));
      om.noalias() = pm * vm;
    }
  });
}

/// Gradients of attention_forward from the output gradient gout [batch, lq, heads * dv] (contiguous):
/// gq [batch, lq, heads * dk], gk [batch, lk, heads * dk], gv [batch, lk, heads * dv], each contiguous and
/// overwritten; any of them may be null.
template <typename T>
void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p, const T* gout,
                        T* gq, T* gk, T* gv) {
  using detail::ConstRows;
  using detail::Rows;
  const int64_t pairs = a.batch * a.heads, qk_row = a.heads * a.dk, v_row = a.heads * a.dv;
  parallel_for(pairs, 2 * a.lq * a.lk * (a.dk + a.dv), [&](int64_t begin, int64_t end) {
    detail::RowMat<T> ds(a.lq, a.lk);
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / a.heads, h = pair % a.heads;
      const ConstRows<T> qm(q + b * a.q_batch + h * a.dk, a.lq, a.dk, Eigen::OuterStride<>(a.q_row));
      const ConstRows<T> km(k + b * a.k_batch + h * a.dk, a.lk, a.dk, Eigen::OuterStride<>(a.k_row));
      const ConstRows<T> vm(v + b * a.v_batch + h * a.dv, a.lk, a.dv, Eigen::OuterStride<>(a.v_row));
      const ConstRows<T> pm(p + pair * a.lq * a.lk, a.lq, a.lk, Eigen::OuterStride<>(a.lk));
      const ConstRows<T> go(gout + b * a.lq * v_row + h * a.dv, a.lq, a.dv, Eigen::OuterStride<>(v_row));
      if (gv) Rows<T>(gv + b * a.lk * v_row + h * a.dv, a.lk, a.dv, Eigen::OuterStride<>(v_row)).noalias() =
          pm.transpose() * go;
      if (!gq && !gk) continue;
      // dS = P .* (dP - rowsum(dP .* P)) * scale, with dP = gout v^T.
      ds.noalias() = go * vm.transpose();
      for (int64_t i = 0; i < a.lq; ++i) {
        const T dot = ds.row(i).dot(pm.row(i));
        ds.row(i) = (pm.row(i).array() * (ds.row(i).array() - dot) * a.scale).matrix();
      }
      if (gq) Rows<T>(gq + b * a.lq * qk_row + h * a.dk, a.lq, a.dk, Eigen::OuterStride<>(qk_row)).noalias() = ds * km;
      if (gk) Rows<T>(gk + b * a.lk * qk_row + h * a.dk, a.lk, a.dk, Eigen::OuterStride<>(qk_row)).noalias() =
          ds.transpose() * qm;
    }
  });
}

}  // namespace siglite::cpu
