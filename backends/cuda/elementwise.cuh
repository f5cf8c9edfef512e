// CUDA kernels: strided copy and conversion, fill, arange, random numbers, broadcast binary ops, unary ops and their
// derivatives; the CUDA side of backends/cpu/elementwise.hpp, with its semantics and formulas. Every kernel is a
// grid-stride loop over the elements. Strided views are first coalesced on the host (unit axes dropped, adjacent
// axes that every view steps through as one merged), so the common cases become flat loops or views of rank 1-2.
// unary_value / unary_derivative / visit_unary are public so that fused kernels (linear layers) share the formulas.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/kernels.hpp"
#include "siglite/backends/philox.hpp"

namespace siglite::cuda {

using kernels::Binary;
using kernels::Unary;
using kernels::View;

namespace elementwise_detail {

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

/// StridedView::offset without the modulo of the outermost axis (linear is below numel there).
template <typename T>
__device__ __forceinline__ int64_t offset_of(const StridedView<T>& v, int64_t linear) {
  if (v.rank == 0) return 0;
  int64_t off = 0;
  for (int i = v.rank - 1; i > 0; --i) {
    off += (linear % v.shape[i]) * v.strides[i];
    linear /= v.shape[i];
  }
  return off + linear * v.strides[0];
}

/// N views of one shape, coalesced: axes of extent 1 dropped, and axis i merged into axis i + 1 where every view
/// has strides[i] == strides[i + 1] * shape[i + 1]. The same elements in the same row-major order, in fewer axes.
template <size_t N>
struct Coalesced {
  Shape shape;
  std::array<Shape, N> strides;
  bool contiguous(size_t j) const { return shape.size() == 0 || (shape.size() == 1 && strides[j][0] == 1); }
};

template <size_t N>
Coalesced<N> coalesce(const Shape& shape, const std::array<const Shape*, N>& strides) {
  Coalesced<N> c;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (c.shape.size() > 0) {
      const size_t last = c.shape.size() - 1;
      bool merge = true;
      for (size_t j = 0; j < N; ++j) merge = merge && c.strides[j][last] == (*strides[j])[i] * shape[i];
      if (merge) {
        c.shape[last] *= shape[i];
        for (size_t j = 0; j < N; ++j) c.strides[j][last] = (*strides[j])[i];
        continue;
      }
    }
    c.shape.push_back(shape[i]);
    for (size_t j = 0; j < N; ++j) c.strides[j].push_back((*strides[j])[i]);
  }
  return c;
}

/// The numerically stable logistic function of the CPU's derivatives (no overflow of exp for either sign).
template <typename T>
__device__ __forceinline__ T stable_sigmoid(T x) {
  if (x >= 0) return T(1) / (T(1) + ::exp(-x));
  const T e = ::exp(x);
  return e / (T(1) + e);
}

template <typename T>
constexpr T kSqrt2OverPi = T(0.79788456080286535587989211986876);
template <typename T>
constexpr T kGeluCoef = T(0.044715);
template <typename T>
constexpr T kSqrtHalf = T(0.70710678118654752440);
template <typename T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);

}  // namespace elementwise_detail

/// op(v) with parameter p, the formulas of cpu::unary_chunk (CUDA's float/double overloads of the math functions).
/// The min/max of LogSigmoid and Softplus are written as std::min / std::max evaluate them, so NaN propagates.
template <Unary op, typename T>
__device__ __forceinline__ T unary_value(T v, T p) {
  using namespace elementwise_detail;
  if constexpr (op == Unary::Neg) return -v;
  else if constexpr (op == Unary::Exp) return ::exp(v);
  else if constexpr (op == Unary::Log) return ::log(v);
  else if constexpr (op == Unary::Sqrt) return ::sqrt(v);
  else if constexpr (op == Unary::Rsqrt) return T(1) / ::sqrt(v);
  else if constexpr (op == Unary::Abs) return ::fabs(v);
  else if constexpr (op == Unary::Sin) return ::sin(v);
  else if constexpr (op == Unary::Cos) return ::cos(v);
  else if constexpr (op == Unary::Tanh) return ::tanh(v);
  else if constexpr (op == Unary::Sigmoid) return T(1) / (T(1) + ::exp(-v));
  else if constexpr (op == Unary::LogSigmoid) return (T(0) < v ? T(0) : v) - ::log1p(::exp(-::fabs(v)));
  else if constexpr (op == Unary::Softplus) return (v < T(0) ? T(0) : v) + ::log1p(::exp(-::fabs(v)));
  else if constexpr (op == Unary::Relu) return v > 0 ? v : T(0);
  else if constexpr (op == Unary::GeluTanh)
    return T(0.5) * v * (T(1) + ::tanh(kSqrt2OverPi<T> * (v + kGeluCoef<T> * (v * v * v))));
  else if constexpr (op == Unary::GeluErf) return T(0.5) * v * (T(1) + ::erf(v * kSqrtHalf<T>));
  else if constexpr (op == Unary::Pow) return ::pow(v, p);
  else if constexpr (op == Unary::AddScalar) return v + p;
  else return v * p;  // MulScalar
}

