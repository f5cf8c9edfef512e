// CPU kernels: strided copy and conversion, fill, arange, random numbers, broadcast binary ops, unary ops and
// their derivatives, reductions.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/philox.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

using kernels::Binary;
using kernels::Reduce;
using kernels::Unary;
using kernels::View;

namespace detail {

/// Offset of the start of `row` (an index over all axes but the last) in a strided view.
inline int64_t row_offset(int64_t row, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (size_t i = shape.size() - 1; i-- > 0;) {
    const int64_t idx = row % shape[i];
    row /= shape[i];
    off += idx * strides[i];
  }
  return off;
}

inline bool is_contiguous(const Shape& shape, const Shape& strides) {
  int64_t expect = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

template <typename T>
T sigmoid(T x) {
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

}  // namespace detail

/// dst = src element by element, both strided, same shape; S converted to D.
template <typename S, typename D>
void copy(const View<const S>& src, const View<D>& dst) {
  const Shape& shape = dst.shape;
  const int64_t n = shape.numel();
  if (n == 0) return;
  if (detail::is_contiguous(shape, src.strides) && detail::is_contiguous(shape, dst.strides)) {
    parallel_for(n, 1, [&](int64_t b, int64_t e) {
      if constexpr (std::is_same_v<S, D>) std::copy(src.data + b, src.data + e, dst.data + b);
      else std::transform(src.data + b, src.data + e, dst.data + b, [](S v) { return static_cast<D>(v); });
    });
    return;
  }
  if (shape.size() == 0) {
    dst.data[0] = static_cast<D>(src.data[0]);
    return;
  }
  const int64_t cols = shape.back(), rows = n / cols;
  const int64_t ss = src.strides.back(), ds = dst.strides.back();
  parallel_for(rows, cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const S* s = src.data + detail::row_offset(r, shape, src.strides);
      D* d = dst.data + detail::row_offset(r, shape, dst.strides);
      for (int64_t c = 0; c < cols; ++c) d[c * ds] = static_cast<D>(s[c * ss]);
    }
  });
}

/// dst (contiguous, src's shape) = src converted to D.
template <typename S, typename D>
void convert(const View<const S>& src, D* dst) {
  copy(src, View<D>{dst, src.shape, contiguous_strides(src.shape)});
}

template <typename T>
void fill(T* dst, int64_t n, T value) {
  parallel_for(n, 1, [&](int64_t b, int64_t e) { std::fill(dst + b, dst + e, value); });
}

template <typename T>
void arange(T* dst, int64_t n, T start, T step) {
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = static_cast<T>(start + static_cast<T>(i) * step);
  });
}

/// The random kernel of backends/kernels.hpp: block after block of philox::sample, threads taking whole blocks.
template <typename T>
void random(kernels::Random dist, T* out, int64_t n, uint64_t key, T p, T q) {
  constexpr int64_t per = kernels::philox::per_block<T>;
  parallel_for((n + per - 1) / per, per * 16, [&](int64_t b, int64_t e) {
    for (int64_t block = b; block < e; ++block) {
      T values[per];
      kernels::philox::sample(dist, key, static_cast<uint64_t>(block), p, q, values);
      const int64_t start = block * per, count = std::min(per, n - start);
      std::copy(values, values + count, out + start);
    }
  });
}

namespace detail {

template <typename T, typename F>
void binary_loop(F f, const View<const T>& a, const View<const T>& b, T* out) {
  const Shape& shape = a.shape;
  const int64_t n = shape.numel();
  if (n == 0) return;
  const bool ca = is_contiguous(shape, a.strides), cb = is_contiguous(shape, b.strides);
  if (ca && cb) {
    parallel_for(n, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = f(a.data[i], b.data[i]);
    });
    return;
  }
  if (shape.size() == 0) {
    out[0] = f(a.data[0], b.data[0]);
    return;
  }
  const int64_t cols = shape.back(), rows = n / cols;
  const int64_t sa = a.strides.back(), sb = b.strides.back();
  parallel_for(rows, cols, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const T* pa = a.data + row_offset(r, shape, a.strides);
      const T* pb = b.data + row_offset(r, shape, b.strides);
      T* po = out + r * cols;
      if (sa == 1 && sb == 1) {
        for (int64_t c = 0; c < cols; ++c) po[c] = f(pa[c], pb[c]);
      } else if (sa == 1 && sb == 0) {
        const T vb = pb[0];
        for (int64_t c = 0; c < cols; ++c) po[c] = f(pa[c], vb);
      } else if (sa == 0 && sb == 1) {
        const T va = pa[0];
        for (int64_t c = 0; c < cols; ++c) po[c] = f(va, pb[c]);
      } else {
        for (int64_t c = 0; c < cols; ++c) po[c] = f(pa[c * sa], pb[c * sb]);
      }
    }
  });
}

