// Tokenizers: text -> fixed-length rows of token ids with "sticky EOS" (see SIGLIP.md).
//
// Every tokenizer turns a text into ids without EOS (`encode`). `batch` / `encode_padded` then lay each text out
// as big_vision and HF SigLIP do: [tokens..., EOS], padded to the fixed length with pad id == EOS id, so the text
// tower can pool the LAST position and always find EOS there. A text with `length` tokens or more keeps its first
// `length - 1` tokens and still ends in EOS (big_vision's `eos="sticky"`; HF's truncation also keeps the EOS).
//
// WordTokenizer is built from the training captions and saved as JSON beside the checkpoint (kWordTokenizerFile);
// SentencePieceTokenizer (sentencepiece_tokenizer.hpp, optional) reads an HF checkpoint's spiece.model.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "siglite/core/error.hpp"
#include "siglite/core/files.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::data {

/// The text length of the HF SigLIP checkpoints (`model_max_length` of SiglipTokenizer).
inline constexpr int64_t kHfTextLength = 64;

/// The file name a WordTokenizer is saved under beside a checkpoint (not "tokenizer.json": that name is HF's
/// fast-tokenizer format, which HF would try to read).
inline constexpr const char* kWordTokenizerFile = "word_tokenizer.json";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// The ids of `text`, without EOS and without padding.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  /// Ids back to text for display; EOS/pad positions are skipped. Ids outside the vocabulary are an Error.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t vocab_size() const = 0;
  /// Padding uses the EOS id (sticky EOS), whatever pad piece the vocabulary may also hold.
  int64_t pad_id() const { return eos_id(); }

  /// One row of `length` ids: the text's ids, EOS, then EOS padding. A text with `length` or more ids keeps the
  /// first `length - 1`, so the last position always holds EOS.
  std::vector<int64_t> encode_padded(const std::string& text, int64_t length) const {
    SIGLITE_CHECK(length >= 1, "Tokenizer::encode_padded: length ", length, " must be at least 1 (room for EOS)");
    std::vector<int64_t> ids = encode(text);
    ids.resize(static_cast<size_t>(length), eos_id());
    ids.back() = eos_id();
    return ids;
  }

  /// [N, length] ids, each row as encode_padded: the last column is EOS in every row.
  Tensor<int64_t> batch(const std::vector<std::string>& texts, int64_t length) const {
    SIGLITE_CHECK(length >= 1, "Tokenizer::batch: length ", length, " must be at least 1 (room for EOS)");
    Tensor<int64_t> out = Tensor<int64_t>::empty(Shape{static_cast<int64_t>(texts.size()), length}, Device::cpu());
    int64_t* row = out.data();
    for (const std::string& text : texts) {
      const std::vector<int64_t> ids = encode_padded(text, length);
      std::copy(ids.begin(), ids.end(), row);
      row += length;
    }
    return out;
  }
};

namespace detail {

inline bool is_ascii_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// Letters and digits; bytes of non-ASCII UTF-8 characters count as letters so that "café" stays one word.
inline bool is_word_byte(unsigned char c) { return is_ascii_alnum(c) || c >= 0x80; }

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

/// U+2018 / U+2019 (typographic apostrophes) at `i`: 3 bytes, else 0.
inline size_t curly_apostrophe_at(const std::string& s, size_t i) {
  if (i + 2 < s.size() && static_cast<unsigned char>(s[i]) == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
      (static_cast<unsigned char>(s[i + 2]) == 0x98 || static_cast<unsigned char>(s[i + 2]) == 0x99))
    return 3;
  return 0;
}

}  // namespace detail

