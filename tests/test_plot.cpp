// PNG plots (io/plot.hpp): files that decode to the expected size, curves and heatmap cells where and in
// the colour the data says, atomic writes, and clear errors for data that cannot be drawn.
#include <catch2/catch.hpp>
#include <siglite/data/image.hpp>
#include <siglite/io/plot.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "temp_dir.hpp"

using namespace siglite;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

io::Rgb pixel(const data::Image& img, int64_t x, int64_t y) {
  const uint8_t* p = &img.pixels[static_cast<size_t>((y * img.width + x) * 3)];
  return {p[0], p[1], p[2]};
}

/// The mean row of the pixels of colour c in column x of [top, top + h); -1 when there are none.
double mean_row(const data::Image& img, int64_t x, int64_t top, int64_t h, io::Rgb c) {
  double sum = 0, count = 0;
  for (int64_t y = top; y < top + h; ++y)
    if (pixel(img, x, y) == c) sum += double(y), count += 1;
  return count > 0 ? sum / count : -1;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("plot: a line plot is a PNG of the expected size, each curve drawn where its data lies", "[plot]") {
  TempDir dir;
  io::Series up{"up", {}, io::series_colour(0)}, down{"down", {}, io::series_colour(1)};
  for (int s = 1; s <= 50; ++s) {
    up.points.push_back({double(s), 0.1 * s});
    down.points.push_back({double(s), 5.0 - 0.1 * s});
  }
  io::write_line_plot(dir / "lines.png", {{"rising", "step", {up}}, {"falling", "step", {down}}}, 640, 300);
  CHECK(files_in(dir.path) == std::vector<std::string>{"lines.png"});  // no temporary file left behind
  const data::Image img = data::load_image((dir / "lines.png").string(), 3);
  REQUIRE(img.width == 640);
  REQUIRE(img.height == 2 * 300);

  io::LinePlotLayout L;
  L.width = 640;
  L.panel_height = 300;
  const int64_t first = L.left + 1, last = L.left + L.plot_width() - 2;
  // Panel 0 rises: its curve is low (large y) on the left, high on the right; panel 1 falls.
  const double up_left = mean_row(img, first, L.top(0), L.plot_height(), up.colour);
  const double up_right = mean_row(img, last, L.top(0), L.plot_height(), up.colour);
  const double down_left = mean_row(img, first, L.top(1), L.plot_height(), down.colour);
  const double down_right = mean_row(img, last, L.top(1), L.plot_height(), down.colour);
  REQUIRE(up_left >= 0);
  REQUIRE(up_right >= 0);
  REQUIRE(down_left >= 0);
  REQUIRE(down_right >= 0);
  CHECK(up_left > up_right + 0.8 * L.plot_height());
  CHECK(down_right > down_left + 0.8 * L.plot_height());
  // Each curve stays in its own panel.
  CHECK(mean_row(img, first, L.top(1), L.plot_height(), up.colour) < 0);
  CHECK(mean_row(img, first, L.top(0), L.plot_height(), down.colour) < 0);

  // One point, or a constant series, still gives axes and a visible mark.
  const io::Canvas one = io::render_line_plot({{"one point", "step", {{"p", {{3.0, 7.0}}, io::series_colour(2)}}}});
  int64_t marked = 0;
  for (int y = 0; y < one.height(); ++y)
    for (int x = 0; x < one.width(); ++x) marked += one.pixel(x, y) == io::series_colour(2);
  CHECK(marked > 0);
}

TEST_CASE("plot: a heatmap cell's colour follows its value on the viridis scale", "[plot]") {
  CHECK(io::colour_map(0.0) == io::Rgb{68, 1, 84});
  CHECK(io::colour_map(1.0) == io::Rgb{253, 231, 37});
  CHECK(io::colour_map(-3.0) == io::colour_map(0.0));  // clamped
  CHECK(io::colour_map(0.5) == io::Rgb{33, 144, 141});

  TempDir dir;
  io::Heatmap m;
  m.rows = 2;
  m.cols = 3;
  m.values = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 2.0f};  // 2.0 lies above the range: drawn as 1
  m.lo = 0;
  m.hi = 1;
  m.title = "probabilities";
  io::write_heatmap(dir / "heat.png", m);
  const data::Image img = data::load_image((dir / "heat.png").string(), 3);
  const io::HeatmapLayout L = io::heatmap_layout(m);
  REQUIRE(img.width == L.width);
  REQUIRE(img.height == L.height);
  const auto cell = [&](int64_t i, int64_t j) { return pixel(img, L.left + j * L.cell + L.cell / 2, L.top + i * L.cell + L.cell / 2); };
  CHECK(cell(0, 0) == io::colour_map(0.0));
  CHECK(cell(0, 1) == io::colour_map(0.25));
  CHECK(cell(0, 2) == io::colour_map(0.5));
  CHECK(cell(1, 0) == io::colour_map(0.75));
  CHECK(cell(1, 1) == io::colour_map(1.0));
  CHECK(cell(1, 2) == io::colour_map(1.0));
  CHECK(cell(0, 1) != cell(0, 2));

  // Without a range the colours span the data: its minimum is the dark end, its maximum the bright one.
  m.lo = m.hi = NAN;
  m.values = {-4.0f, -3.0f, -2.0f, -1.0f, 0.0f, 4.0f};
  const io::Canvas c = io::render_heatmap(m);
  CHECK(c.pixel(L.left + L.cell / 2, L.top + L.cell / 2) == io::colour_map(0.0));
  CHECK(c.pixel(L.left + 2 * L.cell + L.cell / 2, L.top + L.cell + L.cell / 2) == io::colour_map(1.0));
  CHECK(c.pixel(L.left + L.cell + L.cell / 2, L.top + L.cell + L.cell / 2) == io::colour_map(0.5));
}

