// SigLIP model directories in Hugging Face's form: config.json + model.safetensors (HF names).
// A directory written here loads in HF's SiglipModel.from_pretrained, and an HF SigLIP directory
// loads here, with the tokenizer beside it: siglite-train's word_tokenizer.json or HF's spiece.model.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "siglite/core/files.hpp"
#include "siglite/data/sentencepiece_tokenizer.hpp"
#include "siglite/data/tokenizer.hpp"
#include "siglite/io/safetensors.hpp"
#include "siglite/models/siglip.hpp"

namespace siglite::io {

/// Saves config.json and model.safetensors into `dir` (created if needed).
inline void save_pretrained(const models::SigLIP<float>& model, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SIGLITE_CHECK(std::filesystem::is_directory(dir), "save_pretrained: cannot create directory ", dir.string());
  save_safetensors(dir / "model.safetensors", model, {{"format", "pt"}});  // from_pretrained requires it
  write_file_atomic(dir / "config.json", model.config().to_json().dump(2) + "\n", "save_pretrained");
}

/// Builds the model that `dir`/config.json describes and loads `dir`/model.safetensors into it
/// (strict: one error lists every missing, unexpected or mismatched tensor).
inline std::unique_ptr<models::SigLIP<float>> load_pretrained(const std::filesystem::path& dir) {
  SIGLITE_CHECK(std::filesystem::is_directory(dir), "load_pretrained: ", dir.string(), " is not a directory");
  auto model = std::make_unique<models::SigLIP<float>>(models::SiglipConfig::load((dir / "config.json").string()));
  load_safetensors(*model, dir / "model.safetensors", true);
  return model;
}

/// The tokenizer of the checkpoint in `dir`: data::kWordTokenizerFile (written by siglite-train) or an HF
/// spiece.model (SentencePieceTokenizer, when built with SIGLITE_WITH_SENTENCEPIECE). Its ids must fit the
/// `vocab_size` token embeddings of the model it goes with.
inline std::unique_ptr<data::Tokenizer> load_tokenizer(const std::filesystem::path& dir, int64_t vocab_size) {
  std::unique_ptr<data::Tokenizer> tok;
  const bool spiece = std::filesystem::exists(dir / "spiece.model");
  if (std::filesystem::exists(dir / data::kWordTokenizerFile)) {
    tok = std::make_unique<data::WordTokenizer>(data::WordTokenizer::load(dir / data::kWordTokenizerFile));
  } else if (spiece) {
#ifdef SIGLITE_WITH_SENTENCEPIECE
    tok = std::make_unique<data::SentencePieceTokenizer>(dir);
#else
    throw Error(siglite::detail::cat("load_tokenizer: ", dir.string(), " holds an HF spiece.model, but siglite was "
                                     "built without SentencePiece (SIGLITE_WITH_SENTENCEPIECE; Debian: "
                                     "libsentencepiece-dev)"));
#endif
  } else {
    throw Error(siglite::detail::cat("load_tokenizer: ", dir.string(), " holds no tokenizer (",
                                     data::kWordTokenizerFile, " or spiece.model)"));
  }
  SIGLITE_CHECK(tok->vocab_size() <= vocab_size, "load_tokenizer: ", dir.string(), ": the tokenizer has ",
                tok->vocab_size(), " tokens, more than the model's vocab_size of ", vocab_size);
  return tok;
}

}  // namespace siglite::io
