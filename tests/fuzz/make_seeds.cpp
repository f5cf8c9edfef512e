// Writes the seed corpora of the fuzz targets into the directory given (tests/fuzz/corpus): small valid files of
// every kind each reader takes, and the inputs of past findings. Deterministic; the output is committed.
#include <cstdio>  // before jpeglib.h
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <siglite/siglite.hpp>
#ifdef SIGLITE_WITH_SENTENCEPIECE
#include <sentencepiece_trainer.h>
#endif

namespace fs = std::filesystem;
using namespace siglite;

namespace {

fs::path out;

void write(const std::string& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(out / dir);
  std::ofstream f(out / dir / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  SIGLITE_CHECK(f.good(), "cannot write ", (out / dir / name).string());
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string le(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

/// A w x h test pattern with `channels` 8-bit channels.
std::vector<uint8_t> pattern(int w, int h, int channels) {
  std::vector<uint8_t> p(static_cast<size_t>(w * h * channels));
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>((i * 37 + i / 7) % 256);
  return p;
}

void png(const std::string& name, int w, int h, png_uint_32 format) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(w);
  img.height = static_cast<png_uint_32>(h);
  img.format = format;
  if (format & PNG_FORMAT_FLAG_COLORMAP) img.colormap_entries = 16;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(img));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37 + i / 7) % 256);
  if (format & PNG_FORMAT_FLAG_COLORMAP)
    for (uint8_t& v : pixels) v %= 16;
  std::vector<uint8_t> colormap(PNG_IMAGE_COLORMAP_SIZE(img));
  for (size_t i = 0; i < colormap.size(); ++i) colormap[i] = static_cast<uint8_t>(i * 11);
  png_alloc_size_t size = 0;
  SIGLITE_CHECK(png_image_write_get_memory_size(img, size, 0, pixels.data(), 0, colormap.data()), img.message);
  std::string bytes(size, '\0');
  SIGLITE_CHECK(png_image_write_to_memory(&img, bytes.data(), &size, 0, pixels.data(), 0, colormap.data()),
                img.message);
  bytes.resize(size);
  write("image", name, bytes);
}

void jpeg(const std::string& name, int w, int h, J_COLOR_SPACE space, int channels, bool progressive, int restart) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buffer, &size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = channels;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 85, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  c.restart_interval = static_cast<unsigned>(restart);
  jpeg_start_compress(&c, TRUE);
  const std::vector<uint8_t> pixels = pattern(w, h, channels);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + c.next_scanline * static_cast<size_t>(w * channels);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  write("image", name, std::string(reinterpret_cast<char*>(buffer), size));
  std::free(buffer);
}

/// An uncompressed BMP with a BITMAPINFOHEADER (height < 0: top-down) of the test pattern; with bit-field masks
/// (compression 3) for 16 and 32 bits when `masks`.
void bmp(const std::string& name, int w, int h, int bits, bool masks = false) {
  const int rows = std::abs(h);
  const int stride = (w * bits + 31) / 32 * 4;
  std::string palette;  // or the masks, which take its place
  if (bits <= 8)
    for (int i = 0; i < (1 << bits); ++i) palette += std::string{char(i * 3), char(i * 5), char(i * 7), 0};
  if (masks && bits == 16) palette = le(0xF800, 4) + le(0x07E0, 4) + le(0x001F, 4);
  if (masks && bits == 32) palette = le(0xFF000000, 4) + le(0x00FF0000, 4) + le(0x0000FF00, 4);
  const std::vector<uint8_t> p = pattern(stride, rows, 1);
  const std::string data(p.begin(), p.end());
  const auto u32 = [](auto v) { return static_cast<uint32_t>(v); };
  const uint32_t offset = 54 + u32(palette.size());
  write("image", name,
        "BM" + le(offset + u32(data.size()), 4) + le(0, 4) + le(offset, 4) + le(40, 4) + le(u32(w), 4) +
            le(u32(h), 4) + le(1, 2) + le(u32(bits), 2) + le(masks ? 3 : 0, 4) + le(u32(data.size()), 4) + le(2835, 4) +
            le(2835, 4) + le(u32(palette.size() / 4), 4) + le(0, 4) + palette + data);
}

