// Fused network ops, each one node with a hand-written backward: softmax, log_softmax,
// layer_norm, l2_normalize, scaled dot-product attention; and dropout.
#pragma once
#include <cmath>
#include <optional>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

namespace detail {

template <typename T>
Tensor<T> softmax_last_raw(const Tensor<T>& x, bool log) {
  const Tensor<T> xc = x.is_contiguous() ? x : x.clone();
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  const int64_t cols = x.dim() ? x.shape().back() : 1;
  kernels::softmax(x.device(), xc.data(), y.data(), cols ? x.numel() / cols : 0, cols, log);
  return y;
}

template <typename T>
Tensor<T> softmax_last_backward(const Tensor<T>& y, const Tensor<T>& g, bool log) {
  const Tensor<T> gc = g.is_contiguous() ? g : g.clone();
  Tensor<T> gx = Tensor<T>::empty(y.shape(), y.device());
  const int64_t cols = y.dim() ? y.shape().back() : 1;
  kernels::softmax_backward(y.device(), y.data(), gc.data(), gx.data(), cols ? y.numel() / cols : 0, cols, log);
  return gx;
}

template <typename T>
Tensor<T> softmax_last(const Tensor<T>& x, bool log) {
  const Tensor<T> y = softmax_last_raw(x, log);
  const Tensor<T> ys = y.detach();
  return record(log ? "log_softmax" : "softmax", y, {x}, [ys, log](const Tensor<T>& g, const std::vector<bool>&) {
    return std::vector<Tensor<T>>{softmax_last_backward(ys, g, log)};
  });
}

template <typename T>
Tensor<T> softmax_axis(const Tensor<T>& x, int64_t axis, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  SIGLITE_CHECK(x.dim() > 0, name, ": a scalar has no axis");
  const auto a = static_cast<int64_t>(normalize_axis(axis, x.dim(), name));
  const auto last = static_cast<int64_t>(x.dim()) - 1;
  if (a == last) return softmax_last(x, log);
  return softmax_last(x.transpose(a, last), log).transpose(a, last);
}

}  // namespace detail

/// exp(x) / sum(exp(x)) along `axis`, computed after subtracting the maximum.
template <typename T>
Tensor<T> softmax(const Tensor<T>& x, int64_t axis = -1) { return detail::softmax_axis(x, axis, false); }

/// x - logsumexp(x) along `axis`.
template <typename T>
Tensor<T> log_softmax(const Tensor<T>& x, int64_t axis = -1) { return detail::softmax_axis(x, axis, true); }

/// Layer norm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias. weight and bias
/// ([last extent]) may be undefined.
template <typename T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, double eps = 1e-5) {
  SIGLITE_CHECK(x.dim() >= 1, "layer_norm: input of shape ", x.shape(), " has no axis to normalise");
  const int64_t cols = x.shape().back(), rows = cols ? x.numel() / cols : 0;
  for (const Tensor<T>* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    SIGLITE_CHECK(p->shape() == Shape{cols}, "layer_norm: ", p == &weight ? "weight" : "bias", " of shape ",
                  p->shape(), " does not fit input of shape ", x.shape(), " (expected [", cols, "])");
    SIGLITE_CHECK(p->device() == x.device(), "layer_norm: parameter on ", p->device(), ", input on ", x.device());
  }
  const Device d = x.device();
  const Tensor<T> xs = x.detach().contiguous();
  const Tensor<T> ws = weight.defined() ? weight.detach().contiguous() : Tensor<T>();
  const Tensor<T> bs = bias.defined() ? bias.detach().contiguous() : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty(x.shape(), d), mu = Tensor<T>::empty({rows}, d), rs = Tensor<T>::empty({rows}, d);
  kernels::layer_norm(d, xs.data(), ws.defined() ? ws.data() : nullptr, bs.defined() ? bs.data() : nullptr, y.data(),
                      mu.data(), rs.data(), rows, cols, static_cast<T>(eps));
  return record("layer_norm", y, {x, weight, bias},
                [xs, ws, mu, rs, rows, cols](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = xs.device();
                  const Tensor<T> gc = g.contiguous();
                  Tensor<T> gx = Tensor<T>::empty(xs.shape(), dev);
                  Tensor<T> gw = need[1] ? Tensor<T>::empty({cols}, dev) : Tensor<T>();
                  Tensor<T> gb = need[2] ? Tensor<T>::empty({cols}, dev) : Tensor<T>();
                  kernels::layer_norm_backward(dev, xs.data(), ws.defined() ? ws.data() : nullptr, mu.data(), rs.data(),
                                               gc.data(), gx.data(), gw.defined() ? gw.data() : nullptr,
                                               gb.defined() ? gb.data() : nullptr, rows, cols);
                  return std::vector<Tensor<T>>{gx, gw, gb};
                });
}

