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

/// The parameters' gradients (leaf gradients are owned contiguous buffers, see accumulate_leaf), all on one device.
template <typename Params>
std::vector<Tensor<float>> gradients(const Params& params, const char* op) {
  std::vector<Tensor<float>> grads;
  auto add = [&](const GradPtr& g) {
    grads.emplace_back(g);
    SIGLITE_CHECK(grads.back().is_contiguous(), op, ": a gradient of shape ", grads.back().shape(),
                  " is not contiguous");
    siglite::detail::check_same_device(grads.front().device(), grads.back().device(), op);
  };
  for_each_grad(params, add);
  return grads;
}

/// The global L2 norm of the gradients as a double on their device: one multi-tensor kernel.
inline Tensor<double> global_norm(const std::vector<Tensor<float>>& grads) {
  const Device d = grads.empty() ? Device::cpu() : grads.front().device();
  std::vector<kernels::Span<const float>> spans;
  for (const Tensor<float>& g : grads) spans.push_back({g.device_ptr(), g.numel()});
  Tensor<double> norm = Tensor<double>::empty({}, d);
  kernels::on<float>(d).global_norm(spans, norm.device_ptr());
  return norm;
}

template <typename Params>
double grad_norm(const Params& params) {
  return global_norm(gradients(params, "grad_norm")).item();
}

template <typename Params>
double clip_grad_norm(const Params& params, double max_norm) {
  SIGLITE_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0 (infinity: measure only), got ", max_norm);
  const std::vector<Tensor<float>> grads = gradients(params, "clip_grad_norm");
  const Tensor<double> norm = global_norm(grads);
  std::vector<kernels::Span<float>> spans;
  for (const Tensor<float>& g : grads) spans.push_back({g.device_ptr(), g.numel()});
  // On the device, so the host reads the norm once, below: a non-finite norm leaves the gradients alone, and
  // the caller, seeing it, skips the step.
  kernels::on<float>(norm.device()).clip_by_norm(spans, norm.device_ptr(), max_norm);
  return norm.item();
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
