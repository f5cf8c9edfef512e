// Reductions: sum, mean and max over axes (with keepdim), and sum_to, which folds a broadcast
// gradient back to its input's shape.
#pragma once
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite {

namespace detail {

/// Which axes of a rank-`ndim` tensor `axes` names (empty = all), checked and deduplicated.
inline std::vector<bool> axis_mask(const std::vector<int64_t>& axes, size_t ndim, const char* op) {
  std::vector<bool> mask(ndim, axes.empty());
  for (int64_t a : axes) {
    const size_t i = normalize_axis(a, ndim, op);
    SIGLITE_CHECK(!mask[i], op, ": axis ", a, " named twice");
    mask[i] = true;
  }
  return mask;
}

inline Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (!mask[i]) out.push_back(shape[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

/// Reduces the masked axes of x with `op` (no history); the result has the keepdim shape.
template <typename T>
Tensor<T> reduce_raw(const Tensor<T>& x, const std::vector<bool>& mask, kernels::Reduce op) {
  Shape shape, strides;
  size_t kept = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < x.dim(); ++i)
      if (mask[i] == (pass == 1)) {
        shape.push_back(x.shape()[i]);
        strides.push_back(x.strides()[i]);
        kept += pass == 0;
      }
  Tensor<T> out = Tensor<T>::empty(reduced_shape(x.shape(), mask, true), x.device());
  kernels::on<T>(x.device()).reduce(op, kernels::View<const T>{x.device_ptr(), shape, strides}, kept, out.device_ptr());
  return out;
}

}  // namespace detail

/// Sum over `axes` (all axes when empty).
template <typename T>
Tensor<T> sum(const Tensor<T>& x, const std::vector<int64_t>& axes = {}, bool keepdim = false) {
  const auto mask = detail::axis_mask(axes, x.dim(), "sum");
  const Tensor<T> kept = detail::reduce_raw(x, mask, kernels::Reduce::Sum);
  const Shape keep_shape = kept.shape(), in_shape = x.shape();
  return record("sum", kept.reshape(detail::reduced_shape(x.shape(), mask, keepdim)), {x},
                [keep_shape, in_shape](const Tensor<T>& g, const std::vector<bool>&) {
                  return std::vector<Tensor<T>>{g.reshape(keep_shape).expand(in_shape).contiguous()};
                });
}

/// Mean over `axes` (all axes when empty).
template <typename T>
Tensor<T> mean(const Tensor<T>& x, const std::vector<int64_t>& axes = {}, bool keepdim = false) {
  const auto mask = detail::axis_mask(axes, x.dim(), "mean");
  const Tensor<T> kept = detail::reduce_raw(x, mask, kernels::Reduce::Sum);
  const T scale = kept.numel() == 0 ? T(0) : T(kept.numel()) / T(x.numel());
  kernels::on<T>(x.device())
      .unary(kernels::Unary::MulScalar, kept.device_ptr(), kept.device_ptr(), kept.numel(), scale);
  const Shape keep_shape = kept.shape(), in_shape = x.shape();
  return record("mean", kept.reshape(detail::reduced_shape(x.shape(), mask, keepdim)), {x},
                [keep_shape, in_shape, scale](const Tensor<T>& g, const std::vector<bool>&) {
                  Tensor<T> gx = g.reshape(keep_shape).expand(in_shape).clone();
                  kernels::on<T>(gx.device())
                      .unary(kernels::Unary::MulScalar, gx.device_ptr(), gx.device_ptr(), gx.numel(), scale);
                  return std::vector<Tensor<T>>{gx};
                });
}

/// Maximum over `axes` (all when empty). The gradient is shared equally among tied maxima.
template <typename T>
Tensor<T> max(const Tensor<T>& x, const std::vector<int64_t>& axes = {}, bool keepdim = false) {
  const auto mask = detail::axis_mask(axes, x.dim(), "max");
  for (size_t i = 0; i < x.dim(); ++i)
    SIGLITE_CHECK(!mask[i] || x.shape()[i] > 0, "max: reducing the empty axis ", i, " of shape ", x.shape());
  const Tensor<T> kept = detail::reduce_raw(x, mask, kernels::Reduce::Max);
  const Tensor<T> xs = x.detach();
  return record("max", kept.reshape(detail::reduced_shape(x.shape(), mask, keepdim)), {x},
                [xs, kept, mask](const Tensor<T>& g, const std::vector<bool>&) {
                  const Device d = xs.device();
                  Tensor<T> hit = Tensor<T>::empty(xs.shape(), d);
                  kernels::on<T>(d).binary(kernels::Binary::Eq, xs.view(), kept.expand(xs.shape()).view(),
                                           hit.device_ptr());
                  const Tensor<T> count = detail::reduce_raw(hit, mask, kernels::Reduce::Sum);
                  Tensor<T> share = Tensor<T>::empty(count.shape(), d);
                  kernels::on<T>(d).binary(kernels::Binary::Div, g.reshape(count.shape()).view(), count.view(),
                                           share.device_ptr());
                  kernels::on<T>(d).binary(kernels::Binary::Mul, hit.view(), share.expand(xs.shape()).view(),
                                           hit.device_ptr());
                  return std::vector<Tensor<T>>{hit};
                });
}

/// The positions of the k largest elements along the last axis, largest first: [..., k], no gradient. Equal
/// elements keep their order (a stable descending sort's first k) and NaN ranks above every number.
template <typename T>
Tensor<int64_t> topk_indices(const Tensor<T>& x, int64_t k) {
  SIGLITE_CHECK(x.dim() >= 1, "topk_indices: a scalar has no last axis");
  const int64_t cols = x.shape().back();
  SIGLITE_CHECK(k >= 0 && k <= cols, "topk_indices: k = ", k, " is outside [0, ", cols, "] for shape ", x.shape());
  Shape shape = x.shape();
  shape[shape.size() - 1] = k;
  Tensor<int64_t> out = Tensor<int64_t>::empty(shape, x.device());
  if (out.numel() == 0) return out;
  const Tensor<T> rows = x.dim() == 2 ? x.detach() : x.detach().reshape({-1, cols});
  kernels::on<T>(x.device()).topk(rows.view(), k, out.device_ptr());
  return out;
}

/// Sums a tensor broadcast from `shape` back to `shape` (the gradient of expand and broadcasting).
template <typename T>
Tensor<T> sum_to(const Tensor<T>& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  SIGLITE_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(), "sum_to: shape ", x.shape(),
                " is not a broadcast of ", shape);
  const size_t lead = x.dim() - shape.size();
  std::vector<int64_t> axes;
  for (size_t i = 0; i < x.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(static_cast<int64_t>(i));
  return sum(x, axes, true).reshape(shape);
}

}  // namespace siglite
