// CUDA linear layer: y = x @ w^T + bias, optionally followed by an activation, and its gradients. The products
// are cuBLAS GEMMs (gemm.cuh); the bias and the activation are one fused elementwise pass over y, the activation's
// derivative one pass over the output gradient, and the bias gradient deterministic column sums. The activations
// are the unary functions of backends/cpu/elementwise.hpp with the parameter 0, written out with the CPU's
// formulas (linear_detail::activate and activation_derivative), the math functions qualified as ::exp etc. (CUDA's
// float and double overloads; unqualified, siglite::exp and the other tensor ops would hide them). There is no
// weight cache: `owner` is unused.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/cuda/gemm.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

namespace linear_detail {

using kernels::Unary;

/// The CPU's two-branch logistic (detail::sigmoid in backends/cpu/elementwise.hpp), which the derivatives of
/// LogSigmoid and Softplus use.
template <typename T>
__device__ inline T stable_sigmoid(T v) {
  if (v >= T(0)) return T(1) / (T(1) + ::exp(-v));
  const T e = ::exp(v);
  return e / (T(1) + e);
}

/// op(v) as unary_chunk computes it with the parameter 0 (the comparisons spelled as std::min and std::max
/// evaluate them, so that NaN propagates alike).
template <typename T>
__device__ inline T activate(Unary op, T v) {
  const T p = T(0);
  switch (op) {
    case Unary::Neg: return -v;
    case Unary::Exp: return ::exp(v);
    case Unary::Log: return ::log(v);
    case Unary::Sqrt: return ::sqrt(v);
    case Unary::Rsqrt: return T(1) / ::sqrt(v);
    case Unary::Abs: return ::fabs(v);
    case Unary::Sin: return ::sin(v);
    case Unary::Cos: return ::cos(v);
    case Unary::Tanh: return ::tanh(v);
    case Unary::Sigmoid: return T(1) / (T(1) + ::exp(-v));
    case Unary::LogSigmoid: return (T(0) < v ? T(0) : v) - ::log1p(::exp(-::fabs(v)));
    case Unary::Softplus: return (v < T(0) ? T(0) : v) + ::log1p(::exp(-::fabs(v)));
    case Unary::Relu: return v > T(0) ? v : T(0);
    case Unary::GeluTanh: {
      const T k = T(0.79788456080286535587989211986876), c = T(0.044715);
      return T(0.5) * v * (T(1) + ::tanh(k * (v + c * (v * v * v))));
    }
    case Unary::GeluErf: return T(0.5) * v * (T(1) + ::erf(v * T(0.70710678118654752440)));
    case Unary::Pow: return ::pow(v, p);
    case Unary::AddScalar: return v + p;
    case Unary::MulScalar: return v * p;
  }
  return v;
}

/// op'(x) as unary_backward_chunk computes it with the parameter 0, from the input x and the output y (each 0
/// where the caller has no buffer for it: the derivative then does not read it).
template <typename T>
__device__ inline T activation_derivative(Unary op, T x, T y) {
  const T p = T(0);
  switch (op) {
    case Unary::Neg: return T(-1);
    case Unary::Exp: return y;
    case Unary::Log: return T(1) / x;
    case Unary::Sqrt: return T(0.5) / y;
    case Unary::Rsqrt: return T(-0.5) * y * y * y;
    case Unary::Abs: return T((x > T(0)) - (x < T(0)));
    case Unary::Sin: return ::cos(x);
    case Unary::Cos: return -::sin(x);
    case Unary::Tanh: return T(1) - y * y;
    case Unary::Sigmoid: return y * (T(1) - y);
    case Unary::LogSigmoid: return stable_sigmoid(-x);
    case Unary::Softplus: return stable_sigmoid(x);
    case Unary::Relu: return T(x > T(0) ? 1 : 0);
    case Unary::GeluTanh: {
      const T k = T(0.79788456080286535587989211986876), c = T(0.044715);
      const T t = ::tanh(k * (x + c * (x * x * x)));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * c * (x * x));
    }
    case Unary::GeluErf:
      return T(0.5) * (T(1) + ::erf(x * T(0.70710678118654752440))) +
             x * ::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    case Unary::Pow: return p * ::pow(x, p - T(1));
    case Unary::AddScalar: return T(1);
    case Unary::MulScalar: return p;
  }
  return T(0);
}

/// y [n = rows * out] += bias (by column, when bias is not null); then, with `has_act`, a = act(y). y keeps the
/// pre-activation unless a == y. The column of element i is tracked incrementally along the grid-stride loop.
template <typename T>
__global__ void linear_epilogue_kernel(T* y, const T* bias, bool has_act, Unary act, T* a, int64_t n, int64_t out) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x, step = stride % out;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, col = i % out;
  for (; i < n; i += stride) {
    T v = y[i];
    if (bias) {
      v += bias[col];
      if (!has_act || a != y) y[i] = v;
    }
    if (has_act) a[i] = activate(act, v);
    col += step;
    if (col >= out) col -= out;
  }
}

/// gy = ga * act'(y) over n elements, y (the pre-activation) or a (the output) null where act's derivative does
/// not read it.
template <typename T>
__global__ void linear_act_backward_kernel(Unary act, const T* y, const T* a, const T* ga, T* gy, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    gy[i] = ga[i] * activation_derivative(act, y ? y[i] : T(0), a ? a[i] : T(0));
}

}  // namespace linear_detail

/// y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (bias [out], may be null); when `act` is given,
/// a [rows, out] = act(y) as well, y keeping the pre-activation unless a == y. One GEMM, then one fused pass for
/// the bias and the activation. `owner` is not used: the CUDA backend keeps no weight cache.
template <typename T>
void linear_forward(const T* x, const T* w, const T* bias, T* y, std::optional<kernels::Unary> act, T* a,
                    int64_t rows, int64_t in, int64_t out, const std::shared_ptr<const void>& /*owner*/) {
  if (rows <= 0 || out <= 0) return;
  gemm(kernels::single_gemm<T>(false, true, rows, out, in, in, in, out), x, w, y);
  if (!bias && !act) return;
  const int64_t n = rows * out;
  linear_detail::linear_epilogue_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(
      y, bias, act.has_value(), act.value_or(kernels::Unary::Neg), a, n, out);
  SIGLITE_CUDA_LAUNCHED();
}

/// Gradients of linear_forward from ga, the gradient of its output (a when `act` is given, else y). With `act`,
/// gy [rows, out] receives the pre-activation gradient (y and a as the forward left them; either may be null
/// where act's derivative does not read it); without, gy is not used. gx [rows, in], gw [out, in] and gb [out]
/// are overwritten where not null; x may be null when gw is, w when gx is.
template <typename T>
void linear_backward(const T* x, const T* w, const T* y, const T* a, std::optional<kernels::Unary> act, const T* ga,
                     T* gy, T* gx, T* gw, T* gb, int64_t rows, int64_t in, int64_t out) {
  const T* g = act ? gy : ga;  // the pre-activation gradient
  const int64_t n = rows * out;
  if (act && n > 0) {
    linear_detail::linear_act_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(*act, y, a, ga, gy, n);
    SIGLITE_CUDA_LAUNCHED();
  }
  if (gb) column_sums(g, rows, out, gb);
  if (gx) gemm(kernels::single_gemm<T>(false, false, rows, in, out, out, in, in), g, w, gx);
  if (gw) gemm(kernels::single_gemm<T>(true, false, out, in, rows, out, in, in), g, x, gw);
}

}  // namespace siglite::cuda
