// Modules, configs, and the SigLIP model against Hugging Face's SiglipModel: the whole model
// (embeddings, logits, loss, every parameter gradient) and each layer, from the golden files
// that tests/reference/make_model_golden.py writes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <siglite/io/checkpoint.hpp>
#include <siglite/loss/sigmoid.hpp>
#include <siglite/siglite.hpp>

#include "temp_dir.hpp"

using namespace siglite;
using models::SigLIP;
using models::SiglipConfig;
using models::SiglipOutput;
using Catch::Contains;

namespace {

const std::filesystem::path kTiny = std::filesystem::path(SIGLITE_TEST_DATA) / "siglip_tiny";

template <typename T, typename U>
Tensor<T> convert(const Tensor<U>& x) {
  const std::vector<U> v = x.to_vector();
  return Tensor<T>::from_vector(std::vector<T>(v.begin(), v.end()), x.shape());
}

template <typename U>
Tensor<int64_t> ids_of(const Tensor<U>& x) {
  return convert<int64_t>(x);
}

/// The golden tensors, at the precision T: every one is stored in float64 (tests/reference/make_model_golden.py).
template <typename T>
io::TensorMapOf<T> golden_of() {
  return io::load_safetensors<T>(kTiny / "golden.safetensors");
}

/// llm.c-style comparison: |got - ref| <= atol + rtol * |ref| everywhere, or a failure that
/// names the tensor, the largest difference and where it is.
template <typename T, typename R>
void expect_close(const std::string& what, const Tensor<T>& got, const Tensor<R>& ref, double atol, double rtol) {
  INFO(what << ": shapes " << got.shape() << " and " << ref.shape());
  REQUIRE(got.defined());
  REQUIRE(got.numel() == ref.numel());
  const std::vector<T> g = got.to_vector();
  const std::vector<R> r = ref.to_vector();
  double worst = 0;
  size_t at = 0, bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::abs(double(g[i]) - double(r[i]));
    if (d > atol + rtol * std::abs(double(r[i]))) ++bad;
    if (d > worst) worst = d, at = i;
  }
  INFO(bad << " of " << g.size() << " values off; largest difference " << worst << " at " << at << " (got "
            << (g.empty() ? 0.0 : double(g[at])) << ", reference " << (r.empty() ? 0.0 : double(r[at])) << ")");
  CHECK(bad == 0);
}

/// How far the double model may lie from HF's in float64: the largest difference over every output and gradient of
/// the golden file is 7e-15 (on a value near 8.6), what another order of summation leaves; these allow seven times
/// that and more.
constexpr double kDoubleAtol = 5e-14, kDoubleRtol = 5e-14;

/// got and want equal to 1e-12, element by element: two computations of the same thing in double.
void expect_same_values(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-12));
}

/// A module's parameters by the name they have inside it.
template <typename T>
std::map<std::string, Tensor<T>> params_of(const nn::Module<T>& m) {
  std::map<std::string, Tensor<T>> out;
  for (const auto& [name, p] : m.named_parameters()) out.emplace(name, p);
  return out;
}

template <typename T>
std::unique_ptr<SigLIP<T>> load_tiny() {
  auto model = std::make_unique<SigLIP<T>>(SiglipConfig::load((kTiny / "config.json").string()));
  std::map<std::string, Tensor<T>> state;
  for (const auto& [name, t] : io::load_safetensors(kTiny / "model.safetensors")) state.emplace(name, convert<T>(t));
  model->load_state_dict(state);
  return model;
}

}  // namespace

