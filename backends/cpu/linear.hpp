// CPU kernels of a linear layer with its epilogue: y = x @ w^T + bias, optionally followed by an activation.
// Forward in float (with oneDNN) is one matmul primitive on all threads on the weight reordered into its
// kernel's blocked layout, the bias added by the kernel; the activation is a second pass. Otherwise, and in
// backward, the rows are cut into blocks, a multiple of the thread count; each thread runs its blocks' GEMMs on
// its own (oneDNN's sgemm runs on the calling thread inside a parallel region) and applies the bias and the
// activation (backward: the activation's derivative, the bias gradient and the input-gradient GEMM) while the
// block is still in its cache, instead of passing over the whole output once per step. The weight gradient, a
// reduction over all rows, is one GEMM on all threads.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/elementwise.hpp"
#include "siglite/backends/cpu/gemm.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

namespace detail {

/// Rows per block: blocks of about 256 rows (a block's output then stays in a core's cache, its L2 on
/// bench-tiny's widths, and the GEMMs keep their full rate), as many blocks as a multiple of the thread count.
inline int64_t linear_block_rows(int64_t rows) {
  const int64_t nt = max_threads(), target = 256;
  const int64_t blocks = nt * std::max<int64_t>(1, (rows + nt * target - 1) / (nt * target));
  return std::max<int64_t>(1, (rows + blocks - 1) / blocks);
}

inline int64_t linear_blocks(int64_t rows) {
  const int64_t br = linear_block_rows(rows);
  return (rows + br - 1) / br;
}

/// Calls f(block, row_begin, row_count) for each block of rows, the blocks spread over the threads.
template <typename F>
void for_row_blocks(int64_t rows, int64_t cost_per_row, F&& f) {
  const int64_t br = linear_block_rows(rows);
  parallel_for(linear_blocks(rows), br * cost_per_row, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i, i * br, std::min(br, rows - i * br));
  });
}

}  // namespace detail

/// y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (bias [out], may be null); when `act` (an op
/// without a parameter) is given, a [rows, out] = act(y) as well, y keeping the pre-activation unless a == y.
/// `owner` (may be null) keeps w alive: with it, a PackedWeights cache serving this thread may keep w packed.
template <typename T>
void linear_forward(const T* x, const T* w, const T* bias, T* y, std::optional<kernels::Unary> act, T* a,
                    int64_t rows, int64_t in, int64_t out, const std::shared_ptr<const void>& owner) {
#ifdef SIGLITE_WITH_ONEDNN
  // float: one matmul primitive on the packed weight, the bias added by its kernel, then the activation in a
  // second pass: the same code with and without a graph, so the two give the same bits.
  if constexpr (std::is_same_v<T, float>) {
    if (rows > 0 && in > 0 && out > 0) {
      detail::OneDnn::instance().linear(x, w, bias, y, rows, in, out, owner);
      if (act) unary(*act, y, a, rows * out, T(0));
      return;
    }
  }
#endif
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  detail::for_row_blocks(rows, in * out, [&](int64_t, int64_t r0, int64_t n) {
    T* yb = y + r0 * out;
    gemm(kernels::single_gemm<T>(false, true, n, out, in, in, in, out), x + r0 * in, w, yb);
    if (bias) {
      const Eigen::Map<const Row> b(bias, out);
      for (int64_t r = 0; r < n; ++r) Eigen::Map<Row>(yb + r * out, out) += b;
    }
    if (act) unary_chunk(*act, yb, a + r0 * out, n * out, T(0));
  });
}

/// Gradients of linear_forward from ga, the gradient of its output (a when `act` is given, else y). With `act`,
/// gy [rows, out] receives the pre-activation gradient (y and a as the forward left them; either may be null
/// where act's derivative does not read it); without, gy is not used. gx [rows, in], gw [out, in] and gb [out]
/// are overwritten where not null; x may be null when gw is, w when gx is.
template <typename T>
void linear_backward(const T* x, const T* w, const T* y, const T* a, std::optional<kernels::Unary> act, const T* ga,
                     T* gy, T* gx, T* gw, T* gb, int64_t rows, int64_t in, int64_t out) {
  const T* g = act ? gy : ga;  // the pre-activation gradient
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  // One partial bias gradient per block, summed in block order afterwards.
  std::vector<Row> partial(gb ? static_cast<size_t>(detail::linear_blocks(rows)) : 0, Row::Zero(out));
  if (act || gx || gb) {
    detail::for_row_blocks(rows, in * out, [&](int64_t block, int64_t r0, int64_t n) {
      const int64_t off = r0 * out;
      if (act)
        unary_backward_chunk(*act, y ? y + off : nullptr, a ? a + off : nullptr, ga + off, gy + off, n * out, T(0));
      const T* gyb = g + off;
      if (gb) {
        Row& acc = partial[static_cast<size_t>(block)];
        for (int64_t r = 0; r < n; ++r) acc += Eigen::Map<const Row>(gyb + r * out, out);
      }
      if (gx) gemm(kernels::single_gemm<T>(false, false, n, in, out, out, in, in), gyb, w, gx + r0 * in);
    });
  }
  if (gw) gemm(kernels::single_gemm<T>(true, false, out, in, rows, out, in, in), g, x, gw);
  if (gb) {
    Eigen::Map<Row> o(gb, out);
    o.setZero();
    for (const Row& p : partial) o += p;
  }
}

}  // namespace siglite::cpu
