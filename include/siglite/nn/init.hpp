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

/// Fixed 2-D sin-cos position embedding of a grid_h x grid_w patch grid, [grid_h * grid_w, dim]
/// (big_vision's posemb_sincos_2d): a quarter of the channels each for sin(x w), cos(x w),
/// sin(y w), cos(y w), with frequencies w_k = temperature^(-k / (dim/4 - 1)). Made on the host, copied to `device`.
template <typename T>
Tensor<T> sincos_2d(int64_t grid_h, int64_t grid_w, int64_t dim, double temperature = 10000.0,
                    Device device = default_device()) {
  SIGLITE_CHECK(dim % 4 == 0 && dim >= 8, "sincos_2d: width ", dim, " must be a multiple of 4, at least 8");
  const int64_t q = dim / 4;
  Tensor<T> out = Tensor<T>::empty({grid_h * grid_w, dim}, Device::cpu());
  for (int64_t y = 0; y < grid_h; ++y)
    for (int64_t x = 0; x < grid_w; ++x) {
      T* row = out.data() + (y * grid_w + x) * dim;
      for (int64_t k = 0; k < q; ++k) {
        const double w = std::pow(temperature, -double(k) / double(q - 1));
        row[k] = static_cast<T>(std::sin(double(x) * w));
        row[q + k] = static_cast<T>(std::cos(double(x) * w));
        row[2 * q + k] = static_cast<T>(std::sin(double(y) * w));
        row[3 * q + k] = static_cast<T>(std::cos(double(y) * w));
      }
    }
  return out.to(device);
}

}  // namespace siglite::nn::init
