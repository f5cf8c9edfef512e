// The SigLIP sigmoid loss (Algorithm 1 of Zhai et al. 2023), in two implementations of one function:
//   logits = exp(t') * zimg @ ztxt^T + b          [n, n]
//   loss   = -sum_ij log_sigmoid(label_ij * logits_ij) / n,   label +1 where i == j, -1 elsewhere.
// Naive materialises the logits and lets autograd differentiate; Tiled is one fused node that never
// holds more than a tile of them. docs/loss.md derives the gradient and explains both.
#pragma once
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/loss/checks.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite::loss {

enum class SigmoidImpl { Naive, Tiled };

namespace detail {

/// The teaching version: every step is an ordinary differentiable op, autograd does the backward.
/// Memory: several [n, n] tensors (the logits and the intermediates each op saves for backward).
template <typename T>
Tensor<T> sigmoid_loss_naive(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                             const Tensor<T>& bias) {
  const int64_t n = img.shape()[0];
  const Tensor<T> logits = matmul(img, txt.t()) * exp(t_prime) + bias;  // [n, n]
  const Tensor<T> labels = pair_labels(n, T(1), T(-1), img.device());   // +1: image i belongs with text i
  return -sum(log_sigmoid(labels * logits)) / static_cast<T>(n);
}

/// The fused version: one node whose two kernels own the tiles (backends/*/loss): forward sums the loss of
/// [tile, tile] logits at a time, backward recomputes each tile's logits. Memory beyond inputs and gradients:
/// one tile buffer per thread (CPU) and a few numbers per row tile. t' and b are read on the device.
template <typename T>
Tensor<T> sigmoid_loss_tiled(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                             const Tensor<T>& bias, int64_t tile) {
  const Device device = img.device();
  const kernels::SigmoidLossArgs args{img.shape()[0], img.shape()[1], tile};
  const Tensor<T> xs = img.detach().contiguous(), ys = txt.detach().contiguous();
  const Tensor<T> tp = t_prime.detach().contiguous(), b = bias.detach().contiguous();
  Tensor<T> out = Tensor<T>::empty({}, device);
  kernels::on<T>(device).sigmoid_loss_forward(args, xs.device_ptr(), ys.device_ptr(), tp.device_ptr(), b.device_ptr(),
                                              out.device_ptr());
  return record("sigmoid_loss", out, {img, txt, t_prime, bias},
                [xs, ys, tp, b, args](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = xs.device();
                  const Tensor<T> gc = g.contiguous();
                  Tensor<T> dx = need[0] ? Tensor<T>::empty({args.n, args.d}, dev) : Tensor<T>();
                  Tensor<T> dy = need[1] ? Tensor<T>::empty({args.n, args.d}, dev) : Tensor<T>();
                  Tensor<T> dt = Tensor<T>::empty({1}, dev), db = Tensor<T>::empty({1}, dev);
                  const auto ptr = [](const Tensor<T>& t) { return t.defined() ? t.device_ptr() : nullptr; };
                  kernels::on<T>(dev).sigmoid_loss_backward(args, xs.device_ptr(), ys.device_ptr(), tp.device_ptr(),
                                                            b.device_ptr(), gc.device_ptr(), ptr(dx), ptr(dy),
                                                            dt.device_ptr(), db.device_ptr());
                  return std::vector<Tensor<T>>{dx, dy, dt, db};
                });
}

}  // namespace detail

/// The SigLIP sigmoid loss of a batch of n matching (image, text) pairs, a scalar.
///   img_emb, txt_emb  [n, d], ALREADY L2-normalised (the model normalises; this function does not)
///   t_prime           [1], the log temperature: t = exp(t'), SigLIP initialises t' = log(10)
///   bias              [1], b, SigLIP initialises b = -10
/// Returns -sum over all n*n pairs of log_sigmoid(label * (t * x_i . y_j + b)) / n, label +1 for i == j
/// and -1 otherwise, with gradients into all four inputs. Tiled (the default) never stores the n x n
/// logits: memory O(n*d + threads*tile^2), `tile` being the edge of a square tile of logits; Naive
/// materialises them and is the readable reference. docs/loss.md explains both.
template <typename T>
Tensor<T> sigmoid_loss(const Tensor<T>& img_emb, const Tensor<T>& txt_emb, const Tensor<T>& t_prime,
                       const Tensor<T>& bias, SigmoidImpl impl = SigmoidImpl::Tiled, int64_t tile = 256) {
  const char* op = "sigmoid_loss";
  detail::check_embeddings(op, img_emb, txt_emb);
  detail::check_scalar_param(op, "t_prime", t_prime, img_emb.device());
  detail::check_scalar_param(op, "bias", bias, img_emb.device());
  SIGLITE_CHECK(tile > 0, op, ": tile size ", tile, " is not positive");
  return impl == SigmoidImpl::Naive ? detail::sigmoid_loss_naive(img_emb, txt_emb, t_prime, bias)
                                    : detail::sigmoid_loss_tiled(img_emb, txt_emb, t_prime, bias, tile);
}

}  // namespace siglite::loss
