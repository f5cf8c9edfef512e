// safetensors: round trips, F16/BF16/F64 and I64/I32 reading, every corrupt-file error, atomic saves (and
// write_file_atomic, which every saver uses), loading into a Module.
#include <catch2/catch.hpp>
#include <siglite/io/safetensors.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "temp_dir.hpp"

using namespace siglite;
using TF = Tensor<float>;
using Catch::Contains;
namespace fs = std::filesystem;
using json = nlohmann::json;

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

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

template <typename U>
std::string raw_values(const std::vector<U>& values) {
  std::string s(values.size() * sizeof(U), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

/// A file from a header text and a data section (the length prefix is computed, no padding).
std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

/// The bits of each element, so that NaN, -0 and subnormals compare exactly.
std::vector<uint32_t> bits(const TF& t) {
  const std::vector<float> v = t.to_vector();
  std::vector<uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

struct Tiny : nn::Module<float> {
  TF weight, bias;
  Tiny() {
    weight = register_parameter("weight", TF::zeros({2, 3}));
    bias = register_parameter("bias", TF::zeros({2}));
  }
};

}  // namespace

TEST_CASE("safetensors: round trip is bit for bit, with metadata", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  Generator gen(7);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const TF base = TF::randn({3, 4}, gen);
  io::TensorMap tensors{
      {"a.weight", TF::randn({2, 3}, gen)},
      {"scalar", TF::scalar(-3.25f)},
      {"empty", TF::empty({0, 4})},
      {"special", TF::from_vector({0.0f, -0.0f, 1e-40f, inf, -inf, nan})},
      {"transposed", base.t()},             // non-contiguous: [4,3] view of [3,4]
      {"strided", base.slice(1, 0, 4, 2)},  // non-contiguous: every other column, [3,2]
  };
  REQUIRE_FALSE(tensors.at("transposed").is_contiguous());
  REQUIRE_FALSE(tensors.at("strided").is_contiguous());
  const io::StringMap metadata{{"format", "pt"}, {"note", "quoted \"text\", unicode \xc3\xa9"}};
  io::save_safetensors(file, tensors, metadata);

  const io::SafetensorsContents back = io::read_safetensors(file);
  CHECK(back.metadata == metadata);
  REQUIRE(back.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    REQUIRE(back.tensors.count(name) == 1);
    const TF& r = back.tensors.at(name);
    CHECK(r.shape() == t.shape());
    CHECK(r.is_contiguous());
    CHECK(bits(r) == bits(t));
  }
  CHECK(back.tensors.at("scalar").dim() == 0);
  CHECK(back.tensors.at("scalar").item() == -3.25f);
  CHECK(back.tensors.at("transposed").at({3, 1}) == base.cpu().at({1, 3}));
  CHECK(back.tensors.at("strided").at({2, 1}) == base.cpu().at({2, 2}));
  CHECK(io::load_safetensors(file).size() == tensors.size());
}

TEST_CASE("safetensors: the writer emits the standard layout", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "ordered.safetensors";
  const io::NamedTensorList list{{"z", TF::ones({2})}, {"a", TF::full({3}, 2.0f)}, {"m", TF::scalar(5.0f)}};
  io::save_safetensors(file, list, {{"k", "v"}});

  const std::string bytes = read_bytes(file);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  CHECK(n % 8 == 0);
  REQUIRE(bytes.size() == 8 + n + (2 + 3 + 1) * 4);
  const std::string header = bytes.substr(8, n);
  const size_t closing = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', closing + 1) == std::string::npos);  // padded with spaces only
  const json h = json::parse(header);
  CHECK(h["__metadata__"] == json{{"k", "v"}});
  // Data laid out in the order given, not in name order.
  CHECK(h["z"] == json{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}});
  CHECK(h["a"] == json{{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {8, 20}}});
  CHECK(h["m"] == json{{"dtype", "F32"}, {"shape", json::array()}, {"data_offsets", {20, 24}}});
  float m;
  std::memcpy(&m, bytes.data() + 8 + n + 20, sizeof m);
  CHECK(m == 5.0f);

  // No tensors, no metadata: "{}" padded to 8 bytes.
  io::save_safetensors(file, io::TensorMap{});
  CHECK(read_bytes(file) == le64(8) + "{}      ");
  CHECK(io::read_safetensors(file).tensors.empty());
}

TEST_CASE("safetensors: the writer refuses bad input", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "bad.safetensors";
  CHECK_THROWS_WITH(io::save_safetensors(file, io::NamedTensorList{{"x", TF::ones({1})}, {"x", TF::ones({1})}}),
                    Contains("'x' appears twice"));
  CHECK_THROWS_WITH(io::save_safetensors(file, io::NamedTensorList{{"__metadata__", TF::ones({1})}}),
                    Contains("cannot be named __metadata__"));
  CHECK_THROWS_WITH(io::save_safetensors(file, io::NamedTensorList{{"u", TF()}}), Contains("'u' is undefined"));
  CHECK_THROWS_WITH(io::save_safetensors(file, io::NamedTensorList{{"bad\xff", TF::ones({1})}}),
                    Contains("cannot encode the header"));
  CHECK_FALSE(fs::exists(file));
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("safetensors: F16, BF16 and F64 are read as float", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "halves.safetensors";
  // F16: 1.0, -2.5, 0.1 (nearest: 0.0999755859375), 65504 (max), 2^-24 (smallest subnormal), -0, inf.
  const std::vector<uint16_t> f16{0x3C00, 0xC100, 0x2E66, 0x7BFF, 0x0001, 0x8000, 0x7C00};
  // BF16: 1.0, -2.5, 0.1 (nearest: 0.10009765625), -inf.
  const std::vector<uint16_t> bf16{0x3F80, 0xC020, 0x3DCD, 0xFF80};
  const std::vector<double> f64{0.1, -2.5};
  const std::string header = R"({"h":{"dtype":"F16","shape":[7],"data_offsets":[0,14]},)"
                             R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[14,22]},)"
                             R"("d":{"dtype":"F64","shape":[2],"data_offsets":[22,38]}})";
  write_bytes(file, file_bytes(header, raw_values(f16) + raw_values(bf16) + raw_values(f64)));

  const io::TensorMap t = io::load_safetensors(file);
  const std::vector<float> h = t.at("h").to_vector();
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.5f);
  CHECK(h[2] == 0.0999755859375f);
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == std::ldexp(1.0f, -24));
  CHECK(h[5] == 0.0f);
  CHECK(std::signbit(h[5]));
  CHECK(h[6] == std::numeric_limits<float>::infinity());
  CHECK(t.at("b").shape() == Shape{2, 2});
  CHECK(t.at("b").to_vector() ==
        std::vector<float>{1.0f, -2.5f, 0.10009765625f, -std::numeric_limits<float>::infinity()});
  CHECK(t.at("d").to_vector() == std::vector<float>{0.1f, -2.5f});
}

