// A procedural captioned-shapes dataset: RGB images of one or two coloured shapes on a dark
// background, captioned with their size, colour, kind and position ("a small red circle above a
// large blue square"). Every example is a pure function of (seed, split, index), so the dataset
// needs no files and is as large as one likes.
//
// Compositional zero-shot test: some (colour, kind) pairs never appear in the train split (no
// image shows a red triangle, though red things and triangles are everywhere). The test split
// shows single shapes of every pair, labelled by colour and kind, so the accuracy on held-out
// pairs can be compared with the accuracy on pairs seen in training.
//
// Train scenes come in groups of kind_variants() consecutive indices that are the same scene but for
// the kinds of their shapes: each member's first shape has a kind of its own. A loader reads this
// dataset in index order, so every batch holds such minimal pairs. Without them colours, sizes and
// positions tell almost every caption in a batch of 256 from the others, and the sigmoid loss is
// solved without looking at shape at all (a model trained so stays at chance on kind).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "siglite/core/error.hpp"
#include "siglite/core/generator.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/data/dataset.hpp"

namespace siglite::data {

class Shapes : public Dataset {
 public:
  struct ShapeSpec {
    int64_t kind = 0;  // index into kind_names()
    int64_t colour = 0;  // index into colour_names()
    int64_t size = 0;  // index into size_names()
    float cx = 0, cy = 0, radius = 0;  // in pixels; y grows downwards
    std::array<float, 3> rgb{};  // the colour with its per-example jitter, in [0, 1]
  };
  /// Everything example i shows and says; get(i) renders it.
  struct Scene {
    std::vector<ShapeSpec> shapes;  // one or two; the caption names shapes[0] first
    int64_t relation = -1;  // with two shapes: shapes[0] <relation> shapes[1], an index into relation_names()
    int64_t region = -1;  // with one shape: where it is, an index into region_names()
    bool held_out = false;  // some shape is a (colour, kind) pair held out of training
    std::array<float, 3> background{};
    std::string caption;
  };

  /// `size` <= 0 picks the default: 2^30 examples for train (effectively unbounded), and for test
  /// 100 examples of each (colour, kind) pair. With `hold_out` false no pair is held out.
  explicit Shapes(uint64_t seed, Split split = Split::train, int64_t image_size = 32, bool hold_out = true,
                  int64_t size = 0)
      : seed_(seed), split_(split), image_size_(image_size), hold_out_(hold_out) {
    SIGLITE_CHECK(image_size >= 16 && image_size <= 4096, "Shapes: image_size ", image_size,
                  " is out of range [16, 4096]");
    const int64_t pairs = num_colours() * num_kinds();
    size_ = size > 0 ? size : (split == Split::train ? int64_t(1) << 30 : 100 * pairs);
    if (split == Split::test) {
      for (int64_t c = 0; c < num_colours(); ++c)
        for (int64_t k = 0; k < num_kinds(); ++k) class_names_.push_back(colour_names()[c] + " " + kind_names()[k]);
    }
  }

  int64_t size() const override { return size_; }
  int64_t channels() const override { return 3; }
  int64_t image_size() const override { return image_size_; }
  /// Test split: the (colour, kind) pairs, "red circle" = colour * num_kinds() + kind. Train: none.
  const std::vector<std::string>& class_names() const override { return class_names_; }
  Split split() const { return split_; }

