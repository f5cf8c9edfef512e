// Image files and SigLIP preprocessing: decoding PNG/JPEG/BMP with stb_image (Debian's
// libstb-dev), resizing, and normalising x/255 then (x - 0.5) / 0.5 into [-1, 1].
//
// stb_image is compiled into every translation unit that includes this header as a private
// (static) copy, which is what lets siglite stay header-only: no TU has to provide the one
// STB_IMAGE_IMPLEMENTATION definition. A TU that also uses stb_image itself can either include
// <stb/stb_image.h> with its own implementation *before* this header (siglite then uses that one),
// or include this header first and then use the stbi_* functions it already declared; it must not
// compile the implementation after including this header. Defining SIGLITE_STB_IMAGE_EXTERNAL
// makes this header only declare stb_image, for programs that link their own implementation.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#ifndef STBI_INCLUDE_STB_IMAGE_H
#ifndef SIGLITE_STB_IMAGE_EXTERNAL
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define SIGLITE_STB_IMAGE_DEFINED_HERE
#endif
// Debian installs stb under /usr/include, so compilers treat it as a system header and stay
// quiet; these cover a copy found through -I, whose unused static functions would all warn.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wconversion"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#ifdef SIGLITE_STB_IMAGE_DEFINED_HERE
#undef STB_IMAGE_STATIC
#undef STB_IMAGE_IMPLEMENTATION
#undef STBI_ONLY_PNG
#undef STBI_ONLY_JPEG
#undef STBI_ONLY_BMP
#undef SIGLITE_STB_IMAGE_DEFINED_HERE
#endif
#endif

#include "siglite/core/error.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::data {

/// A decoded 8-bit image, interleaved: pixels[(y * width + x) * channels + c].
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]
};

/// Decodes a PNG, JPEG or BMP file into `channels` channels (1: grey, 3: RGB; stb_image converts,
/// dropping alpha). Throws an Error naming the file and stb_image's reason when it cannot.
inline Image load_image(const std::string& path, int64_t channels = 3) {
  SIGLITE_CHECK(channels == 1 || channels == 3, "load_image: channels must be 1 or 3, got ", channels);
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load(path.c_str(), &w, &h, &n, static_cast<int>(channels)),
                                                 stbi_image_free);
  if (!data) {
    const char* why = stbi_failure_reason();
    throw Error(siglite::detail::cat("load_image: cannot decode '", path, "' (", why ? why : "unknown reason", ")"));
  }
  Image img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  img.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * channels);
  return img;
}

/// Reads only the header of an image file; an empty string when it looks decodable, else why not.
inline std::string probe_image(const std::string& path) {
  int w = 0, h = 0, n = 0;
  if (stbi_info(path.c_str(), &w, &h, &n)) return {};
  const char* why = stbi_failure_reason();
  return why ? why : "unknown reason";
}

namespace detail {
// Keys cubic convolution with a = -0.5, the kernel of PIL's BICUBIC filter.
inline double bicubic_weight(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The taps of a 1-D resampling from `in` to `out` samples. As in PIL, the kernel is stretched by
// the scale factor when shrinking, so that downscaling averages (antialiases) instead of aliasing.
struct ResampleTaps {
  std::vector<int64_t> first;  // [out] first input index
  std::vector<int64_t> count;  // [out] number of taps
  std::vector<float> weights;  // [out, width]
  int64_t width = 0;
};

inline ResampleTaps resample_taps(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double stretch = std::max(scale, 1.0);
  const double support = 2.0 * stretch;
  ResampleTaps t;
  t.width = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out));
  t.count.resize(static_cast<size_t>(out));
  t.weights.assign(static_cast<size_t>(out * t.width), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const double centre = (static_cast<double>(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(centre - support + 0.5));
    const int64_t hi = std::min<int64_t>(in, static_cast<int64_t>(centre + support + 0.5));
    std::vector<double> w(static_cast<size_t>(hi - lo));
    double sum = 0.0;
    for (int64_t k = lo; k < hi; ++k) {
      w[static_cast<size_t>(k - lo)] = bicubic_weight((static_cast<double>(k) - centre + 0.5) / stretch);
      sum += w[static_cast<size_t>(k - lo)];
    }
    t.first[static_cast<size_t>(i)] = lo;
    t.count[static_cast<size_t>(i)] = hi - lo;
    for (int64_t k = 0; k < hi - lo; ++k)
      t.weights[static_cast<size_t>(i * t.width + k)] = static_cast<float>(w[static_cast<size_t>(k)] / sum);
  }
  return t;
}
}  // namespace detail

/// SigLIP preprocessing of one image: resize to size x size (the aspect ratio is not kept, as in
/// Hugging Face's SiglipImageProcessor) with PIL-style antialiased bicubic resampling, then
/// x/255 and (x - 0.5) / 0.5. Returns [channels, size, size] in [-1, 1].
/// Unlike PIL, the intermediate result is not rounded to 8 bits between the two passes, so values
/// can differ from PIL's by about one grey level.
inline Tensor<float> preprocess_image(const Image& img, int64_t size) {
  SIGLITE_CHECK(size > 0, "preprocess_image: size must be positive, got ", size);
  SIGLITE_CHECK(img.width > 0 && img.height > 0 && img.channels > 0 &&
                    static_cast<int64_t>(img.pixels.size()) == img.width * img.height * img.channels,
                "preprocess_image: image of ", img.width, "x", img.height, "x", img.channels, " holds ",
                img.pixels.size(), " bytes");
  const int64_t c = img.channels, w = img.width, h = img.height;
  const detail::ResampleTaps tx = detail::resample_taps(w, size), ty = detail::resample_taps(h, size);
  // Horizontal pass: [h, size, c].
  std::vector<float> rows(static_cast<size_t>(h * size * c));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < size; ++x)
      for (int64_t ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        const int64_t first = tx.first[static_cast<size_t>(x)];
        for (int64_t k = 0; k < tx.count[static_cast<size_t>(x)]; ++k)
          acc += tx.weights[static_cast<size_t>(x * tx.width + k)] *
                 static_cast<float>(img.pixels[static_cast<size_t>(((y * w) + first + k) * c + ch)]);
        rows[static_cast<size_t>((y * size + x) * c + ch)] = acc;
      }
  // Vertical pass into [c, size, size], clamped to the 8-bit range the image came from, then normalised.
  Tensor<float> out = Tensor<float>::empty(Shape{c, size, size}, Device::cpu());
  float* dst = out.data();
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x)
      for (int64_t ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        const int64_t first = ty.first[static_cast<size_t>(y)];
        for (int64_t k = 0; k < ty.count[static_cast<size_t>(y)]; ++k)
          acc += ty.weights[static_cast<size_t>(y * ty.width + k)] *
                 rows[static_cast<size_t>(((first + k) * size + x) * c + ch)];
        acc = std::min(255.0f, std::max(0.0f, acc));
        dst[(ch * size + y) * size + x] = (acc / 255.0f - 0.5f) / 0.5f;
      }
  return out;
}

}  // namespace siglite::data
