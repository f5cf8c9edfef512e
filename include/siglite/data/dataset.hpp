// The common dataset interface: an indexed collection of (image, caption, label) examples, and the
// helper that stacks some of them into a batch.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "siglite/core/error.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::data {

enum class Split { train, test };

inline const char* split_name(Split s) { return s == Split::train ? "train" : "test"; }

struct Example {
  Tensor<float> image;  // [C, H, W], SigLIP-normalised: values in [-1, 1]
  std::string caption;
  int64_t label = -1;  // index into Dataset::class_names(), -1 when the dataset has no classes
};

/// An indexed, read-only dataset. get(i) is a pure function of i and of the constructor's
/// arguments (no hidden state advances between calls), and it is safe to call from several
/// threads at once: a prefetch thread calls it while the training loop reads batches.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t i) const = 0;
  virtual int64_t channels() const = 0;
  /// Images are square: image_size() x image_size().
  virtual int64_t image_size() const = 0;
  /// Names of the classes that Example::label indexes; empty when the dataset has no classes.
  virtual const std::vector<std::string>& class_names() const {
    static const std::vector<std::string> none;
    return none;
  }
};

struct Batch {
  Tensor<float> images;  // [N, C, H, W]
  std::vector<std::string> captions;  // N captions, captions[k] belongs to images[k]
  Tensor<int64_t> labels;  // [N], -1 where an example has no label
};

/// Stacks the examples at `indices` (in that order) into one batch.
inline Batch make_batch(const Dataset& ds, const std::vector<int64_t>& indices) {
  SIGLITE_CHECK(!indices.empty(), "make_batch: no indices");
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t c = ds.channels(), s = ds.image_size();
  const int64_t per_image = c * s * s;
  Batch batch;
  batch.images = Tensor<float>::empty(Shape{n, c, s, s}, Device::cpu());
  batch.captions.reserve(indices.size());
  std::vector<int64_t> labels;
  labels.reserve(indices.size());
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = indices[static_cast<size_t>(k)];
    SIGLITE_CHECK(i >= 0 && i < ds.size(), "make_batch: index ", i, " out of range for a dataset of ", ds.size(),
                  " examples");
    Example ex = ds.get(i);
    SIGLITE_CHECK(ex.image.shape() == Shape({c, s, s}), "make_batch: example ", i, " has image shape ",
                  ex.image.shape(), ", expected ", Shape({c, s, s}));
    const Tensor<float> img = ex.image.contiguous();
    std::memcpy(batch.images.data() + k * per_image, img.data(), static_cast<size_t>(per_image) * sizeof(float));
    batch.captions.push_back(std::move(ex.caption));
    labels.push_back(ex.label);
  }
  batch.labels = Tensor<int64_t>::from_vector(labels, Device::cpu());
  return batch;
}

/// Fills the "{}" in a prompt template with `name`, turning "a {}" into "an {}" before a vowel
/// so that templates read naturally for every class ("an ankle boot", "a coat").
inline std::string format_prompt(const std::string& tmpl, const std::string& name) {
  const size_t pos = tmpl.find("{}");
  SIGLITE_CHECK(pos != std::string::npos, "format_prompt: template '", tmpl, "' has no {} placeholder");
  std::string prefix = tmpl.substr(0, pos);
  const bool article = prefix.size() >= 2 && prefix.compare(prefix.size() - 2, 2, "a ") == 0 &&
                       (prefix.size() == 2 || prefix[prefix.size() - 3] == ' ');
  if (article && !name.empty() && std::strchr("aeiouAEIOU", name[0]) != nullptr) prefix.insert(prefix.size() - 1, "n");
  return prefix + name + tmpl.substr(pos + 2);
}

namespace detail {
/// A seed for example `i` of a dataset seeded with `seed`; `stream` separates independent uses
/// (splits, purposes) so that they never share random numbers.
inline uint64_t example_seed(uint64_t seed, uint64_t stream, int64_t i) {
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed + 0x9E3779B97F4A7C15ULL) ^ stream) + static_cast<uint64_t>(i));
}

inline void check_index(const char* op, int64_t i, int64_t size) {
  SIGLITE_CHECK(i >= 0 && i < size, op, ": index ", i, " out of range for a dataset of ", size, " examples");
}
}  // namespace detail

}  // namespace siglite::data
