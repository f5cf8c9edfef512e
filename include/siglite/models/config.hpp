// SiglipConfig: the two towers' sizes, read from and written to JSON in the form of Hugging
// Face's config.json (text_config, vision_config, same keys), and the named presets.
#pragma once
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>

#include "siglite/core/error.hpp"
#include "siglite/core/names.hpp"
#include "siglite/ops/elementwise.hpp"

namespace siglite::models {

/// How the image tower turns its tokens into one embedding: the MAP head, the mean of the tokens, or none (all
/// tokens; the SigLIP model refuses it).
enum class VisionPooling { Map, Gap, None };
/// The image tower's position embedding: learned (HF's position_embedding) or the fixed 2-D sin-cos table.
enum class PositionEmbedding { Learn, SinCos2d };
/// Which text position the text tower pools: the last (the EOS) or the first.
enum class TextPooling { Last, First };

/// Config enums are JSON strings, read and written by their names.
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>, typename = decltype(EnumNames<E>::values)>
void to_json(nlohmann::json& j, E e) {
  j = to_string(e);
}
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>, typename = decltype(EnumNames<E>::values)>
void from_json(const nlohmann::json& j, E& e) {
  e = parse<E>(j.get<std::string>());
}

}  // namespace siglite::models

namespace siglite {
template <>
struct EnumNames<models::VisionPooling> {
  static constexpr const char* what = "SiglipConfig: vision pooling";
  static constexpr std::pair<models::VisionPooling, const char*> values[] = {
      {models::VisionPooling::Map, "map"}, {models::VisionPooling::Gap, "gap"}, {models::VisionPooling::None, "none"}};
};
template <>
struct EnumNames<models::PositionEmbedding> {
  static constexpr const char* what = "SiglipConfig: vision posemb";
  static constexpr std::pair<models::PositionEmbedding, const char*> values[] = {
      {models::PositionEmbedding::Learn, "learn"}, {models::PositionEmbedding::SinCos2d, "sincos2d"}};
};
template <>
struct EnumNames<models::TextPooling> {
  static constexpr const char* what = "SiglipConfig: text pooling";
  static constexpr std::pair<models::TextPooling, const char*> values[] = {{models::TextPooling::Last, "last"},
                                                                           {models::TextPooling::First, "first"}};
};
}  // namespace siglite

namespace siglite::models {


struct VisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 16;
  double layer_norm_eps = 1e-6;
  std::string hidden_act = "gelu_pytorch_tanh";
  VisionPooling pooling = VisionPooling::Map;
  PositionEmbedding posemb = PositionEmbedding::Learn;

  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }

  /// Calls f(key, field) for every vision_config key that holds a field as it is; Self is VisionConfig or
  /// const VisionConfig. vision_use_head (derived from pooling) is not among them.
  template <typename Self, typename F>
  static void for_each_key(Self& c, F&& f) {
    f("hidden_size", c.hidden_size);
    f("intermediate_size", c.intermediate_size);
    f("num_hidden_layers", c.num_hidden_layers);
    f("num_attention_heads", c.num_attention_heads);
    f("num_channels", c.num_channels);
    f("image_size", c.image_size);
    f("patch_size", c.patch_size);
    f("layer_norm_eps", c.layer_norm_eps);
    f("hidden_act", c.hidden_act);
    f("siglite_pooling", c.pooling);
    f("siglite_posemb", c.posemb);
  }
};

struct TextConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 64;  // the fixed text length
  int64_t projection_size = 768;         // the embedding size, output of the head
  double layer_norm_eps = 1e-6;
  std::string hidden_act = "gelu_pytorch_tanh";
  int64_t pad_token_id = 1;
  int64_t eos_token_id = 1;
  TextPooling pooling = TextPooling::Last;

  /// Calls f(key, field) for every text_config key; Self is TextConfig or const TextConfig.
  template <typename Self, typename F>
  static void for_each_key(Self& c, F&& f) {
    f("vocab_size", c.vocab_size);
    f("hidden_size", c.hidden_size);
    f("intermediate_size", c.intermediate_size);
    f("num_hidden_layers", c.num_hidden_layers);
    f("num_attention_heads", c.num_attention_heads);
    f("max_position_embeddings", c.max_position_embeddings);
    f("projection_size", c.projection_size);
    f("layer_norm_eps", c.layer_norm_eps);
    f("hidden_act", c.hidden_act);
    f("pad_token_id", c.pad_token_id);
    f("eos_token_id", c.eos_token_id);
    f("siglite_pooling", c.pooling);
  }
};

