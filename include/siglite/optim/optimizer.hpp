// Optimizer: the base of AdamW, SGD and LION. It owns per-parameter state buffers (allocated once,
// at construction), updates parameters in place and saves / restores its state by name.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "siglite/autograd/inference_mode.hpp"
#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/optim/param_groups.hpp"
#include "siglite/optim/schedule.hpp"

namespace siglite::optim {

/// An optimizer's state: per-parameter tensors keyed "<buffer>.<param name>" (for AdamW
/// "exp_avg.<name>", "exp_avg_sq.<name>") plus "step.<name>", a scalar holding how many updates
/// that parameter received (as torch keeps it: bias correction and SGD's first step depend on it),
/// and `step`, the number of step() calls (what schedules read).
struct OptimizerState {
  std::map<std::string, Tensor<float>> tensors;
  int64_t step = 0;

  /// The largest step count a float holds exactly.
  static constexpr int64_t kMaxExactStep = int64_t{1} << 24;

  /// `tensors` plus "step" as a float scalar: one map to store in a safetensors file.
  std::map<std::string, Tensor<float>> to_tensors() const {
    SIGLITE_CHECK(step >= 0 && step <= kMaxExactStep, "OptimizerState: step ", step,
                  " does not fit a float exactly (at most ", kMaxExactStep, ")");
    std::map<std::string, Tensor<float>> out = tensors;
    out["step"] = Tensor<float>::scalar(static_cast<float>(step));
    return out;
  }
  /// The inverse of to_tensors(); "step" must be there and hold a whole number >= 0.
  static OptimizerState from_tensors(const std::map<std::string, Tensor<float>>& tensors) {
    OptimizerState s;
    s.tensors = tensors;
    const auto it = s.tensors.find("step");
    SIGLITE_CHECK(it != s.tensors.end(), "OptimizerState: the state has no 'step' entry");
    s.step = whole_number("step", it->second);
    s.tensors.erase(it);
    return s;
  }
  /// The value of a one-element step tensor, checked to be a whole number >= 0.
  static int64_t whole_number(const std::string& key, const Tensor<float>& t) {
    SIGLITE_CHECK(t.defined() && t.numel() == 1, "OptimizerState: '", key, "' must hold one value, got ",
                  t.defined() ? siglite::detail::cat("shape ", t.shape()) : std::string("an undefined tensor"));
    const double v = t.item();
    SIGLITE_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v) && v <= kMaxExactStep, "OptimizerState: '", key,
                  "' must be a whole number >= 0, got ", v);
    return static_cast<int64_t>(v);
  }
};

namespace detail {
inline void check_nonneg(const char* opt, const char* arg, double v) {
  SIGLITE_CHECK(std::isfinite(v) && v >= 0, opt, ": ", arg, " must be finite and >= 0, got ", v);
}
inline void check_beta(const char* opt, const char* arg, double v) {
  SIGLITE_CHECK(v >= 0 && v < 1, opt, ": ", arg, " must be in [0, 1), got ", v);
}
}  // namespace detail

