// PNG plots from plain data: line plots of (x, y) series with axes and tick marks, and heatmaps of a
// matrix with a colour scale, drawn on a small RGB canvas. siglite-train writes its loss curve, t and b,
// and a similarity matrix with them.
//
// PNGs are encoded with stb_image_write and labels drawn with stb_easy_font (Debian's libstb-dev). As
// data/image.hpp does for stb_image, this header compiles a private (static) copy of stb_image_write
// into every translation unit that includes it, so no TU has to provide STB_IMAGE_WRITE_IMPLEMENTATION.
// A TU that uses stb_image_write itself either includes <stb/stb_image_write.h> with its own
// implementation *before* this header (siglite then uses that one), or includes this header first and
// calls the stbi_write_* functions it declared; it must not compile the implementation after it.
// Defining SIGLITE_STB_IMAGE_WRITE_EXTERNAL makes this header only declare stb_image_write.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifndef INCLUDE_STB_IMAGE_WRITE_H
#ifndef SIGLITE_STB_IMAGE_WRITE_EXTERNAL
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define SIGLITE_STB_IMAGE_WRITE_DEFINED_HERE
#endif
#endif
// Quiet the stb headers when they are found through -I instead of as system headers (see data/image.hpp).
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wconversion"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>  // every function static: nothing to define
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#ifdef SIGLITE_STB_IMAGE_WRITE_DEFINED_HERE
#undef STB_IMAGE_WRITE_STATIC
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef SIGLITE_STB_IMAGE_WRITE_DEFINED_HERE
#endif

#include "siglite/core/error.hpp"
#include "siglite/core/files.hpp"

namespace siglite::io {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Rgb& o) const { return !(*this == o); }
};

/// An RGB image to draw on; (0, 0) is the top-left pixel. Drawing outside it is clipped.
class Canvas {
 public:
  static constexpr int kMaxSide = 16384;

  Canvas(int width, int height, Rgb background = {255, 255, 255}) : width_(width), height_(height) {
    SIGLITE_CHECK(width > 0 && height > 0 && width <= kMaxSide && height <= kMaxSide, "Canvas: size ", width, "x",
                  height, " is not within 1..", kMaxSide, " on each side");
    pixels_.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
    fill_rect(0, 0, width, height, background);
  }

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& pixels() const { return pixels_; }  // [height, width, 3]

  Rgb pixel(int x, int y) const {
    SIGLITE_CHECK(x >= 0 && y >= 0 && x < width_ && y < height_, "Canvas::pixel: (", x, ", ", y, ") is outside ",
                  width_, "x", height_);
    const uint8_t* p = &pixels_[(static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3];
    return {p[0], p[1], p[2]};
  }

  /// Fills [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, width_), y1 = std::min(y1, height_);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        uint8_t* p = &pixels_[(static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3];
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }

