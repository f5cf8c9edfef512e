// siglite-embed: the image and text embeddings of a checkpoint, written as a safetensors file.
// Inputs come as tensors (pixel_values and input_ids, as Hugging Face's SiglipProcessor makes
// them) or as image files and texts on the command line.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <siglite/siglite.hpp>

#include "cli.hpp"
#include "embed.hpp"

using namespace siglite;

namespace {

constexpr const char* kUsage = R"(usage: siglite-embed --checkpoint DIR --output OUT.safetensors INPUTS
  --checkpoint DIR   a siglite-train output directory (config.json, model.safetensors, word_tokenizer.json)
                     or an HF SigLIP directory (config.json, model.safetensors, spiece.model); the tokenizer
                     is read only for --texts
  --output FILE      receives image_embeds [N, E] and/or text_embeds [M, E], L2-normalised, F32
  --device NAME      cpu (default) or cuda[:N]
  --threads N        OpenMP threads (default: all cores)
inputs, at least one:
  --input FILE       a safetensors file with pixel_values [N, C, H, W] (F32, F16, BF16 or F64, preprocessed
                     to the model's channels and size) and/or input_ids [M, L] (I64 or I32, L at most the
                     model's text length)
  --images FILE...   PNG, JPEG or BMP files, resized and normalised as JSONL manifest images are
  --texts TEXT...    texts, tokenised with the checkpoint's tokenizer (which must then be there)
--images and --texts take every argument up to the next one that starts with --.
)";

const cli::Spec kCli = {"siglite-embed",
                        kUsage,
                        {"checkpoint", "output", "input", "device", "threads"},
                        {},
                        {"images", "texts"},
                        {"checkpoint", "output"}};

}  // namespace

int main(int argc, char** argv) {
  try {
    const cli::Args args = cli::parse(kCli, argc, argv);
    const Device device = cli::device(args);
    const std::filesystem::path dir = args.get("checkpoint", "");
    const auto model = io::load_pretrained(dir);
    model->to(device);
    const models::SiglipConfig& config = model->config();
    // A tokenizer is needed only for texts given as strings: a directory without one (what transformers'
    // save_pretrained writes) embeds pixel_values and input_ids.
    const std::vector<std::string> texts = args.list("texts");
    const auto tok = texts.empty() ? nullptr : io::load_tokenizer(dir, config.text.vocab_size);

    const embed::Inputs in = embed::collect(args.get("input", ""), args.list("images"), texts, config, tok.get());
    const io::TensorMap out = embed::embeddings(*model, in);
    nlohmann::ordered_json summary = {{"output", args.get("output", "")}};
    if (in.pixels.defined()) summary["images"] = in.pixels.size(0);
    if (in.ids.defined()) summary["texts"] = in.ids.size(0);
    summary["dim"] = out.begin()->second.size(1);
    io::save_safetensors(args.get("output", ""), out, {{"checkpoint", dir.string()}});
    std::cout << summary.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