  static const std::vector<std::string>& kind_names() {
    static const std::vector<std::string> v = {"circle", "square", "triangle", "diamond", "cross"};
    return v;
  }
  static const std::vector<std::string>& colour_names() {
    static const std::vector<std::string> v = {"red", "green", "blue", "yellow", "purple", "orange", "white", "cyan"};
    return v;
  }
  static const std::vector<std::string>& size_names() {
    static const std::vector<std::string> v = {"small", "large"};
    return v;
  }
  static const std::vector<std::string>& relation_names() {
    static const std::vector<std::string> v = {"to the left of", "to the right of", "above", "below"};
    return v;
  }
  static const std::vector<std::string>& region_names() {
    static const std::vector<std::string> v = {"in the top left",    "at the top",    "in the top right",
                                               "on the left",        "in the middle", "on the right",
                                               "in the bottom left", "at the bottom", "in the bottom right"};
    return v;
  }
  /// Prompt templates for zero-shot on the test split, filled with a class name ("red circle"). Captions name
  /// every shape with its size, and phrasings that end in the shape ("... there is a small red circle") are
  /// common in training, so the ensemble spells out both sizes the way captions do.
  static const std::vector<std::string>& eval_templates() {
    static const std::vector<std::string> v = {"a small {}", "a large {}", "there is a small {}",
                                               "there is a large {}"};
    return v;
  }
  static int64_t num_kinds() { return static_cast<int64_t>(kind_names().size()); }
  /// Train scenes i and j with i / kind_variants() == j / kind_variants() differ only in their shapes' kinds.
  static constexpr int64_t kind_variants() { return 4; }
  static int64_t num_colours() { return static_cast<int64_t>(colour_names().size()); }
  /// The (colour, kind) pairs kept out of the train split: each kind once, each with another colour.
  static const std::vector<std::pair<int64_t, int64_t>>& held_out_pairs() {
    static const std::vector<std::pair<int64_t, int64_t>> v = {{0, 2}, {2, 0}, {1, 1}, {3, 4}, {4, 3}};
    return v;
  }
  bool is_held_out(int64_t colour, int64_t kind) const {
    if (!hold_out_) return false;
    return std::find(held_out_pairs().begin(), held_out_pairs().end(), std::make_pair(colour, kind)) !=
           held_out_pairs().end();
  }

  Scene scene(int64_t i) const {
    detail::check_index("Shapes::scene", i, size_);
    const bool train = split_ == Split::train;
    Generator gen(detail::example_seed(seed_, train ? 10 : 11, train ? i / kind_variants() : i));
    const float s = static_cast<float>(image_size_);
    Scene sc;
    for (float& b : sc.background) b = uniform(gen, 0.0f, 0.18f);
    if (split_ == Split::test) {
      // Cycling through the pairs balances the classes exactly.
      const int64_t pair = i % (num_colours() * num_kinds());
      ShapeSpec a = make_shape(gen, pair / num_kinds(), pair % num_kinds());
      place_in_region(gen, a, sc, s);
      sc.shapes.push_back(a);
      sc.held_out = is_held_out(a.colour, a.kind);
      sc.caption = "a " + describe(a) + " " + region_names()[static_cast<size_t>(sc.region)];
      return sc;
    }
    // Everything drawn from gen is shared by the group; `own` draws the second shape's kind.
    const int64_t member = i % kind_variants();
    Generator own(detail::example_seed(seed_, 14, i));
    const bool two = gen.uniform() < 0.7;
    ShapeSpec a = random_shape(gen);
    a.kind = shuffled_kinds(gen, a.colour)[static_cast<size_t>(member)];
    const int64_t phrasing = static_cast<int64_t>(gen.randint(3));
    if (!two) {
      place_in_region(gen, a, sc, s);
      sc.shapes.push_back(a);
      const std::string& where = region_names()[static_cast<size_t>(sc.region)];
      if (phrasing == 0) sc.caption = "a " + describe(a) + " " + where;
      if (phrasing == 1) sc.caption = "there is a " + describe(a) + " " + where;
      if (phrasing == 2) sc.caption = where + " there is a " + describe(a);
      return sc;
    }
    ShapeSpec b = random_shape(gen);
    const std::vector<int64_t> kinds_b = shuffled_kinds(own, b.colour);
    b.kind = kinds_b[static_cast<size_t>(own.randint(kinds_b.size()))];
    sc.relation = static_cast<int64_t>(gen.randint(4));
    place_pair(gen, a, b, sc.relation, s);
    sc.shapes = {a, b};
    const std::string& rel = relation_names()[static_cast<size_t>(sc.relation)];
    // The converse relation lets the same picture be described from either shape.
    const std::string& converse = relation_names()[static_cast<size_t>(sc.relation ^ 1)];
    if (phrasing == 0) sc.caption = "a " + describe(a) + " " + rel + " a " + describe(b);
    if (phrasing == 1) sc.caption = "there is a " + describe(a) + " " + rel + " a " + describe(b);
    if (phrasing == 2) sc.caption = "a " + describe(b) + " " + converse + " a " + describe(a);
    return sc;
  }