// The unary helpers below run on one chunk, on the calling thread; unary() and unary_backward() split the
// buffer over the threads, and fused kernels call the chunk functions on data still in cache.
template <typename T, typename F>
void map(const T* x, T* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

/// Applies an Eigen array expression: Eigen vectorises exp and tanh, which the scalar std:: functions are not.
template <typename T, typename F>
void map_array(const T* x, T* y, int64_t n, F f) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<Array>(y, n) = f(Eigen::Map<const Array>(x, n));
}

/// f(x, gy, gx) assigns the input gradient.
template <typename T, typename F>
void map_array_backward(const T* x, const T* gy, T* gx, int64_t n, F f) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<Array> out(gx, n);
  f(Eigen::Map<const Array>(x, n), Eigen::Map<const Array>(gy, n), out);
}

template <typename T, typename F>
void map_backward(const T* x, const T* y, const T* gy, T* gx, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] * f(x ? x[i] : T(0), y ? y[i] : T(0));
}

/// parallel_for's cost per element of a unary op.
constexpr int64_t kUnaryCost = 8;

template <typename T>
constexpr T kSqrt2OverPi = T(0.79788456080286535587989211986876);
template <typename T>
constexpr T kGeluCoef = T(0.044715);

}  // namespace detail

template <typename T>
void binary(Binary op, const View<const T>& a, const View<const T>& b, T* out) {
  switch (op) {
    case Binary::Add: return detail::binary_loop<T>([](T x, T y) { return x + y; }, a, b, out);
    case Binary::Sub: return detail::binary_loop<T>([](T x, T y) { return x - y; }, a, b, out);
    case Binary::Mul: return detail::binary_loop<T>([](T x, T y) { return x * y; }, a, b, out);
    case Binary::Div: return detail::binary_loop<T>([](T x, T y) { return x / y; }, a, b, out);
    case Binary::Eq: return detail::binary_loop<T>([](T x, T y) { return T(x == y ? 1 : 0); }, a, b, out);
    case Binary::Max: return detail::binary_loop<T>([](T x, T y) { return x < y ? y : x; }, a, b, out);
  }
}

/// y = op(x) for the n elements of one chunk, on the calling thread.
template <typename T>
void unary_chunk(Unary op, const T* x, T* y, int64_t n, T p) {
  using detail::map;
  switch (op) {
    case Unary::Neg: return map(x, y, n, [](T v) { return -v; });
    case Unary::Exp: return detail::map_array(x, y, n, [](const auto& v) { return v.exp(); });
    case Unary::Log: return map(x, y, n, [](T v) { return std::log(v); });
    case Unary::Sqrt: return map(x, y, n, [](T v) { return std::sqrt(v); });
    case Unary::Rsqrt: return map(x, y, n, [](T v) { return T(1) / std::sqrt(v); });
    case Unary::Abs: return map(x, y, n, [](T v) { return std::abs(v); });
    case Unary::Sin: return map(x, y, n, [](T v) { return std::sin(v); });
    case Unary::Cos: return map(x, y, n, [](T v) { return std::cos(v); });
    case Unary::Tanh: return detail::map_array(x, y, n, [](const auto& v) { return v.tanh(); });
    // Not Eigen's logistic(): its float version is up to 5e-4 off (relative) near x = -9.
    case Unary::Sigmoid: return detail::map_array(x, y, n, [](const auto& v) { return (T(1) + (-v).exp()).inverse(); });
    case Unary::LogSigmoid:
      return map(x, y, n, [](T v) { return std::min(v, T(0)) - std::log1p(std::exp(-std::abs(v))); });
    case Unary::Softplus:
      return map(x, y, n, [](T v) { return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v))); });
    case Unary::Relu: return map(x, y, n, [](T v) { return v > 0 ? v : T(0); });
    case Unary::GeluTanh:
      return detail::map_array(x, y, n, [](const auto& v) {
        return T(0.5) * v * (T(1) + (detail::kSqrt2OverPi<T> * (v + detail::kGeluCoef<T> * v.cube())).tanh());
      });
    case Unary::GeluErf:
      return map(x, y, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440))); });
    case Unary::Pow: return map(x, y, n, [p](T v) { return std::pow(v, p); });
    case Unary::AddScalar: return map(x, y, n, [p](T v) { return v + p; });
    case Unary::MulScalar: return map(x, y, n, [p](T v) { return v * p; });
  }
}

