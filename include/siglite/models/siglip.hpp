// The SigLIP model as in the paper: a ViT image tower (MAP head), a text transformer (last-token
// pooling, linear head), L2-normalised embeddings, logits t * zimg . ztxt + b with t = exp(t').
// Parameter names are exactly those of Hugging Face's SiglipModel.
#pragma once
#include <cmath>
#include <limits>
#include <memory>

#include "siglite/models/config.hpp"
#include "siglite/nn/layers.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite::models {

using nn::Module;

/// Patch embedding plus a position embedding: learned (HF's position_embedding), or the fixed
/// 2-D sin-cos one (no parameter).
template <typename T = float>
class VisionEmbeddings : public Module<T> {
 public:
  VisionEmbeddings(const VisionConfig& c, Generator& gen) {
    patch_embedding = this->register_module(
        "patch_embedding", std::make_shared<nn::PatchEmbedding<T>>(c.num_channels, c.hidden_size, c.patch_size, gen));
    if (c.posemb == PositionEmbedding::Learn) {
      position_embedding = this->register_module(
          "position_embedding", std::make_shared<nn::Embedding<T>>(c.num_patches(), c.hidden_size, gen,
                                                                   1.0 / std::sqrt(double(c.hidden_size))));
    } else {
      const int64_t grid = c.image_size / c.patch_size;
      fixed_posemb_ = this->register_buffer("fixed_position_embedding", nn::init::sincos_2d<T>(grid, grid, c.hidden_size),
                                            false);
    }
  }
  /// [N, C, H, W] -> [N, patches, D]
  Tensor<T> forward(const Tensor<T>& images) const {
    return patch_embedding->forward(images) + (position_embedding ? position_embedding->weight : fixed_posemb_);
  }

  std::shared_ptr<nn::PatchEmbedding<T>> patch_embedding;
  std::shared_ptr<nn::Embedding<T>> position_embedding;  // null with sincos2d

 private:
  Tensor<T> fixed_posemb_;  // [patches, D], sincos2d only
};

/// The image tower. forward() gives [N, D] (map, gap) or the tokens [N, patches, D] (none).
template <typename T = float>
class VisionTransformer : public Module<T> {
 public:
  VisionTransformer(const VisionConfig& c, Generator& gen) : config_(c) {
    const GeluApprox act = SiglipConfig::act(c.hidden_act);
    embeddings = this->register_module("embeddings", std::make_shared<VisionEmbeddings<T>>(c, gen));
    encoder = this->register_module(
        "encoder", std::make_shared<nn::Encoder<T>>(c.num_hidden_layers, c.hidden_size, c.intermediate_size,
                                                    c.num_attention_heads, c.layer_norm_eps, act, gen));
    post_layernorm = this->register_module("post_layernorm",
                                           std::make_shared<nn::LayerNorm<T>>(c.hidden_size, c.layer_norm_eps));
    if (c.pooling == VisionPooling::Map)
      head = this->register_module("head", std::make_shared<nn::MAPHead<T>>(c.hidden_size, c.intermediate_size,
                                                                            c.num_attention_heads, c.layer_norm_eps,
                                                                            act, gen));
  }

  Tensor<T> forward(const Tensor<T>& images) const {
    const VisionConfig& c = config_;
    SIGLITE_CHECK(images.dim() == 4 && images.size(1) == c.num_channels && images.size(2) == c.image_size &&
                      images.size(3) == c.image_size,
                  "VisionTransformer: images of shape ", images.shape(), " do not match [N, ", c.num_channels, ", ",
                  c.image_size, ", ", c.image_size, "]");
    const Tensor<T> tokens = post_layernorm->forward(encoder->forward(embeddings->forward(images)));
    if (c.pooling == VisionPooling::Map) return head->forward(tokens);
    if (c.pooling == VisionPooling::Gap) return mean(tokens, {1});
    return tokens;
  }

  const VisionConfig& config() const { return config_; }

  std::shared_ptr<VisionEmbeddings<T>> embeddings;
  std::shared_ptr<nn::Encoder<T>> encoder;
  std::shared_ptr<nn::LayerNorm<T>> post_layernorm;
  std::shared_ptr<nn::MAPHead<T>> head;  // null unless pooling is map

 private:
  VisionConfig config_;
};

/// Token embedding plus a learned position embedding.
template <typename T = float>
class TextEmbeddings : public Module<T> {
 public:
  TextEmbeddings(const TextConfig& c, Generator& gen) {
    const double std = 1.0 / std::sqrt(double(c.hidden_size));
    token_embedding =
        this->register_module("token_embedding", std::make_shared<nn::Embedding<T>>(c.vocab_size, c.hidden_size, gen, std));
    position_embedding = this->register_module(
        "position_embedding", std::make_shared<nn::Embedding<T>>(c.max_position_embeddings, c.hidden_size, gen, std));
  }
  /// ids [N, L] -> [N, L, D]
  Tensor<T> forward(const Tensor<int64_t>& ids) const {
    const int64_t len = ids.size(1);
    return token_embedding->forward(ids) + position_embedding->weight.slice(0, 0, len);
  }

  std::shared_ptr<nn::Embedding<T>> token_embedding;
  std::shared_ptr<nn::Embedding<T>> position_embedding;
};