  Example get(int64_t i) const override {
    const Scene sc = scene(i);
    const int64_t n = image_size_;
    // Rendered in [0, 1] as [3, n, n], then mapped to [-1, 1] like every other dataset.
    std::vector<float> rgb(static_cast<size_t>(3 * n * n));
    Generator noise(detail::example_seed(seed_, split_ == Split::train ? 12 : 13, i));
    for (int64_t y = 0; y < n; ++y)
      for (int64_t x = 0; x < n; ++x) {
        // The same noise on all channels keeps the background's hue while hiding its flatness.
        const float jitter = uniform(noise, -0.03f, 0.03f);
        for (int64_t c = 0; c < 3; ++c) rgb[static_cast<size_t>((c * n + y) * n + x)] = sc.background[c] + jitter;
      }
    for (const ShapeSpec& sh : sc.shapes) draw(rgb, n, sh);
    Example ex;
    ex.image = Tensor<float>::empty(Shape{3, n, n}, Device::cpu());
    float* dst = ex.image.data();
    for (size_t k = 0; k < rgb.size(); ++k) dst[k] = std::min(1.0f, std::max(0.0f, rgb[k])) * 2.0f - 1.0f;
    ex.caption = sc.caption;
    if (split_ == Split::test) ex.label = sc.shapes[0].colour * num_kinds() + sc.shapes[0].kind;
    return ex;
  }

 private:
  static float uniform(Generator& gen, float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(gen.uniform());
  }

  static std::string describe(const ShapeSpec& sh) {
    return size_names()[static_cast<size_t>(sh.size)] + " " + colour_names()[static_cast<size_t>(sh.colour)] + " " +
           kind_names()[static_cast<size_t>(sh.kind)];
  }

  ShapeSpec make_shape(Generator& gen, int64_t colour, int64_t kind) const {
    static const float palette[8][3] = {{0.90f, 0.12f, 0.12f}, {0.15f, 0.75f, 0.20f}, {0.15f, 0.30f, 0.95f},
                                        {0.95f, 0.88f, 0.15f}, {0.60f, 0.22f, 0.85f}, {1.00f, 0.55f, 0.08f},
                                        {0.93f, 0.93f, 0.93f}, {0.15f, 0.85f, 0.88f}};
    ShapeSpec sh;
    sh.colour = colour;
    sh.kind = kind;
    sh.size = static_cast<int64_t>(gen.randint(2));
    sh.radius = static_cast<float>(image_size_) * (sh.size == 0 ? 0.11f : 0.20f) * uniform(gen, 0.92f, 1.08f);
    for (int c = 0; c < 3; ++c)
      sh.rgb[c] = std::min(1.0f, std::max(0.0f, palette[colour][c] + uniform(gen, -0.05f, 0.05f)));
    return sh;
  }

  ShapeSpec random_shape(Generator& gen) const {
    // Rejection keeps the allowed pairs uniformly likely; 5 of 40 pairs are held out, so it ends fast.
    for (;;) {
      const auto colour = static_cast<int64_t>(gen.randint(static_cast<uint64_t>(num_colours())));
      const auto kind = static_cast<int64_t>(gen.randint(static_cast<uint64_t>(num_kinds())));
      if (!is_held_out(colour, kind)) return make_shape(gen, colour, kind);
    }
  }

  /// The kinds that may have `colour` in the train split, in random order: at least kind_variants() of them,
  /// since every colour has at most one held-out kind.
  std::vector<int64_t> shuffled_kinds(Generator& gen, int64_t colour) const {
    std::vector<int64_t> kinds;
    for (int64_t k = 0; k < num_kinds(); ++k)
      if (!is_held_out(colour, k)) kinds.push_back(k);
    for (size_t j = kinds.size() - 1; j > 0; --j) std::swap(kinds[j], kinds[static_cast<size_t>(gen.randint(j + 1))]);
    return kinds;
  }

  float margin(float s) const { return 0.03f * s; }

