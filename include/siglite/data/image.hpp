// Image files and SigLIP preprocessing: decoding PNG (libpng), JPEG (libjpeg-turbo) and uncompressed BMP,
// resizing, and normalising x/255 then (x - 0.5) / 0.5 into [-1, 1].
//
// Image files come from the internet, so decoding is bounded before it allocates: an image whose header claims
// more than `max_pixels` pixels is refused from the header. PNG and JPEG are decoded by the libraries that the
// field trusts with untrusted input and that are fuzzed continuously upstream; BMP, which is simple, by the reader
// here. Every failure is a siglite::Error naming the file and the problem.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <jpeglib.h>  // after <cstdio>, which it needs
#include <jerror.h>
#include <png.h>

#include "siglite/core/error.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::data {

/// A decoded 8-bit image, interleaved: pixels[(y * width + x) * channels + c].
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]
};

/// The most pixels (width x height) an image may claim by default: 2^26, an 8192 x 8192 image, which decodes into
/// 192 MiB of RGB. Beside that, a progressive JPEG's coefficients take 2 bytes a pixel for each of its components.
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 26;
/// The largest max_pixels a caller may choose.
inline constexpr int64_t kMaxImagePixelsLimit = int64_t(1) << 40;

namespace detail {

/// Where the C decoders' callbacks leave their message before they jump back.
struct DecodeError {
  char message[JMSG_LENGTH_MAX + 64] = {};
};

struct ImageSize {
  int64_t width = 0, height = 0;
};

/// Empty when a width x height image may be decoded, else why not.
inline std::string check_image_size(int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0) return siglite::detail::cat("an image of ", width, " x ", height, " pixels");
  if (width > max_pixels / height)
    return siglite::detail::cat(width, " x ", height, " pixels, more than the ", max_pixels,
                                " an image may have (max_pixels)");
  return {};
}

// check_image_size for the decoders' longjmp regions: the message goes into err, and no std::string outlives the call.
inline bool fits(int64_t width, int64_t height, int64_t max_pixels, DecodeError* err) {
  const std::string why = check_image_size(width, height, max_pixels);
  std::snprintf(err->message, sizeof err->message, "%s", why.c_str());
  return why.empty();
}

// ---- PNG, through libpng --------------------------------------------------------------------------------

inline void png_on_error(png_structp png, png_const_charp message) {
  auto* e = static_cast<DecodeError*>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof e->message, "%s", message);
  png_longjmp(png, 1);
}

inline void png_on_warning(png_structp, png_const_charp) {}

inline void png_on_read(png_structp png, png_bytep out, size_t n) {
  if (std::fread(out, 1, n, static_cast<std::FILE*>(png_get_io_ptr(png))) != n)
    png_error(png, "the file ends inside the image");
}

struct PngReader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngReader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

// The part libpng may longjmp out of. Its locals have no destructors, so the jump skips none (the rule of
// [csetjmp.syn]); what it fills belongs to the caller. False on failure, with the reason in err.
inline bool png_decode(png_structp png, png_infop info, int64_t max_pixels, bool header_only, ImageSize* size,
                       std::vector<uint8_t>* pixels, std::vector<png_bytep>* rows, DecodeError* err) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (!fits(w, h, max_pixels, err)) return false;
  size->width = w;
  size->height = h;
  if (header_only) return true;
  // 8-bit RGB from any PNG: palettes and low bit depths expanded, 16 bits cut to their high byte, alpha dropped
  // (as stb_image and PIL's convert("RGB") do), grey repeated; the gamma chunks are ignored, as PIL does.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) png_error(png, "unexpected row size after expansion");
  pixels->resize(static_cast<size_t>(w * h * 3));
  rows->resize(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) (*rows)[static_cast<size_t>(y)] = pixels->data() + y * w * 3;
  png_read_image(png, rows->data());
  return true;
}

inline std::string png_read(std::FILE* f, int64_t max_pixels, bool header_only, ImageSize* size,
                            std::vector<uint8_t>* pixels) {
  DecodeError err;
  PngReader r;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
  if (r.png) r.info = png_create_info_struct(r.png);
  if (!r.png || !r.info) return "libpng could not start";
  png_set_read_fn(r.png, f, png_on_read);
  png_set_user_limits(r.png, 1u << 30, 1u << 30);
  std::vector<png_bytep> rows;
  if (!png_decode(r.png, r.info, max_pixels, header_only, size, pixels, &rows, &err)) return err.message;
  return {};
}

// ---- JPEG, through libjpeg-turbo ----------------------------------------------------------------------------

/// More scans than any encoder writes: a progressive file with thousands of tiny scans only burns time.
inline constexpr int kMaxJpegScans = 1000;

