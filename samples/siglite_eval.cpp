// siglite-eval: evaluates a checkpoint on Fashion-MNIST or the captioned shapes: zero-shot
// classification with a prompt ensemble (top-1, top-5, the confusion matrix) and image-text
// retrieval (R@1/5/10 both ways), as one JSON line. On the shapes it also scores the (colour, kind)
// pairs held out of training apart from the pairs seen, by pair, colour and shape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <siglite/data/fashion_mnist.hpp>
#include <siglite/data/image.hpp>
#include <siglite/data/shapes.hpp>
#include <siglite/eval/shapes.hpp>
#include <siglite/eval/zero_shot.hpp>
#include <siglite/siglite.hpp>
#include <string>
#include <vector>

#include "cli.hpp"


using namespace siglite;

namespace {

constexpr const char* kUsage = R"(usage: siglite-eval --checkpoint DIR --data fmnist|shapes [options]
  --checkpoint DIR   a siglite-train output directory (config.json, model.safetensors, word_tokenizer.json)
                     or an HF SigLIP directory (config.json, model.safetensors, spiece.model)
  --data NAME        fmnist: the 10,000 test images; shapes: the test split (100 single shapes of each
                     of the 40 colour-kind pairs), scored also on the pairs held out of training
  --prompts FILE     prompt templates, one per line, {} where the class name goes (default: the
                     dataset's evaluation templates, none of which captions the training images)
  --limit N          use the first N test examples (default: all for zero-shot, 1000 for retrieval,
                     which compares every image with every caption)
  --device NAME      cpu (default) or cuda[:N]
  --threads N        OpenMP threads (default: all cores)
  --seed N           seed of the test captions and shapes (default 0)
Prints one JSON line on stdout; the confusion matrix also goes to stderr as a table.
)";

const cli::Spec kCli = {"siglite-eval",
                        kUsage,
                        {"checkpoint", "data", "prompts", "limit", "device", "threads", "seed"},
                        {},
                        {},
                        {"checkpoint", "data"}};

constexpr int64_t kRetrievalExamples = 1000;

/// `base` as a model with other input channels or another image size sees it: each image back to
/// 8 bits, grey repeated to RGB (or RGB averaged to grey), then SigLIP preprocessing to size x size.
/// This is how an HF checkpoint (RGB, 224 px) reads Fashion-MNIST (grey, 28 px).
class Resized : public data::Dataset {
 public:
  Resized(const data::Dataset& base, int64_t channels, int64_t size) : base_(base), channels_(channels), size_(size) {
    SIGLITE_CHECK(channels == 1 || channels == 3, "siglite-eval: the model takes images of ", channels,
                  " channels; only 1 and 3 can be made from the dataset's");
  }
  int64_t size() const override { return base_.size(); }
  int64_t channels() const override { return channels_; }
  int64_t image_size() const override { return size_; }
  const std::vector<std::string>& class_names() const override { return base_.class_names(); }

  data::Example get(int64_t i) const override {
    data::Example ex = base_.get(i);
    const Tensor<float> src = ex.image.contiguous();  // [c, h, w] in [-1, 1]
    const int64_t c = src.size(0), h = src.size(1), w = src.size(2), plane = h * w;
    data::Image img;
    img.width = w;
    img.height = h;
    img.channels = channels_;
    img.pixels.resize(static_cast<size_t>(plane * channels_));
    const float* s = src.data();
    for (int64_t p = 0; p < plane; ++p)
      for (int64_t k = 0; k < channels_; ++k) {
        float v = 0;
        if (c == channels_ || c == 1) {
          v = s[(c == 1 ? 0 : k) * plane + p];
        } else {
          for (int64_t j = 0; j < c; ++j) v += s[j * plane + p] / static_cast<float>(c);
        }
        img.pixels[static_cast<size_t>(p * channels_ + k)] =
            static_cast<uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, (v + 1.0f) * 127.5f))));
      }
    ex.image = data::preprocess_image(img, size_);
    return ex;
  }

 private:
  const data::Dataset& base_;
  int64_t channels_, size_;
};

