// Fused network ops, each one node with a hand-written backward: softmax, log_softmax,
// layer_norm, l2_normalize, scaled dot-product attention, multi-head attention (on separate or packed q, k, v);
// and dropout.
#pragma once
#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
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
  kernels::on<T>(x.device()).softmax(xc.device_ptr(), y.device_ptr(), cols ? x.numel() / cols : 0, cols, log);
  return y;
}

template <typename T>
Tensor<T> softmax_last_backward(const Tensor<T>& y, const Tensor<T>& g, bool log) {
  const Tensor<T> gc = g.is_contiguous() ? g : g.clone();
  Tensor<T> gx = Tensor<T>::empty(y.shape(), y.device());
  const int64_t cols = y.dim() ? y.shape().back() : 1;
  kernels::on<T>(y.device())
      .softmax_backward(y.device_ptr(), gc.device_ptr(), gx.device_ptr(), cols ? y.numel() / cols : 0, cols, log);
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
    detail::check_same_device(x.device(), p->device(), "layer_norm");
  }
  const Device d = x.device();
  const Tensor<T> xs = x.detach().contiguous();
  const Tensor<T> ws = weight.defined() ? weight.detach().contiguous() : Tensor<T>();
  const Tensor<T> bs = bias.defined() ? bias.detach().contiguous() : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty(x.shape(), d), mu = Tensor<T>::empty({rows}, d), rs = Tensor<T>::empty({rows}, d);
  kernels::on<T>(d).layer_norm(xs.device_ptr(), ws.defined() ? ws.device_ptr() : nullptr,
                               bs.defined() ? bs.device_ptr() : nullptr, y.device_ptr(), mu.device_ptr(),
                               rs.device_ptr(), rows, cols, static_cast<T>(eps));
  return record("layer_norm", y, {x, weight, bias},
                [xs, ws, mu, rs, rows, cols](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = xs.device();
                  const Tensor<T> gc = g.contiguous();
                  Tensor<T> gx = Tensor<T>::empty(xs.shape(), dev);
                  Tensor<T> gw = need[1] ? Tensor<T>::empty({cols}, dev) : Tensor<T>();
                  Tensor<T> gb = need[2] ? Tensor<T>::empty({cols}, dev) : Tensor<T>();
                  kernels::on<T>(dev).layer_norm_backward(xs.device_ptr(), ws.defined() ? ws.device_ptr() : nullptr,
                                                          mu.device_ptr(), rs.device_ptr(), gc.device_ptr(),
                                                          gx.device_ptr(), gw.defined() ? gw.device_ptr() : nullptr,
                                                          gb.defined() ? gb.device_ptr() : nullptr, rows, cols);
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
  for (const Tensor<T>* t : {&k, &v}) detail::check_same_device(q.device(), t->device(), op);
  Shape score_shape = q.shape();
  score_shape[r - 1] = k.shape()[r - 2];
  if (mask.defined()) {
    detail::check_same_device(q.device(), mask.device(), op);
    bool fits = mask.dim() <= r;
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
  kernels::on<T>(q.device())
      .unary(kernels::Unary::MulScalar, scores.device_ptr(), scores.device_ptr(), scores.numel(), s);
  if (mask.defined()) scores = detail::binary_raw(kernels::Binary::Add, scores, mask.detach(), op);
  const Tensor<T> p = detail::softmax_last_raw(scores, false);
  const Shape mask_shape = mask.defined() ? mask.shape() : Shape{};
  return record("scaled_dot_product_attention", detail::matmul_raw(p, vs), {q, k, v, mask},
                [qs, ks, vs, p, s, mask_shape](const Tensor<T>& g, const std::vector<bool>& need) {
                  std::vector<Tensor<T>> out(4);
                  if (need[2]) out[2] = detail::matmul_raw(p.t(), g);
                  Tensor<T> ds = detail::softmax_last_backward(p, detail::matmul_raw(g, vs.t()), false);
                  if (need[3]) out[3] = sum_to(ds, mask_shape).clone();
                  kernels::on<T>(ds.device())
                      .unary(kernels::Unary::MulScalar, ds.device_ptr(), ds.device_ptr(), ds.numel(), s);
                  if (need[0]) out[0] = detail::matmul_raw(ds, ks);
                  if (need[1]) out[1] = detail::matmul_raw(ds.t(), qs);
                  return out;
                });
}

namespace detail {

/// Checks multi-head attention's inputs and describes them to the kernels. q, k, v: [batch, length, heads *
/// head_dim] with contiguous rows (any row and batch strides); the mask, broadcast to the scores, is kept in `m`.
template <typename T>
kernels::AttentionArgs<T> attention_args(const char* op, const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                         int64_t heads, const Tensor<T>& mask, std::optional<double> scale,
                                         Tensor<T>& m) {
  SIGLITE_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, op, ": q, k, v of shapes ", q.shape(), ", ", k.shape(),
                ", ", v.shape(), " are not all [batch, length, heads * head_dim]");
  SIGLITE_CHECK(heads > 0 && q.size(2) % heads == 0 && v.size(2) % heads == 0, op, ": widths ", q.size(2), " and ",
                v.size(2), " are not divisible by ", heads, " heads");
  SIGLITE_CHECK(q.size(0) == k.size(0) && q.size(0) == v.size(0), op, ": batch sizes of q ", q.shape(), ", k ",
                k.shape(), " and v ", v.shape(), " differ");
  SIGLITE_CHECK(q.size(2) == k.size(2), op, ": q ", q.shape(), " and k ", k.shape(), " have different widths");
  SIGLITE_CHECK(k.size(1) == v.size(1), op, ": k ", k.shape(), " and v ", v.shape(),
                " have different sequence lengths");
  for (const Tensor<T>* t : {&k, &v}) detail::check_same_device(q.device(), t->device(), op);
  const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1);
  const Shape score_shape{b, heads, lq, lk};
  kernels::AttentionArgs<T> a;
  if (mask.defined()) {
    SIGLITE_CHECK(!mask.requires_grad(), op, ": the mask gets no gradient; pass it detached");
    detail::check_same_device(q.device(), mask.device(), op);
    bool fits = mask.dim() <= 4;
    for (size_t i = 0; fits && i < mask.dim(); ++i) {
      const int64_t e = mask.shape()[mask.dim() - 1 - i];
      fits = e == 1 || e == score_shape[3 - i];
    }
    SIGLITE_CHECK(fits, op, ": mask of shape ", mask.shape(), " on ", mask.device(), " does not broadcast to the scores ",
                  score_shape, " on ", q.device());
    m = mask.expand(score_shape);
    a.mask = m.device_ptr();
    a.mask_batch = m.strides()[0];
    a.mask_head = m.strides()[1];
    a.mask_row = m.strides()[2];
    a.mask_col = m.strides()[3];
  }
  a.batch = b;
  a.heads = heads;
  a.lq = lq;
  a.lk = lk;
  a.dk = q.size(2) / heads;
  a.dv = v.size(2) / heads;
  a.q_batch = q.strides()[0];
  a.q_row = q.strides()[1];
  a.k_batch = k.strides()[0];
  a.k_row = k.strides()[1];
  a.v_batch = v.strides()[0];
  a.v_row = v.strides()[1];
  a.gq_row = a.gk_row = heads * a.dk;
  a.gv_row = heads * a.dv;
  a.gq_batch = lq * a.gq_row;
  a.gk_batch = lk * a.gk_row;
  a.gv_batch = lk * a.gv_row;
  a.scale = static_cast<T>(scale.value_or(1.0 / std::sqrt(static_cast<double>(a.dk))));
  return a;
}

/// Runs the forward kernel: p [batch, heads, lq, lk] (kept for backward) and the output [batch, lq, heads * dv].
template <typename T>
std::pair<Tensor<T>, Tensor<T>> attention_run(const kernels::AttentionArgs<T>& a, const Tensor<T>& q, const Tensor<T>& k,
                                              const Tensor<T>& v) {
  const Device d = q.device();
  Tensor<T> p = Tensor<T>::empty({a.batch, a.heads, a.lq, a.lk}, d), out = Tensor<T>::empty({a.batch, a.lq, a.heads * a.dv}, d);
  kernels::on<T>(d).attention_forward(a, q.device_ptr(), k.device_ptr(), v.device_ptr(), p.device_ptr(),
                                      out.device_ptr());
  return {p, out};
}

}  // namespace detail

