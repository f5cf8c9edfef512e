// Datasets: Fashion-MNIST (and every corrupt-IDX error), the procedural shapes with their held-out
// pairs, the JSONL manifest with its bad-record reports, SigLIP image preprocessing, batching.
#include <catch2/catch.hpp>
#include <siglite/data/dataset.hpp>
#include <siglite/data/fashion_mnist.hpp>
#include <siglite/data/image.hpp>
#include <siglite/data/manifest.hpp>
#include <siglite/data/shapes.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "temp_dir.hpp"

// A private copy of stb_image_write writes the test images, unless a header already brought one.
#ifndef INCLUDE_STB_IMAGE_WRITE_H
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#endif

using namespace siglite;
using namespace siglite::data;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

/// An IDX image file of `count` side x side images whose pixel k of image i is (i * 7 + k) % 256.
std::string idx_images(uint32_t count, uint32_t side) {
  std::string s = be32(2051) + be32(count) + be32(side) + be32(side);
  for (uint32_t i = 0; i < count; ++i)
    for (uint32_t k = 0; k < side * side; ++k) s.push_back(static_cast<char>((i * 7 + k) % 256));
  return s;
}

std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string s = be32(2049) + be32(static_cast<uint32_t>(labels.size()));
  for (uint8_t l : labels) s.push_back(static_cast<char>(l));
  return s;
}

/// A baseline JPEG of one flat 8x8 grey block, put together by hand because stb_image_write's JPEG
/// encoder left-shifts negative ints, which the sanitizer build stops at. Unit quantisation, and
/// Huffman tables with a single one-bit code each: the DC category of the block, and end-of-block.
std::string flat_grey_jpeg(int grey) {
  std::vector<uint8_t> b = {0xFF, 0xD8};
  auto segment = [&](uint8_t marker, const std::vector<uint8_t>& body) {
    const size_t n = body.size() + 2;
    b.insert(b.end(), {0xFF, marker, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    b.insert(b.end(), body.begin(), body.end());
  };
  std::vector<uint8_t> dqt(65, 1);
  dqt[0] = 0;
  segment(0xDB, dqt);
  segment(0xC0, {8, 0, 8, 0, 8, 1, 1, 0x11, 0});  // 8 bits, 8x8, one component
  const int dc = (grey - 128) * 8;  // the DCT of a flat block is 8 * (level - 128) at (0, 0)
  int category = 0;
  while ((std::abs(dc) >> category) != 0) ++category;
  std::vector<uint8_t> dht(17, 0);  // class/id, 16 code counts, then the symbols
  dht[1] = 1;
  dht.push_back(static_cast<uint8_t>(category));
  segment(0xC4, dht);
  dht[0] = 0x10;
  dht.back() = 0x00;
  segment(0xC4, dht);
  segment(0xDA, {1, 1, 0x00, 0, 63, 0});
  std::string bits = "0";
  const int amplitude = dc >= 0 ? dc : dc + (1 << category) - 1;
  for (int k = category - 1; k >= 0; --k) bits += (amplitude >> k) & 1 ? '1' : '0';
  bits += "0";
  while (bits.size() % 8) bits += '1';
  for (size_t k = 0; k < bits.size(); k += 8) {
    const auto byte = static_cast<uint8_t>(std::stoi(bits.substr(k, 8), nullptr, 2));
    b.push_back(byte);
    if (byte == 0xFF) b.push_back(0);
  }
  b.insert(b.end(), {0xFF, 0xD9});
  return std::string(b.begin(), b.end());
}

bool fashion_mnist_installed() {
  if (fs::is_directory(FashionMnist::default_dir)) return true;
  WARN("skipped: " << FashionMnist::default_dir << " is missing (install Debian's dataset-fashion-mnist)");
  return false;
}

std::pair<float, float> value_range(const Tensor<float>& t) {
  const std::vector<float> v = t.to_vector();
  const auto mm = std::minmax_element(v.begin(), v.end());
  return {*mm.first, *mm.second};
}

}  // namespace

TEST_CASE("format_prompt fills the placeholder and fixes the article", "[data]") {
  CHECK(format_prompt("a photo of a {}", "coat") == "a photo of a coat");
  CHECK(format_prompt("a photo of a {}", "ankle boot") == "a photo of an ankle boot");
  CHECK(format_prompt("a {}, seen from the front", "ankle boot") == "an ankle boot, seen from the front");
  CHECK(format_prompt("this is a {}", "apple") == "this is an apple");
  CHECK(format_prompt("a sofa {}", "item") == "a sofa item");  // "a" is not directly before {}
  CHECK(format_prompt("{}", "bag") == "bag");
  CHECK_THROWS_WITH(format_prompt("a photo", "bag"), Contains("no {} placeholder"));
}

TEST_CASE("FashionMnist: counts, ranges, labels, determinism", "[data]") {
  if (!fashion_mnist_installed()) return;
  const FashionMnist train(FashionMnist::default_dir, Split::train, 7);
  const FashionMnist test(FashionMnist::default_dir, Split::test, 7);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.channels() == 1);
  CHECK(train.image_size() == 28);
  REQUIRE(train.class_names().size() == 10);
  CHECK(train.class_names()[9] == "ankle boot");

  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < train.size(); ++i) {
    const int64_t l = train.label(i);
    REQUIRE(l >= 0);
    REQUIRE(l < 10);
    ++per_class[static_cast<size_t>(l)];
  }
  for (int64_t n : per_class) CHECK(n == 6000);  // Fashion-MNIST's train split is balanced

  for (int64_t i : {int64_t(0), int64_t(1), int64_t(12345), int64_t(59999)}) {
    const Example ex = train.get(i);
    REQUIRE(ex.image.shape() == Shape({1, 28, 28}));
    const auto [lo, hi] = value_range(ex.image);
    CHECK(lo >= -1.0f);
    CHECK(hi <= 1.0f);
    CHECK(lo == -1.0f);  // every image has some background
    CHECK(ex.label == train.label(i));
    // The pixel bytes map linearly onto [-1, 1].
    const uint8_t* raw = train.pixels(i);
    for (int64_t k = 0; k < 28 * 28; k += 37) CHECK(ex.image.data()[k] == Approx(raw[k] / 127.5 - 1.0));
    const Example again = train.get(i);
    CHECK(again.caption == ex.caption);
    CHECK(again.image.to_vector() == ex.image.to_vector());
  }
  const Example last = test.get(9999);
  CHECK(last.image.shape() == Shape({1, 28, 28}));
  CHECK_THROWS_WITH(train.get(60000), Contains("out of range"));
  CHECK_THROWS_WITH(test.get(-1), Contains("out of range"));
}