struct JpegErrors {
  jpeg_error_mgr mgr;  // first, so that libjpeg's pointer to it is a pointer to this
  std::jmp_buf jump;
  DecodeError* err;
};

[[noreturn]] inline void jpeg_on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErrors*>(c->err);
  (*c->err->format_message)(c, e->err->message);
  std::longjmp(e->jump, 1);
}

// Warnings are corrupt data that libjpeg decodes around (as PIL does), except a file that ends early: libjpeg would
// fill the rest with grey, and a truncated download is an error.
inline void jpeg_on_message(j_common_ptr c, int level) {
  if (level == -1 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(c);
}

inline void jpeg_on_progress(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* e = reinterpret_cast<JpegErrors*>(c->err);
    std::snprintf(e->err->message, sizeof e->err->message, "more than %d scans", kMaxJpegScans);
    std::longjmp(e->jump, 1);
  }
}

struct JpegReader {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors{};
  jpeg_progress_mgr progress{};
  ~JpegReader() { jpeg_destroy_decompress(&cinfo); }  // does nothing before jpeg_create_decompress
};

// The part libjpeg may longjmp out of, under png_decode's rule. CMYK files, stored inverted as Adobe's encoders
// write them, become RGB as r = c * k / 255 of the stored values.
inline bool jpeg_decode(JpegReader* r, std::FILE* f, int64_t max_pixels, bool header_only, ImageSize* size,
                        std::vector<uint8_t>* pixels, std::vector<uint8_t>* row) {
  if (setjmp(r->errors.jump)) return false;
  jpeg_create_decompress(&r->cinfo);
  r->cinfo.progress = &r->progress;
  jpeg_stdio_src(&r->cinfo, f);
  jpeg_read_header(&r->cinfo, TRUE);
  const int64_t w = r->cinfo.image_width, h = r->cinfo.image_height;
  if (!fits(w, h, max_pixels, r->errors.err)) return false;
  size->width = w;
  size->height = h;
  if (header_only) return true;
  const bool cmyk = r->cinfo.jpeg_color_space == JCS_CMYK || r->cinfo.jpeg_color_space == JCS_YCCK;
  r->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&r->cinfo);
  const int64_t n = r->cinfo.output_components;
  if (n != (cmyk ? 4 : 3) || r->cinfo.output_width != w || r->cinfo.output_height != h)
    ERREXIT(&r->cinfo, JERR_CONVERSION_NOTIMPL);
  pixels->resize(static_cast<size_t>(w * h * 3));
  row->resize(static_cast<size_t>(w * n));
  for (int64_t y = 0; y < h; ++y) {
    JSAMPROW dst = cmyk ? row->data() : pixels->data() + y * w * 3;
    if (jpeg_read_scanlines(&r->cinfo, &dst, 1) != 1) ERREXIT(&r->cinfo, JERR_INPUT_EMPTY);
    if (!cmyk) continue;
    uint8_t* out = pixels->data() + y * w * 3;
    for (int64_t x = 0; x < w; ++x) {
      const unsigned k = (*row)[static_cast<size_t>(x * 4 + 3)];
      for (int64_t ch = 0; ch < 3; ++ch)
        out[x * 3 + ch] = static_cast<uint8_t>(((*row)[static_cast<size_t>(x * 4 + ch)] * k + 127) / 255);
    }
  }
  return true;
}

inline std::string jpeg_read(std::FILE* f, int64_t max_pixels, bool header_only, ImageSize* size,
                             std::vector<uint8_t>* pixels) {
  DecodeError err;
  JpegReader r;
  r.cinfo.err = jpeg_std_error(&r.errors.mgr);
  r.errors.mgr.error_exit = jpeg_on_error;
  r.errors.mgr.emit_message = jpeg_on_message;
  r.errors.err = &err;
  r.progress.progress_monitor = jpeg_on_progress;
  std::vector<uint8_t> row;
  if (!jpeg_decode(&r, f, max_pixels, header_only, size, pixels, &row)) return err.message;
  return {};
}

// ---- BMP: uncompressed, 1, 4, 8 (palette), 16, 24 and 32 bits a pixel, with bit-field masks for 16 and 32 ----------