TEST_CASE("plot: data that cannot be drawn gives a clear error and writes nothing", "[plot]") {
  TempDir dir;
  const io::Series ok{"loss", {{1, 2}, {2, 1}}, io::series_colour(0)};
  const auto nan_series = io::Series{"loss", {{1, 2}, {2, NAN}}, io::series_colour(0)};
  const auto inf_series = io::Series{"t", {{1, 2}, {INFINITY, 1}}, io::series_colour(0)};
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {}), Contains("render_line_plot") && Contains("no panels"));
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {{"empty", "step", {}}}),
                    Contains("panel 'empty' has no series"));
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {{"p", "step", {{"loss", {}, io::series_colour(0)}}}}),
                    Contains("series 'loss'") && Contains("has no points"));
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {{"p", "step", {nan_series}}}),
                    Contains("series 'loss' point 1") && Contains("not finite"));
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {{"p", "step", {ok}}, {"q", "step", {inf_series}}}),
                    Contains("series 't' point 1") && Contains("not finite"));
  CHECK_THROWS_WITH(io::write_line_plot(dir / "a.png", {{"p", "step", {ok}}}, 100, 300),
                    Contains("leaves no room"));

  io::Heatmap m;
  m.rows = 2;
  m.cols = 2;
  m.values = {1, 2, 3};
  CHECK_THROWS_WITH(io::write_heatmap(dir / "h.png", m), Contains("render_heatmap") && Contains("3 values") &&
                                                            Contains("2x2"));
  m.values = {1, 2, NAN, 4};
  CHECK_THROWS_WITH(io::write_heatmap(dir / "h.png", m), Contains("row 1, column 0") && Contains("not finite"));
  m.values = {1, 2, 3, 4};
  m.lo = 0;
  CHECK_THROWS_WITH(io::write_heatmap(dir / "h.png", m), Contains("both ends"));
  m.hi = 0;
  CHECK_THROWS_WITH(io::write_heatmap(dir / "h.png", m), Contains("colour range [0, 0]"));
  m.rows = 0;
  CHECK_THROWS_WITH(io::write_heatmap(dir / "h.png", m), Contains("0x2"));
  CHECK_THROWS_WITH(io::Canvas(0, 10), Contains("Canvas") && Contains("0x10"));
  CHECK(files_in(dir.path).empty());

  // A directory that does not exist: an error naming the file, and nothing left behind.
  const fs::path missing = dir / "no-such-dir" / "loss.png";
  CHECK_THROWS_WITH(io::write_line_plot(missing, {{"p", "step", {ok}}}), Contains(missing.string()));
  CHECK(files_in(dir.path).empty());
}

TEST_CASE("plot: text draws printable ASCII and replaces anything else", "[plot]") {
  io::Canvas c(200, 40);
  const io::Rgb ink{0, 0, 0};
  c.text(4, 4, "t = 10", ink, 2);
  c.text(4, 24, "caf\xc3\xa9\t\n", ink);  // UTF-8 and control characters: drawn as '?', never read out of bounds
  int64_t inked = 0;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) inked += c.pixel(x, y) == ink;
  CHECK(inked > 20);
  CHECK(io::Canvas::text_width("t = 10", 2) == 2 * io::Canvas::text_width("t = 10"));
  CHECK(io::Canvas::text_width("\xc3\xa9") == io::Canvas::text_width("??"));
}
