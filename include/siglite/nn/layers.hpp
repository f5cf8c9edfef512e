// The layers both SigLIP towers are built from, each written once: Linear, Dropout, LayerNorm, Embedding,
// MLP, multi-head self-attention, the pre-LN encoder layer and encoder, patch embedding, and the
// MAP head. Parameter names and layouts are those of Hugging Face's SiglipModel.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "siglite/autograd/inference_mode.hpp"
#include "siglite/nn/init.hpp"
#include "siglite/nn/module.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/index.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/nn.hpp"

namespace siglite::nn {

/// y = x @ weight^T + bias. weight [out, in], bias [out].
template <typename T = float>
class Linear : public Module<T> {
 public:
  enum class Init { Xavier, Lecun, Zeros };

  Linear(int64_t in, int64_t out, Generator& gen, Init init = Init::Xavier, double bias_std = 0.0)
      : in_(in), out_(out) {
    weight = this->register_parameter("weight", init == Init::Xavier  ? init::xavier_uniform<T>({out, in}, gen)
                                                : init == Init::Lecun ? init::lecun_normal<T>({out, in}, gen)
                                                                      : Tensor<T>::zeros({out, in}));
    bias = this->register_parameter("bias", bias_std > 0 ? init::normal<T>({out}, gen, bias_std) : Tensor<T>::zeros({out}));
  }

  Tensor<T> forward(const Tensor<T>& x) const {
    SIGLITE_CHECK(x.dim() >= 1 && x.shape().back() == in_, "Linear: input of shape ", x.shape(), " for a layer with ",
                  in_, " inputs");
    return linear(x, weight, bias);
  }

  Tensor<T> weight;  // [out, in]
  Tensor<T> bias;    // [out]

 private:
  int64_t in_, out_;
};

/// Dropout that follows the mode of the module tree it is in: while training (train(), the default) it zeroes each
/// element with probability p and scales the rest by 1/(1-p), its masks drawn from its own generator seeded with
/// `seed` (give each layer its own); after eval() it passes its input through. forward() draws from that
/// generator: one thread at a time.
template <typename T = float>
class Dropout : public Module<T> {
 public:
  Dropout(double p, uint64_t seed) : p_(p), gen_(seed) {
    SIGLITE_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability ", p, " is outside [0, 1]");
  }
  Tensor<T> forward(const Tensor<T>& x) const { return dropout(x, p_, gen_, this->is_training()); }

 private:
  double p_;
  mutable Generator gen_;
};

/// Layer norm over the last axis with learned scale and shift.
template <typename T = float>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-6) : eps_(eps) {
    weight = this->register_parameter("weight", Tensor<T>::ones({dim}));
    bias = this->register_parameter("bias", Tensor<T>::zeros({dim}));
  }
  Tensor<T> forward(const Tensor<T>& x) const { return layer_norm(x, weight, bias, eps_); }

  Tensor<T> weight;  // [dim]
  Tensor<T> bias;    // [dim]

 private:
  double eps_;
};

/// A table of vectors looked up by id.
template <typename T = float>
class Embedding : public Module<T> {
 public:
  Embedding(int64_t count, int64_t dim, Generator& gen, double std) {
    weight = this->register_parameter("weight", init::normal<T>({count, dim}, gen, std));
  }
  Tensor<T> forward(const Tensor<int64_t>& ids) const { return embedding(weight, ids); }

  Tensor<T> weight;  // [count, dim]
};

/// fc1, GELU (tanh approximation by default), fc2; fc1 and GELU run as one linear_gelu node.
template <typename T = float>
class MLP : public Module<T> {
 public:
  MLP(int64_t dim, int64_t hidden, Generator& gen, GeluApprox act = GeluApprox::Tanh) : act_(act) {
    fc1 = this->register_module("fc1", std::make_shared<Linear<T>>(dim, hidden, gen, Linear<T>::Init::Xavier, 1e-6));
    fc2 = this->register_module("fc2", std::make_shared<Linear<T>>(hidden, dim, gen, Linear<T>::Init::Xavier, 1e-6));
  }
  Tensor<T> forward(const Tensor<T>& x) const {
    SIGLITE_CHECK(x.dim() >= 1 && x.shape().back() == fc1->weight.size(1), "MLP: input of shape ", x.shape(),
                  " for a layer with ", fc1->weight.size(1), " inputs");
    return fc2->forward(linear_gelu(x, fc1->weight, fc1->bias, act_));
  }

  std::shared_ptr<Linear<T>> fc1, fc2;

 private:
  GeluApprox act_;
};

