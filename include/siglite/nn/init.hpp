// Parameter initialisers (big_vision's choices for SigLIP): xavier-uniform, lecun-normal, normal.
#pragma once
#include <cmath>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/index.hpp"
#include "siglite/ops/view.hpp"

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
/// sin(y w), cos(y w), with frequencies w_k = temperature^(-k / (dim/4 - 1)). Computed in double on `device`.
template <typename T>
Tensor<T> sincos_2d(int64_t grid_h, int64_t grid_w, int64_t dim, double temperature = 10000.0,
                    Device device = default_device()) {
  SIGLITE_CHECK(dim % 4 == 0 && dim >= 8, "sincos_2d: width ", dim, " must be a multiple of 4, at least 8");
  using D = Tensor<double>;
  NoGradGuard no_grad;
  const int64_t q = dim / 4;
  const D omega = exp(D::arange(double(q), device) * (-std::log(temperature) / double(q - 1))).reshape({1, 1, q});
  const Shape grid{grid_h, grid_w, q};
  const D x = (D::arange(double(grid_w), device).reshape({1, grid_w, 1}) * omega).expand(grid);
  const D y = (D::arange(double(grid_h), device).reshape({grid_h, 1, 1}) * omega).expand(grid);
  return cast<T>(concat<double>({sin(x), cos(x), sin(y), cos(y)}, 2).reshape({grid_h * grid_w, dim}));
}

}  // namespace siglite::nn::init