  /// A straight line of `thickness` pixels from (x0, y0) to (x1, y1), both ends included.
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1) {
    const double far = std::max({std::fabs(x0), std::fabs(y0), std::fabs(x1), std::fabs(y1)});
    SIGLITE_CHECK(far <= kMaxSide * 4.0, "Canvas::line: (", x0, ", ", y0, ") to (", x1, ", ", y1,
                  ") is not finite or lies far outside the canvas");
    const int steps = static_cast<int>(std::ceil(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0)))) + 1;
    const int lo = -(thickness - 1) / 2, hi = lo + thickness;
    for (int k = 0; k <= steps; ++k) {
      const double u = static_cast<double>(k) / steps;
      const int x = static_cast<int>(std::lround(x0 + u * (x1 - x0))), y = static_cast<int>(std::lround(y0 + u * (y1 - y0)));
      fill_rect(x + lo, y + lo, x + hi, y + hi, c);
    }
  }

  /// Text with its top-left corner at (x, y), in stb_easy_font's 12-pixel-high ASCII font times `scale`.
  /// Characters outside printable ASCII are drawn as '?'.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1) {
    std::string printable = printable_ascii(s);
    std::vector<char> quads(printable.size() * 1024 + 64);  // stb_easy_font uses about 270 bytes per character
    const int n = stb_easy_font_print(0, 0, printable.data(), nullptr, quads.data(), static_cast<int>(quads.size()));
    for (int q = 0; q < n; ++q) {  // each quad: 4 vertices of {float x, y, z; uint8 rgba[4]}, corners 0 and 2 opposite
      float v0[2], v2[2];
      std::memcpy(v0, quads.data() + q * 64, sizeof v0);
      std::memcpy(v2, quads.data() + q * 64 + 32, sizeof v2);
      fill_rect(x + static_cast<int>(v0[0]) * scale, y + static_cast<int>(v0[1]) * scale,
                x + static_cast<int>(v2[0]) * scale, y + static_cast<int>(v2[1]) * scale, c);
    }
  }

  /// The width in pixels that text(s, scale) takes.
  static int text_width(const std::string& s, int scale = 1) {
    std::string printable = printable_ascii(s);
    return stb_easy_font_width(printable.data()) * scale;
  }

  /// The PNG file's bytes.
  std::string encode_png() const {
    std::string out;
    const auto append = [](void* ctx, void* data, int size) {
      static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
    };
    SIGLITE_CHECK(stbi_write_png_to_func(append, &out, width_, height_, 3, pixels_.data(), width_ * 3) != 0,
                  "Canvas: stb_image_write could not encode a ", width_, "x", height_, " PNG");
    return out;
  }

  /// Writes the canvas as a PNG file, atomically (temporary file, then rename).
  void write_png(const std::filesystem::path& path) const { write_file_atomic(path, encode_png(), "write_png"); }

 private:
  static std::string printable_ascii(const std::string& s) {
    std::string out = s;
    for (char& ch : out)
      if (ch < 32 || ch > 126) ch = '?';  // stb_easy_font indexes a table by ch - 32
    return out;
  }

  int width_, height_;
  std::vector<uint8_t> pixels_;
};

/// The viridis colour scale (dark blue at 0, green, yellow at 1), interpolated between nine of its
/// colours; u is clamped to [0, 1].
inline Rgb colour_map(double u) {
  static const Rgb stops[] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                              {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  u = std::min(1.0, std::max(0.0, u)) * 8.0;
  const int k = std::min(7, static_cast<int>(u));
  const double f = u - k;
  const auto mix = [f](uint8_t a, uint8_t b) { return static_cast<uint8_t>(std::lround(a + f * (b - a))); };
  return {mix(stops[k].r, stops[k + 1].r), mix(stops[k].g, stops[k + 1].g), mix(stops[k].b, stops[k + 1].b)};
}

/// Colours for the series of a plot, in order.
inline Rgb series_colour(size_t i) {
  static const Rgb palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};
  return palette[i % (sizeof palette / sizeof palette[0])];
}

namespace detail {

/// A round tick spacing near `raw`: 1, 2, 5 or 10 times a power of ten.
inline double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/// Tick positions at round values within [lo, hi] (a range that widen() returned), about `target` of them.
inline std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double step = nice_step((hi - lo) / target);
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step); k * step <= hi + 1e-9 * step && ticks.size() < 100; ++k)
    ticks.push_back(k == 0 ? 0.0 : k * step);  // no "-0"
  return ticks;
}

/// Every `step`-th index of 0..n-1, with step 1, 2, 5, 10, 20, ... so that there are at most 8.
inline std::vector<int64_t> index_ticks(int64_t n) {
  int64_t step = 1;
  for (int64_t mag = 1; n > 8 * step; mag *= 10)
    for (int64_t m : {1, 2, 5})
      if (n > 8 * step) step = m * mag;
  std::vector<int64_t> ticks;
  for (int64_t i = 0; i < n; i += step) ticks.push_back(i);
  return ticks;
}

/// A tick label with as many decimals as the tick spacing needs.
inline std::string tick_label(double v, double step) {
  char buf[32];
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::fabs(v) >= 1e7 || decimals > 8)
    std::snprintf(buf, sizeof buf, "%.3g", v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// [lo, hi] widened where it is empty or too narrow for ticks (a few parts in 1e9 of its values).
inline std::pair<double, double> widen(double lo, double hi) {
  const double size = std::max(std::fabs(lo), std::fabs(hi));
  if (hi - lo > 1e-9 * size) return {lo, hi};
  const double pad = size == 0 ? 1.0 : size * 0.05;
  return {lo - pad, hi + pad};
}

constexpr Rgb kInk{40, 40, 40}, kGrid{225, 225, 225};
constexpr int kText = 2;  // scale of stb_easy_font's glyphs: 2 makes them about 14 pixels high

}  // namespace detail