/// f'(x) as cpu::unary_backward_chunk computes it, from x and/or y = f(x) (0 stands for a null one): gx = gy * this.
template <Unary op, typename T>
__device__ __forceinline__ T unary_derivative(T x, T y, T p) {
  using namespace elementwise_detail;
  if constexpr (op == Unary::Neg) return T(-1);
  else if constexpr (op == Unary::Exp) return y;
  else if constexpr (op == Unary::Log) return T(1) / x;
  else if constexpr (op == Unary::Sqrt) return T(0.5) / y;
  else if constexpr (op == Unary::Rsqrt) return T(-0.5) * y * y * y;
  else if constexpr (op == Unary::Abs) return T((x > 0) - (x < 0));
  else if constexpr (op == Unary::Sin) return ::cos(x);
  else if constexpr (op == Unary::Cos) return -::sin(x);
  else if constexpr (op == Unary::Tanh) return T(1) - y * y;
  else if constexpr (op == Unary::Sigmoid) return y * (T(1) - y);
  else if constexpr (op == Unary::LogSigmoid) return stable_sigmoid(-x);
  else if constexpr (op == Unary::Softplus) return stable_sigmoid(x);
  else if constexpr (op == Unary::Relu) return T(x > 0 ? 1 : 0);
  else if constexpr (op == Unary::GeluTanh) {
    const T k = kSqrt2OverPi<T>, c = kGeluCoef<T>;
    const T t = ::tanh(k * (x + c * (x * x * x)));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * c * (x * x));
  } else if constexpr (op == Unary::GeluErf)
    return T(0.5) * (T(1) + ::erf(x * kSqrtHalf<T>)) + x * ::exp(T(-0.5) * x * x) * kInvSqrt2Pi<T>;
  else if constexpr (op == Unary::Pow) return p * ::pow(x, p - T(1));
  else if constexpr (op == Unary::AddScalar) return T(1);
  else return p;  // MulScalar
}

/// Calls f(std::integral_constant<Unary, op>{}) for the runtime op: turns it into a template argument of a kernel.
template <typename F>
void visit_unary(Unary op, F&& f) {
  using U = Unary;
  switch (op) {
    case U::Neg: return f(std::integral_constant<U, U::Neg>{});
    case U::Exp: return f(std::integral_constant<U, U::Exp>{});
    case U::Log: return f(std::integral_constant<U, U::Log>{});
    case U::Sqrt: return f(std::integral_constant<U, U::Sqrt>{});
    case U::Rsqrt: return f(std::integral_constant<U, U::Rsqrt>{});
    case U::Abs: return f(std::integral_constant<U, U::Abs>{});
    case U::Sin: return f(std::integral_constant<U, U::Sin>{});
    case U::Cos: return f(std::integral_constant<U, U::Cos>{});
    case U::Tanh: return f(std::integral_constant<U, U::Tanh>{});
    case U::Sigmoid: return f(std::integral_constant<U, U::Sigmoid>{});
    case U::LogSigmoid: return f(std::integral_constant<U, U::LogSigmoid>{});
    case U::Softplus: return f(std::integral_constant<U, U::Softplus>{});
    case U::Relu: return f(std::integral_constant<U, U::Relu>{});
    case U::GeluTanh: return f(std::integral_constant<U, U::GeluTanh>{});
    case U::GeluErf: return f(std::integral_constant<U, U::GeluErf>{});
    case U::Pow: return f(std::integral_constant<U, U::Pow>{});
    case U::AddScalar: return f(std::integral_constant<U, U::AddScalar>{});
    case U::MulScalar: return f(std::integral_constant<U, U::MulScalar>{});
  }
}