TEST_CASE("model: HF SiglipModel golden, forward and every gradient", "[model][golden]") {
  const auto run = [&](auto tag, double atol, double rtol) {
    using T = decltype(tag);
    const io::TensorMapOf<T> golden = golden_of<T>();
    const auto model = load_tiny<T>();
    const Tensor<T> images = convert<T>(golden.at("input.pixel_values"));
    const Tensor<int64_t> ids = ids_of(golden.at("input.input_ids"));
    const auto out = model->forward(images, ids);
    expect_close("image_embeds", out.image_embeds, golden.at("output.image_embeds"), atol, rtol);
    expect_close("text_embeds", out.text_embeds, golden.at("output.text_embeds"), atol, rtol);
    expect_close("logits_per_text", out.logits_per_text, golden.at("output.logits_per_text"), atol, rtol);
    expect_close("logits_per_image", out.logits_per_image, golden.at("output.logits_per_image"), atol, rtol);
    for (auto impl : {loss::SigmoidImpl::Naive, loss::SigmoidImpl::Tiled}) {
      model->zero_grad();
      const auto o = model->forward(images, ids);
      const Tensor<T> loss = loss::sigmoid_loss(o.image_embeds, o.text_embeds, model->logit_scale, model->logit_bias, impl);
      expect_close("loss", loss.reshape({1}), golden.at("output.loss"), atol, rtol);
      loss.backward();
      for (const auto& [name, p] : model->named_parameters())
        expect_close("grad of " + name, p.grad(), golden.at("grad." + name), atol, rtol);
    }
  };
  SECTION("double") { run(double{}, kDoubleAtol, kDoubleRtol); }
  SECTION("float") { run(float{}, 1e-4, 1e-4); }
}

TEST_CASE("model: each layer matches its HF counterpart", "[model][golden]") {
  const io::TensorMapOf<double> golden = golden_of<double>();
  const auto model = load_tiny<double>();
  const auto& vision = *model->vision_model;
  const auto& text = *model->text_model;
  const auto check = [&](const std::string& path, const nn::Module<double>& module, auto forward) {
    INFO("layer " << path);
    const std::string key = "layer." + path;
    const bool image_input = path == "vision_model.embeddings";
    Tensor<double> x = convert<double>(golden.at(key + ".input")).set_requires_grad();
    model->zero_grad();
    const Tensor<double> y = forward(x);
    expect_close(path + " output", y, golden.at(key + ".output"), kDoubleAtol, kDoubleRtol);
    sum(y * convert<double>(golden.at(key + ".cot"))).backward();
    if (golden.count(key + ".grad_input"))
      expect_close(path + " input grad", x.grad(), golden.at(key + ".grad_input"), kDoubleAtol, kDoubleRtol);
    for (const auto& [name, p] : params_of(module))
      expect_close(path + " grad of " + name, p.grad(), golden.at(key + ".grad." + name), kDoubleAtol, kDoubleRtol);
    CHECK((image_input || x.grad().defined()));
  };
  const auto& layer0 = *vision.encoder->layers->items()[0];
  check("vision_model.embeddings", *vision.embeddings, [&](const auto& x) { return vision.embeddings->forward(x); });
  check("vision_model.encoder.layers.0", layer0, [&](const auto& x) { return layer0.forward(x); });
  check("vision_model.encoder.layers.0.self_attn", *layer0.self_attn,
        [&](const auto& x) { return layer0.self_attn->forward(x); });
  check("vision_model.encoder.layers.0.mlp", *layer0.mlp, [&](const auto& x) { return layer0.mlp->forward(x); });
  check("vision_model.encoder.layers.0.layer_norm1", *layer0.layer_norm1,
        [&](const auto& x) { return layer0.layer_norm1->forward(x); });
  check("vision_model.post_layernorm", *vision.post_layernorm,
        [&](const auto& x) { return vision.post_layernorm->forward(x); });
  check("vision_model.head", *vision.head, [&](const auto& x) { return vision.head->forward(x); });
  const auto& text1 = *text.encoder->layers->items()[1];
  check("text_model.encoder.layers.1", text1, [&](const auto& x) { return text1.forward(x); });
  check("text_model.head", *text.head, [&](const auto& x) { return text.head->forward(x); });

  // The last text layer as the tower runs it, at the pooled position only: that row of the reference output, and
  // the gradients of the whole layer with the other rows' cotangent zero.
  const std::string key = "layer.text_model.encoder.layers.1";
  const Tensor<double> x = convert<double>(golden.at(key + ".input")).set_requires_grad();
  const int64_t at = x.size(1) - 1;
  const Tensor<double> cot = convert<double>(golden.at(key + ".cot"));
  const Tensor<double> cot_at = cot.slice(1, at, at + 1).contiguous();
  // Gradients of sum(y * c) with respect to x and module's parameters.
  const auto grads = [&](const nn::Module<double>& module, const Tensor<double>& y, const Tensor<double>& c) {
    model->zero_grad();
    x.zero_grad();
    sum(y * c).backward();
    std::vector<std::vector<double>> g{x.grad().to_vector()};
    for (const auto& [name, p] : params_of(module)) g.push_back(p.grad().to_vector());
    return g;
  };
  const auto expect_same = [](const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want) {
    REQUIRE(got.size() == want.size());
    for (size_t t = 0; t < got.size(); ++t) expect_same_values(got[t], want[t]);
  };
  const Tensor<double> one = text1.forward_at(x, at);
  expect_close("forward_at output", one, golden.at(key + ".output").slice(1, at, at + 1), kDoubleAtol, kDoubleRtol);
  std::vector<double> only(static_cast<size_t>(x.size(1)), 0.0);
  only[static_cast<size_t>(at)] = 1;
  expect_same(grads(text1, one, cot_at),
              grads(text1, text1.forward(x), cot * Tensor<double>::from_vector(only, {1, x.size(1), 1})));

  // The whole encoder at every position, with the last key of the last item masked: forward_at against the slice
  // of forward, in value and in every gradient.
  std::vector<double> pad(static_cast<size_t>(x.size(0) * x.size(1)), 0.0);
  pad.back() = -std::numeric_limits<double>::infinity();
  const Tensor<double> mask = Tensor<double>::from_vector(pad, {x.size(0), 1, 1, x.size(1)});
  Generator gen(3);
  for (int64_t pos = 0; pos < x.size(1); ++pos) {
    INFO("position " << pos);
    const Tensor<double> whole = text.encoder->forward(x, mask).slice(1, pos, pos + 1);
    const Tensor<double> part = text.encoder->forward_at(x, pos, mask);
    expect_same_values(part.to_vector(), whole.contiguous().to_vector());
    const Tensor<double> c = Tensor<double>::randn(part.shape(), gen);
    expect_same(grads(*text.encoder, part, c), grads(*text.encoder, whole, c));
  }
}