TEST_CASE("safetensors: read as double, F64 values stay exact and F32 values convert", "[safetensors]") {
  // The model golden file (tests/reference/make_model_golden.py) holds float64 values only.
  const std::filesystem::path golden = std::filesystem::path(SIGLITE_TEST_DATA) / "siglip_tiny" / "golden.safetensors";
  const io::SafetensorsContentsOf<double> wide = io::read_safetensors<double>(golden);
  const io::SafetensorsContents narrow = io::read_safetensors(golden);
  REQUIRE(wide.tensors.size() == narrow.tensors.size());
  size_t not_float = 0;  // values that float cannot hold, which only the double read keeps
  for (const auto& [name, t] : wide.tensors) {
    INFO(name);
    CHECK(wide.dtypes.at(name) == "F64");
    const std::vector<double> d = t.to_vector();
    const std::vector<float> f = narrow.tensors.at(name).to_vector();
    REQUIRE(d.size() == f.size());
    for (size_t i = 0; i < d.size(); ++i) {
      CHECK(f[i] == static_cast<float>(d[i]));
      not_float += static_cast<double>(f[i]) != d[i];
    }
  }
  CHECK(not_float > 1000);

  TempDir dir;
  const TF x = TF::from_vector({1.5f, -0.1f, 3e-39f, std::numeric_limits<float>::infinity()});
  io::save_safetensors(dir / "f32.safetensors", io::TensorMap{{"x", x}});
  const std::vector<double> back = io::load_safetensors<double>(dir / "f32.safetensors").at("x").to_vector();
  const std::vector<float> want = x.to_vector();
  CHECK(back == std::vector<double>(want.begin(), want.end()));
}