/// One curve: (x, y) points in order, e.g. (step, loss).
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  Rgb colour = series_colour(0);
};

/// One set of axes with its curves, a title and a name for the x axis; the y range fits the data.
struct Panel {
  std::string title, x_label;
  std::vector<Series> series;
};

/// Where a line plot's axes lie on its canvas: panel p's plot area is
/// [left, left + plot_width) x [top(p), top(p) + plot_height).
struct LinePlotLayout {
  int width = 0, panel_height = 0, left = 112, right = 24, top_margin = 40, bottom_margin = 56;
  int plot_width() const { return width - left - right; }
  int plot_height() const { return panel_height - top_margin - bottom_margin; }
  int top(size_t panel) const { return static_cast<int>(panel) * panel_height + top_margin; }
};

/// Draws the panels one above the other on a width x (panels * panel_height) canvas. Each panel's
/// y axis spans its data (with a margin), its x axis the data's x range; tick marks with labels and
/// light grid lines at round values. Throws when there is nothing to draw, when a series has no
/// points, or when a coordinate is not finite.
inline Canvas render_line_plot(const std::vector<Panel>& panels, int width = 800, int panel_height = 320) {
  const char* op = "render_line_plot";
  SIGLITE_CHECK(!panels.empty(), op, ": no panels to draw");
  LinePlotLayout L;
  L.width = width;
  L.panel_height = panel_height;
  SIGLITE_CHECK(L.plot_width() >= 32 && L.plot_height() >= 32 && panels.size() * static_cast<size_t>(panel_height) <= Canvas::kMaxSide,
                op, ": a ", width, "x", panel_height, " panel (", panels.size(), " of them) leaves no room to plot");
  for (const Panel& p : panels) {
    SIGLITE_CHECK(!p.series.empty(), op, ": panel '", p.title, "' has no series");
    for (const Series& s : p.series) {
      SIGLITE_CHECK(!s.points.empty(), op, ": series '", s.name, "' of panel '", p.title, "' has no points");
      for (size_t k = 0; k < s.points.size(); ++k)
        SIGLITE_CHECK(std::isfinite(s.points[k].first) && std::isfinite(s.points[k].second), op, ": series '", s.name,
                      "' point ", k, " is (", s.points[k].first, ", ", s.points[k].second, "), not finite");
    }
  }
  Canvas c(width, static_cast<int>(panels.size()) * panel_height);
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& p = panels[pi];
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const Series& s : p.series)
      for (const auto& [x, y] : s.points) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    SIGLITE_CHECK(std::isfinite(x1 - x0) && std::isfinite(y1 - y0), op, ": panel '", p.title, "' spans x [", x0, ", ",
                  x1, "] and y [", y0, ", ", y1, "], too wide to draw");
    std::tie(x0, x1) = detail::widen(x0, x1);
    std::tie(y0, y1) = detail::widen(y0, y1);
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    const int left = L.left, top = L.top(pi), w = L.plot_width(), h = L.plot_height();
    const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (w - 1); };
    const auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (h - 1); };
    // Grid lines, tick marks and labels, then the frame and the curves over them.
    const std::vector<double> xt = detail::nice_ticks(x0, x1, 6), yt = detail::nice_ticks(y0, y1, 5);
    for (double x : xt) {
      const int X = static_cast<int>(std::lround(px(x)));
      c.fill_rect(X, top, X + 1, top + h, detail::kGrid);
      c.fill_rect(X, top + h, X + 1, top + h + 6, detail::kInk);
      const std::string s = detail::tick_label(x, xt.size() > 1 ? xt[1] - xt[0] : 1.0);
      c.text(X - Canvas::text_width(s, detail::kText) / 2, top + h + 10, s, detail::kInk, detail::kText);
    }
    for (double y : yt) {
      const int Y = static_cast<int>(std::lround(py(y)));
      c.fill_rect(left, Y, left + w, Y + 1, detail::kGrid);
      c.fill_rect(left - 6, Y, left, Y + 1, detail::kInk);
      const std::string s = detail::tick_label(y, yt.size() > 1 ? yt[1] - yt[0] : 1.0);
      c.text(left - 10 - Canvas::text_width(s, detail::kText), Y - 7, s, detail::kInk, detail::kText);
    }
    c.line(left - 1, top - 1, left + w, top - 1, detail::kInk);
    c.line(left - 1, top + h, left + w, top + h, detail::kInk);
    c.line(left - 1, top - 1, left - 1, top + h, detail::kInk);
    c.line(left + w, top - 1, left + w, top + h, detail::kInk);
    for (const Series& s : p.series) {
      for (size_t k = 1; k < s.points.size(); ++k)
        c.line(px(s.points[k - 1].first), py(s.points[k - 1].second), px(s.points[k].first), py(s.points[k].second),
               s.colour, 2);
      if (s.points.size() == 1) c.line(px(s.points[0].first), py(s.points[0].second), px(s.points[0].first),
                                       py(s.points[0].second), s.colour, 5);
    }
    // The title, then the series names in their colours when there are several.
    int tx = left;
    c.text(tx, top - 30, p.title, detail::kInk, detail::kText);
    tx += Canvas::text_width(p.title, detail::kText) + 24;
    for (size_t k = 0; p.series.size() > 1 && k < p.series.size(); ++k) {
      c.fill_rect(tx, top - 22, tx + 16, top - 18, p.series[k].colour);
      c.text(tx + 22, top - 30, p.series[k].name, p.series[k].colour, detail::kText);
      tx += 22 + Canvas::text_width(p.series[k].name, detail::kText) + 24;
    }
    c.text(left + w / 2 - Canvas::text_width(p.x_label, detail::kText) / 2, top + h + 32, p.x_label, detail::kInk,
           detail::kText);
  }
  return c;
}

