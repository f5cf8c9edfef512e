// Argument checks shared by the contrastive losses: two [n, d] embedding batches and [1] parameters.
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
  SIGLITE_CHECK(img.device() == txt.device(), op, ": img_emb on ", img.device(), ", txt_emb on ", txt.device());
}

/// A learnable scalar such as t' or b: shape [1] (as HF's logit_scale and logit_bias), on `device`.
template <typename T>
void check_scalar_param(const char* op, const char* name, const Tensor<T>& p, Device device) {
  SIGLITE_CHECK(p.defined(), op, ": ", name, " is undefined; it must be a [1] tensor");
  SIGLITE_CHECK(p.shape() == Shape{1}, op, ": ", name, " of shape ", p.shape(), " is not [1]");
  SIGLITE_CHECK(p.device() == device, op, ": ", name, " on ", p.device(), ", the embeddings on ", device);
}

}  // namespace siglite::loss::detail
