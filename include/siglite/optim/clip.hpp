// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_.
#pragma once
#include <cmath>
#include <memory>
#include <vector>

#include "siglite/optim/optimizer.hpp"

namespace siglite::optim {

namespace detail {

using GradPtr = std::shared_ptr<TensorImpl<float>>;

template <typename F>
void for_each_grad(const std::vector<Tensor<float>>& params, F& f) {
  for (const Tensor<float>& p : params)
    if (p.defined() && p.impl().grad) f(p.impl().grad);
}
template <typename F>
void for_each_grad(const NamedParams& params, F& f) {
  for (const auto& np : params)
    if (np.second.defined() && np.second.impl().grad) f(np.second.impl().grad);
}
template <typename F>
void for_each_grad(const Optimizer& opt, F& f) {
  for (const ParamGroup& g : opt.param_groups()) for_each_grad(g.params, f);
}

template <typename Params>
double grad_norm(const Params& params) {
  double sum = 0;
  auto add = [&sum](const GradPtr& g) {
    const Tensor<float> t(g);
    // Leaf gradients are owned contiguous buffers (see accumulate_leaf); anything else is a misuse.
    SIGLITE_CHECK(t.is_contiguous(), "clip_grad_norm: a gradient of shape ", t.shape(), " is not contiguous");
    sum += kernels::sum_squares(t.device(), t.data(), t.numel());
  };
  for_each_grad(params, add);
  return std::sqrt(sum);
}

template <typename Params>
double clip_grad_norm(const Params& params, double max_norm) {
  SIGLITE_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0 (infinity: measure only), got ", max_norm);
  const double norm = grad_norm(params);
  // A non-finite norm is returned and the gradients are left alone, so the caller can skip the step.
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1) return norm;
  auto scale = [coef](const GradPtr& g) {
    const Tensor<float> t(g);
    kernels::unary(t.device(), kernels::Unary::MulScalar, t.data(), t.data(), t.numel(), static_cast<float>(coef));
  };
  for_each_grad(params, scale);
  return norm;
}

}  // namespace detail

/// Global L2 norm of all the gradients (parameters without one count as zero), in double.
inline double grad_norm(const std::vector<Tensor<float>>& params) { return detail::grad_norm(params); }
inline double grad_norm(const NamedParams& params) { return detail::grad_norm(params); }
inline double grad_norm(const Optimizer& opt) { return detail::grad_norm(opt); }

/// Scales every gradient by max_norm / (norm + 1e-6) when that is below 1, and returns the global
/// L2 norm from before clipping. A non-finite norm (a NaN or infinite gradient) is returned as it is
/// and the gradients are not touched: check std::isfinite on the result and skip that step.
inline double clip_grad_norm(const std::vector<Tensor<float>>& params, double max_norm) {
  return detail::clip_grad_norm(params, max_norm);
}
inline double clip_grad_norm(const NamedParams& params, double max_norm) {
  return detail::clip_grad_norm(params, max_norm);
}
/// Clips the gradients of every parameter the optimizer updates.
inline double clip_grad_norm(const Optimizer& opt, double max_norm) { return detail::clip_grad_norm(opt, max_norm); }

}  // namespace siglite::optim
