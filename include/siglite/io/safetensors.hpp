// safetensors checkpoints (the Hugging Face format): name -> Tensor<float> (and Tensor<int64_t> for integer
// tensors such as token ids), plus a string map of metadata.
//
// File layout (all integers little-endian):
//   bytes [0, 8)        N: uint64, the length of the JSON header
//   bytes [8, 8+N)      JSON object, padded with spaces (siglite pads 8+N to a multiple of 8):
//                         {"__metadata__": {"key": "value", ...},                       (optional)
//                          "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//   bytes [8+N, end)    the data section: each tensor row-major, at [begin, end) relative to 8+N. Sorted by begin,
//                       the ranges tile the data section exactly: the first begins at 0, each begins where the
//                       previous one ended, the last ends at the end of the file; end - begin = numel * dtype size.
// A 0-d tensor has shape [] (one element); a tensor with a zero extent has begin == end.
//
// Writing: F32, in the order given (a std::map writes in name order). Reading: F32, F16, BF16 and F64, converted
// to float (or to double: read_safetensors<double> keeps F64 values exact); I64 and I32 as int64
// (SafetensorsContents::int_tensors). Every violation of the layout above is a
// siglite::Error naming the file and the problem, found before any tensor memory is allocated, whatever the
// dtype. Saving is atomic: a temporary file next to the target, then a rename over it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "siglite/core/error.hpp"
#include "siglite/core/files.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/nn/module.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "siglite/io/safetensors.hpp assumes a little-endian host"
#endif