inline uint32_t le(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/// One colour channel of a 16- or 32-bit BMP pixel: its mask, and the 8-bit value of the bits under it.
struct BmpChannel {
  uint32_t mask = 0;
  int shift = 0;
  uint32_t max = 0;  // the largest value under the mask, after the shift
  explicit BmpChannel(uint32_t m) : mask(m) {
    if (m == 0) return;
    while (!((m >> shift) & 1u)) ++shift;
    max = m >> shift;
  }
  uint8_t operator()(uint32_t pixel) const {
    return max == 0 ? 0 : static_cast<uint8_t>((uint64_t((pixel & mask) >> shift) * 255 + max / 2) / max);
  }
};

inline std::string bmp_read(std::FILE* f, int64_t max_pixels, bool header_only, ImageSize* size,
                            std::vector<uint8_t>* pixels) {
  constexpr const char* kShort = "the file ends inside the BMP header";
  uint8_t h0[18 + 36 + 12];
  if (std::fread(h0, 1, 18, f) != 18) return kShort;
  const uint32_t offset = le(h0 + 10, 4), info_size = le(h0 + 14, 4);
  int64_t w = 0, h = 0;
  uint32_t bits = 0, compression = 0, colours = 0, entry = 4;
  uint32_t masks[3] = {0, 0, 0};
  if (info_size == 12) {  // BITMAPCOREHEADER
    if (std::fread(h0 + 18, 1, 8, f) != 8) return kShort;
    w = le(h0 + 18, 2);
    h = le(h0 + 20, 2);
    bits = le(h0 + 24, 2);
    entry = 3;
  } else if (info_size >= 40 && info_size <= 124) {  // BITMAPINFOHEADER and its later versions
    if (std::fread(h0 + 18, 1, 36, f) != 36) return kShort;
    w = static_cast<int32_t>(le(h0 + 18, 4));
    h = static_cast<int32_t>(le(h0 + 22, 4));
    bits = le(h0 + 28, 2);
    compression = le(h0 + 30, 4);
    colours = le(h0 + 46, 4);
    uint32_t rest = info_size - 40;
    if (compression == 3) {  // BI_BITFIELDS: red, green and blue masks, in the header from version 2, else after it
      if (std::fread(h0 + 54, 1, 12, f) != 12) return kShort;
      for (int c = 0; c < 3; ++c) masks[c] = le(h0 + 54 + 4 * c, 4);
      rest = rest >= 12 ? rest - 12 : 0;
    }
    if (std::fseek(f, static_cast<long>(rest), SEEK_CUR) != 0) return kShort;
  } else {
    return siglite::detail::cat("a BMP header of ", info_size, " bytes (12 or 40 to 124 expected)");
  }
  const bool top_down = h < 0;
  h = std::abs(h);
  std::string why = check_image_size(w, h, max_pixels);
  if (!why.empty()) return why;
  if (compression != 0 && !(compression == 3 && (bits == 16 || bits == 32)))
    return siglite::detail::cat("a compressed BMP (compression ", compression, "); only uncompressed ones are read");
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
    return siglite::detail::cat("a BMP of ", bits, " bits a pixel (1, 4, 8, 16, 24 or 32 are read)");
  size->width = w;
  size->height = h;
  if (header_only) return {};
  if (compression == 0 && bits == 16) masks[0] = 0x7C00, masks[1] = 0x03E0, masks[2] = 0x001F;
  if (compression == 0 && bits == 32) masks[0] = 0xFF0000, masks[1] = 0xFF00, masks[2] = 0xFF;
  const BmpChannel channel[3] = {BmpChannel(masks[0]), BmpChannel(masks[1]), BmpChannel(masks[2])};
  // The palette follows the header; indices beyond the colours it holds are black (as in stb_image).
  uint8_t palette[256 * 3] = {};
  if (bits <= 8) {
    const uint32_t n = colours == 0 ? 1u << bits : colours;
    if (n > (1u << bits)) return siglite::detail::cat("a BMP palette of ", n, " colours for ", bits, " bits a pixel");
    uint8_t e[4];
    for (uint32_t i = 0; i < n; ++i) {
      if (std::fread(e, 1, entry, f) != entry) return "the file ends inside the BMP palette";
      for (int ch = 0; ch < 3; ++ch) palette[i * 3 + ch] = e[2 - ch];  // stored blue, green, red
    }
  }
  if (std::fseek(f, static_cast<long>(offset), SEEK_SET) != 0) return "the BMP's pixel offset lies outside the file";
  const int64_t stride = (w * bits + 31) / 32 * 4;
  std::vector<uint8_t> row(static_cast<size_t>(stride));
  pixels->resize(static_cast<size_t>(w * h * 3));
  for (int64_t r = 0; r < h; ++r) {
    if (std::fread(row.data(), 1, row.size(), f) != row.size()) return "the file ends inside the image";
    uint8_t* out = pixels->data() + (top_down ? r : h - 1 - r) * w * 3;
    for (int64_t x = 0; x < w; ++x) {
      if (bits == 24) {
        const uint8_t* p = row.data() + x * 3;
        for (int ch = 0; ch < 3; ++ch) out[x * 3 + ch] = p[2 - ch];
      } else if (bits >= 16) {
        const uint32_t pixel = le(row.data() + x * (bits / 8), static_cast<int>(bits / 8));
        for (int ch = 0; ch < 3; ++ch) out[x * 3 + ch] = channel[ch](pixel);
      } else {
        const int64_t bit = x * bits;
        const unsigned index = (row[static_cast<size_t>(bit / 8)] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
        std::memcpy(out + x * 3, palette + index * 3, 3);
      }
    }
  }
  return {};
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// Decodes (or, with header_only, checks the header of) the image in `f` into 8-bit RGB; empty when it could, else
/// why not.
inline std::string read_image(std::FILE* f, int64_t max_pixels, bool header_only, ImageSize* size,
                              std::vector<uint8_t>* pixels) {
  uint8_t magic[8] = {};
  const size_t got = std::fread(magic, 1, sizeof magic, f);
  if (std::fseek(f, 0, SEEK_SET) != 0) return "cannot seek in the file";
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (got == 8 && std::memcmp(magic, png_magic, 8) == 0) return png_read(f, max_pixels, header_only, size, pixels);
  if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
    return jpeg_read(f, max_pixels, header_only, size, pixels);
  if (got >= 2 && magic[0] == 'B' && magic[1] == 'M') return bmp_read(f, max_pixels, header_only, size, pixels);
  return "not a PNG, JPEG or BMP file";
}

/// The image of `f` as `channels` channels; grey from RGB as PIL's convert("L"): (19595 r + 38470 g + 7471 b) / 2^16.
inline Image decode_image_file(std::FILE* f, const std::string& name, int64_t channels, int64_t max_pixels) {
  SIGLITE_CHECK(channels == 1 || channels == 3, "load_image: channels must be 1 or 3, got ", channels);
  SIGLITE_CHECK(max_pixels > 0 && max_pixels <= kMaxImagePixelsLimit, "load_image: max_pixels must be in [1, 2^40], "
                "got ", max_pixels);
  Image img;
  ImageSize size;
  const std::string why = read_image(f, max_pixels, false, &size, &img.pixels);
  if (!why.empty()) throw Error(siglite::detail::cat("load_image: cannot decode '", name, "' (", why, ")"));
  img.width = size.width;
  img.height = size.height;
  img.channels = channels;
  if (channels == 1) {
    const size_t n = static_cast<size_t>(size.width * size.height);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = img.pixels.data() + i * 3;
      img.pixels[i] = static_cast<uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
    }
    img.pixels.resize(n);
  }
  return img;
}

}  // namespace detail

/// Decodes a PNG, JPEG or uncompressed BMP file into `channels` channels (1: grey, 3: RGB; alpha is dropped).
/// An image that claims more than max_pixels pixels is refused before its pixels are read. Throws an Error naming
/// the file and the problem when it cannot decode it.
inline Image load_image(const std::string& path, int64_t channels = 3, int64_t max_pixels = kMaxImagePixels) {
  detail::FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(siglite::detail::cat("load_image: cannot open '", path, "' (", std::strerror(errno), ")"));
  return detail::decode_image_file(f.get(), path, channels, max_pixels);
}

/// load_image of an image held in memory (a file read by the caller, a record of an archive); `name` names it in
/// errors.
inline Image decode_image(const std::string& bytes, const std::string& name, int64_t channels = 3,
                          int64_t max_pixels = kMaxImagePixels) {
  // fmemopen refuses a zero size; an empty image is "not a PNG, JPEG or BMP file" either way.
  static const char nothing = 0;
  detail::FilePtr f(fmemopen(const_cast<char*>(bytes.empty() ? &nothing : bytes.data()),
                             bytes.empty() ? 1 : bytes.size(), "rb"));
  if (!f) throw Error(siglite::detail::cat("decode_image: cannot read '", name, "' from memory"));
  return detail::decode_image_file(f.get(), name, channels, max_pixels);
}

/// Reads only the header of an image file; an empty string when it looks decodable (within max_pixels), else
/// why not.
inline std::string probe_image(const std::string& path, int64_t max_pixels = kMaxImagePixels) {
  SIGLITE_CHECK(max_pixels > 0 && max_pixels <= kMaxImagePixelsLimit, "probe_image: max_pixels must be in [1, 2^40], "
                "got ", max_pixels);
  detail::FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) return siglite::detail::cat("cannot open it (", std::strerror(errno), ")");
  detail::ImageSize size;
  return detail::read_image(f.get(), max_pixels, true, &size, nullptr);
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