std::string gzip(const std::string& bytes) {
  const fs::path tmp = out / "tmp.gz";
  gzFile f = gzopen(tmp.string().c_str(), "wb9");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  std::string z = read(tmp);
  fs::remove(tmp);
  return z;
}

/// A safetensors file of the given (name, dtype, shape, raw bytes) entries.
struct Raw {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string safetensors(const std::vector<Raw>& entries) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const Raw& e : entries) {
    header[e.name] = {
        {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + e.bytes.size()}}};
    data += e.bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  return le(static_cast<uint32_t>(h.size()), 4) + le(0, 4) + h + data;
}

std::string bytes_of(size_t n, int salt) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 13 + static_cast<size_t>(salt)) % 61);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  out = argv[1];

  // Images: every PNG colour type the decoder expands, baseline, progressive, grey, CMYK and restart-marker JPEGs,
  // BMPs of each depth, and the JPEG that made stb_image read out of bounds.
  png("rgb.png", 8, 6, PNG_FORMAT_RGB);
  png("grey.png", 5, 5, PNG_FORMAT_GRAY);
  png("grey-alpha.png", 4, 3, PNG_FORMAT_GA);
  png("rgba.png", 3, 4, PNG_FORMAT_RGBA);
  png("rgb16.png", 4, 4, PNG_FORMAT_RGB | PNG_FORMAT_FLAG_LINEAR);
  png("palette.png", 6, 5, PNG_FORMAT_RGB | PNG_FORMAT_FLAG_COLORMAP);
  jpeg("baseline.jpg", 16, 16, JCS_RGB, 3, false, 0);
  jpeg("progressive.jpg", 17, 9, JCS_RGB, 3, true, 0);
  jpeg("grey.jpg", 8, 8, JCS_GRAYSCALE, 1, false, 0);
  jpeg("cmyk.jpg", 8, 8, JCS_CMYK, 4, false, 0);
  jpeg("restart.jpg", 24, 16, JCS_RGB, 3, false, 1);
  bmp("rgb24.bmp", 5, 3, 24);
  bmp("rgbx32-top-down.bmp", 3, -2, 32);
  bmp("palette8.bmp", 4, 4, 8);
  bmp("palette4.bmp", 7, 2, 4);
  bmp("mono1.bmp", 9, 3, 1);
  bmp("rgb555.bmp", 3, 3, 16);
  bmp("rgb565-masks.bmp", 3, 2, 16, true);
  bmp("rgbx-masks.bmp", 2, 2, 32, true);
  write("image", "stb-out-of-bounds.jpg",
        std::string("\xFF\xD8\xFF\xC4\xAB\x78\x00\x00\x00\x00\x00\x00\x00\x20\xFF\xFF"
                    "\xFF\xFF\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\xAA\x00\xE5", 32));

  // IDX: images plain and gzip-compressed, labels, and the file that claimed 3.2 GB.
  std::string images = be32(2051) + be32(2) + be32(4) + be32(4);
  for (int k = 0; k < 32; ++k) images.push_back(static_cast<char>(k * 8));
  write("idx", "images-idx3-ubyte", images);
  write("idx", "images-idx3-ubyte.gz", gzip(images));
  write("idx", "labels-idx1-ubyte.gz", gzip(be32(2049) + be32(3) + std::string("\x01\x07\x03", 3)));
  write("idx", "claims-3.2GB-idx3-ubyte",
        std::string("\x00\x00\x08\x03\x00\x00\x00\x08\x03\x00\x04\x03\x00\x00\x00\x08"
                    "\x03\x00\x04\x03\x00\x00\x05\x00\x00\x00", 26));

  // safetensors: every dtype the reader knows, and a file as save_safetensors writes it.
  write("safetensors", "dtypes.safetensors",
        safetensors({{"f32", "F32", {2, 3}, bytes_of(24, 1)},
                     {"f16", "F16", {4}, bytes_of(8, 2)},
                     {"bf16", "BF16", {2, 2}, bytes_of(8, 3)},
                     {"f64", "F64", {1}, bytes_of(8, 4)},
                     {"i64", "I64", {2}, bytes_of(16, 5)},
                     {"i32", "I32", {3, 1}, bytes_of(12, 6)},
                     {"scalar", "F32", {}, bytes_of(4, 7)},
                     {"empty", "F32", {0, 5}, ""}}));
  const fs::path saved = out / "safetensors" / "saved.safetensors";
  fs::create_directories(saved.parent_path());
  const io::NamedTensorList tensors{{"a.weight", Tensor<float>::arange(6, Device::cpu()).reshape({2, 3})},
                                   {"b", Tensor<float>::ones({2}, Device::cpu())}};
  io::save_safetensors(saved, tensors, {{"step", "7"}});

  // config.json: the fmnist-tiny preset and a small HF config.
  write("config", "fmnist-tiny.json", models::SiglipConfig::preset("fmnist-tiny").to_json().dump(2));
  write("config", "hf-tiny.json", read(fs::path(SIGLITE_TEST_DATA) / "siglip_tiny" / "config.json"));

  // Word tokenizer.
  const fs::path tok = out / "word_tokenizer" / "word_tokenizer.json";
  fs::create_directories(tok.parent_path());
  data::WordTokenizer::build({"a photo of a coat", "an ankle boot", "a t-shirt, seen from the front"}).save(tok);

