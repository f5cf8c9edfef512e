// Parameter initialisers (big_vision's choices for SigLIP): xavier-uniform, lecun-normal, normal.
#pragma once
#include <cmath>

#include "siglite/core/tensor.hpp"

namespace siglite::nn::init {

/// Uniform in +-sqrt(6 / (fan_in + fan_out)) for a [out, in] weight.
template <typename T>
Tensor<T> xavier_uniform(const Shape& shape, Generator& gen) {
  SIGLITE_CHECK(shape.size() >= 2, "xavier_uniform: shape ", shape, " has fewer than two axes");
  const int64_t receptive = shape.numel() / (shape[0] * shape[1]);
  const double fan_in = double(shape[1] * receptive), fan_out = double(shape[0] * receptive);
  const T a = static_cast<T>(std::sqrt(6.0 / (fan_in + fan_out)));
  return Tensor<T>::uniform(shape, gen, -a, a);
}

/// Truncated-free lecun normal: N(0, 1/fan_in) for a [out, in, ...] weight.
template <typename T>
Tensor<T> lecun_normal(const Shape& shape, Generator& gen) {
  SIGLITE_CHECK(shape.size() >= 2, "lecun_normal: shape ", shape, " has fewer than two axes");
  const double fan_in = double(shape.numel() / shape[0]);
  return Tensor<T>::randn(shape, gen, T(0), static_cast<T>(1.0 / std::sqrt(fan_in)));
}

template <typename T>
Tensor<T> normal(const Shape& shape, Generator& gen, double std) {
  return Tensor<T>::randn(shape, gen, T(0), static_cast<T>(std));
}

}  // namespace siglite::nn::init