/// The text tower: [N, L] token ids -> [N, projection_size]. Text is [tokens..., EOS] padded with
/// EOS to the fixed length, so the last position always holds EOS and is what "last" pools.
template <typename T = float>
class TextTransformer : public Module<T> {
 public:
  TextTransformer(const TextConfig& c, Generator& gen) : config_(c) {
    embeddings = this->register_module("embeddings", std::make_shared<TextEmbeddings<T>>(c, gen));
    encoder = this->register_module(
        "encoder", std::make_shared<nn::Encoder<T>>(c.num_hidden_layers, c.hidden_size, c.intermediate_size,
                                                    c.num_attention_heads, c.layer_norm_eps,
                                                    SiglipConfig::act(c.hidden_act), gen));
    final_layer_norm = this->register_module("final_layer_norm",
                                             std::make_shared<nn::LayerNorm<T>>(c.hidden_size, c.layer_norm_eps));
    head = this->register_module("head", std::make_shared<nn::Linear<T>>(c.hidden_size, c.projection_size, gen,
                                                                          nn::Linear<T>::Init::Lecun));
  }

  /// ids [N, L] with L <= max_position_embeddings and every id < vocab_size. attention_mask
  /// (optional, [N, L], 1 = attend, 0 = padding) hides padding from attention; SigLIP itself
  /// trains without one.
  Tensor<T> forward(const Tensor<int64_t>& ids, const Tensor<int64_t>& attention_mask = {}) const {
    const TextConfig& c = config_;
    SIGLITE_CHECK(ids.dim() == 2 && ids.size(1) >= 1 && ids.size(1) <= c.max_position_embeddings,
                  "TextTransformer: token ids of shape ", ids.shape(), " are not [N, L] with 1 <= L <= ",
                  c.max_position_embeddings);
    Tensor<T> mask;
    if (attention_mask.defined()) {
      SIGLITE_CHECK(attention_mask.shape() == ids.shape(), "TextTransformer: attention mask of shape ",
                    attention_mask.shape(), " for token ids of shape ", ids.shape());
      detail::check_same_device(ids.device(), attention_mask.device(), "TextTransformer");
      // log(1) = 0 where attended, log(0) = -inf where the mask is 0.
      const Tensor<T> padding = eq(cast<T>(attention_mask), Tensor<T>::scalar(T(0), ids.device()));
      mask = log(T(1) - padding).reshape({ids.size(0), 1, 1, ids.size(1)});
    }
    // Only the pooled position's output is used: the last layer computes that one alone.
    const int64_t pos = c.pooling == TextPooling::Last ? ids.size(1) - 1 : 0;
    const Tensor<T> pooled = final_layer_norm->forward(encoder->forward_at(embeddings->forward(ids), pos, mask));
    return head->forward(pooled.reshape({ids.size(0), c.hidden_size}));
  }

  const TextConfig& config() const { return config_; }

  std::shared_ptr<TextEmbeddings<T>> embeddings;
  std::shared_ptr<nn::Encoder<T>> encoder;
  std::shared_ptr<nn::LayerNorm<T>> final_layer_norm;
  std::shared_ptr<nn::Linear<T>> head;

 private:
  TextConfig config_;
};

template <typename T>
struct SiglipOutput {
  Tensor<T> image_embeds;      // [Ni, E], L2-normalised
  Tensor<T> text_embeds;       // [Nt, E], L2-normalised
  Tensor<T> logits_per_text;   // [Nt, Ni] = t * text_embeds @ image_embeds^T + b
  Tensor<T> logits_per_image;  // [Ni, Nt], its transpose
};

/// Both towers and the learnable temperature t' (logit_scale) and bias b (logit_bias).
template <typename T = float>
class SigLIP : public Module<T> {
 public:
  explicit SigLIP(const SiglipConfig& c, uint64_t seed = 0) : config_(c) {
    c.validate();
    SIGLITE_CHECK(c.vision.pooling != VisionPooling::None, "SigLIP: the image tower needs pooling map or gap, not none");
    Generator gen(seed);
    text_model = this->register_module("text_model", std::make_shared<TextTransformer<T>>(c.text, gen));
    vision_model = this->register_module("vision_model", std::make_shared<VisionTransformer<T>>(c.vision, gen));
    logit_scale = this->register_parameter("logit_scale", Tensor<T>::full({1}, static_cast<T>(c.logit_scale_init)));
    logit_bias = this->register_parameter("logit_bias", Tensor<T>::full({1}, static_cast<T>(c.logit_bias_init)));
  }

  Tensor<T> image_embeddings(const Tensor<T>& images) const { return l2_normalize(vision_model->forward(images), -1); }
  Tensor<T> text_embeddings(const Tensor<int64_t>& ids) const { return l2_normalize(text_model->forward(ids), -1); }

  /// Logits from normalised embeddings: t * text @ image^T + b, [Nt, Ni].
  Tensor<T> logits(const Tensor<T>& image_embeds, const Tensor<T>& text_embeds) const {
    return matmul(text_embeds, image_embeds.t()) * exp(logit_scale) + logit_bias;
  }

  SiglipOutput<T> forward(const Tensor<T>& images, const Tensor<int64_t>& ids) const {
    SiglipOutput<T> out;
    out.image_embeds = image_embeddings(images);
    out.text_embeds = text_embeddings(ids);
    out.logits_per_text = logits(out.image_embeds, out.text_embeds);
    out.logits_per_image = out.logits_per_text.t();
    return out;
  }

  const SiglipConfig& config() const { return config_; }
  /// Where the parameters are (Module::to moves them).
  Device device() const { return logit_scale.device(); }

  std::shared_ptr<TextTransformer<T>> text_model;
  std::shared_ptr<VisionTransformer<T>> vision_model;
  Tensor<T> logit_scale;  // [1], t' with t = exp(t')
  Tensor<T> logit_bias;   // [1], b

 private:
  SiglipConfig config_;
};

}  // namespace siglite::models
