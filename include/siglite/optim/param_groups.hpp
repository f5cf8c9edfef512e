// Parameter groups: which parameters get weight decay and which learning-rate multiplier.
#pragma once
#include <cmath>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "siglite/core/tensor.hpp"

namespace siglite::optim {

/// Parameters by dotted name, as nn::Module::named_parameters() lists them.
using NamedParams = std::vector<std::pair<std::string, Tensor<float>>>;

/// Parameters that share a learning-rate multiplier and a weight decay.
struct ParamGroup {
  NamedParams params;
  /// The group's learning rate is the optimizer's (scheduled) learning rate times this.
  double lr_mult = 1.0;
  /// Unset: the optimizer's weight_decay.
  std::optional<double> weight_decay;
};

/// Decides whether a parameter gets weight decay, from its dotted name and the tensor.
using DecayRule = std::function<bool(const std::string& name, const Tensor<float>& param)>;

namespace detail {
/// `name` ends with `suffix` at a dotted-component boundary ("a.probe" and "probe", not "aprobe").
inline bool ends_with_component(const std::string& name, const std::string& suffix) {
  if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  return name.size() == suffix.size() || name[name.size() - suffix.size() - 1] == '.';
}
}  // namespace detail

/// big_vision's rule (decay kernels only) in Hugging Face SigLIP names: decay tensors of rank >= 2,
/// except token and position embeddings, the MAP head's probe, logit_scale / logit_bias (t', b)
/// and anything under a LayerNorm. Biases and LayerNorm parameters have rank 1 anyway. The patch
/// embedding ("embeddings.patch_embedding.weight", a convolution kernel) is decayed, as in big_vision.
inline bool default_decay(const std::string& name, const Tensor<float>& param) {
  if (param.dim() < 2) return false;
  for (const char* suffix :
       {"token_embedding.weight", "position_embedding.weight", "probe", "logit_scale", "logit_bias"})
    if (detail::ends_with_component(name, suffix)) return false;
  return name.find("layer_norm") == std::string::npos && name.find("layernorm") == std::string::npos;
}

/// Splits the trainable parameters into a decay group (weight_decay unset, so the optimizer's)
/// followed by a no-decay group (weight_decay 0), in the order given. Parameters that do not
/// require grad (frozen towers) are left out, and so is a tensor listed again under another
/// name (tied weights): the optimizer would update it twice. Empty groups are dropped.
inline std::vector<ParamGroup> split_decay(const NamedParams& params, const DecayRule& decay = default_decay) {
  SIGLITE_CHECK(static_cast<bool>(decay), "split_decay: the decay rule is empty");
  ParamGroup with, without;
  without.weight_decay = 0.0;
  std::set<const TensorImpl<float>*> seen;
  for (const auto& [name, p] : params) {
    SIGLITE_CHECK(p.defined(), "split_decay: parameter '", name, "' is undefined");
    if (!p.requires_grad() || !seen.insert(p.impl_ptr().get()).second) continue;
    (decay(name, p) ? with : without).params.emplace_back(name, p);
  }
  std::vector<ParamGroup> out;
  for (ParamGroup* g : {&with, &without})
    if (!g->params.empty()) out.push_back(std::move(*g));
  return out;
}

/// Moves the parameters whose names start with `prefix` into groups of their own with this
/// lr_mult (and this weight_decay when given), keeping each group's other settings; e.g.
/// with_lr_mult(groups, "vision_model.", 0.1, 0.0) fine-tunes a pretrained image tower at 0.1x
/// without decay. A prefix that matches nothing is an error (most likely a misspelt name).
inline std::vector<ParamGroup> with_lr_mult(const std::vector<ParamGroup>& groups, const std::string& prefix,
                                            double lr_mult, std::optional<double> weight_decay = std::nullopt) {
  SIGLITE_CHECK(std::isfinite(lr_mult) && lr_mult >= 0, "with_lr_mult: lr_mult must be finite and >= 0, got ",
                lr_mult);
  SIGLITE_CHECK(!weight_decay || (std::isfinite(*weight_decay) && *weight_decay >= 0),
                "with_lr_mult: weight_decay must be finite and >= 0, got ", weight_decay.value_or(0));
  std::vector<ParamGroup> rest, moved;
  for (const ParamGroup& g : groups) {
    ParamGroup keep{{}, g.lr_mult, g.weight_decay};
    ParamGroup take{{}, lr_mult, weight_decay ? weight_decay : g.weight_decay};
    for (const auto& np : g.params)
      (np.first.compare(0, prefix.size(), prefix) == 0 ? take : keep).params.push_back(np);
    if (!keep.params.empty()) rest.push_back(std::move(keep));
    if (!take.params.empty()) moved.push_back(std::move(take));
  }
  SIGLITE_CHECK(!moved.empty(), "with_lr_mult: no parameter name starts with '", prefix, "'");
  for (ParamGroup& g : moved) rest.push_back(std::move(g));
  return rest;
}

}  // namespace siglite::optim