/// render_line_plot, written to `path` as a PNG (atomically).
inline void write_line_plot(const std::filesystem::path& path, const std::vector<Panel>& panels, int width = 800,
                            int panel_height = 320) {
  render_line_plot(panels, width, panel_height).write_png(path);
}

/// A matrix to draw as a heatmap: values[i * cols + j] is row i, column j.
struct Heatmap {
  std::vector<float> values;  // [rows, cols], row-major
  int64_t rows = 0, cols = 0;
  std::string title, row_label, col_label;
  double lo = NAN, hi = NAN;  // the values at the two ends of the colour scale; NaN: the data's min and max
};

/// Where a heatmap's cells lie on its width x height canvas: cell (i, j) is
/// [left + j*cell, left + (j+1)*cell) x [top + i*cell, top + (i+1)*cell).
struct HeatmapLayout {
  int cell = 0, left = 0, top = 0, width = 0, height = 0;
};

inline HeatmapLayout heatmap_layout(const Heatmap& m) {
  SIGLITE_CHECK(m.rows > 0 && m.cols > 0 && m.rows <= 4096 && m.cols <= 4096, "heatmap: a ", m.rows, "x", m.cols,
                " matrix cannot be drawn (1 to 4096 rows and columns)");
  HeatmapLayout L;
  L.cell = static_cast<int>(std::clamp<int64_t>(512 / std::max(m.rows, m.cols), 1, 48));
  L.left = 72;
  L.top = 60;
  L.width = std::max(L.left + static_cast<int>(m.cols) * L.cell + 32 + 20 + 96,  // matrix, gap, colour bar, labels
                     L.left + Canvas::text_width(m.title, detail::kText) + 16);
  L.height = L.top + static_cast<int>(m.rows) * L.cell + 64;
  return L;
}