namespace elementwise_detail {

template <typename S, typename D>
__global__ void convert_flat_kernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) dst[i] = static_cast<D>(src[i]);
}

template <typename S, typename D>
__global__ void copy_strided_kernel(StridedView<const S> src, StridedView<D> dst, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_stride())
    dst.data[offset_of(dst, i)] = static_cast<D>(src.data[offset_of(src, i)]);
}

template <typename T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) dst[i] = value;
}

template <typename T>
__global__ void arange_kernel(T* dst, int64_t n, T start, T step) {
  for (int64_t i = thread_index(); i < n; i += thread_stride())
    dst[i] = static_cast<T>(start + static_cast<T>(i) * step);
}

/// Thread by thread, whole Philox blocks: block b fills out[b * per, min(n, (b + 1) * per)).
template <typename T>
__global__ void random_kernel(kernels::Random dist, T* out, int64_t n, int64_t blocks, uint64_t key, T p, T q) {
  constexpr int per = kernels::philox::per_block<T>;
  for (int64_t b = thread_index(); b < blocks; b += thread_stride()) {
    T values[per];
    kernels::philox::sample(dist, key, static_cast<uint64_t>(b), p, q, values);
    const int64_t start = b * per;
    const int count = n - start < per ? static_cast<int>(n - start) : per;
#pragma unroll
    for (int j = 0; j < per; ++j)
      if (j < count) out[start + j] = values[j];
  }
}

template <Binary op, typename T>
__device__ __forceinline__ T binary_value(T x, T y) {
  if constexpr (op == Binary::Add) return x + y;
  else if constexpr (op == Binary::Sub) return x - y;
  else if constexpr (op == Binary::Mul) return x * y;
  else if constexpr (op == Binary::Div) return x / y;
  else if constexpr (op == Binary::Eq) return T(x == y ? 1 : 0);
  else return x < y ? y : x;  // Max, as the CPU: a NaN in x propagates, one in y does not
}

template <Binary op, typename T>
__global__ void binary_flat_kernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) out[i] = binary_value<op>(a[i], b[i]);
}

template <Binary op, typename T>
__global__ void binary_strided_kernel(StridedView<const T> a, StridedView<const T> b, T* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_stride())
    out[i] = binary_value<op>(a.data[offset_of(a, i)], b.data[offset_of(b, i)]);
}

template <Unary op, typename T>
__global__ void unary_kernel(const T* x, T* y, int64_t n, T p) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) y[i] = unary_value<op>(x[i], p);
}

/// gx = gy * f'(x); a null x or y reads as 0, as on the CPU.
template <Unary op, typename T>
__global__ void unary_backward_kernel(const T* x, const T* y, const T* gy, T* gx, int64_t n, T p) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    const T xv = x ? x[i] : T(0), yv = y ? y[i] : T(0);
    gx[i] = gy[i] * unary_derivative<op>(xv, yv, p);
  }
}

template <Binary op, typename T>
void launch_binary(const View<const T>& a, const View<const T>& b, T* out, int64_t n) {
  const auto c = coalesce<2>(a.shape, {&a.strides, &b.strides});
  if (c.contiguous(0) && c.contiguous(1)) {
    binary_flat_kernel<op, T><<<blocks_for(n), kThreads, 0, stream()>>>(a.data, b.data, out, n);
  } else {
    binary_strided_kernel<op, T><<<blocks_for(n), kThreads, 0, stream()>>>(
        strided(a.data, c.shape, c.strides[0]), strided(b.data, c.shape, c.strides[1]), out, n);
  }
  SIGLITE_CUDA_LAUNCHED();
}

}  // namespace elementwise_detail