/// Splits text into normalised words: ASCII letters lower-cased; apostrophes (' and U+2018/U+2019) deleted, so
/// "don't" -> "dont" as HF's SiglipTokenizer does; a hyphen between two word characters kept ("t-shirt" stays one
/// word), any other hyphen and every other ASCII punctuation or control character -> a word break; then split on
/// whitespace. Non-ASCII bytes are kept as they are (not lower-cased).
/// "A T-Shirt, on a Photo!" -> {"a", "t-shirt", "on", "a", "photo"}.
inline std::vector<std::string> normalize_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (const size_t n = detail::curly_apostrophe_at(text, i)) {
      i += n;
    } else if (c == '\'') {
      ++i;
    } else if (detail::is_word_byte(c)) {
      word.push_back(detail::ascii_lower(static_cast<char>(c)));
      ++i;
    } else if (c == '-' && !word.empty() && i + 1 < text.size() &&
               detail::is_word_byte(static_cast<unsigned char>(text[i + 1]))) {
      word.push_back('-');
      ++i;
    } else {
      flush();
      ++i;
    }
  }
  flush();
  return words;
}

/// A word-level vocabulary built from training captions. Ids: 0 = "</s>" (EOS and pad), 1 = "<unk>", then the
/// words by count (descending), ties alphabetically (byte order), so the same captions always give the same ids.
/// The special tokens can never collide with a word: normalisation turns "</s>" into "s".
class WordTokenizer : public Tokenizer {
 public:
  static constexpr const char* kEos = "</s>";
  static constexpr const char* kUnk = "<unk>";

  /// Counts the normalised words of `captions`; keeps words seen at least `min_count` times; `max_vocab` > 0 caps
  /// vocab_size() (the two special tokens included) by dropping the rarest words, 0 means no cap.
  static WordTokenizer build(const std::vector<std::string>& captions, int64_t min_count = 1, int64_t max_vocab = 0) {
    SIGLITE_CHECK(min_count >= 1, "WordTokenizer::build: min_count ", min_count, " must be at least 1");
    SIGLITE_CHECK(max_vocab == 0 || max_vocab >= 2, "WordTokenizer::build: max_vocab ", max_vocab,
                  " must be 0 (no limit) or at least 2 (</s> and <unk>)");
    std::unordered_map<std::string, int64_t> counts;
    for (const std::string& caption : captions)
      for (std::string& w : normalize_words(caption)) ++counts[std::move(w)];
    std::vector<std::pair<std::string, int64_t>> sorted;
    for (auto& [w, n] : counts)
      if (n >= min_count) sorted.emplace_back(w, n);
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (max_vocab > 0 && static_cast<int64_t>(sorted.size()) > max_vocab - 2)
      sorted.resize(static_cast<size_t>(max_vocab - 2));
    std::vector<std::string> vocab{kEos, kUnk};
    for (auto& [w, n] : sorted) vocab.push_back(w);
    return WordTokenizer(std::move(vocab), kEos, kUnk, "WordTokenizer::build");
  }

  /// A tokenizer over `vocab` (index = id), which must hold `eos` and `unk`; every other entry must be one
  /// normalised word, and no entry may repeat.
  static WordTokenizer from_vocab(std::vector<std::string> vocab, const std::string& eos = kEos,
                                  const std::string& unk = kUnk) {
    return WordTokenizer(std::move(vocab), eos, unk, "WordTokenizer::from_vocab");
  }

