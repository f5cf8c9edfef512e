// AdamW exactly as torch.optim.AdamW (amsgrad off): bias-corrected moments, eps added after the
// square root of the corrected second moment, decoupled weight decay p -= lr * wd * p.
#pragma once
#include <cmath>
#include <utility>

#include "siglite/optim/optimizer.hpp"

namespace siglite::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;  // the SigLIP paper's (torch's default is 0.999): more stable at large batch
  double eps = 1e-8;
  double weight_decay = 1e-4;  // for groups that do not set their own
};

class AdamW : public Optimizer {
 public:
  /// State buffers "exp_avg" and "exp_avg_sq" per parameter.
  explicit AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {})
      : Optimizer("AdamW", std::move(groups), checked(options).lr, options.weight_decay, {"exp_avg", "exp_avg_sq"}),
        options_(options) {}
  /// Decays only what default_decay selects (weight matrices): split_decay(params).
  explicit AdamW(const NamedParams& params, const AdamWOptions& options = {}) : AdamW(split_decay(params), options) {}

  const AdamWOptions& options() const { return options_; }

 protected:
  void update(Slot& s, const float* grad, double lr, double weight_decay) override {
    kernels::AdamWArgs a;
    a.lr = lr;
    a.beta1 = options_.beta1;
    a.beta2 = options_.beta2;
    a.eps = options_.eps;
    a.weight_decay = weight_decay;
    a.bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(s.step));
    a.bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(s.step));
    kernels::on<float>(s.param.device())
        .adamw_update(s.param.device_ptr(), grad, s.state[0].device_ptr(), s.state[1].device_ptr(), s.param.numel(), a);
  }

 private:
  static const AdamWOptions& checked(const AdamWOptions& o) {
    detail::check_beta("AdamW", "beta1", o.beta1);
    detail::check_beta("AdamW", "beta2", o.beta2);
    detail::check_nonneg("AdamW", "eps", o.eps);
    return o;
  }

  AdamWOptions options_;
};

}  // namespace siglite::optim