/// dst = src element by element, both strided, same shape; S converted to D. Both contiguous and of one type: one
/// cudaMemcpyAsync on the stream.
template <typename S, typename D>
void copy(const View<const S>& src, const View<D>& dst) {
  using namespace elementwise_detail;
  const Shape& shape = dst.shape;
  const int64_t n = shape.numel();
  if (n == 0) return;
  const auto c = coalesce<2>(shape, {&src.strides, &dst.strides});
  if (c.contiguous(0) && c.contiguous(1)) {
    if constexpr (std::is_same_v<S, D>) {
      SIGLITE_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, static_cast<size_t>(n) * sizeof(D),
                                         cudaMemcpyDeviceToDevice, stream()));
      return;
    } else {
      convert_flat_kernel<S, D><<<blocks_for(n), kThreads, 0, stream()>>>(src.data, dst.data, n);
    }
  } else {
    copy_strided_kernel<S, D><<<blocks_for(n), kThreads, 0, stream()>>>(strided(src.data, c.shape, c.strides[0]),
                                                                         strided(dst.data, c.shape, c.strides[1]), n);
  }
  SIGLITE_CUDA_LAUNCHED();
}

/// dst (contiguous, src's shape) = src converted to D.
template <typename S, typename D>
void convert(const View<const S>& src, D* dst) {
  copy(src, View<D>{dst, src.shape, contiguous_strides(src.shape)});
}

template <typename T>
void fill(T* dst, int64_t n, T value) {
  if (n <= 0) return;
  const T zero{};
  if (std::memcmp(&value, &zero, sizeof(T)) == 0) {  // all bits zero (not -0.0): a memset
    SIGLITE_CUDA_CHECK(cudaMemsetAsync(dst, 0, static_cast<size_t>(n) * sizeof(T), stream()));
    return;
  }
  elementwise_detail::fill_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(dst, n, value);
  SIGLITE_CUDA_LAUNCHED();
}

template <typename T>
void arange(T* dst, int64_t n, T start, T step) {
  if (n <= 0) return;
  elementwise_detail::arange_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(dst, n, start, step);
  SIGLITE_CUDA_LAUNCHED();
}

/// The random kernel of backends/kernels.hpp: philox::sample per block, one block per thread.
template <typename T>
void random(kernels::Random dist, T* out, int64_t n, uint64_t key, T p, T q) {
  if (n <= 0) return;
  constexpr int64_t per = kernels::philox::per_block<T>;
  const int64_t blocks = (n + per - 1) / per;
  elementwise_detail::random_kernel<T><<<blocks_for(blocks), kThreads, 0, stream()>>>(dist, out, n, blocks, key, p, q);
  SIGLITE_CUDA_LAUNCHED();
}

/// out (contiguous, a's shape) = a op b, a and b already broadcast (stride 0 along broadcast axes).
template <typename T>
void binary(Binary op, const View<const T>& a, const View<const T>& b, T* out) {
  using namespace elementwise_detail;
  const int64_t n = a.shape.numel();
  if (n == 0) return;
  switch (op) {
    case Binary::Add: return launch_binary<Binary::Add, T>(a, b, out, n);
    case Binary::Sub: return launch_binary<Binary::Sub, T>(a, b, out, n);
    case Binary::Mul: return launch_binary<Binary::Mul, T>(a, b, out, n);
    case Binary::Div: return launch_binary<Binary::Div, T>(a, b, out, n);
    case Binary::Eq: return launch_binary<Binary::Eq, T>(a, b, out, n);
    case Binary::Max: return launch_binary<Binary::Max, T>(a, b, out, n);
  }
}

template <typename T>
void unary(Unary op, const T* x, T* y, int64_t n, T p) {
  if (n <= 0) return;
  visit_unary(op, [&](auto tag) {
    elementwise_detail::unary_kernel<decltype(tag)::value, T><<<blocks_for(n), kThreads, 0, stream()>>>(x, y, n, p);
  });
  SIGLITE_CUDA_LAUNCHED();
}

/// gx = gy * op'(x); x or y may be null where the derivative does not read it.
template <typename T>
void unary_backward(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T p) {
  if (n <= 0) return;
  visit_unary(op, [&](auto tag) {
    elementwise_detail::unary_backward_kernel<decltype(tag)::value, T>
        <<<blocks_for(n), kThreads, 0, stream()>>>(x, y, gy, gx, n, p);
  });
  SIGLITE_CUDA_LAUNCHED();
}

}  // namespace siglite::cuda
