// Ops that gather and assemble: concat, stack, index_select, embedding (scatter-add backward),
// and patchify (the ViT patch embedding's im2col, Conv2d with stride = kernel).
#pragma once
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite {

/// Joins tensors of equal shape except along `axis`.
template <typename T>
Tensor<T> concat(const std::vector<Tensor<T>>& xs, int64_t axis = 0) {
  SIGLITE_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor<T>& first = xs.front();
  const size_t a = normalize_axis(axis, first.dim(), "concat");
  Shape shape = first.shape();
  shape[a] = 0;
  for (const auto& x : xs) {
    detail::check_same_device(first.device(), x.device(), "concat");
    bool fits = x.dim() == first.dim();
    for (size_t i = 0; fits && i < x.dim(); ++i) fits = i == a || x.shape()[i] == first.shape()[i];
    SIGLITE_CHECK(fits, "concat: shape ", x.shape(), " does not fit ", first.shape(), " along axis ", axis);
    shape[a] += x.shape()[a];
  }
  Tensor<T> out = Tensor<T>::empty(shape, first.device());
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (const auto& x : xs) {
    starts.push_back(at);
    const Tensor<T> dst = out.detach().slice(static_cast<int64_t>(a), at, at + x.shape()[a]);
    kernels::on<T>(x.device()).copy(x.view(), dst.mutable_view());
    at += x.shape()[a];
  }
  starts.push_back(at);
  return record("concat", out, xs, [starts, a](const Tensor<T>& g, const std::vector<bool>& need) {
    std::vector<Tensor<T>> gs(need.size());
    for (size_t i = 0; i < need.size(); ++i)
      if (need[i]) gs[i] = g.slice(static_cast<int64_t>(a), starts[i], starts[i + 1]);
    return gs;
  });
}

/// Joins tensors of equal shape along a new axis.
template <typename T>
Tensor<T> stack(const std::vector<Tensor<T>>& xs, int64_t axis = 0) {
  SIGLITE_CHECK(!xs.empty(), "stack: no tensors given");
  const auto a = static_cast<int64_t>(normalize_axis(axis, xs.front().dim() + 1, "stack"));
  std::vector<Tensor<T>> parts;
  for (const auto& x : xs) {
    SIGLITE_CHECK(x.shape() == xs.front().shape(), "stack: shapes ", xs.front().shape(), " and ", x.shape(), " differ");
    parts.push_back(x.unsqueeze(a));
  }
  return concat(parts, a);
}

/// Rows of x along `axis` at the positions in the 1-D `index`; the gradient is scatter-added.
template <typename T>
Tensor<T> index_select(const Tensor<T>& x, int64_t axis, const Tensor<int64_t>& index) {
  SIGLITE_CHECK(index.dim() == 1, "index_select: index of shape ", index.shape(), " is not 1-D");
  const size_t a = normalize_axis(axis, x.dim(), "index_select");
  detail::check_same_device(x.device(), index.device(), "index_select");
  const Tensor<int64_t> idx = index.contiguous();
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < x.dim(); ++i) (i < a ? outer : inner) *= i == a ? 1 : x.shape()[i];
  const int64_t n_src = x.shape()[a], n_idx = idx.numel();
  Shape shape = x.shape();
  shape[a] = n_idx;
  const Tensor<T> xc = x.is_contiguous() ? x : x.clone();
  Tensor<T> out = Tensor<T>::empty(shape, x.device());
  kernels::on<T>(x.device())
      .gather("index_select", xc.device_ptr(), idx.device_ptr(), out.device_ptr(), outer, n_src, n_idx, inner);
  const Shape in_shape = x.shape();
  return record("index_select", out, {x},
                [idx, in_shape, outer, n_src, n_idx, inner](const Tensor<T>& g, const std::vector<bool>&) {
                  const Tensor<T> gc = g.contiguous();
                  Tensor<T> gx = Tensor<T>::zeros(in_shape, g.device());
                  kernels::on<T>(g.device())
                      .scatter_add(gc.device_ptr(), idx.device_ptr(), gx.device_ptr(), outer, n_src, n_idx, inner);
                  return std::vector<Tensor<T>>{gx};
                });
}

/// Looks up rows of weight [V, D] for ids of any shape: the result is [ids..., D].
template <typename T>
Tensor<T> embedding(const Tensor<T>& weight, const Tensor<int64_t>& ids) {
  SIGLITE_CHECK(weight.dim() == 2, "embedding: weight of shape ", weight.shape(), " is not [vocab, dim]");
  const Tensor<int64_t> flat = ids.reshape({-1});
  Shape shape = ids.shape();
  shape.push_back(weight.shape()[1]);
  return index_select(weight, 0, flat).reshape(shape);
}

/// Splits images [N, C, H, W] into non-overlapping P x P patches: [N, (H/P)*(W/P), C*P*P], each
/// patch flattened as (c, ky, kx) so that `patches @ conv_weight.reshape({D, -1}).t()` is the
/// stride-P convolution.
template <typename T>
Tensor<T> patchify(const Tensor<T>& images, int64_t patch) {
  SIGLITE_CHECK(images.dim() == 4, "patchify: images of shape ", images.shape(), " are not [N, C, H, W]");
  const int64_t n = images.shape()[0], c = images.shape()[1], h = images.shape()[2], w = images.shape()[3];
  SIGLITE_CHECK(patch > 0 && h % patch == 0 && w % patch == 0, "patchify: patch size ", patch,
                " does not divide the image size ", h, "x", w, " of shape ", images.shape());
  const Tensor<T> xc = images.is_contiguous() ? images : images.clone();
  Tensor<T> out = Tensor<T>::empty({n, (h / patch) * (w / patch), c * patch * patch}, images.device());
  kernels::on<T>(images.device()).patchify(xc.device_ptr(), out.device_ptr(), n, c, h, w, patch, false);
  const Shape in_shape = images.shape();
  return record("patchify", out, {images}, [in_shape, patch](const Tensor<T>& g, const std::vector<bool>&) {
    const Tensor<T> gc = g.is_contiguous() ? g : g.clone();
    Tensor<T> gx = Tensor<T>::empty(in_shape, g.device());
    kernels::on<T>(g.device())
        .patchify(gx.device_ptr(), gc.device_ptr(), in_shape[0], in_shape[1], in_shape[2], in_shape[3], patch, true);
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace siglite
