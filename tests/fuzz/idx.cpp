// Fuzz target: an IDX file (gzip-compressed or plain) read as Fashion-MNIST's images and as its labels.
#include <siglite/data/fashion_mnist.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "input-idx-ubyte");
  fuzz::result_or_error(path, [&] { siglite::data::read_idx(path, 2051); });
  fuzz::result_or_error(path, [&] { siglite::data::read_idx(path, 2049); });
  return 0;
}