/// Multi-head attention as one node on [batch, length, heads * head_dim] tensors, the layout the q, k, v
/// projections produce and the output projection takes: softmax(q_h k_h^T * scale + mask) v_h for each
/// head h (columns [h * d, (h + 1) * d)), written into the head's columns of the [batch, lq, heads * dv]
/// result. Equal to merging the heads of scaled_dot_product_attention on split heads, without the copies.
/// q [B, Lq, H*d], k [B, Lk, H*d], v [B, Lk, H*dv]; mask (optional, additive, no gradient) broadcasts to
/// [B, H, Lq, Lk]; scale defaults to 1/sqrt(d).
template <typename T>
Tensor<T> multi_head_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int64_t heads,
                               const Tensor<T>& mask = {}, std::optional<double> scale = std::nullopt) {
  // Rows must be contiguous; the batch and row strides are passed as they are.
  const auto rows_ok = [](const Tensor<T>& x) {
    return x.dim() != 3 || x.strides()[2] == 1 || x.size(2) == 1 ? x.detach() : x.detach().contiguous();
  };
  const Tensor<T> qs = rows_ok(q), ks = rows_ok(k), vs = rows_ok(v);
  Tensor<T> m;
  kernels::AttentionArgs<T> a = detail::attention_args("multi_head_attention", qs, ks, vs, heads, mask, scale, m);
  const auto [p, out] = detail::attention_run(a, qs, ks, vs);
  a.mask = nullptr;  // backward needs only p
  return record("multi_head_attention", out, {q, k, v},
                [qs, ks, vs, p = p, a](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = qs.device();
                  const Tensor<T> gc = g.contiguous();
                  std::vector<Tensor<T>> grads(3);
                  const std::vector<Shape> shapes{{a.batch, a.lq, a.heads * a.dk}, {a.batch, a.lk, a.heads * a.dk},
                                                  {a.batch, a.lk, a.heads * a.dv}};
                  for (size_t i = 0; i < 3; ++i)
                    if (need[i]) grads[i] = Tensor<T>::empty(shapes[i], dev);
                  const auto ptr = [](Tensor<T>& t) { return t.defined() ? t.device_ptr() : nullptr; };
                  kernels::on<T>(dev).attention_backward(a, qs.device_ptr(), ks.device_ptr(), vs.device_ptr(),
                                                         p.device_ptr(), gc.device_ptr(), ptr(grads[0]), ptr(grads[1]),
                                                         ptr(grads[2]));
                  return grads;
                });
}

