// The softmax (CLIP) contrastive loss, for comparison with the sigmoid loss: a cross-entropy over each row
// (image i must pick text i among all n texts) and over each column (text j must pick image j), averaged.
#pragma once
#include "siglite/core/tensor.hpp"
#include "siglite/loss/checks.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/nn.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite::loss {

/// CLIP's symmetric cross-entropy of a batch of n matching pairs, a scalar.
///   img_emb, txt_emb  [n, d], ALREADY L2-normalised
///   t_prime           [1], the log temperature: logits = exp(t') * img_emb @ txt_emb^T (no bias)
/// Returns (CE over rows + CE over columns) / 2, each CE the mean over the n examples of -log softmax at
/// the matching pair. Unlike the sigmoid loss every term depends on the whole row or column (the softmax
/// normaliser), which is why the sigmoid loss tiles and shards so much more easily.
template <typename T>
Tensor<T> softmax_loss(const Tensor<T>& img_emb, const Tensor<T>& txt_emb, const Tensor<T>& t_prime) {
  const char* op = "softmax_loss";
  detail::check_embeddings(op, img_emb, txt_emb);
  detail::check_scalar_param(op, "t_prime", t_prime, img_emb.device());
  const int64_t n = img_emb.shape()[0];
  const Tensor<T> logits = matmul(img_emb, txt_emb.t()) * exp(t_prime);  // [n, n]
  const Tensor<T> eye = detail::pair_labels(n, T(1), T(0), img_emb.device());  // picks each row's matching pair
  const Tensor<T> image_to_text = -sum(log_softmax(logits, 1) * eye) / static_cast<T>(n);
  const Tensor<T> text_to_image = -sum(log_softmax(logits, 0) * eye) / static_cast<T>(n);
  return (image_to_text + text_to_image) * T(0.5);
}

}  // namespace siglite::loss