/// Draws the matrix as coloured cells (colour_map of the value within [lo, hi], clamped), with row and
/// column indices, a title and a colour bar labelled with lo, the midpoint and hi. Throws when the
/// values do not fill rows x cols, when one is not finite, or when the given range is empty.
inline Canvas render_heatmap(const Heatmap& m) {
  const char* op = "render_heatmap";
  const HeatmapLayout L = heatmap_layout(m);
  SIGLITE_CHECK(static_cast<int64_t>(m.values.size()) == m.rows * m.cols, op, ": ", m.values.size(),
                " values do not fill a ", m.rows, "x", m.cols, " matrix");
  double lo = INFINITY, hi = -INFINITY;
  for (size_t k = 0; k < m.values.size(); ++k) {
    SIGLITE_CHECK(std::isfinite(m.values[k]), op, ": the value at row ", k / static_cast<size_t>(m.cols), ", column ",
                  k % static_cast<size_t>(m.cols), " is ", m.values[k], ", not finite");
    lo = std::min(lo, double(m.values[k])), hi = std::max(hi, double(m.values[k]));
  }
  SIGLITE_CHECK(std::isnan(m.lo) == std::isnan(m.hi), op, ": give both ends of the colour range or neither (lo ", m.lo,
                ", hi ", m.hi, ")");
  if (!std::isnan(m.lo)) {
    SIGLITE_CHECK(std::isfinite(m.lo) && std::isfinite(m.hi) && m.lo < m.hi, op, ": the colour range [", m.lo, ", ",
                  m.hi, "] is empty or not finite");
    lo = m.lo, hi = m.hi;
  }
  std::tie(lo, hi) = detail::widen(lo, hi);
  Canvas c(L.width, L.height);
  for (int64_t i = 0; i < m.rows; ++i)
    for (int64_t j = 0; j < m.cols; ++j) {
      const int x = L.left + static_cast<int>(j) * L.cell, y = L.top + static_cast<int>(i) * L.cell;
      c.fill_rect(x, y, x + L.cell, y + L.cell, colour_map((m.values[static_cast<size_t>(i * m.cols + j)] - lo) / (hi - lo)));
    }
  // Row and column indices at round steps, the axis names and the title.
  const int mw = static_cast<int>(m.cols) * L.cell, mh = static_cast<int>(m.rows) * L.cell;
  for (int64_t r : detail::index_ticks(m.rows)) {
    const std::string s = std::to_string(r);
    const int y = L.top + static_cast<int>(r) * L.cell + L.cell / 2;
    c.fill_rect(L.left - 5, y, L.left, y + 1, detail::kInk);
    c.text(L.left - 9 - Canvas::text_width(s, detail::kText), y - 7, s, detail::kInk, detail::kText);
  }
  for (int64_t col : detail::index_ticks(m.cols)) {
    const std::string s = std::to_string(col);
    const int x = L.left + static_cast<int>(col) * L.cell + L.cell / 2;
    c.fill_rect(x, L.top + mh, x + 1, L.top + mh + 5, detail::kInk);
    c.text(x - Canvas::text_width(s, detail::kText) / 2, L.top + mh + 9, s, detail::kInk, detail::kText);
  }
  c.text(L.left + mw / 2 - Canvas::text_width(m.col_label, detail::kText) / 2, L.top + mh + 34, m.col_label,
         detail::kInk, detail::kText);
  c.text(8, L.top - 22, m.row_label, detail::kInk, detail::kText);
  c.text(L.left, 10, m.title, detail::kInk, detail::kText);
  // The colour bar: hi at the top, lo at the bottom.
  const int bx = L.left + mw + 32;
  for (int y = 0; y < mh; ++y) c.fill_rect(bx, L.top + y, bx + 20, L.top + y + 1, colour_map(1.0 - double(y) / std::max(1, mh - 1)));
  const double mid = (lo + hi) / 2;
  const std::pair<double, int> marks[] = {{hi, L.top}, {mid, L.top + mh / 2}, {lo, L.top + mh - 1}};
  for (const auto& [v, y] : marks) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    c.fill_rect(bx + 20, y, bx + 25, y + 1, detail::kInk);
    c.text(bx + 29, y - 7, buf, detail::kInk, detail::kText);
  }
  return c;
}

/// render_heatmap, written to `path` as a PNG (atomically).
inline void write_heatmap(const std::filesystem::path& path, const Heatmap& m) { render_heatmap(m).write_png(path); }

}  // namespace siglite::io