TEST_CASE("FashionMnist: train captions use training templates, test captions evaluation ones", "[data]") {
  const auto& tr = FashionMnist::training_templates();
  const auto& ev = FashionMnist::eval_templates();
  for (const auto& t : ev) CHECK(std::find(tr.begin(), tr.end(), t) == tr.end());
  CHECK(FashionMnist::caption(9, "a photo of a {}") == "a photo of an ankle boot");
  CHECK(FashionMnist::caption(0, "a photo of a {}") == "a photo of a t-shirt");
  CHECK_THROWS_WITH(FashionMnist::caption(10, "a {}"), Contains("label 10"));
  if (!fashion_mnist_installed()) return;

  const FashionMnist train(FashionMnist::default_dir, Split::train, 1);
  const FashionMnist test(FashionMnist::default_dir, Split::test, 1);
  const FashionMnist reseeded(FashionMnist::default_dir, Split::train, 2);
  std::set<std::string> used;
  int differ = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const Example ex = train.get(i);
    const Example ex2 = reseeded.get(i);
    bool found = false;
    for (const auto& t : tr)
      if (FashionMnist::caption(ex.label, t) == ex.caption) {
        found = true;
        used.insert(t);
      }
    CHECK(found);
    for (const auto& t : ev) CHECK(FashionMnist::caption(ex.label, t) != ex.caption);
    differ += ex.caption != ex2.caption;
    CHECK(ex.image.to_vector() == ex2.image.to_vector());  // the seed picks captions only
  }
  CHECK(used.size() == tr.size());  // every template gets used
  CHECK(differ > 100);
  for (int64_t i = 0; i < 100; ++i) {
    const Example ex = test.get(i);
    bool found = false;
    for (const auto& t : ev) found = found || FashionMnist::caption(ex.label, t) == ex.caption;
    CHECK(found);
  }
}

TEST_CASE("FashionMnist: a small IDX directory in gzip or plain form", "[data]") {
  TempDir dir;
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 4));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels({9, 0, 4}));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(2, 4));  // uncompressed works too
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({1, 2}));
  const FashionMnist train(dir.path.string(), Split::train);
  const FashionMnist test(dir.path.string(), Split::test);
  CHECK(train.size() == 3);
  CHECK(test.size() == 2);
  CHECK(train.image_size() == 4);
  const Example ex = train.get(2);
  CHECK(ex.label == 4);
  CHECK(ex.image.shape() == Shape({1, 4, 4}));
  CHECK(ex.image.data()[0] == Approx(14 / 127.5 - 1.0));
  CHECK(ex.image.data()[15] == Approx(29 / 127.5 - 1.0));
  CHECK(test.get(1).label == 2);
}

