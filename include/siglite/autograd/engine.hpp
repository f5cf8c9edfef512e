// backward(): orders the graph iteratively (dependency counts and a ready list, no recursion),
// runs each node once with the sum of the gradients that reached it, and frees what it saved.
#pragma once
#include <unordered_map>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite {

namespace detail {

template <typename T>
Tensor<T> add_grads(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = Tensor<T>::empty(a.shape(), a.device());
  kernels::on<T>(a.device()).binary(kernels::Binary::Add, a.view(), b.view(), out.device_ptr());
  return out;
}

template <typename T>
void accumulate_leaf(TensorImpl<T>& leaf, const Tensor<T>& g) {
  if (!leaf.grad) {
    leaf.grad = g.clone().impl_ptr();  // owned and contiguous: later accumulation writes into it
    return;
  }
  Tensor<T> acc(leaf.grad);
  kernels::on<T>(acc.device()).binary(kernels::Binary::Add, acc.view(), g.view(), acc.device_ptr());
}

}  // namespace detail

template <typename T>
void backward(const Tensor<T>& root, const Tensor<T>& grad, bool retain_graph) {
  SIGLITE_CHECK(root.requires_grad(), "backward: the tensor of shape ", root.shape(),
                " does not require grad (none of its inputs has requires_grad set)");
  Tensor<T> g;
  if (grad.defined()) {
    SIGLITE_CHECK(grad.shape() == root.shape(), "backward: gradient of shape ", grad.shape(),
                  " for a root of shape ", root.shape());
    SIGLITE_CHECK(grad.device() == root.device(), "backward: gradient on ", grad.device(), " for a root on ",
                  root.device());
    g = grad;
  } else {
    SIGLITE_CHECK(root.numel() == 1, "backward: the root of shape ", root.shape(),
                  " is not a scalar; pass a gradient of that shape");
    g = Tensor<T>::ones(root.shape(), root.device());
  }
  NoGradGuard no_grad;
  if (root.is_leaf()) {
    detail::accumulate_leaf(root.impl(), g);
    return;
  }
  // Count, for every node reachable from the root, how many edges lead into it.
  Node<T>* start = root.grad_fn().get();
  std::unordered_map<Node<T>*, int> deps{{start, 0}};
  std::vector<Node<T>*> stack{start};
  while (!stack.empty()) {
    Node<T>* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next) {
      if (!e.node) continue;
      auto [it, fresh] = deps.try_emplace(e.node.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(e.node.get());
    }
  }
  // Run nodes once all their consumers have run.
  std::unordered_map<Node<T>*, Tensor<T>> grads{{start, g}};
  std::vector<Node<T>*> ready{start};
  while (!ready.empty()) {
    Node<T>* n = ready.back();
    ready.pop_back();
    Tensor<T> gn = std::move(grads.at(n));
    grads.erase(n);
    SIGLITE_CHECK(!n->released, "backward: the graph through ", n->name,
                  " was already freed; pass retain_graph=true to the first backward to run it twice");
    const std::vector<Tensor<T>> gin = n->backward(gn, n->needs);
    for (size_t i = 0; i < n->next.size(); ++i) {
      if (!n->needs[i]) continue;
      SIGLITE_CHECK(gin.size() > i && gin[i].defined(), "backward: ", n->name, " returned no gradient for input ", i);
      SIGLITE_CHECK(gin[i].shape() == n->input_shapes[i], "backward: ", n->name, " produced a gradient of shape ",
                    gin[i].shape(), " for input ", i, " of shape ", n->input_shapes[i]);
      const Edge<T>& e = n->next[i];
      if (e.node) {
        Tensor<T>& acc = grads[e.node.get()];
        acc = acc.defined() ? detail::add_grads(acc, gin[i]) : gin[i];
        if (--deps[e.node.get()] == 0) ready.push_back(e.node.get());
      } else {
        detail::accumulate_leaf(*e.leaf, gin[i]);
      }
    }
    if (!retain_graph) {
      n->backward = nullptr;
      n->released = true;
    }
  }
}

}  // namespace siglite
