// What siglite-embed embeds, and how: the inputs of a safetensors file (pixel_values, input_ids), image
// files and texts, each checked against the model, and their L2-normalised embeddings in batches. Kept
// apart from the program's main so that the tests reach every bad-input case.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <siglite/data/image.hpp>
#include <siglite/siglite.hpp>

namespace siglite::embed {

constexpr int64_t kBatch = 64;

/// `embed` applied to `inputs` [N, ...] in batches of kBatch rows, under InferenceMode: [N, E].
template <typename T, typename F>
Tensor<float> in_batches(const Tensor<T>& inputs, F embed) {
  InferenceMode inference;
  std::vector<Tensor<float>> parts;
  const int64_t n = inputs.size(0);
  for (int64_t i = 0; i < n; i += kBatch)
    parts.push_back(embed(inputs.slice(0, i, std::min(n, i + kBatch)).contiguous()));
  return concat(parts, 0);
}

/// The images and token ids of a safetensors file: pixel_values and input_ids, either may be absent.
struct Inputs {
  Tensor<float> pixels;  // [N, C, H, W]
  Tensor<int64_t> ids;  // [M, L]
};

inline Inputs read_inputs(const std::filesystem::path& path) {
  io::SafetensorsContents c = io::read_safetensors(path);
  const std::string where = "siglite-embed: " + path.string() + ": ";
  Inputs in;
  if (c.dtypes.count("pixel_values")) {
    SIGLITE_CHECK(c.tensors.count("pixel_values"), where, "pixel_values is ", c.dtypes.at("pixel_values"),
                  "; expected F32, F16, BF16 or F64");
    in.pixels = c.tensors.at("pixel_values");
  }
  if (c.dtypes.count("input_ids")) {
    SIGLITE_CHECK(c.int_tensors.count("input_ids"), where, "input_ids is ", c.dtypes.at("input_ids"),
                  "; expected I64 or I32");
    in.ids = c.int_tensors.at("input_ids");
  }
  if (!in.pixels.defined() && !in.ids.defined()) {
    std::string names;
    for (const auto& [name, dtype] : c.dtypes) names += (names.empty() ? "" : ", ") + name;
    throw Error(where + "holds neither pixel_values nor input_ids (its tensors: " + (names.empty() ? "none" : names) +
                ")");
  }
  return in;
}

inline void check_pixels(const Tensor<float>& pixels, const models::VisionConfig& v) {
  SIGLITE_CHECK(pixels.dim() == 4 && pixels.size(0) >= 1 && pixels.size(1) == v.num_channels &&
                    pixels.size(2) == v.image_size && pixels.size(3) == v.image_size,
                "siglite-embed: pixel_values has shape ", pixels.shape(), "; the model takes [N, ", v.num_channels,
                ", ", v.image_size, ", ", v.image_size, "] with N >= 1");
}

inline void check_ids(const Tensor<int64_t>& ids, const models::TextConfig& t) {
  SIGLITE_CHECK(ids.dim() == 2 && ids.size(0) >= 1 && ids.size(1) >= 1 && ids.size(1) <= t.max_position_embeddings,
                "siglite-embed: input_ids has shape ", ids.shape(),
                "; the model takes [M, L] with M >= 1 and 1 <= L <= ", t.max_position_embeddings);
  const Tensor<int64_t> c = ids.contiguous();
  for (int64_t k = 0; k < c.numel(); ++k) {
    const int64_t id = c.data()[k];
    SIGLITE_CHECK(id >= 0 && id < t.vocab_size, "siglite-embed: input_ids[", k / c.size(1), ", ", k % c.size(1),
                  "] = ", id, " is outside the model's vocabulary [0, ", t.vocab_size, ")");
  }
}

/// Image files decoded and preprocessed to the model's channels and size: [N, C, S, S].
inline Tensor<float> load_images(const std::vector<std::string>& paths, const models::VisionConfig& v) {
  std::vector<Tensor<float>> images;
  for (const std::string& p : paths)
    images.push_back(data::preprocess_image(data::load_image(p, v.num_channels), v.image_size));
  return stack(images, 0);
}


/// The inputs siglite-embed was given, each kind from one source: `input` a safetensors file (empty: none),
/// `images` image files and `texts` texts (empty: none), checked against the model's config. `tok` tokenises
/// the texts; it may be null when there are none (input_ids need no tokenizer).
inline Inputs collect(const std::string& input, const std::vector<std::string>& images,
                      const std::vector<std::string>& texts, const models::SiglipConfig& config,
                      const data::Tokenizer* tok) {
  SIGLITE_CHECK(!input.empty() || !images.empty() || !texts.empty(),
                "siglite-embed: nothing to embed; give --input, --images or --texts (see --help)");
  Inputs in;
  if (!input.empty()) in = read_inputs(input);
  if (!images.empty()) {
    SIGLITE_CHECK(!in.pixels.defined(), "siglite-embed: images come from both --images and the input's ",
                  "pixel_values; give one");
    in.pixels = load_images(images, config.vision);
  }
  if (!texts.empty()) {
    SIGLITE_CHECK(!in.ids.defined(), "siglite-embed: texts come from both --texts and the input's input_ids; give one");
    SIGLITE_CHECK(tok != nullptr, "siglite-embed: --texts needs a tokenizer");
    in.ids = tok->batch(texts, config.text.max_position_embeddings);
  }
  if (in.pixels.defined()) check_pixels(in.pixels, config.vision);
  if (in.ids.defined()) check_ids(in.ids, config.text);
  return in;
}

/// image_embeds [N, E] and/or text_embeds [M, E] of checked inputs (host tensors), computed on the model's device.
inline io::TensorMap embeddings(const models::SigLIP<float>& model, const Inputs& in) {
  io::TensorMap out;
  if (in.pixels.defined())
    out["image_embeds"] = in_batches(in.pixels, [&](const Tensor<float>& x) {
      return model.image_embeddings(x.to(model.device())).to(Device::cpu());
    });
  if (in.ids.defined())
    out["text_embeds"] = in_batches(in.ids, [&](const Tensor<int64_t>& x) {
      return model.text_embeddings(x.to(model.device())).to(Device::cpu());
    });
  return out;
}

}  // namespace siglite::embed