TEST_CASE("FashionMnist: missing and corrupt files are clear errors", "[data]") {
  TempDir dir;
  const std::string d = dir.path.string();
  const std::string images = (dir / "train-images-idx3-ubyte.gz").string();
  const std::string labels = (dir / "train-labels-idx1-ubyte.gz").string();

  CHECK_THROWS_WITH(FashionMnist(d + "/nowhere"), Contains("install Debian's dataset-fashion-mnist"));
  CHECK_THROWS_WITH(FashionMnist(d), Contains("has neither train-images-idx3-ubyte.gz"));

  write_gz(labels, idx_labels({1, 2, 3}));
  SECTION("bad magic number") {
    write_gz(images, be32(2049) + idx_images(3, 4).substr(4));
    CHECK_THROWS_WITH(FashionMnist(d), Contains(images) && Contains("magic number 2049, expected 2051"));
  }
  SECTION("labels file given where images are expected") {
    write_gz(images, idx_labels({1, 2, 3}));
    CHECK_THROWS_WITH(FashionMnist(d), Contains("magic number 2049"));
  }
  SECTION("truncated data") {
    const std::string full = idx_images(3, 4);
    write_gz(images, full.substr(0, full.size() - 5));
    CHECK_THROWS_WITH(FashionMnist(d), Contains(images) && Contains("truncated") && Contains("43 of 48"));
  }
  SECTION("truncated header") {
    write_gz(images, idx_images(3, 4).substr(0, 10));
    CHECK_THROWS_WITH(FashionMnist(d), Contains(images) && Contains("ends inside the header"));
  }
  SECTION("truncated gzip stream") {
    std::string big;
    std::mt19937 rng(1);
    for (int i = 0; i < 3 * 28 * 28; ++i) big.push_back(static_cast<char>(rng()));  // incompressible
    write_gz(images, be32(2051) + be32(3) + be32(28) + be32(28) + big);
    const std::string gz = read_bytes(images);
    write_bytes(images, gz.substr(0, gz.size() / 2));
    CHECK_THROWS_WITH(FashionMnist(d), Contains(images) && Contains("truncated"));
  }
  SECTION("trailing bytes") {
    write_gz(images, idx_images(3, 4) + "xx");
    CHECK_THROWS_WITH(FashionMnist(d), Contains(images) && Contains("beyond the 48 bytes"));
  }
  SECTION("counts disagree") {
    write_gz(images, idx_images(4, 4));
    CHECK_THROWS_WITH(FashionMnist(d), Contains("holds 4 images") && Contains("holds 3 labels"));
  }
  SECTION("label out of range") {
    write_gz(images, idx_images(3, 4));
    write_gz(labels, idx_labels({1, 12, 3}));
    CHECK_THROWS_WITH(FashionMnist(d), Contains(labels) && Contains("label 12 at index 1"));
  }
  SECTION("images that are not square") {
    write_gz(images, be32(2051) + be32(3) + be32(4) + be32(5) + std::string(60, '\0'));
    CHECK_THROWS_WITH(FashionMnist(d), Contains("4x5 images"));
  }
}

TEST_CASE("read_idx: a 26-byte file whose header claims 3.2 GB is refused without allocating them", "[data]") {
  // Found by libFuzzer: dimensions 8 x 50332675 x 8, then 10 bytes of data.
  const std::string found("\x00\x00\x08\x03\x00\x00\x00\x08\x03\x00\x04\x03\x00\x00\x00\x08"
                          "\x03\x00\x04\x03\x00\x00\x05\x00\x00\x00", 26);
  TempDir dir;
  const fs::path path = dir / "claims-3.2GB-idx3-ubyte";
  write_bytes(path, found);
  CHECK_THROWS_WITH(read_idx(path.string(), 2051), Contains(path.string()) && Contains("truncated") &&
                                                        Contains("10 of 3221291200 data bytes"));
#if defined(__SANITIZE_ADDRESS__)
  WARN("the address-space limit is not checked under AddressSanitizer, which reserves terabytes of shadow memory");
#else
  // In a child whose address space may grow by 1 GiB at most, the same read must end in that Error, not in
  // std::bad_alloc.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0;
    statm >> pages;
    const rlim_t limit = pages * static_cast<size_t>(sysconf(_SC_PAGESIZE)) + (rlim_t(1) << 30);
    const rlimit r{limit, limit};
    if (setrlimit(RLIMIT_AS, &r) != 0) _exit(3);
    try {
      read_idx(path.string(), 2051);
    } catch (const Error&) {
      _exit(0);
    } catch (...) {
      _exit(1);
    }
    _exit(2);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 1: another exception (std::bad_alloc), 2: no error, 3: no limit set
#endif
}

TEST_CASE("Shapes: deterministic, in range, varied captions", "[data]") {
  const Shapes a(42), b(42), c(43);
  CHECK(a.size() == int64_t(1) << 30);
  CHECK(a.channels() == 3);
  CHECK(a.image_size() == 32);
  CHECK(a.class_names().empty());
  for (int64_t i : {int64_t(0), int64_t(5), int64_t(999999), (int64_t(1) << 30) - 1}) {
    const Example ea = a.get(i), eb = b.get(i), ec = c.get(i);
    REQUIRE(ea.image.shape() == Shape({3, 32, 32}));
    CHECK(ea.caption == eb.caption);
    CHECK(ea.image.to_vector() == eb.image.to_vector());
    CHECK(ea.image.to_vector() != ec.image.to_vector());
    CHECK(ea.label == -1);
    const auto [lo, hi] = value_range(ea.image);
    CHECK(lo >= -1.0f);
    CHECK(hi <= 1.0f);
  }
  std::set<std::string> captions;
  int singles = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    const Shapes::Scene sc = a.scene(i);
    captions.insert(sc.caption);
    singles += sc.shapes.size() == 1;
  }
  CHECK(captions.size() > 900);
  CHECK(singles > 200);
  CHECK(singles < 400);
  CHECK_THROWS_WITH(a.get(int64_t(1) << 30), Contains("out of range"));
  CHECK_THROWS_WITH(Shapes(1, Split::train, 8), Contains("image_size 8"));
}

