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

/// One block of the sigmoid loss between n images and m texts: which pairs match, what the sum is divided by, and
/// the edge of the tiles it is computed in.
struct SigmoidBlock {
  bool positives = true;        // image i matches text i + positive_offset (where that text is in the block)
  int64_t positive_offset = 0;  // false: every pair of the block is a negative
  double divisor = 1;           // the size of the whole batch the block belongs to
  int64_t tile = 256;
};

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

/// One block of the fused version: the loss terms of every (image i, text j) pair of img [n, d] and txt [m, d], with
/// the labels and divisor of `labels`, as one node whose two kernels own
/// the tiles (backends/*/loss): forward sums the loss of [tile, tile] logits at a time, backward recomputes each
/// tile's logits. Memory beyond inputs and gradients: one tile buffer per thread (CPU) and a few numbers per row
/// tile. t' and b are read on the device. The chunked and gathered losses (dist/loss.hpp) are made of such blocks.
template <typename T>
Tensor<T> sigmoid_loss_block_node(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                                  const Tensor<T>& bias, const SigmoidBlock& labels) {
  const Device device = img.device();
  kernels::SigmoidLossArgs block;
  block.n = img.shape()[0];
  block.m = txt.shape()[0];
  block.d = img.shape()[1];
  block.tile = labels.tile;
  block.positives = labels.positives;
  block.positive_offset = labels.positive_offset;
  block.divisor = labels.divisor;
  const Tensor<T> xs = img.detach().contiguous(), ys = txt.detach().contiguous();
  const Tensor<T> tp = t_prime.detach().contiguous(), b = bias.detach().contiguous();
  Tensor<T> out = Tensor<T>::empty({}, device);
  kernels::on<T>(device).sigmoid_loss_forward(block, xs.device_ptr(), ys.device_ptr(), tp.device_ptr(),
                                              b.device_ptr(), out.device_ptr());
  return record("sigmoid_loss", out, {img, txt, t_prime, bias},
                [xs, ys, tp, b, block](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = xs.device();
                  const Tensor<T> gc = g.contiguous();
                  Tensor<T> dx = need[0] ? Tensor<T>::empty({block.n, block.d}, dev) : Tensor<T>();
                  Tensor<T> dy = need[1] ? Tensor<T>::empty({block.m, block.d}, dev) : Tensor<T>();
                  Tensor<T> dt = Tensor<T>::empty({1}, dev), db = Tensor<T>::empty({1}, dev);
                  const auto ptr = [](const Tensor<T>& t) { return t.defined() ? t.device_ptr() : nullptr; };
                  kernels::on<T>(dev).sigmoid_loss_backward(block, xs.device_ptr(), ys.device_ptr(), tp.device_ptr(),
                                                            b.device_ptr(), gc.device_ptr(), ptr(dx), ptr(dy),
                                                            dt.device_ptr(), db.device_ptr());
                  return std::vector<Tensor<T>>{dx, dy, dt, db};
                });
}

/// The fused version over a batch: the one n x n block with the positives on its diagonal, divided by n.
template <typename T>
Tensor<T> sigmoid_loss_tiled(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                             const Tensor<T>& bias, int64_t tile) {
  SigmoidBlock block;
  block.tile = tile;
  block.divisor = static_cast<double>(img.shape()[0]);
  return sigmoid_loss_block_node(img, txt, t_prime, bias, block);
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

/// The loss terms of one block of pairs, a scalar: -sum over the n x m pairs (image i of img_emb [n, d], text j of
/// txt_emb [m, d]) of log_sigmoid(label_ij (exp(t') x_i . y_j + b)) / block.divisor, label +1 where block.positives
/// and j == i + block.positive_offset, -1 elsewhere; fused and tiled as sigmoid_loss. The sum of the blocks that
/// cover a batch is its sigmoid_loss: the chunked and gathered losses of dist/loss.hpp are built from them.
template <typename T>
Tensor<T> sigmoid_loss_block(const Tensor<T>& img_emb, const Tensor<T>& txt_emb, const Tensor<T>& t_prime,
                             const Tensor<T>& bias, const SigmoidBlock& block) {
  const char* op = "sigmoid_loss_block";
  SIGLITE_CHECK(img_emb.defined() && txt_emb.defined(), op, ": img_emb and txt_emb must both be defined");
  SIGLITE_CHECK(img_emb.dim() == 2 && txt_emb.dim() == 2 && img_emb.shape()[1] == txt_emb.shape()[1], op,
                ": img_emb of shape ", img_emb.shape(), " and txt_emb of shape ", txt_emb.shape(),
                " are not [n, d] and [m, d]");
  siglite::detail::check_same_device(img_emb.device(), txt_emb.device(), op);
  detail::check_scalar_param(op, "t_prime", t_prime, img_emb.device());
  detail::check_scalar_param(op, "bias", bias, img_emb.device());
  SIGLITE_CHECK(block.tile > 0, op, ": tile size ", block.tile, " is not positive");
  SIGLITE_CHECK(block.divisor > 0, op, ": divisor ", block.divisor, " is not positive");
  return detail::sigmoid_loss_block_node(img_emb, txt_emb, t_prime, bias, block);
}

}  // namespace siglite::loss