struct SiglipConfig {
  TextConfig text;
  VisionConfig vision;
  double logit_scale_init = std::log(10.0);  // t' (t = exp(t') = 10)
  double logit_bias_init = -10.0;            // b

  /// Checks that the sizes make a model; throws naming the offending key.
  void validate() const {
    // Sizes far beyond any SigLIP (the paper's largest, g/16, is 1536 wide and 40 deep) are refused here, with the
    // limit named, instead of by an allocation the size of the model they describe.
    const auto positive = [](int64_t v, const char* key, int64_t limit = int64_t(1) << 16) {
      SIGLITE_CHECK(v > 0, "SiglipConfig: ", key, " = ", v, " must be positive");
      SIGLITE_CHECK(v <= limit, "SiglipConfig: ", key, " = ", v, " is larger than the limit of ", limit);
    };
    positive(vision.hidden_size, "vision_config.hidden_size");
    positive(vision.intermediate_size, "vision_config.intermediate_size");
    positive(vision.num_hidden_layers, "vision_config.num_hidden_layers", 1024);
    positive(vision.num_attention_heads, "vision_config.num_attention_heads");
    positive(vision.num_channels, "vision_config.num_channels", 64);
    positive(vision.patch_size, "vision_config.patch_size");
    positive(vision.image_size, "vision_config.image_size");
    positive(text.vocab_size, "text_config.vocab_size", int64_t(1) << 22);
    positive(text.hidden_size, "text_config.hidden_size");
    positive(text.intermediate_size, "text_config.intermediate_size");
    positive(text.num_hidden_layers, "text_config.num_hidden_layers", 1024);
    positive(text.num_attention_heads, "text_config.num_attention_heads");
    positive(text.max_position_embeddings, "text_config.max_position_embeddings");
    positive(text.projection_size, "text_config.projection_size");
    SIGLITE_CHECK(vision.image_size > 0 && vision.image_size % vision.patch_size == 0, "SiglipConfig: image_size ",
                  vision.image_size, " is not a multiple of patch_size ", vision.patch_size);
    const int64_t side = vision.image_size / vision.patch_size;
    SIGLITE_CHECK(side * side <= (int64_t(1) << 20), "SiglipConfig: image_size / patch_size = ", side, " makes ",
                  side * side, " patches, more than the limit of ", int64_t(1) << 20);
    SIGLITE_CHECK(vision.hidden_size % vision.num_attention_heads == 0, "SiglipConfig: vision hidden_size ",
                  vision.hidden_size, " is not divisible by ", vision.num_attention_heads, " heads");
    SIGLITE_CHECK(text.hidden_size % text.num_attention_heads == 0, "SiglipConfig: text hidden_size ",
                  text.hidden_size, " is not divisible by ", text.num_attention_heads, " heads");
    SIGLITE_CHECK(text.projection_size == vision.hidden_size, "SiglipConfig: text projection_size ",
                  text.projection_size, " differs from the image embedding size (vision hidden_size ",
                  vision.hidden_size, ")");
    act(vision.hidden_act);
    act(text.hidden_act);
    SIGLITE_CHECK(vision.posemb == PositionEmbedding::Learn || vision.hidden_size % 4 == 0,
                  "SiglipConfig: sincos2d needs a vision hidden_size divisible by 4, not ", vision.hidden_size);
  }

