// Graph nodes, grad mode and `record`, which every differentiable op uses to attach its backward.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "siglite/core/shape.hpp"
#include "siglite/fwd.hpp"

namespace siglite {

/// Where a gradient flows: into the node that produced an input, or into a leaf's .grad.
template <typename T>
struct Edge {
  std::shared_ptr<Node<T>> node;
  std::shared_ptr<TensorImpl<T>> leaf;
};

/// One recorded op. `backward` gets the gradient of the op's output and which inputs need a
/// gradient, and returns one gradient per input (undefined where not needed). It owns the
/// tensors it saved; they are freed after it ran unless the graph is retained.
template <typename T>
struct Node {
  using Backward = std::function<std::vector<Tensor<T>>(const Tensor<T>& grad, const std::vector<bool>& needs)>;
  const char* name = "";
  std::vector<Edge<T>> next;
  std::vector<Shape> input_shapes;
  std::vector<bool> needs;
  Backward backward;
  bool released = false;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Frees a long chain of nodes with a loop instead of one nested destructor call per node.
  ~Node() {
    std::vector<std::shared_ptr<Node>> pending;
    auto take = [&pending](std::vector<Edge<T>>& edges) {
      for (auto& e : edges)
        if (e.node && e.node.use_count() == 1) pending.push_back(std::move(e.node));
    };
    take(next);
    while (!pending.empty()) {
      std::shared_ptr<Node> n = std::move(pending.back());
      pending.pop_back();
      take(n->next);
    }
  }
};

namespace detail {
inline bool& grad_mode_flag() {
  static thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// Whether ops record history on this thread.
inline bool grad_enabled() { return detail::grad_mode_flag(); }

/// Disables recording on this thread for its lifetime (evaluation, optimizer updates, backward).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
  ~NoGradGuard() { detail::grad_mode_flag() = prev_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Whether `record` attaches a node for these inputs: grad mode is on and some input requires grad. An op
/// asks before its forward when that changes what it computes or keeps.
template <typename T>
bool records(const std::vector<Tensor<T>>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& x : inputs)
    if (x.defined() && x.requires_grad()) return true;
  return false;
}

/// Attaches a node to `out` when grad mode is on and some input requires grad; returns `out`.
template <typename T, typename F>
Tensor<T> record(const char* name, Tensor<T> out, const std::vector<Tensor<T>>& inputs, F&& backward) {
  if (!records(inputs)) return out;
  auto node = std::make_shared<Node<T>>();
  node->name = name;
  for (const auto& x : inputs) {
    const bool need = x.defined() && x.requires_grad();
    node->needs.push_back(need);
    node->input_shapes.push_back(x.defined() ? x.shape() : Shape{});
    node->next.push_back(need ? (x.is_leaf() ? Edge<T>{nullptr, x.impl_ptr()} : Edge<T>{x.grad_fn(), nullptr})
                              : Edge<T>{});
  }
  node->backward = std::forward<F>(backward);
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
  return out;
}

}  // namespace siglite
