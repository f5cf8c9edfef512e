// Fuzz target: a SentencePiece model (spiece.model), loaded as an HF SigLIP tokenizer, then used on a few captions.
#include <siglite/data/sentencepiece_tokenizer.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "spiece.model");
  fuzz::result_or_error(path, [&] {
    const siglite::data::SentencePieceTokenizer tok(path);
    for (const char* text : {"a photo of an ankle boot", "", "Don't  stop\xE2\x80\x99s", "\xFF\xFE unknown words"})
      tok.decode(tok.encode_padded(text, 16));
  });
  return 0;
}