TEST_CASE("model: the text tower pools the first or the last position, as the full encoder's output sliced there",
          "[model]") {
  models::TextConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.max_position_embeddings = 5;
  c.projection_size = 6;
  Generator gen(4);
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector({3, 7, 2, 1, 1, 4, 9, 1, 1, 1}, {2, 5});
  const Tensor<int64_t> keep = Tensor<int64_t>::from_vector({1, 1, 1, 1, 0, 1, 1, 1, 0, 0}, {2, 5});
  for (const models::TextPooling pooling : {models::TextPooling::First, models::TextPooling::Last}) {
    c.pooling = pooling;
    const models::TextTransformer<double> text(c, gen);
    const int64_t pos = pooling == models::TextPooling::Last ? 4 : 0;
    for (const Tensor<int64_t>& attention_mask : {Tensor<int64_t>(), keep}) {
      INFO("pooling " << to_string(pooling) << (attention_mask.defined() ? ", with an attention mask" : ""));
      const double off = -std::numeric_limits<double>::infinity();
      Tensor<double> mask;
      if (attention_mask.defined()) mask = Tensor<double>::from_vector({0, 0, 0, 0, off, 0, 0, 0, off, off}, {2, 1, 1, 5});
      const Tensor<double> tokens = text.final_layer_norm->forward(text.encoder->forward(text.embeddings->forward(ids), mask));
      expect_same_values(text.forward(ids, attention_mask).to_vector(),
                         text.head->forward(tokens.slice(1, pos, pos + 1).reshape({2, 8})).to_vector());
    }
  }
}

TEST_CASE("model: every HF SiglipModel name and shape, and nothing else", "[model]") {
  const io::TensorMap hf = io::load_safetensors(kTiny / "model.safetensors");
  const auto model = load_tiny<float>();
  const auto mine = model->state_dict();
  REQUIRE(mine.size() == hf.size());
  for (const auto& [name, t] : hf) {
    INFO(name);
    REQUIRE(mine.count(name));
    CHECK(mine.at(name).shape() == t.shape());
  }
  const SigLIP<float> b16(SiglipConfig::preset("b16"));
  const auto params = b16.state_dict();
  CHECK(params.at("vision_model.embeddings.patch_embedding.weight").shape() == Shape{768, 3, 16, 16});
  CHECK(params.at("vision_model.embeddings.position_embedding.weight").shape() == Shape{196, 768});
  CHECK(params.at("vision_model.head.attention.in_proj_weight").shape() == Shape{2304, 768});
  CHECK(params.at("vision_model.encoder.layers.11.mlp.fc1.weight").shape() == Shape{3072, 768});
  CHECK(params.at("text_model.embeddings.token_embedding.weight").shape() == Shape{32000, 768});
  CHECK(params.at("text_model.embeddings.position_embedding.weight").shape() == Shape{64, 768});
  CHECK(params.at("logit_scale").item() == Approx(std::log(10.0)));
  CHECK(params.at("logit_bias").item() == -10.0f);
  CHECK(b16.num_parameters() > 200'000'000);
}

