// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from the IDX files of Debian's dataset-fashion-mnist,
// with each image captioned from a prompt template and its class name.
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "siglite/core/error.hpp"
#include "siglite/core/generator.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/data/dataset.hpp"

namespace siglite::data {

/// An IDX file: big-endian dimensions and unsigned bytes.
struct IdxFile {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

/// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or plain (zlib reads both).
/// `expected_magic` is the whole 32-bit magic number (2049 for labels, 2051 for images).
/// A wrong magic number, a short or overlong file or a corrupt gzip stream is an Error naming the file; memory
/// grows with the data read, never to a size only the header claims.
inline IdxFile read_idx(const std::string& path, uint32_t expected_magic) {
  struct Closer {
    void operator()(gzFile f) const { gzclose(f); }
  };
  std::unique_ptr<gzFile_s, Closer> file(gzopen(path.c_str(), "rb"));
  SIGLITE_CHECK(file != nullptr, "read_idx: cannot open '", path, "'");
  // gzread takes an unsigned count; chunking keeps every call far below its limit.
  auto read = [&](void* dst, size_t n) -> size_t {
    size_t done = 0;
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, size_t(1) << 30));
      const int got = gzread(file.get(), static_cast<char*>(dst) + done, chunk);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(file.get(), &errnum);
        const char* what = errnum == Z_BUF_ERROR ? "truncated" : "corrupt";
        throw Error(siglite::detail::cat("read_idx: '", path, "' is ", what, " (", msg ? msg : "gzip error", ")"));
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  };
  auto be32 = [](const unsigned char* b) {
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  };
  unsigned char head[4];
  SIGLITE_CHECK(read(head, 4) == 4, "read_idx: '", path, "' is truncated: it ends inside the header");
  const uint32_t magic = be32(head);
  SIGLITE_CHECK(magic == expected_magic, "read_idx: '", path, "' has magic number ", magic, ", expected ",
                expected_magic, " (not an IDX file of this kind, or corrupt)");
  const int ndim = head[3];
  IdxFile idx;
  uint64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    unsigned char b[4];
    SIGLITE_CHECK(read(b, 4) == 4, "read_idx: '", path, "' is truncated: it ends inside the header");
    const uint32_t extent = be32(b);
    SIGLITE_CHECK(extent > 0 && extent <= (1u << 28), "read_idx: '", path, "' has an implausible extent ", extent,
                  " on axis ", d);
    total *= extent;
    SIGLITE_CHECK(total <= (uint64_t(1) << 34), "read_idx: '", path, "' declares more than 16 GiB of data");
    idx.dims.push_back(extent);
  }
  // The header's claim is not trusted with memory: the data grows with what the file really holds, 16 MiB at a
  // time, so a short file with a huge header allocates in proportion to its own size, not to the claim.
  constexpr size_t kChunk = size_t(1) << 24;
  while (idx.data.size() < total) {
    const size_t have = idx.data.size(), want = std::min<size_t>(static_cast<size_t>(total) - have, kChunk);
    idx.data.resize(have + want);
    const size_t got = read(idx.data.data() + have, want);
    SIGLITE_CHECK(got == want, "read_idx: '", path, "' is truncated: ", have + got, " of ", total,
                  " data bytes present");
  }
  unsigned char extra;
  SIGLITE_CHECK(read(&extra, 1) == 0, "read_idx: '", path, "' has data beyond the ", total,
                " bytes its header declares");
  return idx;
}

class FashionMnist : public Dataset {
 public:
  static constexpr const char* default_dir = "/usr/share/datasets/fashion-mnist";

  /// Decodes the split's images and labels once; get() then only reads memory.
  /// The train split captions example i from training_templates(), the test split from
  /// eval_templates(); which template is a pure function of (seed, i).
  explicit FashionMnist(const std::string& dir = default_dir, Split split = Split::train, uint64_t seed = 0)
      : split_(split), seed_(seed) {
    namespace fs = std::filesystem;
    SIGLITE_CHECK(fs::is_directory(dir), "FashionMnist: directory '", dir,
                  "' does not exist; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
                  "or pass the directory that holds the IDX files");
    const std::string prefix = split == Split::train ? "train" : "t10k";
    const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
    const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
    IdxFile images = read_idx(images_path, 2051);
    IdxFile labels = read_idx(labels_path, 2049);
    SIGLITE_CHECK(images.dims.size() == 3, "FashionMnist: '", images_path, "' has ", images.dims.size(),
                  " dimensions, expected 3 (count, rows, columns)");
    SIGLITE_CHECK(labels.dims.size() == 1, "FashionMnist: '", labels_path, "' has ", labels.dims.size(),
                  " dimensions, expected 1");
    SIGLITE_CHECK(images.dims[1] == images.dims[2], "FashionMnist: '", images_path, "' holds ", images.dims[1], "x",
                  images.dims[2], " images; expected square ones");
    SIGLITE_CHECK(images.dims[0] == labels.dims[0], "FashionMnist: '", images_path, "' holds ", images.dims[0],
                  " images but '", labels_path, "' holds ", labels.dims[0], " labels");
    for (size_t k = 0; k < labels.data.size(); ++k)
      SIGLITE_CHECK(labels.data[k] < class_list().size(), "FashionMnist: '", labels_path, "' has label ",
                    int(labels.data[k]), " at index ", k, "; labels are 0..9");
    count_ = images.dims[0];
    side_ = images.dims[1];
    pixels_ = std::move(images.data);
    labels_ = std::move(labels.data);
  }

