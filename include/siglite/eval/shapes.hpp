// Compositional zero-shot on the captioned shapes (data/shapes.hpp): on the test split every class is a
// (colour, kind) pair, and some pairs never appear in training. These scores set the pairs held out next to
// the pairs seen, and tell apart a wrong colour from a wrong shape.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "siglite/data/shapes.hpp"
#include "siglite/eval/zero_shot.hpp"

namespace siglite::eval {

/// Over a group of test examples: the fraction whose predicted pair is right, whose predicted colour is right
/// and whose predicted kind is right. All 0 when count is 0.
struct PairScores {
  double pair_top1 = 0, colour_acc = 0, shape_acc = 0;
  int64_t count = 0;
};

struct ShapesZeroShotResult {
  ZeroShotResult all;  // over every pair
  PairScores seen, held_out;
  double chance_pair = 0, chance_colour = 0, chance_shape = 0;  // 1 / pairs, 1 / colours, 1 / kinds
};

/// Splits `z`, the zero-shot result on the first z.count examples of the test split `ds`, by whether each
/// example's pair is held out of training.
inline ShapesZeroShotResult shapes_scores(const data::Shapes& ds, ZeroShotResult z) {
  const int64_t kinds = data::Shapes::num_kinds(), pairs = data::Shapes::num_colours() * kinds;
  SIGLITE_CHECK(ds.split() == data::Split::test, "shapes_scores: the dataset is the train split; classes are the "
                "(colour, kind) pairs of the test split");
  SIGLITE_CHECK(z.count <= ds.size() && static_cast<int64_t>(z.predictions.size()) == z.count, "shapes_scores: ",
                z.predictions.size(), " predictions for a count of ", z.count, " in a dataset of ", ds.size());
  ShapesZeroShotResult r;
  for (int64_t i = 0; i < z.count; ++i) {
    const int64_t p = z.predictions[static_cast<size_t>(i)];
    SIGLITE_CHECK(p >= 0 && p < pairs, "shapes_scores: prediction ", p, " of example ", i, " is outside [0, ", pairs,
                  ")");
    const data::Shapes::Scene sc = ds.scene(i);
    const data::Shapes::ShapeSpec& truth = sc.shapes[0];
    PairScores& s = sc.held_out ? r.held_out : r.seen;
    const bool colour = p / kinds == truth.colour, shape = p % kinds == truth.kind;
    s.pair_top1 += colour && shape;
    s.colour_acc += colour;
    s.shape_acc += shape;
    ++s.count;
  }
  for (PairScores* s : {&r.seen, &r.held_out})
    if (s->count > 0)
      for (double* v : {&s->pair_top1, &s->colour_acc, &s->shape_acc}) *v /= double(s->count);
  r.chance_pair = 1.0 / double(pairs);
  r.chance_colour = 1.0 / double(data::Shapes::num_colours());
  r.chance_shape = 1.0 / double(kinds);
  r.all = std::move(z);
  return r;
}

/// Zero-shot on the first `limit` test examples (all when limit <= 0), scored by shapes_scores.
inline ShapesZeroShotResult shapes_zero_shot(const models::SigLIP<float>& model, const data::Tokenizer& tok,
                                             const data::Shapes& ds, const std::vector<std::string>& templates,
                                             int64_t limit = 0) {
  return shapes_scores(ds, zero_shot(model, tok, ds, templates, limit));
}

}  // namespace siglite::eval
