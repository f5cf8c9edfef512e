// nn::Module: named parameters, buffers and submodules; state dicts; train/eval; freezing.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "siglite/autograd/inference_mode.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::nn {

template <typename T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>>>;

/// Base of every layer and model. Parameters, buffers and submodules are registered by name
/// (no '.') in the constructor; `named_parameters()` lists them with dotted paths in
/// registration order, e.g. "encoder.layers.0.mlp.fc1.weight".
template <typename T = float>
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  NamedTensors<T> named_parameters() const {
    NamedTensors<T> out;
    collect(
        "", [](const Module& m) -> const NamedTensors<T>& { return m.params_; }, out);
    return out;
  }
  NamedTensors<T> named_buffers() const {
    NamedTensors<T> out;
    collect(
        "", [](const Module& m) -> const NamedTensors<T>& { return m.buffers_; }, out);
    return out;
  }
  std::vector<Tensor<T>> parameters() const {
    std::vector<Tensor<T>> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  /// Parameters and buffers by dotted name.
  std::map<std::string, Tensor<T>> state_dict() const {
    std::map<std::string, Tensor<T>> out;
    for (auto& [name, t] : named_parameters()) out.emplace(name, t);
    for (auto& [name, t] : named_buffers()) out.emplace(name, t);
    return out;
  }

  /// Copies values into this module's tensors (in place, so optimizers keep their references).
  /// Strict: every name must be present with its shape, and nothing else, or one Error lists all
  /// missing, unexpected and mismatched names. Non-strict: loads what fits, ignores the rest.
  /// Refused inside an InferenceMode scope.
  void load_state_dict(const std::map<std::string, Tensor<T>>& state, bool strict = true) {
    SIGLITE_CHECK(!InferenceMode::active(),
                  "load_state_dict: called inside an InferenceMode scope, whose packed weights would not see the new "
                  "values; end the scope first");
    const std::map<std::string, Tensor<T>> mine = state_dict();
    std::vector<std::string> missing, unexpected, mismatched;
    for (const auto& [name, t] : mine) {
      auto it = state.find(name);
      if (it == state.end()) missing.push_back(name);
      else if (it->second.shape() != t.shape())
        mismatched.push_back(detail::cat(name, " (checkpoint ", it->second.shape(), ", model ", t.shape(), ")"));
    }
    for (const auto& [name, t] : state)
      if (!mine.count(name)) unexpected.push_back(name);
    if (strict && (!missing.empty() || !unexpected.empty() || !mismatched.empty())) {
      std::string msg = "load_state_dict: the state does not fit the model";
      const auto list = [&msg](const char* what, const std::vector<std::string>& names) {
        if (names.empty()) return;
        msg += detail::cat("; ", names.size(), " ", what, ":");
        for (const auto& n : names) msg += " " + n;
      };
      list("missing", missing);
      list("unexpected", unexpected);
      list("with mismatched shapes", mismatched);
      throw Error(msg);
    }
    for (const auto& [name, t] : mine) {
      auto it = state.find(name);
      if (it == state.end() || it->second.shape() != t.shape()) continue;
      const Tensor<T> src = it->second.to(t.device());
      kernels::on<T>(t.device()).copy(src.view(), t.mutable_view());
    }
  }

  /// Moves every parameter and buffer, transient ones included, to `device` in place: each handle to them, here
  /// and in the layers' members, sees the new memory, and tensors that shared storage still share it. Gradients
  /// are dropped. All the copies are made before any tensor changes, so a failure leaves the module as it was.
  /// Make the optimizer afterwards: its state belongs to the memory it was made for (Optimizer::step refuses
  /// state on another device than its parameter).
  void to(Device device) {
    std::vector<Tensor<T>> all;
    collect_all(all);
    std::map<const Storage*, std::shared_ptr<Storage>> moved;
    for (const Tensor<T>& t : all) {
      const Storage& s = *t.impl().storage;
      if (s.device() == device || moved.count(&s)) continue;
      auto copy = std::make_shared<Storage>(s.bytes(), device);
      backends::copy_bytes(device, copy->data(), s.device(), s.data(), s.bytes());
      moved.emplace(&s, std::move(copy));
    }
    for (const Tensor<T>& t : all) {
      auto it = moved.find(t.impl().storage.get());
      if (it == moved.end()) continue;
      t.impl().storage = it->second;
      t.impl().grad.reset();
    }
  }

  void train(bool on = true) {
    training_ = on;
    for (auto& [name, m] : children_) m->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Stops (or restarts) gradients for every parameter of this module and its submodules.
  void freeze() { set_requires_grad(false); }
  void unfreeze() { set_requires_grad(true); }

  int64_t num_parameters(bool trainable_only = false) const {
    int64_t n = 0;
    for (auto& [name, p] : named_parameters())
      if (!trainable_only || p.requires_grad()) n += p.numel();
    return n;
  }

  void zero_grad() const {
    for (auto& [name, p] : named_parameters()) p.zero_grad();
  }

 protected:
  /// Registers a parameter (it requires grad) and returns it.
  Tensor<T> register_parameter(const std::string& name, Tensor<T> t) {
    check_name(name);
    t.set_requires_grad(true);
    params_.emplace_back(name, t);
    return t;
  }
  /// Registers a tensor that is saved with the state but not trained.
  /// A buffer goes to the state dict unless it is not `persistent` (a fixed table the module makes itself, such as
  /// a sin-cos position embedding); both kinds move with to().
  Tensor<T> register_buffer(const std::string& name, Tensor<T> t, bool persistent = true) {
    check_name(name);
    (persistent ? buffers_ : transient_).emplace_back(name, t);
    return t;
  }
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_name(name);
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void check_name(const std::string& name) const {
    SIGLITE_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: name '", name,
                  "' must be non-empty and contain no '.'");
    const auto taken = [&name](const auto& v) {
      for (const auto& e : v)
        if (e.first == name) return true;
      return false;
    };
    SIGLITE_CHECK(!taken(params_) && !taken(buffers_) && !taken(transient_) && !taken(children_), "Module: name '",
                  name, "' is registered twice");
  }

  /// Every parameter and buffer of this module and its children.
  void collect_all(std::vector<Tensor<T>>& out) const {
    for (const auto* list : {&params_, &buffers_, &transient_})
      for (const auto& [name, t] : *list) out.push_back(t);
    for (const auto& [name, m] : children_) m->collect_all(out);
  }

  template <typename Get>
  void collect(const std::string& prefix, Get get, NamedTensors<T>& out) const {
    for (const auto& [name, t] : get(*this)) out.emplace_back(prefix + name, t);
    for (const auto& [name, m] : children_) m->collect(prefix + name + ".", get, out);
  }

  void set_requires_grad(bool on) {
    for (auto& [name, p] : params_) p.set_requires_grad(on);
    for (auto& [name, m] : children_) m->set_requires_grad(on);
  }

  NamedTensors<T> params_, buffers_, transient_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace siglite::nn
