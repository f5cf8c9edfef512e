// Fuzz target: an image file as siglite reads one, the header probe of a JSONL manifest's construction, then the
// decoding of its get() and of siglite-embed --images, in RGB and grey.
#include <siglite/data/image.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "input.img");
  siglite::data::probe_image(path);
  fuzz::result_or_error(path, [&] { siglite::data::load_image(path, 3); });
  fuzz::result_or_error(path, [&] { siglite::data::load_image(path, 1); });
  return 0;
}