  /// Reads a file written by save(). Every problem is an Error naming the file.
  static WordTokenizer load(const std::filesystem::path& path) {
    using nlohmann::json;
    const std::string where = siglite::detail::cat("WordTokenizer::load: ", path.string());
    std::ifstream in(path, std::ios::binary);
    SIGLITE_CHECK(in, where, ": cannot open the file");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SIGLITE_CHECK(!in.bad(), where, ": read error");
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::exception& e) {
      throw Error(siglite::detail::cat(where, ": not valid JSON (", e.what(), ")"));
    }
    SIGLITE_CHECK(doc.is_object(), where, ": expected a JSON object, got ", doc.type_name());
    const auto string_field = [&](const char* key) {
      const auto it = doc.find(key);
      SIGLITE_CHECK(it != doc.end() && it->is_string(), where, ": \"", key, "\" is missing or not a string");
      return it->get<std::string>();
    };
    const std::string type = string_field("type");
    SIGLITE_CHECK(type == "word", where, ": \"type\" is \"", type, "\", expected \"word\"");
    const std::string eos = string_field("eos");
    const std::string unk = string_field("unk");
    const auto it = doc.find("vocab");
    SIGLITE_CHECK(it != doc.end() && it->is_array(), where, ": \"vocab\" is missing or not an array");
    std::vector<std::string> vocab;
    vocab.reserve(it->size());
    for (const json& entry : *it) {
      SIGLITE_CHECK(entry.is_string(), where, ": vocab entry ", vocab.size(), " is a ", entry.type_name(),
                    ", not a string");
      vocab.push_back(entry.get<std::string>());
    }
    return WordTokenizer(std::move(vocab), eos, unk, where);
  }

  /// Writes {"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": [...]} (the vocab in id order) atomically:
  /// a temporary file beside `path`, then a rename over it.
  void save(const std::filesystem::path& path) const {
    nlohmann::ordered_json doc;
    doc["type"] = "word";
    doc["eos"] = vocab_[static_cast<size_t>(eos_)];
    doc["unk"] = vocab_[static_cast<size_t>(unk_)];
    doc["vocab"] = vocab_;
    std::string text;
    try {
      text = doc.dump(1) + "\n";
    } catch (const nlohmann::ordered_json::exception& e) {
      throw Error(siglite::detail::cat("WordTokenizer::save: ", path.string(), ": cannot encode the vocabulary (",
                                       e.what(), "); the captions hold invalid UTF-8"));
    }
    write_file_atomic(path, text, "WordTokenizer::save");
  }

  /// Normalised words -> ids; words outside the vocabulary -> unk_id().
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    for (const std::string& w : normalize_words(text)) ids.push_back(id(w));
    return ids;
  }

  /// The words separated by spaces; EOS (= pad) skipped, unknown words shown as "<unk>".
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t i : ids) {
      if (i == eos_) continue;
      if (!out.empty()) out.push_back(' ');
      out += token(i);
    }
    return out;
  }

  int64_t eos_id() const override { return eos_; }
  int64_t unk_id() const { return unk_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  /// Every token in id order.
  const std::vector<std::string>& vocab() const { return vocab_; }
  /// The id of a normalised word (or a special token), unk_id() when absent.
  int64_t id(const std::string& word) const {
    const auto it = index_.find(word);
    return it == index_.end() ? unk_ : it->second;
  }
  const std::string& token(int64_t id) const {
    SIGLITE_CHECK(id >= 0 && id < vocab_size(), "WordTokenizer: id ", id, " is outside the vocabulary [0, ",
                  vocab_size(), ")");
    return vocab_[static_cast<size_t>(id)];
  }

 private:
  WordTokenizer(std::vector<std::string> vocab, const std::string& eos, const std::string& unk,
                const std::string& where)
      : vocab_(std::move(vocab)) {
    SIGLITE_CHECK(eos != unk, where, ": eos and unk are the same token \"", eos, "\"");
    for (size_t i = 0; i < vocab_.size(); ++i) {
      const std::string& t = vocab_[i];
      SIGLITE_CHECK(index_.emplace(t, static_cast<int64_t>(i)).second, where, ": vocab entry ", i, " \"", t,
                    "\" repeats entry ", index_.at(t));
      if (t == eos || t == unk) continue;
      // A word that normalisation could never produce would be dead weight at best, a hand-edit mistake at worst.
      const std::vector<std::string> words = normalize_words(t);
      SIGLITE_CHECK(words.size() == 1 && words[0] == t, where, ": vocab entry ", i, " \"", t,
                    "\" is not a normalised word");
    }
    const auto e = index_.find(eos);
    const auto u = index_.find(unk);
    SIGLITE_CHECK(e != index_.end(), where, ": the eos token \"", eos, "\" is not in the vocab");
    SIGLITE_CHECK(u != index_.end(), where, ": the unk token \"", unk, "\" is not in the vocab");
    eos_ = e->second;
    unk_ = u->second;
  }

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> index_;
  int64_t eos_ = 0;
  int64_t unk_ = 1;
};

}  // namespace siglite::data
