// Elementwise ops: add, sub, mul, div with NumPy broadcasting, scalar forms and operators, and
// the unary functions (exp, log, ..., gelu), each with its derivative beside it; cast between element types.
#pragma once
#include <type_traits>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

namespace detail {

/// A scalar argument of the tensor's type that takes no part in deducing T, so that
/// `x * 2.0` works for a Tensor<float>.
template <typename T>
struct NonDeduced {
  using type = T;
};
template <typename T>
using Scalar = typename NonDeduced<T>::type;

/// x seen as `shape` with stride 0 along broadcast axes (no history recorded).
template <typename T>
kernels::View<const T> broadcast_view(const Tensor<T>& x, const Shape& shape) {
  const size_t lead = shape.size() - x.dim();
  Shape strides(std::vector<int64_t>(shape.size(), 0));
  for (size_t i = lead; i < shape.size(); ++i)
    strides[i] = x.shape()[i - lead] == shape[i] ? x.strides()[i - lead] : 0;
  return {x.device_ptr(), shape, strides};
}

/// a op b broadcast, no history.
template <typename T>
Tensor<T> binary_raw(kernels::Binary op, const Tensor<T>& a, const Tensor<T>& b, const char* name) {
  check_same_device(a.device(), b.device(), name);
  const Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor<T> out = Tensor<T>::empty(s, a.device());
  kernels::on<T>(a.device()).binary(op, broadcast_view(a, s), broadcast_view(b, s), out.device_ptr());
  return out;
}

template <typename T>
Tensor<T> unary_raw(kernels::Unary op, const Tensor<T>& x, T param) {
  const Tensor<T> xc = x.is_contiguous() ? x : x.clone();
  Tensor<T> out = Tensor<T>::empty(x.shape(), x.device());
  kernels::on<T>(x.device()).unary(op, xc.device_ptr(), out.device_ptr(), out.numel(), param);
  return out;
}

}  // namespace detail

template <typename T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape sa = a.shape(), sb = b.shape();
  return record("add", detail::binary_raw(kernels::Binary::Add, a, b, "add"), {a, b},
                [sa, sb](const Tensor<T>& g, const std::vector<bool>& need) {
                  return std::vector<Tensor<T>>{need[0] ? sum_to(g, sa) : Tensor<T>(),
                                                need[1] ? sum_to(g, sb) : Tensor<T>()};
                });
}

template <typename T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape sa = a.shape(), sb = b.shape();
  return record("sub", detail::binary_raw(kernels::Binary::Sub, a, b, "sub"), {a, b},
                [sa, sb](const Tensor<T>& g, const std::vector<bool>& need) {
                  return std::vector<Tensor<T>>{
                      need[0] ? sum_to(g, sa) : Tensor<T>(),
                      need[1] ? detail::unary_raw(kernels::Unary::Neg, sum_to(g, sb), T(0)) : Tensor<T>()};
                });
}

template <typename T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  const Tensor<T> as = a.detach(), bs = b.detach();
  return record("mul", detail::binary_raw(kernels::Binary::Mul, a, b, "mul"), {a, b},
                [as, bs](const Tensor<T>& g, const std::vector<bool>& need) {
                  using kernels::Binary;
                  return std::vector<Tensor<T>>{
                      need[0] ? sum_to(detail::binary_raw(Binary::Mul, g, bs, "mul"), as.shape()) : Tensor<T>(),
                      need[1] ? sum_to(detail::binary_raw(Binary::Mul, g, as, "mul"), bs.shape()) : Tensor<T>()};
                });
}

template <typename T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  const Tensor<T> out = detail::binary_raw(kernels::Binary::Div, a, b, "div");
  const Tensor<T> bs = b.detach(), ys = out.detach();
  const Shape sa = a.shape();
  return record("div", out, {a, b}, [sa, bs, ys](const Tensor<T>& g, const std::vector<bool>& need) {
    using kernels::Binary;
    const Tensor<T> ga = detail::binary_raw(Binary::Div, g, bs, "div");  // g / b
    Tensor<T> gb;
    if (need[1]) {  // -g * a / b^2 = -(g / b) * y
      gb = detail::unary_raw(kernels::Unary::Neg, sum_to(detail::binary_raw(Binary::Mul, ga, ys, "div"), bs.shape()),
                             T(0));
    }
    return std::vector<Tensor<T>>{need[0] ? sum_to(ga, sa) : Tensor<T>(), gb};
  });
}

