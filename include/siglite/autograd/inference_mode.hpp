// InferenceMode: evaluation without a graph, with the linear layers' weights packed once for the scope.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <typeinfo>
#include <utility>
#include <vector>

#include "siglite/backends/backend.hpp"
#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite {

/// For evaluation, embedding and benchmarks on a model whose weights stay as they are. While alive, on this
/// thread: no graph is recorded (as under NoGradGuard); each float linear layer packs its weight into the GEMM
/// kernel's layout on first use and reuses it in every later call, where outside this scope it packs the weight
/// on every call; and tensors derived from weights (SelfAttention's stacked q, k, v projection) are made once.
///
/// The contract: weights, and every tensor used as a linear layer's weight inside the scope, do not change while
/// it is alive, since the packed copies would not see the change. Optimizer::step and Module::load_state_dict
/// refuse to run inside it. The packed copies take as much memory again as the weights they copy (B/16's image
/// tower: about 340 MB) and are freed when the outermost scope ends. Scopes nest; the inner ones add nothing.
class InferenceMode {
 public:
  InferenceMode() : serving_(current() == nullptr) {
    if (!serving_) return;
    for (Backend* b : backends::registered())
      if (std::shared_ptr<void> cache = b->open_weight_cache()) weight_caches_.push_back(std::move(cache));
    current() = this;  // last: a constructor that throws leaves no scope behind
  }
  ~InferenceMode() {
    if (serving_) current() = nullptr;
  }
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

  /// Whether an InferenceMode is alive on this thread.
  static bool active() { return current() != nullptr; }

  /// make(), made once a scope for the same sources (by data, shape and strides) and kept with them; outside a
  /// scope, make() itself.
  template <typename T, typename F>
  static Tensor<T> derived(const std::vector<Tensor<T>>& sources, F&& make) {
    InferenceMode* m = current();
    if (!m) return make();
    std::vector<intptr_t> key{static_cast<intptr_t>(typeid(T).hash_code())};
    for (const Tensor<T>& s : sources) {
      key.push_back(static_cast<intptr_t>(s.device().type()));
      key.push_back(s.device().index());
      key.push_back(reinterpret_cast<intptr_t>(s.device_ptr()));
      key.push_back(static_cast<intptr_t>(s.dim()));
      for (size_t i = 0; i < s.dim(); ++i) {
        key.push_back(static_cast<intptr_t>(s.shape()[i]));
        key.push_back(static_cast<intptr_t>(s.strides()[i]));
      }
    }
    auto it = m->derived_.find(key);
    if (it == m->derived_.end()) {
      Derived d;
      for (const Tensor<T>& s : sources) d.owners.push_back(s.impl().storage);
      d.value = make().impl_ptr();
      it = m->derived_.emplace(std::move(key), std::move(d)).first;
    }
    return Tensor<T>(std::static_pointer_cast<TensorImpl<T>>(it->second.value));
  }

  /// How many weights device d's backend keeps in its own layout for the scope serving this thread (0 outside one).
  static size_t cached_weights(Device d) { return backends::of(d).cached_weights(); }

  /// How many tensors derived() keeps in the scope serving this thread (0 outside one).
  static size_t derived_count() { return current() ? current()->derived_.size() : 0; }

 private:
  static InferenceMode*& current() {
    static thread_local InferenceMode* c = nullptr;
    return c;
  }
  struct Derived {
    std::vector<std::shared_ptr<const void>> owners;  // the sources' storages: their addresses stay theirs
    std::shared_ptr<void> value;
  };

  bool serving_;
  NoGradGuard no_grad_;
  std::vector<std::shared_ptr<void>> weight_caches_;  // one per backend that keeps one
  std::map<std::vector<intptr_t>, Derived> derived_;
};

}  // namespace siglite