TEST_CASE("model: an HF directory loads, and a saved one reproduces the outputs bit for bit", "[model]") {
  const auto model = io::load_pretrained(kTiny);
  const io::TensorMapOf<float> golden = golden_of<float>();
  const Tensor<float> images = golden.at("input.pixel_values").to(default_device());
  const Tensor<int64_t> ids = ids_of(golden.at("input.input_ids"));
  const auto before = model->forward(images, ids);
  const TempDir dir;
  io::save_pretrained(*model, dir.path);
  const auto again = io::load_pretrained(dir.path);
  const auto after = again->forward(images, ids);
  CHECK(after.logits_per_text.to_vector() == before.logits_per_text.to_vector());
  CHECK(after.image_embeds.to_vector() == before.image_embeds.to_vector());
  CHECK(again->config().to_json() == model->config().to_json());
  // transformers' from_pretrained refuses a safetensors file without format "pt" in its metadata.
  CHECK(io::read_safetensors(dir / "model.safetensors").metadata.at("format") == "pt");
}

TEST_CASE("model: a sharded HF directory (model.safetensors.index.json) loads as the single file does", "[model]") {
  const io::TensorMap all = io::load_safetensors(kTiny / "model.safetensors");
  const TempDir dir;
  std::filesystem::copy_file(kTiny / "config.json", dir / "config.json");
  io::TensorMap shards[2];
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  const char* names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  size_t k = 0;
  for (const auto& [name, t] : all) {
    shards[k % 2][name] = t;
    index["weight_map"][name] = names[k % 2];
    ++k;
  }
  for (int i = 0; i < 2; ++i) io::save_safetensors(dir / names[i], shards[i]);
  const auto write_index = [&](const nlohmann::json& j) {
    std::ofstream(dir / "model.safetensors.index.json") << j.dump();
  };
  write_index(index);
  const auto sharded = io::load_pretrained(dir.path), single = io::load_pretrained(kTiny);
  for (const auto& [name, t] : single->state_dict()) {
    INFO(name);
    CHECK(sharded->state_dict().at(name).to_vector() == t.to_vector());
  }
  nlohmann::json wrong = index;
  wrong["weight_map"]["logit_bias"] = index["weight_map"]["logit_bias"].get<std::string>() == names[0] ? names[1] : names[0];
  write_index(wrong);
  CHECK_THROWS_WITH(io::load_pretrained(dir.path), Contains("holds no tensor logit_bias") && Contains("places there"));
  wrong = index;
  wrong["weight_map"]["logit_bias"] = "../model.safetensors";
  write_index(wrong);
  CHECK_THROWS_WITH(io::load_pretrained(dir.path), Contains("not a file name in the directory"));
  wrong = index;
  wrong["weight_map"].erase("logit_bias");
  write_index(wrong);
  CHECK_THROWS_WITH(io::load_pretrained(dir.path), Contains("load_pretrained") && Contains("missing: logit_bias"));
  std::ofstream(dir / "model.safetensors.index.json") << "{\"weight_map\": 3}";
  CHECK_THROWS_WITH(io::load_pretrained(dir.path), Contains("is not JSON with a weight_map object"));
}