  int64_t size() const override { return count_; }
  int64_t channels() const override { return 1; }
  int64_t image_size() const override { return side_; }
  const std::vector<std::string>& class_names() const override { return class_list(); }
  Split split() const { return split_; }

  int64_t label(int64_t i) const {
    detail::check_index("FashionMnist::label", i, count_);
    return labels_[static_cast<size_t>(i)];
  }

  /// The raw pixels of image i: image_size()^2 bytes, row-major, 0 = background.
  const uint8_t* pixels(int64_t i) const {
    detail::check_index("FashionMnist::pixels", i, count_);
    return pixels_.data() + i * side_ * side_;
  }

  Example get(int64_t i) const override {
    detail::check_index("FashionMnist::get", i, count_);
    Example ex;
    ex.image = Tensor<float>::empty(Shape{1, side_, side_}, Device::cpu());
    const uint8_t* src = pixels(i);
    float* dst = ex.image.data();
    for (int64_t k = 0; k < side_ * side_; ++k) dst[k] = static_cast<float>(src[k]) / 127.5f - 1.0f;
    ex.label = labels_[static_cast<size_t>(i)];
    const auto& templates = split_ == Split::train ? training_templates() : eval_templates();
    Generator gen(detail::example_seed(seed_, split_ == Split::train ? 0 : 1, i));
    ex.caption = caption(ex.label, templates[gen.randint(templates.size())]);
    return ex;
  }

  /// The prompt templates that training captions are drawn from.
  static const std::vector<std::string>& training_templates() {
    static const std::vector<std::string> t = {
        "a photo of a {}",
        "a {} on a plain background",
        "a black and white photo of a {}",
        "a picture of a {}",
        "a small image of a {}",
        "a low resolution photo of a {}",
        "a grayscale picture of a {}",
        "an image showing a {}",
        "this is a {}",
    };
    return t;
  }

  /// Prompt templates for evaluation, none of which appears in training_templates(), so that a
  /// zero-shot score measures more than memorised caption strings.
  static const std::vector<std::string>& eval_templates() {
    static const std::vector<std::string> t = {
        "a product photo of a {}",
        "a catalogue picture of a {}",
        "a close-up of a {}",
        "a {}, seen from the front",
        "an item of clothing: a {}",
    };
    return t;
  }

  /// The caption of class `label` under `tmpl` ("a photo of an ankle boot").
  static std::string caption(int64_t label, const std::string& tmpl) {
    SIGLITE_CHECK(label >= 0 && label < static_cast<int64_t>(class_list().size()), "FashionMnist::caption: label ",
                  label, " is not in 0..", class_list().size() - 1);
    return format_prompt(tmpl, class_list()[static_cast<size_t>(label)]);
  }

  static const std::vector<std::string>& class_list() {
    static const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                   "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
    return names;
  }

 private:
  // Debian ships the files gzip-compressed; an unpacked copy elsewhere is accepted too.
  static std::string find_file(const std::string& dir, const std::string& stem) {
    namespace fs = std::filesystem;
    for (const std::string& name : {stem + ".gz", stem}) {
      const fs::path p = fs::path(dir) / name;
      if (fs::is_regular_file(p)) return p.string();
    }
    throw Error(siglite::detail::cat("FashionMnist: '", dir, "' has neither ", stem, ".gz nor ", stem,
                            "; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"));
  }

  Split split_;
  uint64_t seed_;
  int64_t count_ = 0;
  int64_t side_ = 0;
  std::vector<uint8_t> pixels_;  // [count, side, side]
  std::vector<uint8_t> labels_;  // [count]
};

}  // namespace siglite::data
