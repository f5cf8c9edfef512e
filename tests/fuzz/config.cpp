// Fuzz target: a Hugging Face config.json, loaded and validated as SiglipConfig.
#include <siglite/models/config.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "config.json");
  fuzz::result_or_error(path, [&] { siglite::models::SiglipConfig::load(path); });
  return 0;
}