TEST_CASE("InferenceMode: the outputs of NoGradGuard bit for bit, each weight packed once a scope", "[model]") {
  const auto model = load_tiny<float>();
  const io::TensorMapOf<float> golden = golden_of<float>();
  const Tensor<float> images = golden.at("input.pixel_values").to(default_device());
  const Tensor<int64_t> ids = ids_of(golden.at("input.input_ids"));
  const auto same = [](const SiglipOutput<float>& a, const SiglipOutput<float>& b) {
    CHECK(a.image_embeds.to_vector() == b.image_embeds.to_vector());
    CHECK(a.text_embeds.to_vector() == b.text_embeds.to_vector());
    CHECK(a.logits_per_text.to_vector() == b.logits_per_text.to_vector());
  };
  const Tensor<float> one_image = images.slice(0, 0, 1);
  const Tensor<int64_t> one_text = ids.slice(0, 0, 1);
  SiglipOutput<float> plain, plain_one;  // outside any InferenceMode: packed afresh on every call
  {
    NoGradGuard no_grad;
    plain = model->forward(images, ids);
    plain_one = model->forward(one_image, one_text);
  }
  const SiglipConfig& c = model->config();
  // Linear weights: the patch kernel, q|k|v, out, fc1 and fc2 of every layer, the MAP head's three in-projection
  // slices, out_proj, fc1 and fc2, and the text head.
  const size_t linears = 1 + 4 * c.vision.num_hidden_layers + 6 + 4 * c.text.num_hidden_layers + 1;
  const size_t stacked = 2 * (c.vision.num_hidden_layers + c.text.num_hidden_layers);  // q|k|v weights and biases
  {
    InferenceMode inference;
    CHECK_FALSE(grad_enabled());
    same(model->forward(images, ids), plain);
#ifdef SIGLITE_WITH_ONEDNN
    CHECK(InferenceMode::cached_weights(Device::cpu()) == linears);
#endif
    CHECK(InferenceMode::derived_count() == stacked);
    same(model->forward(images, ids), plain);  // served from the packed copies
    {
      InferenceMode nested;
      same(model->forward(one_image, one_text), plain_one);
    }
    CHECK(InferenceMode::active());
#ifdef SIGLITE_WITH_ONEDNN
    CHECK(InferenceMode::cached_weights(Device::cpu()) == linears);  // other row counts, the same weights
#endif
    CHECK(InferenceMode::derived_count() == stacked);
  }
  CHECK_FALSE(InferenceMode::active());
  CHECK(grad_enabled());
  CHECK(InferenceMode::cached_weights(Device::cpu()) == 0);
  CHECK(InferenceMode::derived_count() == 0);
}

TEST_CASE("InferenceMode: a new scope sees weights changed since the last one, and changing them inside is refused",
          "[model][errors]") {
  const auto model = load_tiny<float>();
  const io::TensorMapOf<float> golden = golden_of<float>();
  const Tensor<float> images = golden.at("input.pixel_values").to(default_device());
  const Tensor<int64_t> ids = ids_of(golden.at("input.input_ids"));
  std::vector<float> before;
  {
    InferenceMode inference;
    before = model->forward(images, ids).logits_per_text.to_vector();
  }
  // Scale every projection's parameters and every fc1 weight in place, as an optimizer step would change them; a
  // second model is given the same weights through load_state_dict.
  const auto scaled = [](const std::string& name) {
    return name.find("proj") != std::string::npos || name.find("fc1.weight") != std::string::npos;
  };
  std::map<std::string, Tensor<float>> state;
  for (const auto& [name, p] : model->named_parameters()) {
    state.emplace(name, scaled(name) ? p * 1.5f : p.clone());
    if (scaled(name))
      kernels::on<float>(p.device()).unary(kernels::Unary::MulScalar, p.device_ptr(), p.device_ptr(), p.numel(), 1.5f);
  }
  const auto other = load_tiny<float>();
  other->load_state_dict(state);
  std::vector<float> changed, expected;
  {
    NoGradGuard no_grad;
    changed = model->forward(images, ids).logits_per_text.to_vector();
    expected = other->forward(images, ids).logits_per_text.to_vector();
  }
  REQUIRE(changed == expected);
  double moved = 0;
  for (size_t i = 0; i < changed.size(); ++i) moved = std::max(moved, double(std::abs(changed[i] - before[i])));
  REQUIRE(moved > 0.1);  // the scaling shows in the logits, far beyond rounding
  {
    InferenceMode inference;
    CHECK(model->forward(images, ids).logits_per_text.to_vector() == changed);
    optim::AdamW opt(model->named_parameters());
    CHECK_THROWS_WITH(opt.step(), Contains("AdamW") && Contains("InferenceMode"));
    CHECK_THROWS_WITH(model->load_state_dict(model->state_dict()), Contains("load_state_dict") && Contains("InferenceMode"));
  }
}

