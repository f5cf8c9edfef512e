// View ops: reshape, permute, transpose, slice, expand share their input's storage; contiguous()
// copies only when needed, to() when the device differs. Each records how to map a gradient back to its input's layout.
#pragma once
#include <algorithm>
#include <numeric>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

namespace detail {
template <typename T>
Tensor<T> make_view(const Tensor<T>& x, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl<T>>();
  impl->storage = x.impl().storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor<T>(std::move(impl));
}
}  // namespace detail

template <typename T>
Tensor<T> contiguous(const Tensor<T>& x) {
  if (x.is_contiguous()) return x;
  return record("contiguous", x.detach().clone(), {x},
                [](const Tensor<T>& g, const std::vector<bool>&) { return std::vector<Tensor<T>>{g}; });
}

/// A contiguous copy of x on `device` (x itself when it is there already); the gradient is copied back to x's
/// device.
template <typename T>
Tensor<T> to(const Tensor<T>& x, Device device) {
  if (x.device() == device) return x;
  const Tensor<T> src = x.detach().contiguous();
  Tensor<T> out = Tensor<T>::empty(src.shape(), device);
  backends::copy_bytes(device, out.device_ptr(), src.device(), src.device_ptr(),
                       static_cast<size_t>(src.numel()) * sizeof(T));
  return record("to", out, {x}, [from = x.device()](const Tensor<T>& g, const std::vector<bool>&) {
    return std::vector<Tensor<T>>{g.to(from)};
  });
}

/// A view with a new shape of the same number of elements; one extent may be -1 (inferred).
/// Copies first when x is not contiguous.
template <typename T>
Tensor<T> reshape(const Tensor<T>& x, const Shape& shape) {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SIGLITE_CHECK(infer < 0, "reshape: more than one -1 in ", shape);
      infer = static_cast<int64_t>(i);
    } else {
      SIGLITE_CHECK(s[i] >= 0, "reshape: negative extent in ", shape);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    SIGLITE_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot reshape ", x.shape(), " into ", shape);
    s[static_cast<size_t>(infer)] = x.numel() / known;
  }
  SIGLITE_CHECK(s.numel() == x.numel(), "reshape: cannot reshape ", x.shape(), " (", x.numel(), " elements) into ",
                shape);
  const Tensor<T> c = x.contiguous();
  Tensor<T> out = detail::make_view(c, s, contiguous_strides(s), c.offset());
  const Shape in_shape = c.shape();
  return record("reshape", out, {c}, [in_shape](const Tensor<T>& g, const std::vector<bool>&) {
    return std::vector<Tensor<T>>{g.reshape(in_shape)};
  });
}

template <typename T>
Tensor<T> permute(const Tensor<T>& x, const std::vector<int64_t>& dims) {
  SIGLITE_CHECK(dims.size() == x.dim(), "permute: ", dims.size(), " axes given for a tensor of shape ", x.shape());
  std::vector<int64_t> axes(dims.size());
  std::vector<bool> seen(dims.size(), false);
  Shape shape, strides;
  for (size_t i = 0; i < dims.size(); ++i) {
    const size_t a = normalize_axis(dims[i], x.dim(), "permute");
    SIGLITE_CHECK(!seen[a], "permute: axis ", dims[i], " repeated for shape ", x.shape());
    seen[a] = true;
    axes[i] = static_cast<int64_t>(a);
    shape.push_back(x.shape()[a]);
    strides.push_back(x.strides()[a]);
  }
  std::vector<int64_t> inverse(axes.size());
  for (size_t i = 0; i < axes.size(); ++i) inverse[static_cast<size_t>(axes[i])] = static_cast<int64_t>(i);
  return record("permute", detail::make_view(x, shape, strides, x.offset()), {x},
                [inverse](const Tensor<T>& g, const std::vector<bool>&) {
                  return std::vector<Tensor<T>>{g.permute(inverse)};
                });
}

template <typename T>
Tensor<T> transpose(const Tensor<T>& x, int64_t a, int64_t b) {
  SIGLITE_CHECK(x.dim() >= 2 || (a == b), "transpose: tensor of shape ", x.shape(), " has fewer than two axes");
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[normalize_axis(a, x.dim(), "transpose")], dims[normalize_axis(b, x.dim(), "transpose")]);
  return permute(x, dims);
}

/// Elements start, start+step, ... before end along `axis`; negative start/end count from the
/// end and both are clamped to the axis, as in Python.
template <typename T>
Tensor<T> slice(const Tensor<T>& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  const size_t a = normalize_axis(axis, x.dim(), "slice");
  SIGLITE_CHECK(step > 0, "slice: step ", step, " must be positive");
  const int64_t n = x.shape()[a];
  auto clamp = [n](int64_t v) { return std::clamp(v < 0 ? v + n : v, int64_t{0}, n); };
  const int64_t s = clamp(start), e = std::max(clamp(end), clamp(start));
  Shape shape = x.shape(), strides = x.strides();
  shape[a] = (e - s + step - 1) / step;
  strides[a] *= step;
  const Shape in_shape = x.shape();
  return record("slice", detail::make_view(x, shape, strides, x.offset() + s * x.strides()[a]), {x},
                [in_shape, a, s, e, step](const Tensor<T>& g, const std::vector<bool>&) {
                  Tensor<T> gx = Tensor<T>::zeros(in_shape, g.device());
                  const Tensor<T> dst = gx.slice(static_cast<int64_t>(a), s, e, step);
                  kernels::on<T>(g.device()).copy(g.view(), dst.mutable_view());
                  return std::vector<Tensor<T>>{gx};
                });
}

/// Broadcasts x to `shape` (NumPy rules: new leading axes, and axes of extent 1 repeated) as a
/// view with stride 0; -1 keeps an axis' extent.
template <typename T>
Tensor<T> expand(const Tensor<T>& x, const Shape& shape) {
  SIGLITE_CHECK(shape.size() >= x.dim(), "expand: cannot expand ", x.shape(), " to fewer axes ", shape);
  const size_t lead = shape.size() - x.dim();
  Shape out_shape = shape, strides(std::vector<int64_t>(shape.size(), 0));
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      SIGLITE_CHECK(shape[i] >= 0, "expand: new axis ", i, " needs an extent in ", shape);
      continue;
    }
    const int64_t d = x.shape()[i - lead];
    if (shape[i] == -1) out_shape[i] = d;
    SIGLITE_CHECK(out_shape[i] == d || d == 1, "expand: cannot expand ", x.shape(), " to ", shape);
    strides[i] = out_shape[i] == d ? x.strides()[i - lead] : 0;
  }
  const Shape in_shape = x.shape();
  return record("expand", detail::make_view(x, out_shape, strides, x.offset()), {x},
                [in_shape](const Tensor<T>& g, const std::vector<bool>&) {
                  return std::vector<Tensor<T>>{sum_to(g, in_shape)};
                });
}

}  // namespace siglite