TEST_CASE("safetensors: I64 and I32 are read as int64, apart from the float tensors", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "ids.safetensors";
  const std::vector<int64_t> i64{0, -1, 31999, int64_t(1) << 40, std::numeric_limits<int64_t>::min(), 7};
  const std::vector<int32_t> i32{-5, 2147483647};
  const std::vector<float> f32{0.5f};
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("input_ids":{"dtype":"I64","shape":[2,3],"data_offsets":[0,48]},)"
                             R"("mask":{"dtype":"I32","shape":[2],"data_offsets":[48,56]},)"
                             R"("scale":{"dtype":"F32","shape":[],"data_offsets":[56,60]},)"
                             R"("none":{"dtype":"I64","shape":[0,4],"data_offsets":[60,60]}})";
  write_bytes(file, file_bytes(header, raw_values(i64) + raw_values(i32) + raw_values(f32)));

  const io::SafetensorsContents c = io::read_safetensors(file);
  REQUIRE(c.int_tensors.size() == 3);
  CHECK(c.int_tensors.at("input_ids").shape() == Shape{2, 3});
  CHECK(c.int_tensors.at("input_ids").to_vector() == i64);
  CHECK(c.int_tensors.at("mask").to_vector() == std::vector<int64_t>{-5, 2147483647});
  CHECK(c.int_tensors.at("none").shape() == Shape{0, 4});
  REQUIRE(c.tensors.size() == 1);
  CHECK(c.tensors.at("scale").to_vector() == std::vector<float>{0.5f});
  CHECK(c.dtypes == io::StringMap{{"input_ids", "I64"}, {"mask", "I32"}, {"none", "I64"}, {"scale", "F32"}});
  CHECK(c.metadata.at("format") == "pt");
  // load_safetensors gives the float tensors only, so a module never sees an integer buffer.
  CHECK(io::load_safetensors(file).size() == 1);
}

