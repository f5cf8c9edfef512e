// Fuzz target: a JSONL manifest, read with skip_bad as siglite-train --data does, then its first examples decoded.
// Its image paths are relative to the work directory, which holds a PNG and a JPEG from the image corpus.
#include <siglite/data/manifest.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::filesystem::path corpus(SIGLITE_FUZZ_CORPUS);
  std::filesystem::copy_file(corpus / "image" / "rgb.png", fuzz::work_dir() / "a.png");
  std::filesystem::copy_file(corpus / "image" / "baseline.jpg", fuzz::work_dir() / "b.jpg");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "manifest.jsonl");
  for (const bool skip_bad : {false, true})
    fuzz::result_or_error(path, [&] {
      const siglite::data::JsonlManifest m(path, 8, 3, skip_bad);
      for (int64_t i = 0; i < std::min<int64_t>(m.size(), 3); ++i) m.get(i);
    });
  return 0;
}