  /// The GELU variant an hidden_act string names.
  static GeluApprox act(const std::string& name) {
    if (name == "gelu_pytorch_tanh" || name == "gelu_new") return GeluApprox::Tanh;
    SIGLITE_CHECK(name == "gelu", "SiglipConfig: hidden_act '", name, "' is not supported (gelu_pytorch_tanh or gelu)");
    return GeluApprox::None;
  }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["architectures"] = {"SiglipModel"};
    j["model_type"] = "siglip";
    j["initializer_factor"] = 1.0;
    nlohmann::json t = {{"model_type", "siglip_text_model"}};
    TextConfig::for_each_key(text, [&t](const char* key, const auto& field) { t[key] = field; });
    nlohmann::json v = {{"model_type", "siglip_vision_model"}, {"vision_use_head", vision.pooling == VisionPooling::Map}};
    VisionConfig::for_each_key(vision, [&v](const char* key, const auto& field) { v[key] = field; });
    j["text_config"] = std::move(t);
    j["vision_config"] = std::move(v);
    j["siglite_logit_scale_init"] = logit_scale_init;
    j["siglite_logit_bias_init"] = logit_bias_init;
    return j;
  }

  /// Reads an HF config.json object; keys it lacks keep HF's defaults (those of the B/16 model).
  static SiglipConfig from_json(const nlohmann::json& j) {
    SIGLITE_CHECK(j.is_object(), "SiglipConfig: the config is not a JSON object");
    SiglipConfig c;
    // Integers must be JSON integers: nlohmann would cast 1e300 to int64_t, which is undefined behaviour.
    const auto reader = [](const nlohmann::json& o) {
      return [&o](const char* key, auto& field) {
        if (!o.contains(key) || o.at(key).is_null()) return;
        if constexpr (std::is_same_v<std::decay_t<decltype(field)>, int64_t>)
          SIGLITE_CHECK(o.at(key).is_number_integer(), "SiglipConfig: ", key, " must be an integer, got ",
                        o.at(key).dump());
        o.at(key).get_to(field);
      };
    };
    try {
      if (j.contains("text_config")) {
        const auto& t = j.at("text_config");
        reader(t)("hidden_size", c.text.hidden_size);
        c.text.projection_size = c.text.hidden_size;  // HF's default when projection_size is absent
        TextConfig::for_each_key(c.text, reader(t));
      }
      if (j.contains("vision_config")) {
        const auto& v = j.at("vision_config");
        bool use_head = true;
        reader(v)("vision_use_head", use_head);
        c.vision.pooling = use_head ? VisionPooling::Map : VisionPooling::None;  // siglite_pooling overrides it
        VisionConfig::for_each_key(c.vision, reader(v));
      }
      const auto top = reader(j);
      top("siglite_logit_scale_init", c.logit_scale_init);
      top("siglite_logit_bias_init", c.logit_bias_init);
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::cat("SiglipConfig: a key has the wrong type: ", e.what()));
    }
    c.validate();
    return c;
  }

  static SiglipConfig load(const std::string& path) {
    std::ifstream in(path);
    SIGLITE_CHECK(in, "SiglipConfig: cannot open ", path);
    nlohmann::json j;
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::cat("SiglipConfig: ", path, " is not valid JSON: ", e.what()));
    }
    try {
      return from_json(j);
    } catch (const Error& e) {
      throw Error(detail::cat(path, ": ", e.what()));
    }
  }

  /// Presets: fmnist-tiny, bench-tiny, b16 (the paper's B/16 at 224 px).
  static SiglipConfig preset(const std::string& name) {
    SiglipConfig c;
    const auto tower = [](auto& t, int64_t width, int64_t depth, int64_t heads, int64_t mlp) {
      t.hidden_size = width;
      t.num_hidden_layers = depth;
      t.num_attention_heads = heads;
      t.intermediate_size = mlp;
    };
    if (name == "fmnist-tiny") {
      tower(c.vision, 128, 4, 4, 512);
      tower(c.text, 128, 4, 4, 512);
      c.vision.image_size = 28;
      c.vision.patch_size = 4;
      c.vision.num_channels = 1;
      c.text.vocab_size = 256;
      c.text.max_position_embeddings = 16;
      c.text.projection_size = 128;
    } else if (name == "bench-tiny") {
      tower(c.vision, 192, 6, 3, 768);
      tower(c.text, 192, 6, 3, 768);
      c.vision.image_size = 32;
      c.vision.patch_size = 4;
      c.text.vocab_size = 2048;
      c.text.max_position_embeddings = 16;
      c.text.projection_size = 192;
    } else if (name == "b16") {
      c.text.max_position_embeddings = 64;  // the defaults above are B/16's
    } else {
      throw Error(detail::cat("SiglipConfig: unknown preset '", name, "' (fmnist-tiny, bench-tiny, b16)"));
    }
    c.validate();
    return c;
  }
};

}  // namespace siglite::models
