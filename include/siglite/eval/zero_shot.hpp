// Zero-shot classification with a prompt ensemble, and image-text retrieval. Whatever runs the model does so
// under InferenceMode: evaluation never records a graph, and each linear weight is packed once a call. Inputs go
// to the model's device, and the ranking is done there: the host reads each batch's five best classes
// (classification) or each item's place (retrieval), not scores or embeddings.
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "siglite/data/dataset.hpp"
#include "siglite/data/tokenizer.hpp"
#include "siglite/models/siglip.hpp"

namespace siglite::eval {

/// Normalised image embeddings of `ds` examples [begin, end), in batches: [end - begin, E].
inline Tensor<float> image_embeddings(const models::SigLIP<float>& model, const data::Dataset& ds, int64_t begin,
                                      int64_t end, int64_t batch = 256) {
  InferenceMode inference;
  std::vector<Tensor<float>> parts;
  for (int64_t i = begin; i < end; i += batch) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(batch, end - i)));
    std::iota(idx.begin(), idx.end(), i);
    parts.push_back(model.image_embeddings(data::make_batch(ds, idx).images.to(model.device())));
  }
  return concat(parts, 0);
}

/// Normalised embeddings of `texts`, tokenised to the model's text length, in batches: [texts, E].
inline Tensor<float> text_embeddings(const models::SigLIP<float>& model, const data::Tokenizer& tok,
                                     const std::vector<std::string>& texts, int64_t batch = 256) {
  SIGLITE_CHECK(!texts.empty(), "text_embeddings: no texts");
  InferenceMode inference;
  std::vector<Tensor<float>> parts;
  const auto n = static_cast<int64_t>(texts.size());
  for (int64_t i = 0; i < n; i += batch) {
    const std::vector<std::string> part(texts.begin() + i, texts.begin() + std::min(n, i + batch));
    parts.push_back(
        model.text_embeddings(tok.batch(part, model.config().text.max_position_embeddings).to(model.device())));
  }
  return concat(parts, 0);
}

/// Prompt templates from a text file: one per line, with "{}" where the class name goes. Blank lines are
/// skipped and whitespace around a template is dropped. A missing file, a file without templates, or a line
/// without "{}" is an Error naming the file (and the line).
inline std::vector<std::string> read_templates(const std::filesystem::path& path) {
  const std::string where = siglite::detail::cat("read_templates: ", path.string());
  SIGLITE_CHECK(std::filesystem::is_regular_file(path), where, ": no such file");
  std::ifstream in(path);
  SIGLITE_CHECK(in, where, ": cannot open the file");
  std::vector<std::string> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    const size_t first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first, last - first + 1);
    SIGLITE_CHECK(line.find("{}") != std::string::npos, where, ":", number, ": template '", line,
                  "' has no {} where the class name goes");
    out.push_back(line);
  }
  SIGLITE_CHECK(!in.bad(), where, ": read error");
  SIGLITE_CHECK(!out.empty(), where, ": no templates (one per line, with {} where the class name goes)");
  return out;
}

/// One embedding per class: the normalised mean of the normalised embeddings of every template
/// filled with the class name (the prompt ensemble). [classes, E]
inline Tensor<float> class_embeddings(const models::SigLIP<float>& model, const data::Tokenizer& tok,
                                      const std::vector<std::string>& class_names,
                                      const std::vector<std::string>& templates) {
  SIGLITE_CHECK(!class_names.empty() && !templates.empty(), "class_embeddings: no classes or no templates");
  InferenceMode inference;
  std::vector<Tensor<float>> rows;
  for (const std::string& name : class_names) {
    std::vector<std::string> prompts;
    for (const std::string& t : templates) prompts.push_back(data::format_prompt(t, name));
    const Tensor<float> e = text_embeddings(model, tok, prompts);
    rows.push_back(l2_normalize(mean(e, {0}), -1));
  }
  return stack(rows, 0);
}

struct ZeroShotResult {
  double top1 = 0, top5 = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<int64_t> predictions;  // [count] the top-1 class of each example, in order
  int64_t count = 0;
};

/// Classifies the first `limit` examples of `ds` (all when limit <= 0) by the nearest class
/// embedding.
inline ZeroShotResult zero_shot(const models::SigLIP<float>& model, const data::Tokenizer& tok,
                                const data::Dataset& ds, const std::vector<std::string>& templates,
                                int64_t limit = 0) {
  const auto& names = ds.class_names();
  SIGLITE_CHECK(!names.empty(), "zero_shot: the dataset has no classes");
  InferenceMode inference;
  const int64_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size(), k = static_cast<int64_t>(names.size());
  const Tensor<float> classes = class_embeddings(model, tok, names, templates);
  ZeroShotResult r;
  r.count = n;
  r.confusion.assign(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(k), 0));
  int64_t hit1 = 0, hit5 = 0;
  const int64_t batch = 256;
  for (int64_t i = 0; i < n; i += batch) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(batch, n - i)));
    std::iota(idx.begin(), idx.end(), i);
    const data::Batch b = data::make_batch(ds, idx);
    const Tensor<float> scores = matmul(model.image_embeddings(b.images.to(model.device())), classes.t());  // [B, k]
    const int64_t best = std::min<int64_t>(5, k);
    const std::vector<int64_t> top = topk_indices(scores, best).to_vector();  // [B, best], a stable sort's first
    for (int64_t row = 0; row < scores.size(0); ++row) {
      const int64_t* order = top.data() + row * best;
      const int64_t truth = b.labels.data()[row];
      SIGLITE_CHECK(truth >= 0 && truth < k, "zero_shot: example ", i + row, " has label ", truth, " outside [0, ", k,
                    ")");
      hit1 += order[0] == truth;
      hit5 += std::find(order, order + best, truth) != order + best;
      ++r.confusion[size_t(truth)][size_t(order[0])];
      r.predictions.push_back(order[0]);
    }
  }
  r.top1 = double(hit1) / double(n);
  r.top5 = double(hit5) / double(n);
  return r;
}

