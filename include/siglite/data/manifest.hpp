// User data: a JSONL manifest, one {"image": "path", "caption": "text"} object per line, with
// PNG or JPEG images preprocessed the SigLIP way (see image.hpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "siglite/core/error.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/data/dataset.hpp"
#include "siglite/data/image.hpp"

namespace siglite::data {

class JsonlManifest : public Dataset {
 public:
  struct Record {
    std::string image;  // the path as written in the manifest
    std::string resolved;  // the path opened: relative paths are taken from the manifest's directory
    std::string caption;
    int64_t line = 0;  // 1-based line of the manifest
  };

  /// Reads and checks every record: the line is a JSON object with string fields "image" and
  /// "caption", the caption is not blank, the image exists and its header decodes. Blank lines are
  /// ignored. A bad record is an Error "MANIFEST:LINE: problem"; with `skip_bad` it is dropped
  /// instead, counted in skipped() and described in problems(). Images are decoded only by get().
  JsonlManifest(const std::string& path, int64_t image_size, int64_t channels = 3, bool skip_bad = false)
      : path_(path), image_size_(image_size), channels_(channels) {
    namespace fs = std::filesystem;
    SIGLITE_CHECK(image_size > 0, "JsonlManifest: image_size must be positive, got ", image_size);
    SIGLITE_CHECK(channels == 1 || channels == 3, "JsonlManifest: channels must be 1 or 3, got ", channels);
    std::ifstream in(path, std::ios::binary);
    SIGLITE_CHECK(in.is_open(), "JsonlManifest: cannot open manifest '", path, "'");
    const fs::path base = fs::path(path).parent_path();
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      Record rec;
      rec.line = number;
      const std::string problem = parse(line, base, rec);
      if (problem.empty()) {
        records_.push_back(std::move(rec));
        continue;
      }
      const std::string message = siglite::detail::cat(path, ":", number, ": ", problem);
      SIGLITE_CHECK(skip_bad, message);
      problems_.push_back(message);
    }
    SIGLITE_CHECK(in.eof(), "JsonlManifest: error reading '", path, "' after line ", number);
    SIGLITE_CHECK(!records_.empty(), "JsonlManifest: '", path, "' has no usable records (", problems_.size(),
                  " skipped)");
  }

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  int64_t channels() const override { return channels_; }
  int64_t image_size() const override { return image_size_; }

  /// How many bad records skip_bad dropped, and their "MANIFEST:LINE: problem" descriptions.
  int64_t skipped() const { return static_cast<int64_t>(problems_.size()); }
  const std::vector<std::string>& problems() const { return problems_; }

  const Record& record(int64_t i) const {
    detail::check_index("JsonlManifest::record", i, size());
    return records_[static_cast<size_t>(i)];
  }

  /// Decodes, resizes and normalises image i: [channels, image_size, image_size] in [-1, 1].
  /// An image that passed the header check but does not decode is an Error naming the line.
  Example get(int64_t i) const override {
    const Record& rec = record(i);
    Image img;
    try {
      img = load_image(rec.resolved, channels_);
    } catch (const Error& e) {
      throw Error(siglite::detail::cat(path_, ":", rec.line, ": ", e.what()));
    }
    Example ex;
    ex.image = preprocess_image(img, image_size_);
    ex.caption = rec.caption;
    return ex;
  }

 private:
  // Fills `rec` from one manifest line; returns what is wrong with it, or an empty string.
  static std::string parse(const std::string& line, const std::filesystem::path& base, Record& rec) {
    namespace fs = std::filesystem;
    using json = nlohmann::json;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      return siglite::detail::cat("malformed JSON (", e.what(), ")");
    }
    if (!j.is_object())
      return siglite::detail::cat("expected a JSON object {\"image\": ..., \"caption\": ...}, got ", j.type_name());
    for (const char* key : {"image", "caption"}) {
      const auto it = j.find(key);
      if (it == j.end()) return siglite::detail::cat("missing key \"", key, "\"");
      if (!it->is_string()) return siglite::detail::cat("\"", key, "\" must be a string, got ", it->type_name());
    }
    rec.image = j["image"].get<std::string>();
    rec.caption = j["caption"].get<std::string>();
    if (rec.caption.find_first_not_of(" \t\r\n") == std::string::npos) return "empty caption";
    if (rec.image.empty()) return "empty image path";
    const fs::path p(rec.image);
    rec.resolved = (p.is_absolute() ? p : base / p).string();
    std::error_code ec;
    if (!fs::is_regular_file(rec.resolved, ec))
      return siglite::detail::cat("image '", rec.image, "' not found (looked for '", rec.resolved, "')");
    const std::string why = probe_image(rec.resolved);
    if (!why.empty())
      return siglite::detail::cat("image '", rec.image, "' is not a readable PNG, JPEG or BMP (", why, ")");
    return {};
  }

  std::string path_;
  int64_t image_size_;
  int64_t channels_;
  std::vector<Record> records_;
  std::vector<std::string> problems_;
};

}  // namespace siglite::data
