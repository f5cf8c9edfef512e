// Fuzz target: a safetensors file (header JSON, offsets, dtypes, shapes), read as a checkpoint or a model is.
#include <siglite/io/safetensors.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "input.safetensors");
  fuzz::result_or_error(path, [&] { siglite::io::read_safetensors(path); });
  return 0;
}