namespace siglite::io {

template <typename T>
using TensorMapOf = std::map<std::string, Tensor<T>>;
using TensorMap = TensorMapOf<float>;
using IntTensorMap = std::map<std::string, Tensor<int64_t>>;
using NamedTensorList = std::vector<std::pair<std::string, Tensor<float>>>;
using StringMap = std::map<std::string, std::string>;

/// What a safetensors file holds: its tensors by kind, the dtype each had in the file, and its "__metadata__".
template <typename T = float>
struct SafetensorsContentsOf {
  TensorMapOf<T> tensors;  // F32, F16, BF16, F64, converted to T
  IntTensorMap int_tensors;  // I64, I32, as int64
  StringMap dtypes;  // every tensor's dtype as stored: "F16", "I64", ...
  StringMap metadata;
};
using SafetensorsContents = SafetensorsContentsOf<float>;

/// Headers above this size are refused as corrupt (the format's reference implementation uses the same cap).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

namespace detail {

namespace fs = std::filesystem;
using siglite::detail::cat;
using json = nlohmann::json;

[[noreturn]] inline void fail(const fs::path& path, const std::string& problem) {
  throw Error(cat("safetensors: ", path.string(), ": ", problem));
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits = sign;
  if (exponent == 0x1f) {
    bits |= 0x7f800000u | (mantissa << 13);  // inf, NaN
  } else if (exponent != 0) {
    bits |= ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {
    const float f = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal: exact in float
    return sign ? -f : f;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint64_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F64" || dtype == "I64") return 8;
  return 0;
}

inline bool is_int_dtype(const std::string& dtype) { return dtype == "I64" || dtype == "I32"; }

struct Entry {
  std::string name, dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

/// A short description of a JSON value from an untrusted header (never a recursive or unbounded dump).
inline std::string describe(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) {
    const bool flat =
        v.size() <= 4 && std::none_of(v.begin(), v.end(), [](const json& e) { return e.is_structured(); });
    if (!flat) return cat("an array of ", v.size(), " elements");
  }
  std::string s = v.dump();
  return s.size() <= 40 ? s : s.substr(0, 37) + "...";
}

/// A JSON value as a uint64, or an error naming `what`.
inline uint64_t to_uint(const fs::path& path, const json& v, const std::string& what) {
  if (!v.is_number_integer()) fail(path, cat(what, " is ", describe(v), ", not an integer"));
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.get<int64_t>() < 0) fail(path, cat(what, " is negative (", describe(v), ")"));
  return 0;  // "-0"
}

/// Checks one header entry against a data section of `data_size` bytes.
inline Entry parse_entry(const fs::path& path, const std::string& name, const json& info, uint64_t data_size) {
  const std::string where = cat("tensor '", name, "'");
  if (!info.is_object()) fail(path, cat(where, ": entry is not an object but ", describe(info)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail(path, cat(where, ": entry lacks \"", key, "\""));
  Entry e;
  e.name = name;
  const json& dtype = info["dtype"];
  if (!dtype.is_string()) fail(path, cat(where, ": dtype is not a string but ", describe(dtype)));
  e.dtype = dtype.get<std::string>();
  const uint64_t elem = dtype_size(e.dtype);
  if (elem == 0)
    fail(path, cat(where, ": unsupported dtype '", e.dtype, "' (siglite reads F32, F16, BF16, F64, I64, I32)"));

  const json& shape = info["shape"];
  if (!shape.is_array()) fail(path, cat(where, ": shape is not an array but ", describe(shape)));
  uint64_t nonzero_product = 1;  // bounded so that Shape::numel and the strides never overflow
  bool has_zero = false;
  for (const json& d : shape) {
    const uint64_t extent = to_uint(path, d, cat(where, ": shape entry"));
    const auto limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (extent == 0) {
      has_zero = true;
    } else {
      if (nonzero_product > limit / extent) fail(path, cat(where, ": shape is too large (its extents pass 2^63)"));
      nonzero_product *= extent;
    }
    e.shape.push_back(static_cast<int64_t>(extent));
  }
  const uint64_t numel = has_zero ? 0 : nonzero_product;

  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, cat(where, ": data_offsets is not [begin, end] but ", describe(offsets)));
  e.begin = to_uint(path, offsets[0], cat(where, ": data_offsets begin"));
  e.end = to_uint(path, offsets[1], cat(where, ": data_offsets end"));
  const std::string range = cat(where, ": data_offsets [", e.begin, ",", e.end, "]");
  if (e.begin > e.end) fail(path, cat(range, " has begin > end"));
  if (e.end > data_size) fail(path, cat(range, " lie outside the file (its data section is ", data_size, " bytes)"));
  if (numel > std::numeric_limits<uint64_t>::max() / elem || e.end - e.begin != numel * elem)
    fail(path, cat(range, " span ", e.end - e.begin, " bytes, but shape ", e.shape, " of ", e.dtype, " needs ", numel,
                   " x ", elem, " bytes"));
  return e;
}

/// Sorted by begin, the entries must tile [0, data_size) with neither holes nor overlaps.
inline void check_layout(const fs::path& path, std::vector<Entry>& entries, uint64_t data_size) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t pos = 0;
  std::string previous = "the start of the data section";
  for (const Entry& e : entries) {
    const std::string range = cat("tensor '", e.name, "' [", e.begin, ",", e.end, ")");
    if (e.begin < pos) fail(path, cat(range, " overlaps ", previous, " (which ends at ", pos, ")"));
    if (e.begin > pos) fail(path, cat("hole of ", e.begin - pos, " bytes between ", previous, " and ", range));
    pos = e.end;
    previous = range;
  }
  if (pos != data_size) fail(path, cat(data_size - pos, " trailing bytes after the last tensor's data"));
}

/// Reads `n` bytes, or fails naming what was being read.
inline void read_exact(std::istream& in, const fs::path& path, char* out, uint64_t n, const std::string& what) {
  in.read(out, static_cast<std::streamsize>(n));
  if (static_cast<uint64_t>(in.gcount()) != n) fail(path, cat("read error in ", what));
}

template <typename T>
Tensor<T> read_float_tensor(std::istream& in, const fs::path& path, const Entry& e) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "safetensors: reads float or double");
  Tensor<T> t = Tensor<T>::empty(e.shape, Device::cpu());
  const uint64_t n = static_cast<uint64_t>(t.numel()), bytes = e.end - e.begin;
  const std::string what = cat("tensor '", e.name, "'");
  if (e.dtype == (std::is_same_v<T, float> ? "F32" : "F64")) {
    read_exact(in, path, reinterpret_cast<char*>(t.data()), bytes, what);
    return t;
  }
  std::vector<char> raw(bytes);
  read_exact(in, path, raw.data(), bytes, what);
  T* out = t.data();
  for (uint64_t i = 0; i < n; ++i) {
    if (e.dtype == "F64") {
      double d;
      std::memcpy(&d, raw.data() + 8 * i, sizeof d);
      out[i] = static_cast<T>(d);
    } else if (e.dtype == "F32") {
      float f;
      std::memcpy(&f, raw.data() + 4 * i, sizeof f);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, sizeof h);
      out[i] = static_cast<T>(e.dtype == "F16" ? half_to_float(h) : bf16_to_float(h));
    }
  }
  return t;
}

inline Tensor<int64_t> read_int_tensor(std::istream& in, const fs::path& path, const Entry& e) {
  Tensor<int64_t> t = Tensor<int64_t>::empty(e.shape, Device::cpu());
  const std::string what = cat("tensor '", e.name, "'");
  if (e.dtype == "I64") {
    read_exact(in, path, reinterpret_cast<char*>(t.data()), e.end - e.begin, what);
    return t;
  }
  std::vector<int32_t> raw(static_cast<size_t>(t.numel()));
  read_exact(in, path, reinterpret_cast<char*>(raw.data()), e.end - e.begin, what);
  std::copy(raw.begin(), raw.end(), t.data());
  return t;
}

}  // namespace detail