/// gx = gy * op'(x) for the n elements of one chunk, on the calling thread; x or y may be null where the
/// derivative does not read it.
template <typename T>
void unary_backward_chunk(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T p) {
  using detail::map_backward;
  switch (op) {
    case Unary::Neg: return map_backward(x, y, gy, gx, n, [](T, T) { return T(-1); });
    case Unary::Exp: return map_backward(x, y, gy, gx, n, [](T, T yv) { return yv; });
    case Unary::Log: return map_backward(x, y, gy, gx, n, [](T xv, T) { return T(1) / xv; });
    case Unary::Sqrt: return map_backward(x, y, gy, gx, n, [](T, T yv) { return T(0.5) / yv; });
    case Unary::Rsqrt: return map_backward(x, y, gy, gx, n, [](T, T yv) { return T(-0.5) * yv * yv * yv; });
    case Unary::Abs: return map_backward(x, y, gy, gx, n, [](T xv, T) { return T((xv > 0) - (xv < 0)); });
    case Unary::Sin: return map_backward(x, y, gy, gx, n, [](T xv, T) { return std::cos(xv); });
    case Unary::Cos: return map_backward(x, y, gy, gx, n, [](T xv, T) { return -std::sin(xv); });
    case Unary::Tanh: return map_backward(x, y, gy, gx, n, [](T, T yv) { return T(1) - yv * yv; });
    case Unary::Sigmoid: return map_backward(x, y, gy, gx, n, [](T, T yv) { return yv * (T(1) - yv); });
    case Unary::LogSigmoid: return map_backward(x, y, gy, gx, n, [](T xv, T) { return detail::sigmoid(-xv); });
    case Unary::Softplus: return map_backward(x, y, gy, gx, n, [](T xv, T) { return detail::sigmoid(xv); });
    case Unary::Relu: return map_backward(x, y, gy, gx, n, [](T xv, T) { return T(xv > 0 ? 1 : 0); });
    case Unary::GeluTanh:
      return detail::map_array_backward(x, gy, gx, n, [](const auto& v, const auto& g, auto& out) {
        const T k = detail::kSqrt2OverPi<T>, c = detail::kGeluCoef<T>;
        out = (k * (v + c * v.cube())).tanh();  // t
        out = g * (T(0.5) * (T(1) + out) + T(0.5) * v * (T(1) - out.square()) * k * (T(1) + T(3) * c * v.square()));
      });
    case Unary::GeluErf:
      return map_backward(x, y, gy, gx, n, [](T v, T) {
        return T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440))) +
               v * std::exp(T(-0.5) * v * v) * T(0.39894228040143267794);
      });
    case Unary::Pow: return map_backward(x, y, gy, gx, n, [p](T xv, T) { return p * std::pow(xv, p - T(1)); });
    case Unary::AddScalar: return map_backward(x, y, gy, gx, n, [](T, T) { return T(1); });
    case Unary::MulScalar: return map_backward(x, y, gy, gx, n, [p](T, T) { return p; });
  }
}

template <typename T>
void unary(Unary op, const T* x, T* y, int64_t n, T p) {
  parallel_for(n, detail::kUnaryCost, [&](int64_t b, int64_t e) { unary_chunk(op, x + b, y + b, e - b, p); });
}