/// Base of the optimizers. The learning rate of a group at a step is
/// lr() * schedule(step_count()) * group.lr_mult (schedule 1 when none is set).
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const char* name() const { return name_; }

  /// Updates every parameter that has a gradient, in place and without recording history;
  /// parameters without one are skipped (their state and step count stay as they are).
  /// Allocates nothing. Refused inside an InferenceMode scope.
  void step() {
    SIGLITE_CHECK(!InferenceMode::active(), name_,
                  ": step() inside an InferenceMode scope, whose packed weights would not see the update; end the "
                  "scope first");
    NoGradGuard no_grad;
    const double mult = schedule_ ? schedule_(step_) : 1.0;
    SIGLITE_CHECK(std::isfinite(mult) && mult >= 0, name_, ": the schedule returned ", mult, " at step ", step_);
    // Check every gradient and state first, so that a bad one leaves all parameters untouched.
    for (const Slot& s : slots_) check_slot(s);
    for (Slot& s : slots_) {
      const auto& g = s.param.impl().grad;
      if (!g) continue;
      const ParamGroup& group = groups_[s.group];
      ++s.step;
      update(s, g->device_ptr(), lr_ * mult * group.lr_mult, group.weight_decay.value_or(weight_decay_));
    }
    ++step_;
  }

  /// Drops every parameter's gradient.
  void zero_grad() {
    for (Slot& s : slots_) s.param.zero_grad();
  }

  /// The base learning rate (before the schedule and the group multipliers).
  double lr() const { return lr_; }
  void set_lr(double lr) {
    detail::check_nonneg(name_, "lr", lr);
    lr_ = lr;
  }
  /// Sets (or, given an empty function, removes) the schedule that scales lr() at each step.
  void set_schedule(Schedule schedule) { schedule_ = std::move(schedule); }
  /// The learning rate the next step() uses for a group with lr_mult 1.
  double current_lr() const { return lr_ * (schedule_ ? schedule_(step_) : 1.0); }
  double weight_decay() const { return weight_decay_; }

  /// How many times step() ran (restored by load_state_dict).
  int64_t step_count() const { return step_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  /// The state, sharing this optimizer's buffers (later steps change them; clone to keep a
  /// snapshot), as torch's Optimizer.state_dict() does.
  OptimizerState state_dict() const {
    OptimizerState out;
    out.step = step_;
    for (const Slot& s : slots_) {
      for (size_t k = 0; k < state_names_.size(); ++k) out.tensors.emplace(state_names_[k] + "." + s.name, s.state[k]);
      out.tensors.emplace("step." + s.name, Tensor<float>::scalar(static_cast<float>(s.step)));
    }
    return out;
  }

  /// Copies a saved state into this optimizer's buffers. Strict: every key this optimizer has must
  /// be there with its shape, and nothing else, or one Error lists all missing, unexpected and
  /// mismatched keys and nothing is changed.
  void load_state_dict(const OptimizerState& state) {
    SIGLITE_CHECK(state.step >= 0, name_, ".load_state_dict: step must be >= 0, got ", state.step);
    std::vector<std::string> missing, unexpected, mismatched;
    std::set<std::string> expected;
    std::vector<int64_t> steps(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      for (size_t k = 0; k < state_names_.size(); ++k) {
        const std::string key = state_names_[k] + "." + s.name;
        expected.insert(key);
        const auto it = state.tensors.find(key);
        if (it == state.tensors.end()) missing.push_back(key);
        else if (!it->second.defined() || it->second.shape() != s.param.shape())
          mismatched.push_back(siglite::detail::cat(
              key, " (state ", it->second.defined() ? siglite::detail::cat(it->second.shape()) : "undefined",
              ", parameter ", s.param.shape(), ")"));
      }
      const std::string key = "step." + s.name;
      expected.insert(key);
      const auto it = state.tensors.find(key);
      if (it == state.tensors.end()) missing.push_back(key);
      else steps[i] = OptimizerState::whole_number(key, it->second);
    }
    for (const auto& entry : state.tensors)
      if (!expected.count(entry.first)) unexpected.push_back(entry.first);
    if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
      std::string msg = siglite::detail::cat(name_, ".load_state_dict: the state does not fit this optimizer");
      const auto list = [&msg](const char* what, const std::vector<std::string>& keys) {
        if (keys.empty()) return;
        msg += siglite::detail::cat("; ", keys.size(), " ", what, ":");
        for (const auto& k : keys) msg += " " + k;
      };
      list("missing", missing);
      list("unexpected", unexpected);
      list("with mismatched shapes", mismatched);
      throw Error(msg);
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      for (size_t k = 0; k < state_names_.size(); ++k) {
        const Tensor<float> src = state.tensors.at(state_names_[k] + "." + s.name).to(s.param.device());
        kernels::on<float>(s.param.device()).copy(src.view(), s.state[k].mutable_view());
      }
      s.step = steps[i];
    }
    step_ = state.step;
  }

 protected:
  /// One parameter and its state buffers (one per state name, the parameter's shape).
  struct Slot {
    std::string name;
    Tensor<float> param;
    size_t group = 0;
    int64_t step = 0;  // updates this parameter received, counting the current one inside update()
    std::vector<Tensor<float>> state;
  };

  Optimizer(const char* name, std::vector<ParamGroup> groups, double lr, double weight_decay,
            std::vector<std::string> state_names)
      : name_(name), groups_(std::move(groups)), lr_(lr), weight_decay_(weight_decay),
        state_names_(std::move(state_names)) {
    detail::check_nonneg(name_, "lr", lr);
    detail::check_nonneg(name_, "weight_decay", weight_decay);
    std::set<std::string> names;
    std::map<const Storage*, std::string> storages;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const ParamGroup& g = groups_[gi];
      SIGLITE_CHECK(std::isfinite(g.lr_mult) && g.lr_mult >= 0, name_, ": group ", gi,
                    " has lr_mult ", g.lr_mult, "; it must be finite and >= 0");
      SIGLITE_CHECK(!g.weight_decay || (std::isfinite(*g.weight_decay) && *g.weight_decay >= 0), name_, ": group ",
                    gi, " has weight_decay ", g.weight_decay.value_or(0), "; it must be finite and >= 0");
      for (const auto& [pname, p] : g.params) {
        SIGLITE_CHECK(p.defined(), name_, ": parameter '", pname, "' is undefined");
        SIGLITE_CHECK(p.is_leaf() && p.is_contiguous(), name_, ": parameter '", pname,
                      "' must be a contiguous leaf tensor (shape ", p.shape(), ", strides ", p.strides(), ")");
        SIGLITE_CHECK(names.insert(pname).second, name_, ": parameter name '", pname, "' appears twice");
        const auto [it, fresh] = storages.emplace(p.impl().storage.get(), pname);
        SIGLITE_CHECK(fresh, name_, ": parameters '", it->second, "' and '", pname,
                      "' share storage (tied or the same tensor); each would be updated twice");
        Slot s{pname, p, gi, 0, {}};
        for (size_t k = 0; k < state_names_.size(); ++k) s.state.push_back(Tensor<float>::zeros(p.shape(), p.device()));
        slots_.push_back(std::move(s));
      }
    }
    SIGLITE_CHECK(!slots_.empty(), name_, ": no parameters to optimize");
  }

  /// Updates one parameter from its gradient (contiguous, the parameter's shape) with this
  /// step's learning rate and weight decay; slot.step already counts this update.
  virtual void update(Slot& slot, const float* grad, double lr, double weight_decay) = 0;

 private:
  void check_slot(const Slot& s) const {
    for (const Tensor<float>& st : s.state)
      SIGLITE_CHECK(st.device() == s.param.device(), name_, ": the state of '", s.name, "' is on ", st.device(),
                    " and the parameter on ", s.param.device(),
                    "; make the optimizer after moving the model with to()");
    const auto& g = s.param.impl().grad;
    if (!g) return;
    const Tensor<float> grad(g);
    SIGLITE_CHECK(grad.shape() == s.param.shape() && grad.is_contiguous() && grad.device() == s.param.device(), name_,
                  ": the gradient of '", s.name, "' (shape ", grad.shape(), ", ", grad.device(),
                  ") must be contiguous and match its parameter (shape ", s.param.shape(), ", ", s.param.device(), ")");
  }

  const char* name_;
  std::vector<ParamGroup> groups_;
  double lr_, weight_decay_;
  std::vector<std::string> state_names_;
  std::vector<Slot> slots_;
  Schedule schedule_;
  int64_t step_ = 0;
};

}  // namespace siglite::optim
