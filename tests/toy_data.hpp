// A toy dataset and model for the tests that train: four classes of 8x8 images, a SigLIP small enough to
// take a step in milliseconds.
#pragma once
#include <string>
#include <vector>

#include <siglite/siglite.hpp>

namespace siglite::testing {

/// Four classes, each a bright quadrant of an 8x8 image with noise, captioned "a <colour> tile".
class Quadrants : public data::Dataset {
 public:
  int64_t size() const override { return 64; }
  int64_t channels() const override { return 3; }
  int64_t image_size() const override { return 8; }
  const std::vector<std::string>& class_names() const override { return names_; }
  data::Example get(int64_t i) const override {
    Generator gen(static_cast<uint64_t>(i) + 1);
    data::Example ex;
    ex.label = i % 4;
    ex.image = Tensor<float>::uniform({3, 8, 8}, gen, -0.2f, 0.2f, Device::cpu());  // examples live on the host
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 4; ++y)
        for (int64_t x = 0; x < 4; ++x) ex.image.at({c, y + 4 * (ex.label / 2), x + 4 * (ex.label % 2)}) += 0.8f;
    ex.caption = "a " + names_[size_t(ex.label)] + " tile";
    return ex;
  }

 private:
  std::vector<std::string> names_ = {"north", "east", "south", "west"};
};

inline models::SiglipConfig tiny_config() {
  models::SiglipConfig c = models::SiglipConfig::preset("fmnist-tiny");
  for (auto* t : {&c.vision.hidden_size, &c.text.hidden_size, &c.text.projection_size}) *t = 16;
  c.vision.intermediate_size = c.text.intermediate_size = 32;
  c.vision.num_hidden_layers = c.text.num_hidden_layers = 1;
  c.vision.num_attention_heads = c.text.num_attention_heads = 2;
  c.vision.image_size = 8;
  c.vision.num_channels = 3;
  c.text.vocab_size = 16;
  c.text.max_position_embeddings = 6;
  return c;
}

/// Every parameter whose name starts with `prefix`, one after another.
inline std::vector<float> flat_parameters(const nn::Module<float>& m, const std::string& prefix = "") {
  std::vector<float> out;
  for (const auto& [name, p] : m.named_parameters())
    if (name.rfind(prefix, 0) == 0)
      for (float v : p.to_vector()) out.push_back(v);
  return out;
}

inline data::WordTokenizer tokenizer(const data::Dataset& ds) {
  std::vector<std::string> captions;
  for (int64_t i = 0; i < ds.size(); ++i) captions.push_back(ds.get(i).caption);
  return data::WordTokenizer::build(captions);
}

}  // namespace siglite::testing