TEST_CASE("Shapes: train scenes come in groups that differ only in their shapes' kinds", "[data]") {
  const Shapes ds(8);
  const int64_t g = Shapes::kind_variants();
  REQUIRE(g >= 2);
  for (int64_t group = 0; group < 50; ++group) {
    const Shapes::Scene first = ds.scene(group * g);
    std::set<int64_t> kinds;
    std::set<std::string> captions;
    for (int64_t m = 0; m < g; ++m) {
      const Shapes::Scene sc = ds.scene(group * g + m);
      REQUIRE(sc.shapes.size() == first.shapes.size());
      CHECK(sc.relation == first.relation);
      CHECK(sc.region == first.region);
      CHECK(sc.background == first.background);
      for (size_t k = 0; k < sc.shapes.size(); ++k) {
        CHECK(sc.shapes[k].colour == first.shapes[k].colour);
        CHECK(sc.shapes[k].size == first.shapes[k].size);
        CHECK(sc.shapes[k].cx == first.shapes[k].cx);
        CHECK(sc.shapes[k].cy == first.shapes[k].cy);
        CHECK(sc.shapes[k].rgb == first.shapes[k].rgb);
      }
      kinds.insert(sc.shapes[0].kind);
      captions.insert(sc.caption);
    }
    CHECK(kinds.size() == static_cast<size_t>(g));  // the first shape's kind tells the members apart
    CHECK(captions.size() == static_cast<size_t>(g));
  }
  // The next group is another scene.
  CHECK(ds.scene(0).background != ds.scene(g).background);
}

TEST_CASE("Shapes: scenes match their captions and pixels", "[data]") {
  const Shapes ds(3, Split::train, 48);
  int checked_pixels = 0;
  for (int64_t i = 0; i < 400; ++i) {
    const Shapes::Scene sc = ds.scene(i);
    const Shapes::ShapeSpec& a = sc.shapes[0];
    const std::string a_text = Shapes::size_names()[a.size] + " " + Shapes::colour_names()[a.colour] + " " +
                               Shapes::kind_names()[a.kind];
    CHECK_THAT(sc.caption, Contains(a_text));
    for (const auto& sh : sc.shapes) {
      CHECK(sh.cx - sh.radius >= 0);
      CHECK(sh.cx + sh.radius <= 48);
      CHECK(sh.cy - sh.radius >= 0);
      CHECK(sh.cy + sh.radius <= 48);
    }
    if (sc.shapes.size() == 2) {
      const Shapes::ShapeSpec& b = sc.shapes[1];
      CHECK_THAT(sc.caption, Contains(Shapes::relation_names()[sc.relation]) ||
                                 Contains(Shapes::relation_names()[sc.relation ^ 1]));
      const float dx = b.cx - a.cx, dy = b.cy - a.cy;  // y grows downwards
      if (sc.relation == 0) CHECK((dx > 0 && std::fabs(dy) < dx));
      if (sc.relation == 1) CHECK((dx < 0 && std::fabs(dy) < -dx));
      if (sc.relation == 2) CHECK((dy > 0 && std::fabs(dx) < dy));
      if (sc.relation == 3) CHECK((dy < 0 && std::fabs(dx) < -dy));
      if (a.size == 1) CHECK(a.radius > b.radius * (b.size == 0 ? 1.4f : 0.8f));
    } else {
      CHECK_THAT(sc.caption, Contains(Shapes::region_names()[sc.region]));
      // The pixel under the centre of a solid shape shows its colour exactly.
      if (a.kind != 4) {
        const Example ex = ds.get(i);
        const int64_t x = static_cast<int64_t>(a.cx), y = static_cast<int64_t>(a.cy);
        for (int64_t ch = 0; ch < 3; ++ch) CHECK(ex.image.at({ch, y, x}) == Approx(a.rgb[ch] * 2 - 1).margin(1e-5));
        ++checked_pixels;
      }
    }
  }
  CHECK(checked_pixels > 50);
}

TEST_CASE("Shapes: held-out pairs never appear in training, the test split shows them all", "[data]") {
  const Shapes train(11);
  const auto& held = Shapes::held_out_pairs();
  REQUIRE(held.size() == 5);
  std::set<std::pair<int64_t, int64_t>> seen;
  for (int64_t i = 0; i < 3000; ++i) {
    const Shapes::Scene sc = train.scene(i);
    CHECK_FALSE(sc.held_out);
    for (const auto& sh : sc.shapes) {
      CHECK_FALSE(train.is_held_out(sh.colour, sh.kind));
      seen.insert({sh.colour, sh.kind});
    }
    for (const auto& [colour, kind] : held) {
      const std::string phrase = Shapes::colour_names()[colour] + " " + Shapes::kind_names()[kind];
      CHECK_THAT(sc.caption, !Contains(phrase));
    }
  }
  CHECK(seen.size() == 40 - held.size());  // every other pair does appear

  const Shapes open(11, Split::train, 32, false);  // nothing held out: red triangles appear
  CHECK_FALSE(open.is_held_out(0, 2));
  bool any_held = false;
  for (int64_t i = 0; i < 3000 && !any_held; ++i)
    for (const auto& sh : open.scene(i).shapes) any_held = any_held || held.front() == std::pair(sh.colour, sh.kind);
  CHECK(any_held);

  const Shapes test(11, Split::test);
  CHECK(test.size() == 4000);
  REQUIRE(test.class_names().size() == 40);
  CHECK(test.class_names()[0] == "red circle");
  CHECK(test.class_names()[2] == "red triangle");
  std::vector<int64_t> per_class(40, 0);
  int64_t held_count = 0;
  for (int64_t i = 0; i < test.size(); i += 7) {
    const Shapes::Scene sc = test.scene(i);
    REQUIRE(sc.shapes.size() == 1);
    const Example ex = test.get(i);
    const auto& sh = sc.shapes[0];
    CHECK(ex.label == sh.colour * Shapes::num_kinds() + sh.kind);
    CHECK_THAT(ex.caption, Contains(test.class_names()[static_cast<size_t>(ex.label)]));
    CHECK(sc.held_out == test.is_held_out(sh.colour, sh.kind));
    held_count += sc.held_out;
    ++per_class[static_cast<size_t>(ex.label)];
  }
  for (int64_t n : per_class) CHECK(n > 0);
  CHECK(held_count > 0);
  // The test split draws its own examples, not the train split's.
  CHECK(Shapes(11, Split::test).get(0).image.to_vector() != train.get(0).image.to_vector());
}