/// Reads and validates a safetensors file; F32, F16, BF16 and F64 tensors come back as T (float or double), I64
/// and I32 as int64.
template <typename T = float>
SafetensorsContentsOf<T> read_safetensors(const std::filesystem::path& path) {
  using detail::cat;
  using detail::fail;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail(path, cat("cannot open: ", ec ? ec.message() : "no such file"));
  if (!std::filesystem::is_regular_file(status)) fail(path, "not a regular file");
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, cat("cannot get the file size: ", ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");

  if (file_size < 8) fail(path, cat("file too short (", file_size, " bytes) to hold the 8-byte header length"));
  unsigned char len[8];
  detail::read_exact(in, path, reinterpret_cast<char*>(len), 8, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n > kMaxSafetensorsHeaderBytes)
    fail(path, cat("header length ", n, " is absurd (the limit is ", kMaxSafetensorsHeaderBytes, " bytes)"));
  if (n > file_size - 8)
    fail(path, cat("header length ", n, " is larger than the file (", file_size, " bytes) allows"));
  std::string text(n, '\0');
  detail::read_exact(in, path, text.data(), n, "the header");

  // A valid header nests three levels deep; refusing deeper ones bounds the parser's memory.
  const auto limit_depth = [&path](int depth, detail::json::parse_event_t, detail::json&) {
    if (depth > 16) fail(path, "header nests JSON more than 16 levels deep");
    return true;
  };
  detail::json header;
  try {
    header = detail::json::parse(text, limit_depth);
  } catch (const detail::json::exception& e) {
    fail(path, cat("header is not valid JSON (", e.what(), ")"));
  }
  if (!header.is_object()) fail(path, cat("header is not a JSON object but a JSON ", header.type_name()));

  const uint64_t data_size = file_size - 8 - n;
  SafetensorsContentsOf<T> out;
  std::vector<detail::Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != "__metadata__") {
      entries.push_back(detail::parse_entry(path, name, info, data_size));
      continue;
    }
    if (!info.is_object()) fail(path, "__metadata__ is not an object of strings");
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string())
        fail(path, cat("__metadata__ value of '", key, "' is not a string but ", detail::describe(value)));
      out.metadata.emplace(key, value.template get<std::string>());
    }
  }
  detail::check_layout(path, entries, data_size);
  for (const detail::Entry& e : entries) {
    out.dtypes.emplace(e.name, e.dtype);
    if (detail::is_int_dtype(e.dtype))
      out.int_tensors.emplace(e.name, detail::read_int_tensor(in, path, e));
    else
      out.tensors.emplace(e.name, detail::read_float_tensor<T>(in, path, e));
  }
  return out;
}

/// The floating-point tensors of a safetensors file as T, by name (integer tensors, such as the position_ids buffer of older
/// HF checkpoints, are left out: read_safetensors has them).
template <typename T = float>
TensorMapOf<T> load_safetensors(const std::filesystem::path& path) {
  return read_safetensors<T>(path).tensors;
}

/// Loads a checkpoint into `module` (Module::load_state_dict: strict lists every missing, unexpected and
/// mismatched name in one Error; non-strict loads what fits).
inline void load_safetensors(nn::Module<float>& module, const std::filesystem::path& path, bool strict = true) {
  const TensorMap state = load_safetensors(path);
  try {
    module.load_state_dict(state, strict);
  } catch (const Error& e) {
    detail::fail(path, e.what());
  }
}

/// Writes the tensors as F32, laid out in the given order, atomically: a temporary file in the target's directory,
/// renamed over `path` once complete. On failure the temporary is removed and an existing file is left untouched.
inline void save_safetensors(const std::filesystem::path& path, const NamedTensorList& tensors,
                             const StringMap& metadata = {}) {
  using detail::cat;
  using detail::fail;
  std::set<std::string> names;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor<float>> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail(path, "a tensor cannot be named __metadata__");
    if (!names.insert(name).second) fail(path, cat("tensor name '", name, "' appears twice"));
    if (!tensor.defined()) fail(path, cat("tensor '", name, "' is undefined"));
    const Tensor<float> c = tensor.detach().contiguous().to(Device::cpu());
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", c.shape().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    fail(path, cat("cannot encode the header (", e.what(), ")"));
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');

  write_file_atomic(
      path,
      [&](std::ostream& out) {
        unsigned char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
        out.write(reinterpret_cast<const char*>(len), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const Tensor<float>& c : data)
          out.write(reinterpret_cast<const char*>(c.data()), static_cast<std::streamsize>(c.numel() * sizeof(float)));
      },
      "safetensors");
}

/// Writes the tensors in name order.
inline void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                             const StringMap& metadata = {}) {
  save_safetensors(path, NamedTensorList(tensors.begin(), tensors.end()), metadata);
}

/// Writes a module's state_dict (parameters and buffers by dotted name).
inline void save_safetensors(const std::filesystem::path& path, const nn::Module<float>& module,
                             const StringMap& metadata = {}) {
  save_safetensors(path, module.state_dict(), metadata);
}

}  // namespace siglite::io
