// SGD with momentum exactly as torch.optim.SGD: weight decay added to the gradient (L2, coupled),
// the momentum buffer starts at the first gradient, optional dampening and Nesterov momentum.
#pragma once
#include <utility>

#include "siglite/optim/optimizer.hpp"

namespace siglite::optim {

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.9;  // torch's default is 0; 0 turns momentum (and its buffer) off
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0, as in torch
  double weight_decay = 0.0;  // for groups that do not set their own
};

class SGD : public Optimizer {
 public:
  /// State buffer "momentum_buffer" per parameter when momentum > 0, none otherwise.
  explicit SGD(std::vector<ParamGroup> groups, const SgdOptions& options = {})
      : Optimizer("SGD", std::move(groups), checked(options).lr, options.weight_decay,
                  options.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
        options_(options) {}
  /// Decays only what default_decay selects (weight matrices): split_decay(params).
  explicit SGD(const NamedParams& params, const SgdOptions& options = {}) : SGD(split_decay(params), options) {}

  const SgdOptions& options() const { return options_; }

 protected:
  void update(Slot& s, const float* grad, double lr, double weight_decay) override {
    kernels::SgdArgs a;
    a.lr = lr;
    a.momentum = options_.momentum;
    a.dampening = options_.dampening;
    a.weight_decay = weight_decay;
    a.nesterov = options_.nesterov;
    a.first_step = s.step == 1;
    float* buf = s.state.empty() ? nullptr : s.state[0].device_ptr();
    kernels::on<float>(s.param.device()).sgd_update(s.param.device_ptr(), grad, buf, s.param.numel(), a);
  }

 private:
  static const SgdOptions& checked(const SgdOptions& o) {
    detail::check_beta("SGD", "momentum", o.momentum);
    SIGLITE_CHECK(o.dampening >= 0 && o.dampening <= 1, "SGD: dampening must be in [0, 1], got ", o.dampening);
    SIGLITE_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                  "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum, " and dampening ",
                  o.dampening);
    return o;
  }

  SgdOptions options_;
};

}  // namespace siglite::optim