TEST_CASE("safetensors: corrupt files give a clear error naming the file", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "corrupt.safetensors";
  const std::string name = file.string();
  const auto fails_with = [&](const std::string& bytes, const std::string& problem) {
    write_bytes(file, bytes);
    INFO(problem);
    CHECK_THROWS_AS(io::read_safetensors(file), Error);
    CHECK_THROWS_WITH(io::read_safetensors(file), Contains(name) && Contains(problem));
  };
  const std::string eight = raw_values(std::vector<float>{1.0f, 2.0f});
  const auto entry = [](const std::string& name, const std::string& shape, int begin, int end) {
    return detail::cat("\"", name, "\":{\"dtype\":\"F32\",\"shape\":", shape, ",\"data_offsets\":[", begin, ",", end,
                       "]}");
  };

  SECTION("truncated before the header length") { fails_with(std::string("\x10\0\0", 3), "file too short (3 bytes)"); }
  SECTION("absurd header length") {
    fails_with(le64(uint64_t(1) << 62) + "{}", "header length 4611686018427387904 is absurd");
    fails_with(le64(9) + "{}      ", "header length 9 is larger than the file");
  }
  SECTION("header not JSON, or not an object") {
    fails_with(file_bytes("{\"a\": [1, 2", ""), "header is not valid JSON");
    fails_with(file_bytes("", ""), "header is not valid JSON");
    fails_with(file_bytes("[1,2]", ""), "header is not a JSON object but a JSON array");
    fails_with(file_bytes(std::string(100000, '[') + std::string(100000, ']'), ""), "more than 16 levels deep");
  }
  SECTION("malformed entries") {
    fails_with(file_bytes(R"({"a":3})", ""), "tensor 'a': entry is not an object");
    fails_with(file_bytes(R"({"a":{"shape":[],"data_offsets":[0,0]}})", ""), "tensor 'a': entry lacks \"dtype\"");
    fails_with(file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,0]}})", ""), "lacks \"shape\"");
    fails_with(file_bytes(R"({"a":{"dtype":"F32","shape":[]}})", ""), "lacks \"data_offsets\"");
    fails_with(file_bytes(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", eight), "unsupported dtype 'Q7'");
    fails_with(file_bytes(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", eight),
               "unsupported dtype 'U8'");
    fails_with(file_bytes("{" + entry("a", "[-2]", 0, 8) + "}", eight), "shape entry is negative (-2)");
    fails_with(file_bytes("{" + entry("a", "[2.0]", 0, 8) + "}", eight), "shape entry is 2.0, not an integer");
    fails_with(file_bytes("{" + entry("a", "[\"2\"]", 0, 8) + "}", eight), "not an integer");
    fails_with(file_bytes("{" + entry("a", "[4294967296,4294967296,4]", 0, 8) + "}", eight), "is too large");
    fails_with(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", eight),
               "data_offsets is not [begin, end] but [8]");
    fails_with(file_bytes(R"({"a":{"dtype":"F32","shape":{"x":[[1]]},"data_offsets":[0,8]}})", eight),
               "shape is not an array but an object");
    fails_with(file_bytes("{" + entry("a", "[0]", 8, 0) + "}", eight), "has begin > end");
    fails_with(file_bytes(R"({"__metadata__":{"k":1}})", ""), "__metadata__ value of 'k' is not a string");
    fails_with(file_bytes(R"({"__metadata__":[]})", ""), "__metadata__ is not an object");
  }
  SECTION("byte range does not match the shape") {
    fails_with(file_bytes("{" + entry("a", "[3]", 0, 8) + "}", eight), "needs 3 x 4 bytes");
    fails_with(file_bytes(R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", eight), "needs 2 x 8 bytes");
    fails_with(file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,8]}})", eight), "needs 1 x 4 bytes");
    fails_with(file_bytes("{" + entry("a", "[2,0]", 0, 8) + "}", eight), "needs 0 x 4 bytes");
  }
  SECTION("offsets overlap, leave holes, or run past the file") {
    const std::string sixteen = eight + eight;
    fails_with(file_bytes("{" + entry("a", "[2]", 0, 8) + "," + entry("b", "[2]", 4, 12) + "}", sixteen),
               "tensor 'b' [4,12) overlaps tensor 'a' [0,8)");
    fails_with(file_bytes("{" + entry("a", "[2]", 0, 8) + "," + entry("b", "[2]", 0, 8) + "}", sixteen), "overlaps");
    fails_with(file_bytes("{" + entry("a", "[2]", 0, 8) + "," + entry("b", "[1]", 12, 16) + "}", sixteen),
               "hole of 4 bytes between tensor 'a' [0,8) and tensor 'b' [12,16)");
    fails_with(file_bytes("{" + entry("a", "[2]", 8, 16) + "}", sixteen), "hole of 8 bytes between the start");
    fails_with(file_bytes("{" + entry("a", "[2]", 0, 8) + "}", eight + "junk"), "4 trailing bytes");
    fails_with(file_bytes("{}", "x"), "1 trailing bytes");
    fails_with(file_bytes("{" + entry("a", "[4]", 0, 16) + "}", eight), "lie outside the file");
    fails_with(file_bytes("{" + entry("a", "[2]", 1000000, 1000008) + "}", eight), "lie outside the file");
  }
  SECTION("a good file cut short") {
    io::save_safetensors(file, io::TensorMap{{"w", TF::ones({4, 4})}});
    std::string bytes = read_bytes(file);
    bytes.resize(bytes.size() - 4);
    fails_with(bytes, "tensor 'w': data_offsets [0,64] lie outside the file (its data section is 60 bytes)");
  }
  SECTION("not a file") {
    CHECK_THROWS_WITH(io::read_safetensors(dir / "missing.safetensors"), Contains("missing.safetensors: cannot open"));
    CHECK_THROWS_WITH(io::read_safetensors(dir.path), Contains("not a regular file"));
  }
}

TEST_CASE("safetensors: empty-extent tensors share offsets without clashing", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "empties.safetensors";
  const io::NamedTensorList list{{"e1", TF::empty({0})},
                                 {"a", TF::ones({2})},
                                 {"e2", TF::empty({3, 0})},
                                 {"e3", TF::empty({0, 5})},
                                 {"b", TF::zeros({1})}};
  io::save_safetensors(file, list);
  const io::TensorMap back = io::load_safetensors(file);
  CHECK(back.at("e2").shape() == Shape{3, 0});
  CHECK(back.at("e3").numel() == 0);
  CHECK(back.at("a").to_vector() == std::vector<float>{1.0f, 1.0f});
  CHECK(back.at("b").to_vector() == std::vector<float>{0.0f});
}