  void place_in_region(Generator& gen, ShapeSpec& sh, Scene& sc, float s) const {
    sc.region = static_cast<int64_t>(gen.randint(9));
    const float lo = margin(s) + sh.radius, hi = s - margin(s) - sh.radius;
    const float cx = (static_cast<float>(sc.region % 3) + 0.5f) * s / 3.0f + uniform(gen, -0.06f, 0.06f) * s;
    const float cy = (static_cast<float>(sc.region / 3) + 0.5f) * s / 3.0f + uniform(gen, -0.06f, 0.06f) * s;
    sh.cx = std::min(hi, std::max(lo, cx));
    sh.cy = std::min(hi, std::max(lo, cy));
  }

  // Places a and b so that "a <relation> b" holds clearly: along the relation's axis they are
  // apart by at least the sum of their radii plus a gap, across it they are offset by at most
  // 0.4 of that distance.
  void place_pair(Generator& gen, ShapeSpec& a, ShapeSpec& b, int64_t relation, float s) const {
    const bool a_first = relation == 0 || relation == 2;  // left of, above: a has the smaller coordinate
    ShapeSpec& lo = a_first ? a : b;
    ShapeSpec& hi = a_first ? b : a;
    const float m = margin(s);
    const float dmin = lo.radius + hi.radius + 0.06f * s;
    const float dmax = s - 2 * m - lo.radius - hi.radius;
    const float d = dmax > dmin ? uniform(gen, dmin, dmax) : dmax;
    const float lo_main = uniform(gen, m + lo.radius, std::max(m + lo.radius, s - m - hi.radius - d));
    const float hi_main = lo_main + d;
    const float lo_cross = uniform(gen, m + lo.radius, s - m - lo.radius);
    const float hi_cross =
        std::min(s - m - hi.radius, std::max(m + hi.radius, lo_cross + uniform(gen, -0.4f, 0.4f) * d));
    const bool horizontal = relation < 2;
    (horizontal ? lo.cx : lo.cy) = lo_main;
    (horizontal ? hi.cx : hi.cy) = hi_main;
    (horizontal ? lo.cy : lo.cx) = lo_cross;
    (horizontal ? hi.cy : hi.cx) = hi_cross;
  }

  // Shape outlines in units of the radius, centred on the origin, y downwards.
  static bool inside(int64_t kind, float u, float v) {
    const float au = std::fabs(u), av = std::fabs(v);
    switch (kind) {
      case 0: return u * u + v * v <= 1.0f;
      case 1: return std::max(au, av) <= 0.82f;
      case 2: return v <= 0.75f && v >= -0.9f && au <= 0.95f * (v + 0.9f) / 1.65f;
      case 3: return au + av <= 1.05f;
      default: return (au <= 0.3f && av <= 0.95f) || (av <= 0.3f && au <= 0.95f);
    }
  }

  // Rasterises with 3x3 supersampling so that small shapes keep their outline at 32 pixels.
  static void draw(std::vector<float>& rgb, int64_t n, const ShapeSpec& sh) {
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(sh.cx - sh.radius - 1)));
    const int64_t x1 = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(sh.cx + sh.radius + 1)));
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(sh.cy - sh.radius - 1)));
    const int64_t y1 = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(sh.cy + sh.radius + 1)));
    for (int64_t y = y0; y <= y1; ++y)
      for (int64_t x = x0; x <= x1; ++x) {
        int hits = 0;
        for (int sy = 0; sy < 3; ++sy)
          for (int sx = 0; sx < 3; ++sx) {
            const float px = static_cast<float>(x) + (static_cast<float>(sx) + 0.5f) / 3.0f;
            const float py = static_cast<float>(y) + (static_cast<float>(sy) + 0.5f) / 3.0f;
            hits += inside(sh.kind, (px - sh.cx) / sh.radius, (py - sh.cy) / sh.radius);
          }
        if (hits == 0) continue;
        const float cover = static_cast<float>(hits) / 9.0f;
        for (int64_t c = 0; c < 3; ++c) {
          float& p = rgb[static_cast<size_t>((c * n + y) * n + x)];
          p = p * (1.0f - cover) + sh.rgb[static_cast<size_t>(c)] * cover;
        }
      }
  }

  uint64_t seed_;
  Split split_;
  int64_t image_size_;
  bool hold_out_;
  int64_t size_ = 0;
  std::vector<std::string> class_names_;
};

}  // namespace siglite::data