TEST_CASE("model: a checkpoint that does not fit names every difference", "[model]") {
  SiglipConfig c = SiglipConfig::load((kTiny / "config.json").string());
  c.vision.intermediate_size = 24;
  c.text.num_hidden_layers = 1;
  SigLIP<float> other(c);
  CHECK_THROWS_WITH(io::load_safetensors(other, kTiny / "model.safetensors"),
                    Contains("unexpected: text_model.encoder.layers.1") &&
                        Contains("vision_model.encoder.layers.0.mlp.fc1.weight (checkpoint [32,16], model [24,16])"));
  io::load_safetensors(other, kTiny / "model.safetensors", false);  // non-strict: loads what fits
  const io::TensorMap hf = io::load_safetensors(kTiny / "model.safetensors");
  CHECK(other.logit_bias.item() == hf.at("logit_bias").item());
  CHECK(other.text_model->head->weight.to_vector() == hf.at("text_model.head.weight").to_vector());
}

TEST_CASE("model: bad inputs", "[model][errors]") {
  const auto model = load_tiny<float>();
  Generator gen(1);
  const auto ids = Tensor<int64_t>::ones({2, 6});
  CHECK_THROWS_WITH(model->forward(Tensor<float>::zeros({2, 3, 16, 16}), ids),
                    Contains("VisionTransformer") && Contains("[2,3,16,16]") && Contains("[N, 3, 8, 8]"));
  CHECK_THROWS_WITH(model->text_embeddings(Tensor<int64_t>::ones({2, 7})),
                    Contains("TextTransformer") && Contains("[2,7]"));
  CHECK_THROWS_WITH(model->text_embeddings(Tensor<int64_t>::full({1, 6}, 20)), Contains("index 20") && Contains("[0, 20)"));
  CHECK_THROWS_WITH(model->text_model->forward(ids, Tensor<int64_t>::ones({2, 5})), Contains("attention mask"));
  CHECK_THROWS_WITH(model->vision_model->encoder->layers->items()[0]->self_attn->forward(Tensor<float>::zeros({2, 16})),
                    Contains("SelfAttention") && Contains("[2,16]"));
  CHECK_THROWS_WITH(model->text_model->head->forward(Tensor<float>::zeros({2, 15})), Contains("Linear") && Contains("[2,15]"));
  CHECK_THROWS_WITH(model->text_model->encoder->forward_at(Tensor<float>::zeros({2, 6, 16}), 6),
                    Contains("Encoder") && Contains("position 6") && Contains("[2,6,16]"));
  CHECK_THROWS_WITH(model->text_model->encoder->forward_at(Tensor<float>::zeros({6, 16}), 0),
                    Contains("Encoder") && Contains("[6,16]") && Contains("[batch, length, width]"));
}

TEST_CASE("model: the text attention mask hides padding as HF's does", "[model][golden]") {
  const auto model = load_tiny<double>();
  const io::TensorMapOf<double> golden = golden_of<double>();
  // HF's text tower with position 4 (EOS padding) hidden from every query; with every position kept, the mask
  // changes nothing.
  const Tensor<int64_t> ids = ids_of(golden.at("text_masked.input_ids"));
  const Tensor<int64_t> some = ids_of(golden.at("text_masked.attention_mask"));
  expect_close("masked text embedding", model->text_model->forward(ids, some), golden.at("text_masked.output"),
               kDoubleAtol, kDoubleRtol);
  // The case exercises the mask: without it the embedding is another.
  const std::vector<double> unmasked = model->text_model->forward(ids).to_vector(),
                            masked = golden.at("text_masked.output").to_vector();
  double moved = 0;
  for (size_t i = 0; i < masked.size(); ++i) moved = std::max(moved, std::abs(masked[i] - unmasked[i]));
  CHECK(moved > 1e-2);
  const auto all = Tensor<int64_t>::ones(ids.shape());
  CHECK(model->text_model->forward(ids, all).to_vector() == model->text_model->forward(ids).to_vector());
}