/// Multi-head self-attention with q, k, v projections (stored separately, as HF names them; run as one GEMM on
/// their stacked weights, stacked once a scope under InferenceMode) and an output projection.
template <typename T = float>
class SelfAttention : public Module<T> {
 public:
  SelfAttention(int64_t dim, int64_t heads, Generator& gen) : heads_(heads) {
    SIGLITE_CHECK(heads > 0 && dim % heads == 0, "SelfAttention: width ", dim, " is not divisible by ", heads,
                  " heads");
    q_proj = this->register_module("q_proj", std::make_shared<Linear<T>>(dim, dim, gen));
    k_proj = this->register_module("k_proj", std::make_shared<Linear<T>>(dim, dim, gen));
    v_proj = this->register_module("v_proj", std::make_shared<Linear<T>>(dim, dim, gen));
    out_proj = this->register_module("out_proj", std::make_shared<Linear<T>>(dim, dim, gen));
  }

  /// x [B, L, D]; mask (optional, additive) broadcasts to [B, heads, L, L].
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& mask = {}) const {
    return out_proj->forward(multi_head_attention_packed(packed_qkv(x), heads_, mask));
  }

  /// forward(x, mask) at position `at` only, [B, 1, D]: q, k and v of every position (one GEMM, as in forward;
  /// the keys and values need them all), then attention and the output projection for one.
  Tensor<T> forward_at(const Tensor<T>& x, int64_t at, const Tensor<T>& mask = {}) const {
    return out_proj->forward(multi_head_attention_packed_at(packed_qkv(x), at, heads_, mask));
  }

  std::shared_ptr<Linear<T>> q_proj, k_proj, v_proj, out_proj;

 private:
  /// [B, L, 3D]: q, k and v side by side, one GEMM on the stacked weights.
  Tensor<T> packed_qkv(const Tensor<T>& x) const {
    SIGLITE_CHECK(x.dim() == 3, "SelfAttention: input of shape ", x.shape(), " is not [batch, length, width]");
    SIGLITE_CHECK(x.size(2) == q_proj->weight.size(1), "SelfAttention: input of shape ", x.shape(),
                  " for a layer of width ", q_proj->weight.size(1));
    const auto stacked = [](const std::vector<Tensor<T>>& parts) {
      return InferenceMode::derived(parts, [&] { return concat<T>(parts, 0); });
    };
    return linear(x, stacked({q_proj->weight, k_proj->weight, v_proj->weight}),
                  stacked({q_proj->bias, k_proj->bias, v_proj->bias}));
  }

  int64_t heads_;
};

/// Pre-LN transformer block: x += attn(LN1(x)); x += mlp(LN2(x)).
template <typename T = float>
class EncoderLayer : public Module<T> {
 public:
  EncoderLayer(int64_t dim, int64_t mlp_dim, int64_t heads, double eps, GeluApprox act, Generator& gen) {
    layer_norm1 = this->register_module("layer_norm1", std::make_shared<LayerNorm<T>>(dim, eps));
    self_attn = this->register_module("self_attn", std::make_shared<SelfAttention<T>>(dim, heads, gen));
    layer_norm2 = this->register_module("layer_norm2", std::make_shared<LayerNorm<T>>(dim, eps));
    mlp = this->register_module("mlp", std::make_shared<MLP<T>>(dim, mlp_dim, gen, act));
  }
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& mask = {}) const {
    const Tensor<T> h = x + self_attn->forward(layer_norm1->forward(x), mask);
    return h + mlp->forward(layer_norm2->forward(h));
  }

  /// forward(x, mask) at position `at` only, [B, 1, D]: every position feeds the attention's keys and values;
  /// the query, the output projection and the MLP run on one.
  Tensor<T> forward_at(const Tensor<T>& x, int64_t at, const Tensor<T>& mask = {}) const {
    const Tensor<T> h = x.slice(1, at, at + 1) + self_attn->forward_at(layer_norm1->forward(x), at, mask);
    return h + mlp->forward(layer_norm2->forward(h));
  }

  std::shared_ptr<LayerNorm<T>> layer_norm1, layer_norm2;
  std::shared_ptr<SelfAttention<T>> self_attn;
  std::shared_ptr<MLP<T>> mlp;
};

