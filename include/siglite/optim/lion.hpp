// LION (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2):
//   u = sign(beta1 * m + (1 - beta1) * g);  p -= lr * (u + wd * p);  m = beta2 * m + (1 - beta2) * g.
// Every coordinate moves by lr each step, so it wants a 3-10x smaller lr and a 3-10x larger weight
// decay than AdamW (SigLiT used lr 1e-4, wd 1e-7).
#pragma once
#include <utility>

#include "siglite/optim/optimizer.hpp"

namespace siglite::optim {

struct LionOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double weight_decay = 0.0;  // for groups that do not set their own
};

class Lion : public Optimizer {
 public:
  /// State buffer "exp_avg" (the momentum m) per parameter.
  explicit Lion(std::vector<ParamGroup> groups, const LionOptions& options = {})
      : Optimizer("Lion", std::move(groups), checked(options).lr, options.weight_decay, {"exp_avg"}),
        options_(options) {}
  /// Decays only what default_decay selects (weight matrices): split_decay(params).
  explicit Lion(const NamedParams& params, const LionOptions& options = {}) : Lion(split_decay(params), options) {}

  const LionOptions& options() const { return options_; }

 protected:
  void update(Slot& s, const float* grad, double lr, double weight_decay) override {
    kernels::LionArgs a;
    a.lr = lr;
    a.beta1 = options_.beta1;
    a.beta2 = options_.beta2;
    a.weight_decay = weight_decay;
    kernels::on<float>(s.param.device())
        .lion_update(s.param.device_ptr(), grad, s.state[0].device_ptr(), s.param.numel(), a);
  }

 private:
  static const LionOptions& checked(const LionOptions& o) {
    detail::check_beta("Lion", "beta1", o.beta1);
    detail::check_beta("Lion", "beta2", o.beta2);
    return o;
  }

  LionOptions options_;
};

}  // namespace siglite::optim