#ifdef SIGLITE_WITH_SENTENCEPIECE
  // A tiny unigram model with SigLIP's special-token layout (pad 0, eos 1, unk 2, no bos).
  const fs::path text = out / "captions.txt";
  std::ofstream(text) << "a photo of a cat\na photo of a dog\nthe cat is on the mat\na small red car\n";
  fs::create_directories(out / "sentencepiece");
  const auto status = sentencepiece::SentencePieceTrainer::Train(std::unordered_map<std::string, std::string>{
      {"input", text.string()}, {"model_prefix", (out / "sentencepiece" / "spiece").string()}, {"vocab_size", "30"},
      {"model_type", "unigram"}, {"character_coverage", "1.0"}, {"hard_vocab_limit", "false"}, {"pad_id", "0"},
      {"eos_id", "1"}, {"unk_id", "2"}, {"bos_id", "-1"}, {"minloglevel", "2"}, {"num_threads", "1"},
      {"normalization_rule_name", "identity"}});  // no 240 KB normalisation table: siglite canonicalises itself
  SIGLITE_CHECK(status.ok(), status.ToString());
  fs::remove(text);
  fs::remove(out / "sentencepiece" / "spiece.vocab");
#endif

  // JSONL manifests whose images are the a.png and b.jpg the manifest target puts beside them.
  write("manifest", "manifest.jsonl",
        "{\"image\": \"a.png\", \"caption\": \"a red square\"}\n{\"image\": \"b.jpg\", \"caption\": \"a jpeg\"}\n");
  write("manifest", "bad-lines.jsonl",
        "{\"image\": \"a.png\", \"caption\": \"fine\"}\n{\"image\": \"missing.png\", \"caption\": \"gone\"}\n"
        "{\"image\": 5, \"caption\": \"number\"}\nnot json\n\n{\"image\": \"b.jpg\", \"caption\": \" \"}\n");

  // siglite-embed --input: pixel_values for fmnist-tiny (1 x 28 x 28) and input_ids (length 16), F32 and I64.
  std::string ids;
  for (int k = 0; k < 32; ++k) ids += le(static_cast<uint32_t>(k % 5), 4) + le(0, 4);
  write("embed_input", "both.safetensors",
        safetensors({{"pixel_values", "F32", {1, 1, 28, 28}, bytes_of(28 * 28 * 4, 8)},
                     {"input_ids", "I64", {2, 16}, ids}}));
  write("embed_input", "ids-i32.safetensors",
        safetensors({{"input_ids", "I32", {1, 4}, le(3, 4) + le(1, 4) + le(4, 4) + le(1, 4)}}));

  // --prompts files.
  write("prompts", "templates.txt", "a photo of a {}\n  an {} seen from the front  \n\nthis is a {}.\n");
  return 0;
}
