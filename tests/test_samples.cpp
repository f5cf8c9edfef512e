// What the sample programs do beyond the library: siglite-embed's inputs (samples/embed.hpp), every way
// they can be wrong, and the embeddings it writes.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "samples/embed.hpp"
#include "temp_dir.hpp"

using namespace siglite;
using Catch::Matchers::Contains;

namespace {

struct EmbedFixture {
  models::SiglipConfig config = models::SiglipConfig::preset("fmnist-tiny");  // 1 x 28 x 28 images, length 16
  models::SigLIP<float> model{config, 3};
  data::WordTokenizer tok = data::WordTokenizer::build({"a shirt", "a boot", "a bag"});
  TempDir dir;
};

/// A safetensors file with one I64 tensor, written byte by byte (save_safetensors writes float tensors only).
void write_i64(const std::filesystem::path& path, const std::string& name, const std::vector<int64_t>& values,
               const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  const size_t bytes = values.size() * sizeof(int64_t);
  const std::string header = "{\"" + name + "\":{\"dtype\":\"I64\",\"shape\":[" + dims + "],\"data_offsets\":[0," +
                             std::to_string(bytes) + "]}}";
  const uint64_t n = header.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), sizeof n);
  out.write(header.data(), static_cast<std::streamsize>(n));
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(bytes));
}

}  // namespace

TEST_CASE("siglite-embed: pixel_values and input_ids give the model's L2-normalised embeddings", "[samples]") {
  EmbedFixture f;
  Generator gen(5);
  // More rows than one batch of embed::kBatch, so the batches are stitched together.
  const int64_t n = embed::kBatch + 3;
  const Tensor<float> pixels = Tensor<float>::randn({n, 1, 28, 28}, gen);
  io::save_safetensors(f.dir / "pixels.safetensors", io::TensorMap{{"pixel_values", pixels}});
  write_i64(f.dir / "ids.safetensors", "input_ids", {4, 5, 1, 3, 1, 1}, {2, 3});

  const embed::Inputs in = embed::collect((f.dir / "pixels.safetensors").string(), {}, {"a shirt", "a bag"}, f.config,
                                          &f.tok);
  const io::TensorMap out = embed::embeddings(f.model, in);
  REQUIRE(out.count("image_embeds"));
  REQUIRE(out.count("text_embeds"));
  const Tensor<float> img = out.at("image_embeds");
  REQUIRE(img.shape() == Shape({n, 128}));
  {
    NoGradGuard no_grad;
    const std::vector<float> direct = f.model.image_embeddings(pixels).to_vector(), got = img.to_vector();
    double worst = 0;
    for (size_t k = 0; k < got.size(); ++k) worst = std::max(worst, double(std::abs(got[k] - direct[k])));
    CHECK(worst < 1e-5);
  }
  for (int64_t r = 0; r < n; ++r) {
    double norm = 0;
    for (int64_t c = 0; c < 128; ++c) norm += double(img.at({r, c})) * double(img.at({r, c}));
    CHECK(std::abs(norm - 1.0) < 1e-5);
  }
  CHECK(out.at("text_embeds").shape() == Shape({2, 128}));

  // input_ids need no tokenizer.
  const embed::Inputs ids = embed::collect((f.dir / "ids.safetensors").string(), {}, {}, f.config, nullptr);
  CHECK_FALSE(ids.pixels.defined());
  CHECK(ids.ids.to_vector() == std::vector<int64_t>{4, 5, 1, 3, 1, 1});
}

TEST_CASE("siglite-embed: every bad input is an error that says what is wrong", "[samples][errors]") {
  EmbedFixture f;
  const auto path = [&](const char* name) { return (f.dir / name).string(); };
  Generator gen(6);
  io::save_safetensors(f.dir / "pixels.safetensors",
                       io::TensorMap{{"pixel_values", Tensor<float>::randn({2, 1, 28, 28}, gen)}});
  io::save_safetensors(f.dir / "rgb.safetensors", io::TensorMap{{"pixel_values", Tensor<float>::randn({2, 3, 28, 28}, gen)}});
  io::save_safetensors(f.dir / "other.safetensors", io::TensorMap{{"weight", Tensor<float>::randn({2, 2}, gen)}});
  io::save_safetensors(f.dir / "float_ids.safetensors", io::TensorMap{{"input_ids", Tensor<float>::zeros({2, 4})}});
  write_i64(f.dir / "ids.safetensors", "input_ids", {4, 5, 1}, {1, 3});
  write_i64(f.dir / "far_id.safetensors", "input_ids", {4, 999, 1}, {1, 3});
  write_i64(f.dir / "long.safetensors", "input_ids", std::vector<int64_t>(17, 1), {1, 17});
  write_i64(f.dir / "flat.safetensors", "input_ids", {4, 5, 1}, {3});

  const auto collect = [&](const std::string& input, const std::vector<std::string>& images,
                           const std::vector<std::string>& texts) {
    return embed::collect(input, images, texts, f.config, &f.tok);
  };
  CHECK_THROWS_WITH(collect("", {}, {}), Contains("nothing to embed"));
  CHECK_THROWS_WITH(collect(path("missing.safetensors"), {}, {}), Contains("missing.safetensors"));
  CHECK_THROWS_WITH(collect(path("other.safetensors"), {}, {}),
                    Contains("holds neither pixel_values nor input_ids (its tensors: weight)"));
  CHECK_THROWS_WITH(collect(path("float_ids.safetensors"), {}, {}), Contains("input_ids is F32; expected I64 or I32"));
  CHECK_THROWS_WITH(collect(path("rgb.safetensors"), {}, {}),
                    Contains("pixel_values has shape [2,3,28,28]; the model takes [N, 1, 28, 28]"));
  CHECK_THROWS_WITH(collect(path("far_id.safetensors"), {}, {}),
                    Contains("input_ids[0, 1] = 999 is outside the model's vocabulary [0, 256)"));
  CHECK_THROWS_WITH(collect(path("long.safetensors"), {}, {}), Contains("1 <= L <= 16"));
  CHECK_THROWS_WITH(collect(path("flat.safetensors"), {}, {}), Contains("input_ids has shape [3]"));
  CHECK_THROWS_WITH(collect(path("pixels.safetensors"), {path("a.png")}, {}),
                    Contains("images come from both --images and the input's pixel_values"));
  CHECK_THROWS_WITH(collect(path("ids.safetensors"), {}, {"a shirt"}),
                    Contains("texts come from both --texts and the input's input_ids"));
  CHECK_THROWS_WITH(collect("", {path("no_such_image.png")}, {}), Contains("no_such_image.png"));
  CHECK_THROWS_WITH(embed::collect("", {}, {"a shirt"}, f.config, nullptr), Contains("--texts needs a tokenizer"));
  std::ofstream(f.dir / "not_an_image.png") << "plain text";
  CHECK_THROWS_WITH(collect("", {path("not_an_image.png")}, {}), Contains("not_an_image.png"));
}
