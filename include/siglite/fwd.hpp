// Declarations that let the core headers name each other without including each other: Tensor's members call
// the view ops and backward(), which take Tensors. Their definitions come with <siglite/siglite.hpp>, which
// includes every header in an order that works; include it rather than a single header.
#pragma once
#include <cstdint>
#include <vector>

#include "siglite/core/device.hpp"
#include "siglite/core/shape.hpp"

namespace siglite {

template <typename T>
class Tensor;
template <typename T>
struct TensorImpl;
template <typename T>
struct Node;

// autograd/engine.hpp
template <typename T>
void backward(const Tensor<T>& root, const Tensor<T>& grad, bool retain_graph);

// ops/view.hpp
template <typename T>
Tensor<T> reshape(const Tensor<T>& x, const Shape& shape);
template <typename T>
Tensor<T> permute(const Tensor<T>& x, const std::vector<int64_t>& dims);
template <typename T>
Tensor<T> transpose(const Tensor<T>& x, int64_t a, int64_t b);
template <typename T>
Tensor<T> slice(const Tensor<T>& x, int64_t axis, int64_t start, int64_t end, int64_t step);
template <typename T>
Tensor<T> expand(const Tensor<T>& x, const Shape& shape);
template <typename T>
Tensor<T> contiguous(const Tensor<T>& x);
template <typename T>
Tensor<T> to(const Tensor<T>& x, Device device);

}  // namespace siglite