TEST_CASE("make_batch stacks examples", "[data]") {
  const Shapes ds(5, Split::test);
  const Batch batch = make_batch(ds, {3, 1, 4, 1});
  REQUIRE(batch.images.shape() == Shape({4, 3, 32, 32}));
  REQUIRE(batch.captions.size() == 4);
  REQUIRE(batch.labels.shape() == Shape({4}));
  const Example e4 = ds.get(4);
  CHECK(batch.captions[2] == e4.caption);
  CHECK(batch.labels.to_vector() == std::vector<int64_t>{3, 1, 4, 1});
  const std::vector<float> all = batch.images.to_vector();
  CHECK(std::vector<float>(all.begin() + 2 * 3 * 32 * 32, all.begin() + 3 * 3 * 32 * 32) == e4.image.to_vector());
  CHECK_THROWS_WITH(make_batch(ds, {0, 4000}), Contains("index 4000 out of range"));
  CHECK_THROWS_WITH(make_batch(ds, {}), Contains("no indices"));
}

namespace {

std::string le_bytes(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

/// An uncompressed BMP with a BITMAPINFOHEADER: `rows` are the stored rows (bottom row first when height > 0),
/// each padded to 4 bytes by the caller; `palette` holds blue, green, red, 0 per colour.
std::string bmp_file(int32_t width, int32_t height, uint16_t bits, const std::string& palette, const std::string& rows,
                     uint32_t compression = 0) {
  const uint32_t offset = 14 + 40 + static_cast<uint32_t>(palette.size());
  return "BM" + le_bytes(offset + static_cast<uint32_t>(rows.size()), 4) + le_bytes(0, 4) + le_bytes(offset, 4) +
         le_bytes(40, 4) + le_bytes(static_cast<uint32_t>(width), 4) + le_bytes(static_cast<uint32_t>(height), 4) +
         le_bytes(1, 2) + le_bytes(bits, 2) + le_bytes(compression, 4) +
         le_bytes(static_cast<uint32_t>(rows.size()), 4) +
         le_bytes(2835, 4) + le_bytes(2835, 4) + le_bytes(static_cast<uint32_t>(palette.size() / 4), 4) +
         le_bytes(0, 4) + palette + rows;
}

std::vector<uint8_t> rgb(std::initializer_list<int> v) { return std::vector<uint8_t>(v.begin(), v.end()); }

}  // namespace

TEST_CASE("load_image: PNG by libpng, exact, with grey, alpha and luma conversions", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> rgba = {255, 0, 0, 10, 0, 255, 0, 128, 0, 0, 255, 255, 1, 2, 3, 0};  // 2 x 2
  REQUIRE(stbi_write_png((dir / "rgba.png").string().c_str(), 2, 2, 4, rgba.data(), 2 * 4));
  const Image img = load_image((dir / "rgba.png").string());
  CHECK(img.width == 2);
  CHECK(img.height == 2);
  CHECK(img.channels == 3);
  CHECK(img.pixels == rgb({255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3}));  // alpha dropped, not composited
  // Grey as PIL's convert("L"): (19595 r + 38470 g + 7471 b + 2^15) >> 16.
  CHECK(load_image((dir / "rgba.png").string(), 1).pixels == rgb({76, 150, 29, 2}));
  const std::vector<uint8_t> grey = {0, 17, 200, 255, 128, 9};  // 3 x 2
  REQUIRE(stbi_write_png((dir / "grey.png").string().c_str(), 3, 2, 1, grey.data(), 3));
  CHECK(load_image((dir / "grey.png").string(), 1).pixels == grey);
  const Image grey3 = load_image((dir / "grey.png").string(), 3);
  REQUIRE(grey3.pixels.size() == 18);
  for (size_t i = 0; i < 6; ++i)
    for (size_t ch = 0; ch < 3; ++ch) CHECK(grey3.pixels[i * 3 + ch] == grey[i]);
  // The same bytes from memory.
  const Image again = decode_image(read_bytes(dir / "rgba.png"), "in memory");
  CHECK(again.pixels == img.pixels);
  CHECK_THROWS_WITH(load_image((dir / "rgba.png").string(), 2), Contains("channels must be 1 or 3"));
}

TEST_CASE("load_image: JPEG by libjpeg-turbo; truncated files and huge claims are errors", "[data]") {
  TempDir dir;
  const std::string jpeg = flat_grey_jpeg(200);
  write_bytes(dir / "flat.jpg", jpeg);
  const Image img = load_image((dir / "flat.jpg").string());
  REQUIRE(img.pixels.size() == 8 * 8 * 3);
  for (uint8_t v : img.pixels) CHECK(std::abs(v - 200) <= 1);
  CHECK(probe_image((dir / "flat.jpg").string()).empty());
  // A file that ends inside the entropy-coded data: libjpeg would pad it with grey, siglite refuses it.
  write_bytes(dir / "cut.jpg", jpeg.substr(0, jpeg.size() - 4));
  CHECK_THROWS_WITH(load_image((dir / "cut.jpg").string()), Contains("cut.jpg") && Contains("Premature end"));
  // A frame header that claims 16384 x 16384 pixels is refused before any pixel is read.
  std::string huge = jpeg;
  const size_t sof = huge.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  huge.replace(sof + 5, 4, std::string("\x40\x00\x40\x00", 4));
  write_bytes(dir / "huge.jpg", huge);
  CHECK_THROWS_WITH(load_image((dir / "huge.jpg").string()),
                    Contains("huge.jpg") && Contains("16384 x 16384 pixels, more than the 67108864"));
  CHECK_THAT(probe_image((dir / "huge.jpg").string()), Contains("more than the 67108864"));
  // The limit is the caller's to choose.
  CHECK_THROWS_WITH(load_image((dir / "flat.jpg").string(), 3, 63), Contains("8 x 8 pixels, more than the 63"));
  CHECK(load_image((dir / "flat.jpg").string(), 3, 64).width == 8);
}

TEST_CASE("load_image: the 32-byte JPEG that made stb_image read out of bounds is a clear error", "[data]") {
  // Found by libFuzzer (base64 /9j/xKt4AAAAAAAAACD/////qqqqqqqqqqqqqqqqAOU=): stb_image indexed a 257-entry
  // Huffman table at 257. Under the sanitizer build this test stops there when images are decoded by stb_image.
  const std::string found("\xFF\xD8\xFF\xC4\xAB\x78\x00\x00\x00\x00\x00\x00\x00\x20\xFF\xFF"
                          "\xFF\xFF\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\x00\xE5", 32);
  CHECK_THROWS_WITH(decode_image(found, "found.jpg"), Contains("load_image: cannot decode 'found.jpg'"));
  CHECK_THROWS_WITH(decode_image(found, "found.jpg", 1), Contains("load_image: cannot decode 'found.jpg'"));
}

TEST_CASE("load_image: uncompressed BMP, bottom-up and top-down, 1 to 32 bits a pixel, bit-field masks", "[data]") {
  TempDir dir;
  auto load = [&](const std::string& name, const std::string& bytes, int64_t channels = 3) {
    write_bytes(dir / name, bytes);
    return load_image((dir / name).string(), channels);
  };
  // 3 x 2 at 24 bits: rows of 9 bytes padded to 12, stored bottom row first, blue green red.
  const std::string rows24 = std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\0\0\0", 12) +
                             std::string("\x0A\x0B\x0C\x0D\x0E\x0F\x10\x11\x12\0\0\0", 12);
  const Image a = load("a.bmp", bmp_file(3, 2, 24, "", rows24));
  CHECK(a.width == 3);
  CHECK(a.height == 2);
  CHECK(a.pixels == rgb({12, 11, 10, 15, 14, 13, 18, 17, 16, 3, 2, 1, 6, 5, 4, 9, 8, 7}));
  // The same rows top-down (negative height) come out in stored order.
  CHECK(load("b.bmp", bmp_file(3, -2, 24, "", rows24)).pixels ==
        rgb({3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10, 15, 14, 13, 18, 17, 16}));
  // 32 bits: blue green red and an ignored fourth byte.
  CHECK(load("c.bmp", bmp_file(1, 1, 32, "", std::string("\x10\x20\x30\x99", 4))).pixels == rgb({48, 32, 16}));
  // 8 bits through a palette of two colours; an index beyond the palette is black.
  const std::string palette("\x00\x00\xFF\x00\x00\xFF\x00\x00", 8);  // red, green
  CHECK(load("d.bmp", bmp_file(3, 1, 8, palette, std::string("\x01\x00\x07\x00", 4))).pixels ==
        rgb({0, 255, 0, 255, 0, 0, 0, 0, 0}));
  // 1 bit: the most significant bit is the leftmost pixel.
  CHECK(load("e.bmp", bmp_file(3, 1, 1, palette, std::string("\xA0\0\0\0", 4)), 1).pixels == rgb({150, 76, 150}));
  // 16 bits: 5-5-5 without masks, and bit-field masks (which a 40-byte header is followed by) for 16 and 32 bits.
  CHECK(load("m.bmp", bmp_file(2, 1, 16, "", std::string("\xE0\x03\x10\x42", 4))).pixels ==
        rgb({0, 255, 0, 132, 132, 132}));
  const std::string masks565 = le_bytes(0xF800, 4) + le_bytes(0x07E0, 4) + le_bytes(0x001F, 4);
  CHECK(load("n.bmp", bmp_file(1, 1, 16, masks565, std::string("\x1F\xF8\0\0", 4), 3)).pixels ==
        rgb({255, 0, 255}));
  const std::string masks_rgbx = le_bytes(0xFF000000, 4) + le_bytes(0x00FF0000, 4) + le_bytes(0x0000FF00, 4);
  CHECK(load("o.bmp", bmp_file(1, 1, 32, masks_rgbx, std::string("\x00\x33\x22\x11", 4), 3)).pixels ==
        rgb({0x11, 0x22, 0x33}));
  SECTION("refused") {
    CHECK_THROWS_WITH(load("f.bmp", bmp_file(3, 1, 8, palette, std::string("\x01\x00", 2))),
                      Contains("f.bmp") && Contains("ends inside the image"));
    CHECK_THROWS_WITH(load("g.bmp", bmp_file(1, 1, 8, palette, std::string(4, '\0'), 1)),
                      Contains("compressed BMP (compression 1)"));
    CHECK_THROWS_WITH(load("h.bmp", bmp_file(1, 1, 2, "", std::string(4, '\0'))), Contains("2 bits a pixel"));
    CHECK_THROWS_WITH(load("i.bmp", bmp_file(0, 1, 24, "", "")), Contains("0 x 1 pixels"));
    CHECK_THROWS_WITH(load("j.bmp", bmp_file(100000, -100000, 24, "", "")),
                      Contains("100000 x 100000 pixels, more than the 67108864"));
    CHECK_THROWS_WITH(load("k.bmp", bmp_file(1, 1, 8, std::string(257 * 4, '\0'), std::string(4, '\0'))),
                      Contains("palette of 257 colours"));
    CHECK_THROWS_WITH(load("l.bmp", "BM\x10"), Contains("ends inside the BMP header"));
  }
}

TEST_CASE("load_image: what is not an image", "[data]") {
  TempDir dir;
  write_bytes(dir / "text.png", "this is text, not a PNG\n");
  CHECK_THROWS_WITH(load_image((dir / "text.png").string()),
                    Contains("text.png") && Contains("not a PNG, JPEG or BMP"));
  CHECK_THAT(probe_image((dir / "text.png").string()), Contains("not a PNG, JPEG or BMP"));
  CHECK_THROWS_WITH(load_image((dir / "gone.png").string()), Contains("cannot open") && Contains("gone.png"));
  CHECK_THROWS_WITH(decode_image("", "empty"), Contains("'empty'") && Contains("not a PNG, JPEG or BMP"));
  const std::vector<uint8_t> px(8 * 6 * 3, 77);
  REQUIRE(stbi_write_png((dir / "a.png").string().c_str(), 8, 6, 3, px.data(), 8 * 3));
  const std::string png = read_bytes(dir / "a.png");
  write_bytes(dir / "cut.png", png.substr(0, png.size() - 20));
  CHECK_THROWS_WITH(load_image((dir / "cut.png").string()), Contains("cut.png") && Contains("ends inside the image"));
  CHECK_THROWS_WITH(load_image((dir / "a.png").string(), 3, 47), Contains("8 x 6 pixels, more than the 47"));
  CHECK_THAT(probe_image((dir / "a.png").string(), 47), Contains("more than the 47"));
  CHECK(probe_image((dir / "a.png").string()).empty());
}

TEST_CASE("preprocess_image: exact at the same size, antialiased when shrinking", "[data]") {
  Image img;
  img.width = 64;
  img.height = 64;
  img.channels = 1;
  for (int64_t y = 0; y < 64; ++y)
    for (int64_t x = 0; x < 64; ++x) img.pixels.push_back(x % 2 ? 255 : 0);
  const Tensor<float> same = preprocess_image(img, 64);
  REQUIRE(same.shape() == Shape({1, 64, 64}));
  CHECK(same.at({0, 5, 0}) == Approx(-1.0f));
  CHECK(same.at({0, 5, 1}) == Approx(1.0f));
  // Stripes one pixel wide average to grey instead of aliasing into black or white.
  const Tensor<float> small = preprocess_image(img, 8);
  const auto [lo, hi] = value_range(small);
  CHECK(lo > -0.1f);
  CHECK(hi < 0.1f);
  // Enlarging a flat image keeps it flat.
  Image flat;
  flat.width = 3;
  flat.height = 2;
  flat.channels = 3;
  for (int k = 0; k < 6; ++k) flat.pixels.insert(flat.pixels.end(), {255, 0, 51});
  const Tensor<float> big = preprocess_image(flat, 10);
  REQUIRE(big.shape() == Shape({3, 10, 10}));
  CHECK(big.at({0, 7, 3}) == Approx(1.0f));
  CHECK(big.at({1, 0, 9}) == Approx(-1.0f));
  CHECK(big.at({2, 4, 4}) == Approx(51 / 127.5 - 1.0));
  CHECK_THROWS_WITH(preprocess_image(flat, 0), Contains("size must be positive"));
}

TEST_CASE("JsonlManifest: records, bad lines by file and line, skip_bad", "[data]") {
  TempDir dir;
  std::vector<uint8_t> rgb;
  for (int k = 0; k < 8 * 6; ++k) rgb.insert(rgb.end(), {255, 0, 51});
  REQUIRE(stbi_write_png((dir / "a.png").string().c_str(), 8, 6, 3, rgb.data(), 8 * 3));
  const std::vector<uint8_t> grey(5 * 5, 128);
  REQUIRE(stbi_write_png((dir / "b.png").string().c_str(), 5, 5, 1, grey.data(), 5));
  fs::create_directories(dir / "sub");
  write_bytes(dir / "sub" / "c.jpg", flat_grey_jpeg(200));
  write_bytes(dir / "notimage.png", "this is text, not a PNG\n");
  write_bytes(dir / "corrupt.png", read_bytes(dir / "a.png").substr(0, 45));  // header intact, pixels gone

  const std::string lines[] = {
      R"({"image": "a.png", "caption": "a red square"})",
      R"({"image": "b.png", "caption": "grey"})",
      R"({"image": "missing.png", "caption": "gone"})",
      R"({"image": "a.png", "caption": "  "})",
      R"({"image": "a.png", "caption": "x")",
      R"({"image": "a.png"})",
      "",
      R"({"image": "notimage.png", "caption": "text file"})",
      R"({"image": "sub/c.jpg", "caption": "a jpeg"})",
      R"({"image": 5, "caption": "number"})",
      R"([1, 2])",
      R"({"image": "corrupt.png", "caption": "truncated png"})",
      R"({"image": ")" + (dir / "a.png").string() + R"(", "caption": "absolute path"})",
  };
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  const std::string manifest = (dir / "manifest.jsonl").string();
  write_bytes(manifest, text);

  CHECK_THROWS_WITH(JsonlManifest(manifest, 16), Contains("manifest.jsonl:3: image 'missing.png' not found"));

  const JsonlManifest ds(manifest, 16, 3, true);
  REQUIRE(ds.size() == 5);
  CHECK(ds.skipped() == 7);
  REQUIRE(ds.problems().size() == 7);
  CHECK_THAT(ds.problems()[0], Contains("manifest.jsonl:3: image 'missing.png' not found"));
  CHECK_THAT(ds.problems()[1], Contains("manifest.jsonl:4: empty caption"));
  CHECK_THAT(ds.problems()[2], Contains("manifest.jsonl:5: malformed JSON"));
  CHECK_THAT(ds.problems()[3], Contains("manifest.jsonl:6: missing key \"caption\""));
  CHECK_THAT(ds.problems()[4], Contains("manifest.jsonl:8: image 'notimage.png' is not a readable PNG, JPEG or BMP"));
  CHECK_THAT(ds.problems()[5], Contains("manifest.jsonl:10: \"image\" must be a string"));
  CHECK_THAT(ds.problems()[6], Contains("manifest.jsonl:11: expected a JSON object"));
  CHECK(ds.record(2).line == 9);
  CHECK(ds.record(2).caption == "a jpeg");
  CHECK(ds.class_names().empty());

  const Example a = ds.get(0);
  REQUIRE(a.image.shape() == Shape({3, 16, 16}));
  CHECK(a.caption == "a red square");
  CHECK(a.label == -1);
  CHECK(a.image.at({0, 3, 11}) == Approx(1.0f));
  CHECK(a.image.at({1, 15, 0}) == Approx(-1.0f));
  CHECK(a.image.at({2, 8, 8}) == Approx(51 / 127.5 - 1.0));
  const Example b = ds.get(1);  // a grey PNG is expanded to three channels
  for (int64_t ch = 0; ch < 3; ++ch) CHECK(b.image.at({ch, 2, 2}) == Approx(128 / 127.5 - 1.0).margin(1e-5));
  const Example c = ds.get(2);
  for (int64_t ch = 0; ch < 3; ++ch) CHECK(c.image.at({ch, 8, 8}) == Approx(200 / 127.5 - 1.0).margin(0.02));
  CHECK(ds.get(4).caption == "absolute path");
  CHECK_THROWS_WITH(ds.get(3), Contains("manifest.jsonl:12:") && Contains("corrupt.png"));

  const JsonlManifest grey_ds(manifest, 8, 1, true);
  CHECK(grey_ds.get(0).image.shape() == Shape({1, 8, 8}));
  CHECK(grey_ds.channels() == 1);

  const Batch batch = make_batch(ds, {0, 1, 2});
  CHECK(batch.images.shape() == Shape({3, 3, 16, 16}));
  CHECK(batch.captions == std::vector<std::string>{"a red square", "grey", "a jpeg"});

  write_bytes(dir / "bad.jsonl", lines[2] + "\n" + lines[4] + "\n");
  CHECK_THROWS_WITH(JsonlManifest((dir / "bad.jsonl").string(), 16, 3, true),
                    Contains("no usable records (2 skipped)"));
  CHECK_THROWS_WITH(JsonlManifest((dir / "none.jsonl").string(), 16), Contains("cannot open manifest"));
  CHECK_THROWS_WITH(JsonlManifest(manifest, 16, 4), Contains("channels must be 1 or 3"));
}

TEST_CASE("BatchOrder: one permutation an epoch, the batches of batch_indices", "[data]") {
  data::BatchOrder order(10, 3, 42);  // 3 batches an epoch, the last example dropped
  std::vector<int64_t> seen;
  for (int64_t step = 0; step < 9; ++step) {
    const std::vector<int64_t> b = order.indices(step);
    CHECK(b == data::batch_indices(10, 3, 42, step));
    if (step < 3) seen.insert(seen.end(), b.begin(), b.end());
  }
  CHECK(order.permutations() == 3);
  // The order itself is fixed by (size, batch, seed, step): a checkpoint resumes on the batches it would have seen.
  CHECK(order.indices(0) == std::vector<int64_t>{9, 8, 6});
  CHECK(order.indices(4) == std::vector<int64_t>{3, 8, 7});
  CHECK(order.permutations() == 5);  // back to epoch 0, then epoch 1 again
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // no example twice in an epoch
  CHECK(data::batch_indices(10, 3, 42, 0) != data::batch_indices(10, 3, 42, 3));  // epochs differ
}
