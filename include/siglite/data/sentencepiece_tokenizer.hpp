// SentencePieceTokenizer: the tokenizer of the HF SigLIP checkpoints (their spiece.model), with the text treated
// as HF's SiglipTokenizer treats it. Needs SentencePiece (Debian: libsentencepiece-dev, <sentencepiece_processor.h>,
// -lsentencepiece) and SIGLITE_WITH_SENTENCEPIECE defined; without it this header declares nothing.
//
// What HF's SiglipTokenizer (transformers/models/siglip/tokenization_siglip.py) does, and what is done here:
// - do_lower_case=True by default: the text is lower-cased first. Here: ASCII letters only (HF uses Python's
//   str.lower(), which also lower-cases non-ASCII letters).
// - canonicalize_text: deletes the characters of Python's string.punctuation (the 32 ASCII punctuation
//   characters; deleted, not replaced by a space, so "t-shirt" -> "tshirt"), collapses whitespace runs to one space
//   and strips both ends. Here: the same, for ASCII whitespace (Python also counts Unicode spaces).
// - tokenize() canonicalizes "▁" + the text (its own "▁" turned into spaces), so that a text that starts with
//   whitespace or punctuation begins "▁ " (kept as a lone "▁" piece by a model whose normalizer does not merge the
//   two); the result is encoded behind "<unk>", and as many ids as "<unk>" alone encodes to are dropped again. In
//   transformers 5 the model is used as it is (legacy=True, SiglipTokenizer's default, leaves its dummy prefix on).
//   Here: the same, checked against transformers' ids (tests/reference/tokenizer).
// - Text that contains a special token ("</s>", "<unk>", "<pad>") literally: HF splits it out as that token before
//   canonicalizing; here it is canonicalized like any other text.
// - EOS ("</s>") is appended. Its pad token is "</s>" too (pad_token="</s>" by default), so padding to
//   model_max_length=64 repeats EOS: the same sticky EOS as big_vision, and what Tokenizer::batch produces.
//   (SiglipTextConfig's default pad_token_id is 1; its bos/eos ids 49406/49407 are CLIP leftovers, unused.)
// An empty text (or one of punctuation only) becomes just EOS.
#pragma once
#include "siglite/data/tokenizer.hpp"

#ifdef SIGLITE_WITH_SENTENCEPIECE
#include <memory>
#include <string_view>

#include <sentencepiece_processor.h>

namespace siglite::data {

class SentencePieceTokenizer : public Tokenizer {
 public:
  /// HF's SiglipTokenizer text treatment: (ASCII) lower-case, delete ASCII punctuation, collapse whitespace, strip.
  static std::string canonicalize(const std::string& text, bool lower_case = true) {
    std::string out;
    bool pending_space = false;
    for (const char ch : text) {
      const unsigned char c = static_cast<unsigned char>(ch);
      const bool space = c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
      const bool punct = (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
                         (c >= '{' && c <= '~');
      if (punct) continue;
      if (space) {
        pending_space = !out.empty();
        continue;
      }
      if (pending_space) out.push_back(' ');
      pending_space = false;
      out.push_back(lower_case ? detail::ascii_lower(ch) : ch);
    }
    return out;
  }

  /// Loads `model` (an spiece.model file, or a directory holding one, such as an HF checkpoint). Every problem is
  /// an Error naming the file. `lower_case` = HF's do_lower_case.
  explicit SentencePieceTokenizer(const std::filesystem::path& model, bool lower_case = true)
      : path_(std::filesystem::is_directory(model) ? model / "spiece.model" : model), lower_case_(lower_case) {
    const std::string where = siglite::detail::cat("SentencePieceTokenizer: ", path_.string());
    SIGLITE_CHECK(std::filesystem::is_regular_file(path_), where, ": no such file");
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    // Some malformed models make the library throw (its trie builder's Darts exceptions) instead of failing.
    sentencepiece::util::Status status;
    try {
      status = sp->Load(path_.string());
    } catch (const std::exception& e) {
      throw Error(siglite::detail::cat(where, ": cannot load the model (", e.what(), ")"));
    }
    SIGLITE_CHECK(status.ok(), where, ": cannot load the model (", status.ToString(), ")");
    const int eos = sp->PieceToId("</s>");
    // PieceToId answers the unk id for a missing piece.
    SIGLITE_CHECK(eos >= 0 && eos < sp->GetPieceSize() && sp->IdToPiece(eos) == "</s>", where,
                  ": the model has no \"</s>\" piece");
    eos_ = eos;
    // IdToPiece of an id outside the pieces aborts the process (a protobuf CHECK), so the unk id is checked first.
    const int unk = sp->unk_id();
    SIGLITE_CHECK(unk >= 0 && unk < sp->GetPieceSize(), where, ": the model has no unknown piece (its unk id is ",
                  unk, ")");
    unk_prefix_ = sp->IdToPiece(unk);
    std::vector<int> ids;
    sp_ = std::move(sp);
    check(sp_->Encode(unk_prefix_, &ids), "encode");
    unk_prefix_length_ = ids.size();
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::string spaced = text;  // the text's own word-boundary marks become spaces
    for (size_t at = spaced.find(kSpaceSymbol); at != std::string::npos; at = spaced.find(kSpaceSymbol, at + 1))
      spaced.replace(at, kSpaceSymbol.size(), " ");
    const std::string canonical = canonicalize(std::string(kSpaceSymbol) + spaced, lower_case_);
    if (canonical == kSpaceSymbol) return {};  // nothing but the mark: an empty text
    // The model strips a leading "▁"; HF keeps it by encoding behind "<unk>" and dropping that part again.
    std::vector<int> ids;
    check(sp_->Encode(unk_prefix_ + canonical, &ids), "encode");
    const size_t skip = std::min(unk_prefix_length_, ids.size());
    return std::vector<int64_t>(ids.begin() + static_cast<std::ptrdiff_t>(skip), ids.end());
  }

  /// The decoded text, EOS (= pad) skipped.
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int> kept;
    for (int64_t i : ids) {
      SIGLITE_CHECK(i >= 0 && i < vocab_size(), "SentencePieceTokenizer::decode: id ", i,
                    " is outside the vocabulary [0, ", vocab_size(), ")");
      if (i != eos_) kept.push_back(static_cast<int>(i));
    }
    std::string text;
    check(sp_->Decode(kept, &text), "decode");
    return text;
  }

  int64_t eos_id() const override { return eos_; }
  int64_t vocab_size() const override { return sp_->GetPieceSize(); }
  const std::filesystem::path& path() const { return path_; }
  /// The underlying processor (pieces, ids, the model's own special ids).
  const sentencepiece::SentencePieceProcessor& processor() const { return *sp_; }

 private:
  static constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's word-boundary mark

  void check(const sentencepiece::util::Status& status, const char* what) const {
    SIGLITE_CHECK(status.ok(), "SentencePieceTokenizer: ", path_.string(), ": ", what, " failed (",
                  status.ToString(), ")");
  }

  std::filesystem::path path_;
  bool lower_case_ = true;
  // Shared and immutable: copies of the tokenizer share one loaded model (Encode is const and thread-safe).
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  int64_t eos_ = 0;
  std::string unk_prefix_;
  size_t unk_prefix_length_ = 0;
};

}  // namespace siglite::data

#endif  // SIGLITE_WITH_SENTENCEPIECE