namespace detail {

/// Self-attention on packed projections qkv [B, L, 3 * H * d], for the queries of all L positions (at < 0) or
/// of position `at` only. One [B, L, 3 * H * d] gradient, written in place.
template <typename T>
Tensor<T> packed_attention(const char* op, const Tensor<T>& qkv, int64_t at, int64_t heads, const Tensor<T>& mask,
                           std::optional<double> scale) {
  SIGLITE_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0, op, ": input of shape ", qkv.shape(),
                " is not [batch, length, 3 * heads * head_dim]");
  const Tensor<T> xs = qkv.detach().contiguous();
  const int64_t len = xs.size(1), w = xs.size(2) / 3, row = 3 * w, q_offset = std::max<int64_t>(at, 0) * row;
  Tensor<T> query_mask = mask;
  if (at >= 0) {
    SIGLITE_CHECK(at < len, op, ": position ", at, " is outside the ", len, " positions of ", qkv.shape());
    // The mask broadcasts to [B, H, L, L] as for every query; only row `at` of it applies.
    const size_t r = mask.defined() ? mask.dim() : 0;
    if (r >= 2 && mask.size(r - 2) != 1) {
      SIGLITE_CHECK(mask.size(r - 2) == len, op, ": mask of shape ", mask.shape(), " does not broadcast to the scores ",
                    Shape{xs.size(0), heads, len, len});
      query_mask = mask.slice(static_cast<int64_t>(r - 2), at, at + 1);
    }
  }
  const Tensor<T> qs = (at >= 0 ? xs.slice(1, at, at + 1) : xs).slice(2, 0, w), ks = xs.slice(2, w, 2 * w),
                  vs = xs.slice(2, 2 * w, 3 * w);
  Tensor<T> m;
  kernels::AttentionArgs<T> a = attention_args(op, qs, ks, vs, heads, query_mask, scale, m);
  const auto [p, out] = attention_run(a, qs, ks, vs);
  a.mask = nullptr;
  a.gq_row = a.gk_row = a.gv_row = row;
  a.gq_batch = a.gk_batch = a.gv_batch = len * row;
  return record(op, out, {qkv}, [xs, p = p, a, w, at, q_offset](const Tensor<T>& g, const std::vector<bool>&) {
    const Tensor<T> gc = g.contiguous();
    // With one query position, the q columns of the other rows get no gradient.
    Tensor<T> gx = at >= 0 ? Tensor<T>::zeros(xs.shape(), xs.device()) : Tensor<T>::empty(xs.shape(), xs.device());
    const T* x = xs.device_ptr();
    T* gp = gx.device_ptr();
    kernels::on<T>(xs.device())
        .attention_backward(a, x + q_offset, x + w, x + 2 * w, p.device_ptr(), gc.device_ptr(), gp + q_offset, gp + w,
                            gp + 2 * w);
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace detail

/// Self-attention on packed projections: qkv [B, L, 3 * H * d] holds q, k and v side by side in each row (one
/// GEMM with the three projections' weights stacked makes it). The same as multi_head_attention on its three
/// column blocks, with one [B, L, 3 * H * d] gradient written in place: no gradients of separate q, k and v to
/// stack, and the layer's input gradient comes from one GEMM instead of three summed.
template <typename T>
Tensor<T> multi_head_attention_packed(const Tensor<T>& qkv, int64_t heads, const Tensor<T>& mask = {},
                                      std::optional<double> scale = std::nullopt) {
  return detail::packed_attention("multi_head_attention_packed", qkv, -1, heads, mask, scale);
}

/// multi_head_attention_packed's output at position `at` only, [B, 1, H * d]: that position's query attends over
/// every position's key and value, at 1/L of the attention work. The same as
/// multi_head_attention_packed(qkv, heads, mask, scale).slice(1, at, at + 1); the mask broadcasts to [B, H, L, L]
/// as there, and its row `at` applies. What the last layer of a tower pooled at one token needs.
template <typename T>
Tensor<T> multi_head_attention_packed_at(const Tensor<T>& qkv, int64_t at, int64_t heads, const Tensor<T>& mask = {},
                                         std::optional<double> scale = std::nullopt) {
  SIGLITE_CHECK(at >= 0, "multi_head_attention_packed_at: position ", at, " is negative");
  return detail::packed_attention("multi_head_attention_packed_at", qkv, at, heads, mask, scale);
}

/// Zeroes each element with probability p and scales the rest by 1/(1-p) in training; the
/// identity otherwise. The mask is made on x's device from one key drawn from `gen` (Tensor::bernoulli).
template <typename T>
Tensor<T> dropout(const Tensor<T>& x, double p, Generator& gen, bool training) {
  SIGLITE_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " is outside [0, 1]");
  if (!training || p == 0.0) return x;
  const T keep = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  return x * Tensor<T>::bernoulli(x.shape(), gen, static_cast<T>(1.0 - p), keep, x.device());
}

}  // namespace siglite