/// The confusion matrix on stderr: a row per true class, a column per predicted class.
void print_confusion(const std::vector<std::string>& names, const std::vector<std::vector<int64_t>>& m) {
  size_t label = 0;
  int64_t most = 0;
  for (const std::string& n : names) label = std::max(label, n.size());
  for (const auto& row : m)
    for (int64_t v : row) most = std::max(most, v);
  const int index = static_cast<int>(std::to_string(names.size() - 1).size());
  const int width = 1 + std::max(index, static_cast<int>(std::to_string(most).size()));
  std::fprintf(stderr, "confusion matrix (rows: true class, columns: predicted class)\n%*s", index + 1 + int(label),
               "");
  for (size_t j = 0; j < names.size(); ++j) std::fprintf(stderr, "%*zu", width, j);
  std::fprintf(stderr, "\n");
  for (size_t i = 0; i < names.size(); ++i) {
    std::fprintf(stderr, "%*zu %-*s", index, i, int(label), names[i].c_str());
    for (int64_t v : m[i]) std::fprintf(stderr, "%*lld", width, static_cast<long long>(v));
    std::fprintf(stderr, "\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const cli::Args args = cli::parse(kCli, argc, argv);
    const Device device = cli::device(args);
    const std::filesystem::path dir = args.get("checkpoint", "");
    const auto model = io::load_pretrained(dir);
    model->to(device);
    const models::VisionConfig& vision = model->config().vision;
    const auto tok = io::load_tokenizer(dir, model->config().text.vocab_size);
    const auto seed = static_cast<uint64_t>(args.integer("seed", 0));
    const int64_t limit = args.integer("limit", 0);
    SIGLITE_CHECK(!args.has("limit") || limit >= 1, "siglite-eval: --limit must be at least 1, got ", limit);

    const std::string data_name = args.get("data", "");
    std::unique_ptr<data::Dataset> native;
    const data::Shapes* shapes = nullptr;
    std::vector<std::string> templates;
    if (data_name == "fmnist") {
      native = std::make_unique<data::FashionMnist>(data::FashionMnist::default_dir, data::Split::test, seed);
      templates = data::FashionMnist::eval_templates();
    } else if (data_name == "shapes") {
      // Rendered at the model's size, or at the smallest the renderer draws and then resized.
      auto s = std::make_unique<data::Shapes>(seed, data::Split::test, std::max<int64_t>(16, vision.image_size));
      shapes = s.get();
      native = std::move(s);
      templates = data::Shapes::eval_templates();
    } else {
      throw Error("siglite-eval: --data is '" + data_name + "'; expected fmnist or shapes");
    }
    if (args.has("prompts")) templates = eval::read_templates(args.get("prompts", ""));
    std::unique_ptr<Resized> resized;
    if (native->channels() != vision.num_channels || native->image_size() != vision.image_size)
      resized = std::make_unique<Resized>(*native, vision.num_channels, vision.image_size);
    const data::Dataset& ds = resized ? *resized : *native;

    const int64_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size();
    std::fprintf(stderr, "zero-shot on %lld test images, %zu prompt templates...\n", static_cast<long long>(n),
                 templates.size());
    const eval::ZeroShotResult z = eval::zero_shot(*model, *tok, ds, templates, n);
    print_confusion(ds.class_names(), z.confusion);
    nlohmann::ordered_json out = {{"data", data_name},          {"count", z.count},
                                  {"zero_shot_top1", z.top1},   {"zero_shot_top5", z.top5},
                                  {"classes", ds.class_names()}, {"confusion", z.confusion}};
    if (shapes) {
      const eval::ShapesZeroShotResult s = eval::shapes_scores(*shapes, z);
      // A group without examples (a small --limit) has no accuracy: null, not 0.
      const auto score = [](const eval::PairScores& p, double v) {
        return p.count > 0 ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
      };
      for (const auto& [prefix, p] : {std::make_pair("heldout_", &s.held_out), std::make_pair("seen_", &s.seen)}) {
        out[std::string(prefix) + "count"] = p->count;
        out[std::string(prefix) + "pair_top1"] = score(*p, p->pair_top1);
        out[std::string(prefix) + "colour_acc"] = score(*p, p->colour_acc);
        out[std::string(prefix) + "shape_acc"] = score(*p, p->shape_acc);
      }
      out["chance_pair"] = s.chance_pair;
      out["chance_colour"] = s.chance_colour;
      out["chance_shape"] = s.chance_shape;
    }

    const int64_t m = limit > 0 ? std::min(limit, ds.size()) : std::min(kRetrievalExamples, ds.size());
    std::fprintf(stderr, "retrieval among %lld test images and their captions...\n", static_cast<long long>(m));
    const eval::RetrievalResult r = eval::retrieval(*model, *tok, ds, m);
    out["retrieval_count"] = m;
    out["i2t_r1"] = r.i2t_r1;
    out["i2t_r5"] = r.i2t_r5;
    out["i2t_r10"] = r.i2t_r10;
    out["t2i_r1"] = r.t2i_r1;
    out["t2i_r5"] = r.t2i_r5;
    out["t2i_r10"] = r.t2i_r10;
    std::cout << out.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