TEST_CASE("modules: names, state, freezing and modes", "[nn]") {
  struct Net : nn::Module<float> {
    explicit Net(Generator& gen) {
      fc = register_module("fc", std::make_shared<nn::Linear<float>>(3, 2, gen));
      norm = register_module("norm", std::make_shared<nn::LayerNorm<float>>(2));
      scale = register_buffer("scale", Tensor<float>::ones({1}));
    }
    std::shared_ptr<nn::Linear<float>> fc;
    std::shared_ptr<nn::LayerNorm<float>> norm;
    Tensor<float> scale;
    void bad_name() { register_parameter("a.b", Tensor<float>::zeros({1})); }
    void twice() { register_parameter("fc", Tensor<float>::zeros({1})); }
  };
  Generator gen(2);
  Net net(gen);
  std::vector<std::string> names;
  for (const auto& [name, p] : net.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"fc.weight", "fc.bias", "norm.weight", "norm.bias"});
  CHECK(net.state_dict().count("scale"));
  CHECK(net.num_parameters() == 6 + 2 + 2 + 2);
  CHECK_THROWS_WITH(net.bad_name(), Contains("'a.b'") && Contains("'.'"));
  CHECK_THROWS_WITH(net.twice(), Contains("'fc'") && Contains("twice"));
  net.fc->freeze();
  CHECK(net.num_parameters(true) == 4);
  CHECK_FALSE(net.fc->weight.requires_grad());
  net.unfreeze();
  CHECK(net.num_parameters(true) == 12);
  net.eval();
  CHECK_FALSE(net.fc->is_training());
  net.train();
  CHECK(net.norm->is_training());
  auto state = net.state_dict();
  state.erase("norm.bias");
  state.emplace("extra", Tensor<float>::zeros({1}));
  state["fc.weight"] = Tensor<float>::zeros({3, 3});
  CHECK_THROWS_WITH(net.load_state_dict(state),
                    Contains("1 missing: norm.bias") && Contains("1 unexpected: extra") &&
                        Contains("fc.weight (checkpoint [3,3], model [2,3])"));
  const auto fresh = Tensor<float>::full({2}, 7.0f);
  net.load_state_dict({{"norm.weight", fresh}}, false);
  CHECK(net.norm->weight.to_vector() == std::vector<float>{7, 7});
}

TEST_CASE("modules: Dropout follows train() and eval() of the tree it is in", "[nn]") {
  struct Net : nn::Module<float> {
    Net() { drop = register_module("drop", std::make_shared<nn::Dropout<float>>(0.5, 3)); }
    std::shared_ptr<nn::Dropout<float>> drop;
  };
  Net net;
  const Tensor<float> x = Tensor<float>::ones({1000});
  const auto zeros = [](const Tensor<float>& y) {
    int64_t n = 0;
    for (float v : y.to_vector()) n += v == 0.0f;
    return n;
  };
  const int64_t dropped = zeros(net.drop->forward(x));
  CHECK(dropped > 400);
  CHECK(dropped < 600);
  net.eval();
  CHECK(net.drop->forward(x).to_vector() == x.to_vector());
  net.train();
  CHECK(zeros(net.drop->forward(x)) > 400);
  for (float v : net.drop->forward(x).to_vector()) CHECK((v == 0.0f || v == 2.0f));  // kept ones scaled by 1/(1-p)
  const nn::Dropout<float> a(0.5, 9), b(0.5, 9);
  CHECK(a.forward(x).to_vector() == b.forward(x).to_vector());  // the seed fixes the masks
  CHECK_THROWS_WITH(nn::Dropout<float>(1.5, 0), Contains("Dropout") && Contains("1.5"));
}