/// Elementwise maximum with broadcasting; the gradient goes to `a` where a >= b, else to `b`.
template <typename T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) {
  const Tensor<T> out = detail::binary_raw(kernels::Binary::Max, a, b, "maximum");
  const Tensor<T> as = a.detach(), ys = out.detach();
  const Shape sb = b.shape();
  return record("maximum", out, {a, b}, [as, ys, sb](const Tensor<T>& g, const std::vector<bool>& need) {
    using kernels::Binary;
    const Tensor<T> from_a = detail::binary_raw(Binary::Eq, ys, as, "maximum");
    const Tensor<T> ga = detail::binary_raw(Binary::Mul, g, from_a, "maximum");
    return std::vector<Tensor<T>>{need[0] ? sum_to(ga, as.shape()) : Tensor<T>(),
                                  need[1] ? sum_to(detail::binary_raw(Binary::Sub, g, ga, "maximum"), sb) : Tensor<T>()};
  });
}

namespace detail {

/// Which of x and y the derivative of `op` reads, so that only those are kept for backward.
inline bool derivative_reads_x(kernels::Unary op) {
  using kernels::Unary;
  switch (op) {
    case Unary::Log: case Unary::Abs: case Unary::Sin: case Unary::Cos: case Unary::LogSigmoid: case Unary::Softplus: case Unary::Relu:
    case Unary::GeluTanh: case Unary::GeluErf: case Unary::Pow:
      return true;
    default:
      return false;
  }
}
inline bool derivative_reads_y(kernels::Unary op) {
  using kernels::Unary;
  return op == Unary::Exp || op == Unary::Sqrt || op == Unary::Rsqrt || op == Unary::Tanh || op == Unary::Sigmoid;
}

template <typename T>
Tensor<T> unary_op(const char* name, kernels::Unary op, const Tensor<T>& x, T param = T(0)) {
  const Tensor<T> out = unary_raw(op, x, param);
  const Tensor<T> xs = derivative_reads_x(op) ? x.detach().contiguous() : Tensor<T>();
  const Tensor<T> ys = derivative_reads_y(op) ? out.detach() : Tensor<T>();
  return record(name, out, {x}, [xs, ys, op, param](const Tensor<T>& g, const std::vector<bool>&) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(g.shape(), g.device());
    kernels::on<T>(g.device())
        .unary_backward(op, xs.defined() ? xs.device_ptr() : nullptr, ys.defined() ? ys.device_ptr() : nullptr,
                        gc.device_ptr(), gx.device_ptr(), gx.numel(), param);
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace detail

template <typename T> Tensor<T> neg(const Tensor<T>& x) { return detail::unary_op("neg", kernels::Unary::Neg, x); }
template <typename T> Tensor<T> exp(const Tensor<T>& x) { return detail::unary_op("exp", kernels::Unary::Exp, x); }
template <typename T> Tensor<T> log(const Tensor<T>& x) { return detail::unary_op("log", kernels::Unary::Log, x); }
template <typename T> Tensor<T> sqrt(const Tensor<T>& x) { return detail::unary_op("sqrt", kernels::Unary::Sqrt, x); }
template <typename T> Tensor<T> rsqrt(const Tensor<T>& x) { return detail::unary_op("rsqrt", kernels::Unary::Rsqrt, x); }
template <typename T> Tensor<T> abs(const Tensor<T>& x) { return detail::unary_op("abs", kernels::Unary::Abs, x); }
template <typename T> Tensor<T> sin(const Tensor<T>& x) { return detail::unary_op("sin", kernels::Unary::Sin, x); }
template <typename T> Tensor<T> cos(const Tensor<T>& x) { return detail::unary_op("cos", kernels::Unary::Cos, x); }
template <typename T> Tensor<T> tanh(const Tensor<T>& x) { return detail::unary_op("tanh", kernels::Unary::Tanh, x); }
template <typename T> Tensor<T> relu(const Tensor<T>& x) { return detail::unary_op("relu", kernels::Unary::Relu, x); }
template <typename T>
Tensor<T> sigmoid(const Tensor<T>& x) { return detail::unary_op("sigmoid", kernels::Unary::Sigmoid, x); }
/// log(sigmoid(x)), computed as min(x, 0) - log1p(exp(-|x|)): finite for any finite x.
template <typename T>
Tensor<T> log_sigmoid(const Tensor<T>& x) { return detail::unary_op("log_sigmoid", kernels::Unary::LogSigmoid, x); }
/// log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)).
template <typename T>
Tensor<T> softplus(const Tensor<T>& x) { return detail::unary_op("softplus", kernels::Unary::Softplus, x); }
/// x^p for a scalar exponent p.
template <typename T>
Tensor<T> pow(const Tensor<T>& x, detail::Scalar<T> p) { return detail::unary_op("pow", kernels::Unary::Pow, x, p); }

enum class GeluApprox { Tanh, None };

/// GELU; the tanh approximation (SigLIP's "gelu_pytorch_tanh") by default, or the exact erf form.
template <typename T>
Tensor<T> gelu(const Tensor<T>& x, GeluApprox approx = GeluApprox::Tanh) {
  return approx == GeluApprox::Tanh ? detail::unary_op("gelu", kernels::Unary::GeluTanh, x)
                                    : detail::unary_op("gelu", kernels::Unary::GeluErf, x);
}

template <typename T>
Tensor<T> add(const Tensor<T>& x, detail::Scalar<T> s) { return detail::unary_op("add_scalar", kernels::Unary::AddScalar, x, s); }
template <typename T>
Tensor<T> mul(const Tensor<T>& x, detail::Scalar<T> s) { return detail::unary_op("mul_scalar", kernels::Unary::MulScalar, x, s); }

template <typename T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <typename T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <typename T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
template <typename T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
template <typename T> Tensor<T> operator-(const Tensor<T>& x) { return neg(x); }
template <typename T> Tensor<T> operator+(const Tensor<T>& x, detail::Scalar<T> s) { return add(x, s); }
template <typename T> Tensor<T> operator+(detail::Scalar<T> s, const Tensor<T>& x) { return add(x, s); }
template <typename T> Tensor<T> operator-(const Tensor<T>& x, detail::Scalar<T> s) { return add(x, -s); }
template <typename T> Tensor<T> operator-(detail::Scalar<T> s, const Tensor<T>& x) { return add(neg(x), s); }
template <typename T> Tensor<T> operator*(const Tensor<T>& x, detail::Scalar<T> s) { return mul(x, s); }
template <typename T> Tensor<T> operator*(detail::Scalar<T> s, const Tensor<T>& x) { return mul(x, s); }
template <typename T> Tensor<T> operator/(const Tensor<T>& x, detail::Scalar<T> s) { return mul(x, T(1) / s); }
template <typename T> Tensor<T> operator/(detail::Scalar<T> s, const Tensor<T>& x) { return div(Tensor<T>::scalar(s, x.device()), x); }

/// 1 where a == b and 0 elsewhere, with broadcasting; a comparison passes no gradient.
template <typename T>
Tensor<T> eq(const Tensor<T>& a, const Tensor<T>& b) {
  return detail::binary_raw(kernels::Binary::Eq, a, b, "eq");
}

/// x's elements converted to U (float or double) on x's device: from int64_t (masks, ids) or the other float
/// type. A conversion passes no gradient, so x must not need one (detach() it, or convert under NoGradGuard).
template <typename U, typename T>
Tensor<U> cast(const Tensor<T>& x) {
  static_assert(std::is_floating_point_v<U>, "cast converts to float or double");
  if constexpr (std::is_same_v<U, T>) {
    return x;
  } else {
    SIGLITE_CHECK(!(grad_enabled() && x.requires_grad()),
                  "cast: the input requires a gradient, which a conversion does not pass on; detach() it first");
    Tensor<U> out = Tensor<U>::empty(x.shape(), x.device());
    kernels::on<U>(x.device()).convert(x.view(), out.device_ptr());
    return out;
  }
}

}  // namespace siglite