TEST_CASE("safetensors: a failed save leaves the previous file intact", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  io::save_safetensors(file, io::TensorMap{{"w", TF::full({2}, 1.5f)}});
  const std::string good = read_bytes(file);

  SECTION("invalid input") {
    CHECK_THROWS_AS(io::save_safetensors(file, io::NamedTensorList{{"w", TF()}}), Error);
    CHECK(read_bytes(file) == good);
  }
  SECTION("target directory does not exist") {
    const fs::path missing = dir / "no-such-dir" / "model.safetensors";
    CHECK_THROWS_WITH(io::save_safetensors(missing, io::TensorMap{{"w", TF::ones({2})}}),
                      Contains(missing.string()) && Contains("cannot create the temporary file"));
    CHECK(read_bytes(file) == good);
  }
  SECTION("target is a directory") {
    const fs::path target = dir / "is-a-dir";
    fs::create_directory(target);
    CHECK_THROWS_WITH(io::save_safetensors(target, io::TensorMap{{"w", TF::ones({2})}}),
                      Contains(target.string()) && Contains("cannot rename"));
    CHECK(fs::is_directory(target));
    CHECK(fs::is_empty(target));
  }
  SECTION("a successful save replaces the file") {
    io::save_safetensors(file, io::TensorMap{{"v", TF::full({3}, 2.0f)}});
    const io::TensorMap back = io::load_safetensors(file);
    CHECK(back.size() == 1);
    CHECK(back.at("v").to_vector() == std::vector<float>{2.0f, 2.0f, 2.0f});
  }
  // No temporary file is left behind, whatever happened.
  for (const auto& e : fs::directory_iterator(dir.path))
    CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
}

TEST_CASE("files: write_file_atomic replaces a file whole or not at all", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "state.json";
  write_file_atomic(file, std::string("old"), "test");
  CHECK(read_bytes(file) == "old");
  // A writer that fails halfway: its exception comes through, the old file stays.
  const auto half = [](std::ostream& out) {
    out << "ha";
    throw Error("the writer failed");
  };
  CHECK_THROWS_WITH(write_file_atomic(file, half, "test"), Contains("the writer failed"));
  CHECK(read_bytes(file) == "old");
  const fs::path missing = dir / "no-such-dir" / "x.json";
  CHECK_THROWS_WITH(write_file_atomic(missing, std::string("x"), "Thing::save"),
                    Contains("Thing::save: " + missing.string() + ": cannot create the temporary file"));
  write_file_atomic(file, std::string("new"), "test");
  CHECK(read_bytes(file) == "new");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);  // no temporary file
}

TEST_CASE("safetensors: loading into a module", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "tiny.safetensors";
  Generator gen(3);
  Tiny source;
  source.load_state_dict({{"weight", TF::randn({2, 3}, gen)}, {"bias", TF::randn({2}, gen)}});
  io::save_safetensors(file, source);

  Tiny target;
  const TF weight_before = target.weight;
  io::load_safetensors(target, file);
  CHECK(target.weight.shares_storage(weight_before));  // in place: optimizers keep their references
  CHECK(bits(target.weight) == bits(source.weight));
  CHECK(bits(target.bias) == bits(source.bias));

  const fs::path misfit = dir / "misfit.safetensors";
  io::save_safetensors(misfit, io::TensorMap{{"weight", TF::ones({3, 2})}, {"extra", TF::ones({1})}});
  CHECK_THROWS_WITH(io::load_safetensors(target, misfit),
                    Contains(misfit.string()) && Contains("does not fit the model") && Contains("1 missing: bias") &&
                        Contains("1 unexpected: extra") && Contains("weight (checkpoint [3,2], model [2,3])"));
  CHECK(bits(target.weight) == bits(source.weight));  // a strict failure changes nothing

  io::save_safetensors(misfit, io::TensorMap{{"bias", TF::full({2}, 4.0f)}, {"extra", TF::ones({1})}});
  io::load_safetensors(target, misfit, /*strict=*/false);
  CHECK(target.bias.to_vector() == std::vector<float>{4.0f, 4.0f});
  CHECK(bits(target.weight) == bits(source.weight));
}