/// x / max(||x||_2, eps) along `axis` (as torch.nn.functional.normalize).
template <typename T>
Tensor<T> l2_normalize(const Tensor<T>& x, int64_t axis = -1, double eps = 1e-12) {
  const int64_t a = static_cast<int64_t>(normalize_axis(axis, x.dim(), "l2_normalize"));
  Tensor<T> y, norm, kept;
  {
    NoGradGuard no_grad;
    const Tensor<T> raw = sqrt(sum(x * x, {a}, true));
    norm = maximum(raw, Tensor<T>::scalar(static_cast<T>(eps), x.device()));
    kept = detail::binary_raw(kernels::Binary::Eq, norm, raw, "l2_normalize");  // 1 where ||x|| >= eps
    y = x / norm;
  }
  const Tensor<T> ys = y.detach();
  // d/dx (x / n) = (g - y * <g, y>) / n where the norm is at least eps, and g / eps elsewhere.
  return record("l2_normalize", y, {x}, [ys, norm, kept, a](const Tensor<T>& g, const std::vector<bool>&) {
    return std::vector<Tensor<T>>{(g - ys * (sum(g * ys, {a}, true) * kept)) / norm};
  });
}

/// softmax(q @ k^T * scale + mask) @ v as one node. q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]
/// with equal batch axes; mask (optional, additive) broadcasts to [..., Lq, Lk]; scale defaults
/// to 1/sqrt(d).
template <typename T>
Tensor<T> scaled_dot_product_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                       const Tensor<T>& mask = {}, std::optional<double> scale = std::nullopt) {
  const char* op = "scaled_dot_product_attention";
  SIGLITE_CHECK(q.dim() >= 2 && q.dim() == k.dim() && q.dim() == v.dim(), op, ": q, k, v of shapes ", q.shape(), ", ",
                k.shape(), ", ", v.shape(), " need the same rank, at least 2");
  const size_t r = q.dim();
  for (size_t i = 0; i + 2 < r; ++i)
    SIGLITE_CHECK(q.shape()[i] == k.shape()[i] && q.shape()[i] == v.shape()[i], op, ": batch axes of q ", q.shape(),
                  ", k ", k.shape(), " and v ", v.shape(), " differ");
  SIGLITE_CHECK(q.shape()[r - 1] == k.shape()[r - 1], op, ": q ", q.shape(), " and k ", k.shape(),
                " have different head sizes");
  SIGLITE_CHECK(k.shape()[r - 2] == v.shape()[r - 2], op, ": k ", k.shape(), " and v ", v.shape(),
                " have different sequence lengths");
  SIGLITE_CHECK(q.device() == k.device() && q.device() == v.device(), op, ": q, k, v on different devices");
  Shape score_shape = q.shape();
  score_shape[r - 1] = k.shape()[r - 2];
  if (mask.defined()) {
    bool fits = mask.dim() <= r && mask.device() == q.device();
    for (size_t i = 0; fits && i < mask.dim(); ++i) {
      const int64_t m = mask.shape()[mask.dim() - 1 - i];
      fits = m == 1 || m == score_shape[r - 1 - i];
    }
    SIGLITE_CHECK(fits, op, ": mask of shape ", mask.shape(), " on ", mask.device(), " does not broadcast to the scores ",
                  score_shape, " on ", q.device());
  }
  const T s = static_cast<T>(scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape()[r - 1]))));
  const Tensor<T> qs = q.detach(), ks = k.detach(), vs = v.detach();
  Tensor<T> scores = detail::matmul_raw(qs, ks.t());
  kernels::unary(q.device(), kernels::Unary::MulScalar, scores.data(), scores.data(), scores.numel(), s);
  if (mask.defined()) scores = detail::binary_raw(kernels::Binary::Add, scores, mask.detach(), op);
  const Tensor<T> p = detail::softmax_last_raw(scores, false);
  const Shape mask_shape = mask.defined() ? mask.shape() : Shape{};
  return record("scaled_dot_product_attention", detail::matmul_raw(p, vs), {q, k, v, mask},
                [qs, ks, vs, p, s, mask_shape](const Tensor<T>& g, const std::vector<bool>& need) {
                  std::vector<Tensor<T>> out(4);
                  if (need[2]) out[2] = detail::matmul_raw(p.t(), g);
                  Tensor<T> ds = detail::softmax_last_backward(p, detail::matmul_raw(g, vs.t()), false);
                  if (need[3]) out[3] = sum_to(ds, mask_shape).clone();
                  kernels::unary(ds.device(), kernels::Unary::MulScalar, ds.data(), ds.data(), ds.numel(), s);
                  if (need[0]) out[0] = detail::matmul_raw(ds, ks);
                  if (need[1]) out[1] = detail::matmul_raw(ds.t(), qs);
                  return out;
                });
}

/// Zeroes each element with probability p and scales the rest by 1/(1-p) in training; the
/// identity otherwise. The mask is drawn from `gen`.
template <typename T>
Tensor<T> dropout(const Tensor<T>& x, double p, Generator& gen, bool training) {
  SIGLITE_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " is outside [0, 1]");
  if (!training || p == 0.0) return x;
  Tensor<T> mask = Tensor<T>::empty(x.shape());
  const T keep = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data()[i] = gen.uniform() >= p ? keep : T(0);
  return x * mask.to(x.device());
}

}  // namespace siglite