struct RetrievalResult {
  double i2t_r1 = 0, i2t_r5 = 0, i2t_r10 = 0, t2i_r1 = 0, t2i_r5 = 0, t2i_r10 = 0;
};

/// Recall at 1, 5, 10 of image-to-text and text-to-image retrieval, where image i and text i
/// belong together. image_embeds [N, E], text_embeds [N, E], both normalised. `groups` (one id an item, or empty:
/// every item its own group) says which items are interchangeable, such as examples with the same caption: an item
/// that scores as high as the true one counts against it unless it is of the true one's group. A text tower that
/// embeds every caption alike therefore finds nothing.
inline RetrievalResult retrieval(const Tensor<float>& image_embeds, const Tensor<float>& text_embeds,
                                 const std::vector<int64_t>& groups = {}) {
  SIGLITE_CHECK(image_embeds.dim() == 2 && image_embeds.shape() == text_embeds.shape(), "retrieval: embeddings of shapes ",
                image_embeds.shape(), " and ", text_embeds.shape(), " are not both [N, E]");
  const int64_t n = image_embeds.size(0);
  SIGLITE_CHECK(groups.empty() || static_cast<int64_t>(groups.size()) == n, "retrieval: ", groups.size(),
                " group ids for ", n, " items");
  NoGradGuard no_grad;
  using kernels::Binary;
  const Tensor<float> sim = matmul(image_embeds, text_embeds.t());  // [N images, N texts]
  // Group ids as dense indices (exact in float), and other[i, j] = 1 where items i and j are of different groups.
  std::vector<float> ids(static_cast<size_t>(n));
  std::map<int64_t, float> dense;
  for (int64_t i = 0; i < n; ++i)
    ids[size_t(i)] = groups.empty() ? float(i) : dense.emplace(groups[size_t(i)], float(dense.size())).first->second;
  const Tensor<float> g = Tensor<float>::from_vector(ids, {n}, sim.device());
  const Tensor<float> other = 1.0f - eq(g.reshape({n, 1}), g.reshape({1, n}));
  // The diagonal (each pair's own score) as a view; an item counts against its pair when it scores strictly above
  // it, (max(s, own) == s) - (s == own), or ties it from another group. Summed along a row it is the image's place
  // among the texts, along a column the text's place among the images.
  const Tensor<float> own = sim.contiguous().reshape({-1}).slice(0, 0, n * n, n + 1);
  const auto before = [&sim, &other](const Tensor<float>& o) {
    const Tensor<float> tie = siglite::detail::binary_raw(Binary::Eq, sim, o, "retrieval");
    const Tensor<float> at_least = siglite::detail::binary_raw(Binary::Eq, maximum(sim, o), sim, "retrieval");
    return at_least - tie + tie * other;
  };
  const std::vector<float> places =
      concat(std::vector<Tensor<float>>{sum(before(own.reshape({n, 1})), {1}), sum(before(own.reshape({1, n})), {0})})
          .to_vector();  // [2N]: image to text, then text to image
  RetrievalResult r;
  for (int64_t i = 0; i < n; ++i) {
    const float a = places[size_t(i)], b = places[size_t(n + i)];
    r.i2t_r1 += a < 1, r.i2t_r5 += a < 5, r.i2t_r10 += a < 10;
    r.t2i_r1 += b < 1, r.t2i_r5 += b < 5, r.t2i_r10 += b < 10;
  }
  for (double* v : {&r.i2t_r1, &r.i2t_r5, &r.i2t_r10, &r.t2i_r1, &r.t2i_r5, &r.t2i_r10}) *v /= double(n);
  return r;
}

/// Retrieval among the first `n` examples of `ds`, each image with its own caption. Examples with identical captions
/// form a group: they embed identically and so tie with the true one, which counts as found; with repeated captions
/// (Fashion-MNIST's are templates filled with a class name) the recall measures matching at the level of what the
/// captions tell apart. A tie between different captions counts as a miss.
inline RetrievalResult retrieval(const models::SigLIP<float>& model, const data::Tokenizer& tok,
                                 const data::Dataset& ds, int64_t n) {
  SIGLITE_CHECK(n >= 1 && n <= ds.size(), "retrieval: ", n, " examples asked of a dataset of ", ds.size());
  InferenceMode inference;
  std::vector<Tensor<float>> images, texts;
  std::vector<int64_t> groups;
  std::map<std::string, int64_t> caption_group;
  const int64_t batch = 256;
  for (int64_t i = 0; i < n; i += batch) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(batch, n - i)));
    std::iota(idx.begin(), idx.end(), i);
    const data::Batch b = data::make_batch(ds, idx);
    images.push_back(model.image_embeddings(b.images.to(model.device())));
    texts.push_back(text_embeddings(model, tok, b.captions));
    for (const std::string& c : b.captions)
      groups.push_back(caption_group.emplace(c, static_cast<int64_t>(caption_group.size())).first->second);
  }
  return retrieval(concat(images, 0), concat(texts, 0), groups);
}

}  // namespace siglite::eval