/// A numbered list of submodules ("0", "1", ...).
template <typename T, typename M>
class ModuleList : public Module<T> {
 public:
  void push_back(std::shared_ptr<M> m) {
    items_.push_back(this->register_module(std::to_string(items_.size()), std::move(m)));
  }
  const std::vector<std::shared_ptr<M>>& items() const { return items_; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

/// A stack of encoder layers, under the name "layers".
template <typename T = float>
class Encoder : public Module<T> {
 public:
  Encoder(int64_t depth, int64_t dim, int64_t mlp_dim, int64_t heads, double eps, GeluApprox act, Generator& gen) {
    layers = this->register_module("layers", std::make_shared<ModuleList<T, EncoderLayer<T>>>());
    for (int64_t i = 0; i < depth; ++i)
      layers->push_back(std::make_shared<EncoderLayer<T>>(dim, mlp_dim, heads, eps, act, gen));
  }
  Tensor<T> forward(Tensor<T> x, const Tensor<T>& mask = {}) const {
    for (const auto& layer : layers->items()) x = layer->forward(x, mask);
    return x;
  }

  /// forward(x, mask) at position `at` only, [B, 1, D], for a tower pooled at one token: the last layer
  /// runs EncoderLayer::forward_at, skipping the work no other position's output needs.
  Tensor<T> forward_at(Tensor<T> x, int64_t at, const Tensor<T>& mask = {}) const {
    SIGLITE_CHECK(x.dim() == 3, "Encoder: input of shape ", x.shape(), " is not [batch, length, width]");
    SIGLITE_CHECK(at >= 0 && at < x.size(1), "Encoder: position ", at, " is outside the input of shape ", x.shape());
    const auto& all = layers->items();
    if (all.empty()) return x.slice(1, at, at + 1);
    for (size_t i = 0; i + 1 < all.size(); ++i) x = all[i]->forward(x, mask);
    return all.back()->forward_at(x, at, mask);
  }

  std::shared_ptr<ModuleList<T, EncoderLayer<T>>> layers;
};

/// Conv2d(C, D, kernel = stride = P) as patchify + GEMM: [N, C, H, W] -> [N, (H/P)*(W/P), D].
template <typename T = float>
class PatchEmbedding : public Module<T> {
 public:
  PatchEmbedding(int64_t channels, int64_t dim, int64_t patch, Generator& gen) : patch_(patch) {
    weight = this->register_parameter("weight", init::lecun_normal<T>({dim, channels, patch, patch}, gen));
    bias = this->register_parameter("bias", Tensor<T>::zeros({dim}));
  }
  Tensor<T> forward(const Tensor<T>& images) const {
    SIGLITE_CHECK(images.dim() == 4 && images.size(1) == weight.size(1), "PatchEmbedding: images of shape ",
                  images.shape(), " for ", weight.size(1), " channels");
    return linear(patchify(images, patch_), weight.reshape({weight.size(0), -1}), bias);
  }

  Tensor<T> weight;  // [D, C, P, P]
  Tensor<T> bias;    // [D]

 private:
  int64_t patch_;
};

/// Multihead attention pooling: a learned probe attends over the tokens (packed q/k/v
/// in-projection as torch.nn.MultiheadAttention), then h + mlp(LN(h)); returns [B, D].
template <typename T = float>
class MAPHead : public Module<T> {
 public:
  /// The packed projection, named as torch.nn.MultiheadAttention names it.
  class Attention : public Module<T> {
   public:
    Attention(int64_t dim, Generator& gen) {
      in_proj_weight = this->register_parameter("in_proj_weight", init::xavier_uniform<T>({3 * dim, dim}, gen));
      in_proj_bias = this->register_parameter("in_proj_bias", Tensor<T>::zeros({3 * dim}));
      out_proj = this->register_module("out_proj", std::make_shared<Linear<T>>(dim, dim, gen));
    }
    Tensor<T> in_proj_weight;  // [3D, D]: q; k; v
    Tensor<T> in_proj_bias;    // [3D]
    std::shared_ptr<Linear<T>> out_proj;
  };

  MAPHead(int64_t dim, int64_t mlp_dim, int64_t heads, double eps, GeluApprox act, Generator& gen)
      : dim_(dim), heads_(heads) {
    probe = this->register_parameter("probe", init::xavier_uniform<T>({1, 1, dim}, gen));
    attention = this->register_module("attention", std::make_shared<Attention>(dim, gen));
    layernorm = this->register_module("layernorm", std::make_shared<LayerNorm<T>>(dim, eps));
    mlp = this->register_module("mlp", std::make_shared<MLP<T>>(dim, mlp_dim, gen, act));
  }

  /// x [B, L, D] -> [B, D]
  Tensor<T> forward(const Tensor<T>& x) const {
    const int64_t b = x.size(0), d = dim_;
    const auto part = [&](const Tensor<T>& in, int64_t i) {
      const Tensor<T> w = attention->in_proj_weight.slice(0, i * d, (i + 1) * d);
      return linear(in, w, attention->in_proj_bias.slice(0, i * d, (i + 1) * d));
    };
    const Tensor<T> h = attention->out_proj->forward(
        multi_head_attention(part(probe, 0).expand({b, 1, d}), part(x, 1), part(x, 2), heads_));
    return (h + mlp->forward(layernorm->forward(h))).reshape({b, d});
  }

  Tensor<T> probe;  // [1, 1, D]
  std::shared_ptr<Attention> attention;
  std::shared_ptr<LayerNorm<T>> layernorm;
  std::shared_ptr<MLP<T>> mlp;

 private:
  int64_t dim_, heads_;
};

}  // namespace siglite::nn
