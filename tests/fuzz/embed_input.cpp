// Fuzz target: the --input file of siglite-embed (safetensors with pixel_values and input_ids), read and checked
// against the fmnist-tiny model as the program does.
#include <siglite/siglite.hpp>

#include "fuzz.hpp"
#include "samples/embed.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const siglite::models::SiglipConfig config = siglite::models::SiglipConfig::preset("fmnist-tiny");
  const std::string path = fuzz::as_file(data, size, "input.safetensors");
  siglite::embed::Inputs in;
  fuzz::result_or_error(path, [&] { in = siglite::embed::read_inputs(path); });
  try {
    if (in.pixels.defined()) siglite::embed::check_pixels(in.pixels, config.vision);
    if (in.ids.defined()) siglite::embed::check_ids(in.ids, config.text);
  } catch (const siglite::Error&) {
  }
  return 0;
}
