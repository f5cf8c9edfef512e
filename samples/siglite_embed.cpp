// siglite-embed: the image and text embeddings of a checkpoint, written as a safetensors file.
// Inputs come as tensors (pixel_values and input_ids, as Hugging Face's SiglipProcessor makes
// them) or as image files and texts on the command line.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <siglite/data/image.hpp>
#include <siglite/siglite.hpp>
#include <string>
#include <vector>

#include "cli.hpp"


using namespace siglite;

namespace {

constexpr const char* kUsage = R"(usage: siglite-embed --checkpoint DIR --output OUT.safetensors INPUTS
  --checkpoint DIR   a siglite-train output directory (config.json, model.safetensors, word_tokenizer.json)
                     or an HF SigLIP directory (config.json, model.safetensors, spiece.model)
  --output FILE      receives image_embeds [N, E] and/or text_embeds [M, E], L2-normalised, F32
  --threads N        OpenMP threads (default: all cores)
inputs, at least one:
  --input FILE       a safetensors file with pixel_values [N, C, H, W] (F32, F16, BF16 or F64, preprocessed
                     to the model's channels and size) and/or input_ids [M, L] (I64 or I32, L at most the
                     model's text length)
  --images FILE...   PNG, JPEG or BMP files, resized and normalised as JSONL manifest images are
  --texts TEXT...    texts, tokenised with the checkpoint's tokenizer
--images and --texts take every argument up to the next one that starts with --.
)";

const cli::Spec kCli = {"siglite-embed",
                        kUsage,
                        {"checkpoint", "output", "input", "threads"},
                        {},
                        {"images", "texts"},
                        {"checkpoint", "output"}};

constexpr int64_t kBatch = 64;

/// `embed` applied to `inputs` [N, ...] in batches of kBatch rows, without a graph: [N, E].
template <typename T, typename F>
Tensor<float> in_batches(const Tensor<T>& inputs, F embed) {
  NoGradGuard no_grad;
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

Inputs read_inputs(const std::filesystem::path& path) {
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

void check_pixels(const Tensor<float>& pixels, const models::VisionConfig& v) {
  SIGLITE_CHECK(pixels.dim() == 4 && pixels.size(0) >= 1 && pixels.size(1) == v.num_channels &&
                    pixels.size(2) == v.image_size && pixels.size(3) == v.image_size,
                "siglite-embed: pixel_values has shape ", pixels.shape(), "; the model takes [N, ", v.num_channels,
                ", ", v.image_size, ", ", v.image_size, "] with N >= 1");
}

void check_ids(const Tensor<int64_t>& ids, const models::TextConfig& t) {
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
Tensor<float> load_images(const std::vector<std::string>& paths, const models::VisionConfig& v) {
  std::vector<Tensor<float>> images;
  for (const std::string& p : paths)
    images.push_back(data::preprocess_image(data::load_image(p, v.num_channels), v.image_size));
  return stack(images, 0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const cli::Args args = cli::parse(kCli, argc, argv);
    SIGLITE_CHECK(args.has("input") || args.has("images") || args.has("texts"),
                  "siglite-embed: nothing to embed; give --input, --images or --texts (see --help)");
    const std::filesystem::path dir = args.get("checkpoint", "");
    const auto model = io::load_pretrained(dir);
    const models::SiglipConfig& config = model->config();
    const auto tok = io::load_tokenizer(dir, config.text.vocab_size);

    Inputs in;
    if (args.has("input")) in = read_inputs(args.get("input", ""));
    if (args.has("images")) {
      SIGLITE_CHECK(!in.pixels.defined(), "siglite-embed: images come from both --images and the input's ",
                    "pixel_values; give one");
      in.pixels = load_images(args.list("images"), config.vision);
    }
    if (args.has("texts")) {
      SIGLITE_CHECK(!in.ids.defined(),
                    "siglite-embed: texts come from both --texts and the input's input_ids; give one");
      in.ids = tok->batch(args.list("texts"), config.text.max_position_embeddings);
    }

    io::TensorMap out;
    nlohmann::ordered_json summary = {{"output", args.get("output", "")}};
    if (in.pixels.defined()) {
      check_pixels(in.pixels, config.vision);
      out["image_embeds"] = in_batches(in.pixels, [&](const Tensor<float>& x) { return model->image_embeddings(x); });
      summary["images"] = in.pixels.size(0);
    }
    if (in.ids.defined()) {
      check_ids(in.ids, config.text);
      out["text_embeds"] = in_batches(in.ids, [&](const Tensor<int64_t>& x) { return model->text_embeddings(x); });
      summary["texts"] = in.ids.size(0);
    }
    summary["dim"] = out.begin()->second.size(1);
    io::save_safetensors(args.get("output", ""), out, {{"checkpoint", dir.string()}});
    std::cout << summary.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
