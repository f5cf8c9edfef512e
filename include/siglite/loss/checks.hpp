// What the contrastive losses share: checks of two [n, d] embedding batches and [1] parameters, and the
// [n, n] matrix that marks the matching pairs.
#pragma once
#include "siglite/core/tensor.hpp"

namespace siglite::loss::detail {

/// img and txt: both [n, d] with n >= 1, on one device.
template <typename T>
void check_embeddings(const char* op, const Tensor<T>& img, const Tensor<T>& txt) {
  SIGLITE_CHECK(img.defined() && txt.defined(), op, ": img_emb and txt_emb must both be defined");
  SIGLITE_CHECK(img.dim() == 2, op, ": img_emb of shape ", img.shape(), " is not [n, d]");
  SIGLITE_CHECK(txt.dim() == 2, op, ": txt_emb of shape ", txt.shape(), " is not [n, d]");
  SIGLITE_CHECK(img.shape() == txt.shape(), op, ": img_emb of shape ", img.shape(), " and txt_emb of shape ",
                txt.shape(), " differ; both must be [n, d], pair i being (image i, text i)");
  SIGLITE_CHECK(img.shape()[0] > 0, op, ": empty batch (img_emb of shape ", img.shape(), ")");
  siglite::detail::check_same_device(img.device(), txt.device(), op);
}

/// A learnable scalar such as t' or b: shape [1] (as HF's logit_scale and logit_bias), on `device`.
template <typename T>
void check_scalar_param(const char* op, const char* name, const Tensor<T>& p, Device device) {
  SIGLITE_CHECK(p.defined(), op, ": ", name, " is undefined; it must be a [1] tensor");
  SIGLITE_CHECK(p.shape() == Shape{1}, op, ": ", name, " of shape ", p.shape(), " is not [1]");
  siglite::detail::check_same_device(device, p.device(), op);
}

/// [n, n] on `device`: `positive` on the diagonal (image i with its own text i), `negative` elsewhere; made on the
/// device (a fill, and a copy of one element along the diagonal's stride n + 1).
template <typename T>
Tensor<T> pair_labels(int64_t n, T positive, T negative, Device device) {
  const Tensor<T> labels = Tensor<T>::full({n, n}, negative, device);
  const Tensor<T> value = Tensor<T>::full({1}, positive, device);
  kernels::on<T>(device).copy({value.device_ptr(), Shape{n}, Shape{0}}, {labels.device_ptr(), Shape{n}, Shape{n + 1}});
  return labels;
}

}  // namespace siglite::loss::detail
