// SigLIP model directories in Hugging Face's form: config.json + model.safetensors (HF names).
// A directory written here loads in HF's SiglipModel.from_pretrained, and an HF SigLIP directory
// loads here, with the tokenizer beside it: siglite-train's word_tokenizer.json or HF's spiece.model.
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

/// The float tensors of the HF directory `dir`: model.safetensors, or else the shards that
/// model.safetensors.index.json names in its weight_map, each tensor taken from the shard the index gives it
/// (integer tensors, such as older checkpoints' position_ids, are left out as load_safetensors leaves them).
inline TensorMap load_weights(const std::filesystem::path& dir) {
  const std::filesystem::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single) || !std::filesystem::exists(index)) return load_safetensors(single);
  std::ifstream in(index);
  SIGLITE_CHECK(in.good(), "load_weights: cannot open ", index.string());
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  SIGLITE_CHECK(!j.is_discarded() && j.is_object() && j.contains("weight_map") && j.at("weight_map").is_object(),
                "load_weights: ", index.string(), " is not JSON with a weight_map object");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : j.at("weight_map").items()) {
    SIGLITE_CHECK(shard.is_string(), "load_weights: ", index.string(), " gives ", name, " a shard that is not a name");
    const std::string file = shard.get<std::string>();
    SIGLITE_CHECK(!file.empty() && file.find('/') == std::string::npos && file.find('\\') == std::string::npos &&
                      file != "." && file != "..",
                  "load_weights: ", index.string(), " places ", name, " in '", file,
                  "', which is not a file name in the directory");
    by_shard[file].push_back(name);
  }
  TensorMap out;
  for (const auto& [file, names] : by_shard) {
    const SafetensorsContents shard = read_safetensors(dir / file);
    for (const std::string& name : names) {
      const auto it = shard.tensors.find(name);
      if (it != shard.tensors.end()) {
        out[name] = it->second;
        continue;
      }
      SIGLITE_CHECK(shard.int_tensors.count(name), "load_weights: ", (dir / file).string(), " holds no tensor ", name,
                    ", which ", index.string(), " places there");
    }
  }
  return out;
}

/// Builds the model that `dir`/config.json describes and loads its weights (load_weights: one file or shards)
/// into it (strict: one error lists every missing, unexpected or mismatched tensor).
inline std::unique_ptr<models::SigLIP<float>> load_pretrained(const std::filesystem::path& dir) {
  SIGLITE_CHECK(std::filesystem::is_directory(dir), "load_pretrained: ", dir.string(), " is not a directory");
  auto model = std::make_unique<models::SigLIP<float>>(models::SiglipConfig::load((dir / "config.json").string()));
  const TensorMap weights = load_weights(dir);
  try {
    model->load_state_dict(weights, true);
  } catch (const Error& e) {
    throw Error(siglite::detail::cat("load_pretrained: ", dir.string(), ": ", e.what()));
  }
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