TEST_CASE("model: the fixed 2-D sin-cos position embedding", "[model]") {
  const Tensor<double> made = nn::init::sincos_2d<double>(2, 3, 8);  // 2 rows, 3 columns of patches
  CHECK(made.device() == default_device());
  const Tensor<double> pe = made.cpu();
  REQUIRE(pe.shape() == Shape{6, 8});
  // Patch (y=1, x=2) is row 5; with dim 8 the frequencies are 1 and 1e-4.
  const double expect[8] = {std::sin(2.0), std::sin(2e-4), std::cos(2.0), std::cos(2e-4),
                            std::sin(1.0), std::sin(1e-4), std::cos(1.0), std::cos(1e-4)};
  for (int64_t k = 0; k < 8; ++k) CHECK(pe.at({5, k}) == Approx(expect[k]).epsilon(1e-12));
  SiglipConfig c = SiglipConfig::load((kTiny / "config.json").string());
  c.vision.posemb = models::PositionEmbedding::SinCos2d;
  const SigLIP<float> model(c);
  CHECK_FALSE(model.state_dict().count("vision_model.embeddings.position_embedding.weight"));
  CHECK(model.image_embeddings(Tensor<float>::zeros({2, 3, 8, 8})).shape() == Shape{2, 16});
  CHECK(c.to_json()["vision_config"]["siglite_posemb"] == "sincos2d");
  CHECK(SiglipConfig::from_json(c.to_json()).vision.posemb == models::PositionEmbedding::SinCos2d);
  nlohmann::json j = c.to_json();
  j["vision_config"]["siglite_posemb"] = "rope";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("posemb 'rope' is not learn or sincos2d"));
  j["vision_config"]["siglite_posemb"] = "learn";
  j["vision_config"]["siglite_pooling"] = "cls";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("vision pooling 'cls' is not map, gap or none"));
  j["vision_config"]["siglite_pooling"] = "gap";
  j["text_config"]["siglite_pooling"] = "mean";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("text pooling 'mean' is not last or first"));
}

TEST_CASE("config: HF config.json form, presets and errors", "[nn]") {
  const SiglipConfig tiny = SiglipConfig::preset("fmnist-tiny");
  CHECK(tiny.vision.image_size == 28);
  CHECK(tiny.vision.num_channels == 1);
  CHECK(tiny.vision.num_patches() == 49);
  CHECK(tiny.text.max_position_embeddings == 16);
  const SiglipConfig bench = SiglipConfig::preset("bench-tiny");
  CHECK(bench.vision.hidden_size == 192);
  CHECK(bench.text.vocab_size == 2048);
  CHECK(bench.vision.num_hidden_layers == 6);
  const SiglipConfig round = SiglipConfig::from_json(bench.to_json());
  CHECK(round.to_json() == bench.to_json());
  CHECK(bench.to_json()["vision_config"]["patch_size"] == 4);
  CHECK(bench.to_json()["text_config"]["max_position_embeddings"] == 16);
  const SiglipConfig hf = SiglipConfig::load((kTiny / "config.json").string());
  CHECK(hf.vision.hidden_act == "gelu_pytorch_tanh");
  CHECK(hf.text.projection_size == 16);
  CHECK_THROWS_WITH(SiglipConfig::preset("huge"), Contains("unknown preset 'huge'"));
  auto j = bench.to_json();
  j["vision_config"]["patch_size"] = 5;
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("image_size 32") && Contains("patch_size 5"));
  j = bench.to_json();
  j["text_config"]["hidden_act"] = "relu";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("hidden_act 'relu'"));
  j = bench.to_json();
  j["text_config"]["hidden_size"] = "wide";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("hidden_size must be an integer, got \"wide\""));
  j["text_config"]["hidden_size"] = 1e300;  // a cast to int64_t would be undefined behaviour
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("hidden_size must be an integer, got 1e+300"));
  j = bench.to_json();
  j["text_config"]["layer_norm_eps"] = "small";
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("wrong type"));
  // Absurd sizes are refused by validation, with the limit named.
  j = bench.to_json();
  j["vision_config"]["intermediate_size"] = 1 << 20;
  CHECK_THROWS_WITH(SiglipConfig::from_json(j),
                    Contains("vision_config.intermediate_size = 1048576 is larger than the limit of 65536"));
  j = bench.to_json();
  j["text_config"]["vocab_size"] = int64_t(1) << 40;
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("text_config.vocab_size") && Contains("limit of 4194304"));
  j = bench.to_json();
  j["vision_config"]["image_size"] = 4096;
  j["vision_config"]["patch_size"] = 2;
  CHECK_THROWS_WITH(SiglipConfig::from_json(j), Contains("makes 4194304 patches, more than the limit of 1048576"));
  // A file's errors name the file.
  TempDir dir;
  j = bench.to_json();
  j["text_config"]["hidden_act"] = "relu";
  std::ofstream((dir / "config.json").string()) << j.dump();
  CHECK_THROWS_WITH(SiglipConfig::load((dir / "config.json").string()),
                    Contains((dir / "config.json").string()) && Contains("hidden_act 'relu'"));
  CHECK_THROWS_WITH(SiglipConfig::load("/nonexistent/config.json"), Contains("cannot open"));
}