template <typename T>
void unary_backward(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T p) {
  parallel_for(n, detail::kUnaryCost, [&](int64_t b, int64_t e) {
    unary_backward_chunk(op, x ? x + b : nullptr, y ? y + b : nullptr, gy + b, gx + b, e - b, p);
  });
}

namespace detail {

/// Reduces x over its axes from `kept` on, accumulating in Acc (double for sums, so a float sum of many terms
/// loses no more than its final rounding) and storing each result as T.
template <typename T, typename Acc, typename F>
void reduce_impl(const View<const T>& x, size_t kept, T* out, Acc init, F f) {
  const Shape& shape = x.shape;
  int64_t n_out = 1, n_red = 1;
  for (size_t i = 0; i < shape.size(); ++i) (i < kept ? n_out : n_red) *= shape[i];
  if (n_red == 0) {
    std::fill(out, out + n_out, static_cast<T>(init));
    return;
  }
  // Reduced axes contiguous and innermost: reduce rows.
  Shape red_shape, red_strides, kept_shape, kept_strides;
  for (size_t i = 0; i < shape.size(); ++i) {
    (i < kept ? kept_shape : red_shape).push_back(shape[i]);
    (i < kept ? kept_strides : red_strides).push_back(x.strides[i]);
  }
  if (is_contiguous(red_shape, red_strides)) {
    kept_shape.push_back(1);
    kept_strides.push_back(1);
    parallel_for(n_out, n_red, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* p = x.data + row_offset(o, kept_shape, kept_strides);
        Acc acc = init;
        for (int64_t r = 0; r < n_red; ++r) acc = f(acc, p[r]);
        out[o] = static_cast<T>(acc);
      }
    });
    return;
  }
  // Kept axes contiguous and innermost (e.g. a bias gradient summed over rows): reduce columns.
  if (is_contiguous(kept_shape, kept_strides)) {
    red_shape.push_back(1);
    red_strides.push_back(1);
    parallel_for(n_out, n_red, [&](int64_t b, int64_t e) {
      std::vector<Acc> acc(static_cast<size_t>(e - b), init);
      for (int64_t r = 0; r < n_red; ++r) {
        const T* p = x.data + row_offset(r, red_shape, red_strides) + b;
        for (int64_t o = 0; o < e - b; ++o) acc[o] = f(acc[o], p[o]);
      }
      std::copy(acc.begin(), acc.end(), out + b);
    });
    return;
  }
  std::vector<T> tmp(static_cast<size_t>(shape.numel()));
  copy<T>(x, View<T>{tmp.data(), shape, contiguous_strides(shape)});
  reduce_impl<T, Acc>(View<const T>{tmp.data(), shape, contiguous_strides(shape)}, kept, out, init, f);
}

}  // namespace detail

template <typename T>
void reduce(Reduce op, const View<const T>& x, size_t kept, T* out) {
  if (op == Reduce::Sum) {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    return detail::reduce_impl<T, Acc>(x, kept, out, Acc(0), [](Acc a, T b) { return a + static_cast<Acc>(b); });
  }
  return detail::reduce_impl<T, T>(x, kept, out, -std::numeric_limits<T>::infinity(),
                                   [](T a, T b) { return a < b || std::isnan(b) ? b : a; });
}

template <typename T>
void topk(const View<const T>& x, int64_t k, int64_t* indices) {
  const int64_t cols = x.shape[1];
  const auto above = [](T u, T v) { return (std::isnan(u) && !std::isnan(v)) || u > v; };
  parallel_for(x.shape[0], cols, [&](int64_t b, int64_t e) {
    std::vector<int64_t> order(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      const T* row = x.data + r * x.strides[0];
      std::iota(order.begin(), order.end(), int64_t(0));
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t i, int64_t j) {
        const T u = row[i * x.strides[1]], v = row[j * x.strides[1]];
        return above(u, v) || (!above(v, u) && i < j);
      });
      std::copy_n(order.begin(), k, indices + r * k);
    }
  });
}

}  // namespace siglite::cpu
