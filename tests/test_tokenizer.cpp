// Tokenizers: word normalisation, building a word vocabulary, sticky-EOS padding and truncation, batches,
// save/load round trips and load errors; the SentencePiece tokenizer on a tiny model trained here.
#include <catch2/catch.hpp>
#include <siglite/data/sentencepiece_tokenizer.hpp>
#include <siglite/data/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "temp_dir.hpp"

#ifdef SIGLITE_WITH_SENTENCEPIECE
#include <sentencepiece_trainer.h>
#endif

using namespace siglite;
using namespace siglite::data;
using Catch::Contains;
namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;
using Words = std::vector<std::string>;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const std::vector<std::string> kCaptions = {
    "A photo of a cat.",
    "A photo of a dog!",
    "A dog in a T-shirt, on a photo",
    "the cat's toy",
};

/// Every row of `ids` ([N, L]) ends in `eos`.
void require_sticky_eos(const Tensor<int64_t>& ids, int64_t eos) {
  REQUIRE(ids.dim() == 2);
  for (int64_t r = 0; r < ids.size(0); ++r) CHECK(ids.at({r, ids.size(1) - 1}) == eos);
}

}  // namespace

TEST_CASE("normalize_words lower-cases, strips punctuation and keeps hyphenated words", "[tokenizer]") {
  CHECK(normalize_words("A T-Shirt, on a Photo!") == Words{"a", "t-shirt", "on", "a", "photo"});
  CHECK(normalize_words("  multiple\t\nspaces  ") == Words{"multiple", "spaces"});
  CHECK(normalize_words("don't stop") == Words{"dont", "stop"});
  CHECK(normalize_words("it\xE2\x80\x99s") == Words{"its"});  // typographic apostrophe
  CHECK(normalize_words("-dash- a--b x-") == Words{"dash", "a", "b", "x"});
  CHECK(normalize_words("(3.5) kg/m2") == Words{"3", "5", "kg", "m2"});
  CHECK(normalize_words("</s> <unk>") == Words{"s", "unk"});
  CHECK(normalize_words("Caf\xC3\xA9 NOIR") == Words{"caf\xC3\xA9", "noir"});
  CHECK(normalize_words("").empty());
  CHECK(normalize_words("?!., ;").empty());
}

TEST_CASE("WordTokenizer::build orders words by count, then alphabetically", "[tokenizer]") {
  const WordTokenizer tok = WordTokenizer::build(kCaptions);
  // a: 7, photo: 3, dog: 2, of: 2, then the words seen once in byte order ('-' sorts before 'h').
  const Words expect{"</s>", "<unk>", "a", "photo", "dog", "of", "cat", "cats", "in", "on", "t-shirt", "the", "toy"};
  CHECK(tok.vocab() == expect);
  CHECK(tok.eos_id() == 0);
  CHECK(tok.pad_id() == 0);
  CHECK(tok.unk_id() == 1);
  CHECK(tok.vocab_size() == 13);
  CHECK(tok.id("photo") == 3);
  CHECK(tok.id("zebra") == tok.unk_id());
  CHECK(tok.token(10) == "t-shirt");
  CHECK(tok.encode("A Photo of a ZEBRA in a t-shirt.") == Ids{2, 3, 5, 2, 1, 8, 2, 10});
  CHECK(tok.encode("").empty());
  CHECK(tok.decode({2, 3, 5, 2, 1, 0, 0}) == "a photo of a <unk>");
  CHECK_THROWS_WITH(tok.decode({2, 13}), Contains("id 13") && Contains("[0, 13)"));
  CHECK_THROWS_WITH(tok.token(-1), Contains("id -1"));

  // Building twice from the same captions gives the same ids (no dependence on hash order).
  CHECK(WordTokenizer::build(kCaptions).vocab() == expect);
}

TEST_CASE("WordTokenizer::build honours min_count and max_vocab", "[tokenizer]") {
  const WordTokenizer common = WordTokenizer::build(kCaptions, 2);
  CHECK(common.vocab() == Words{"</s>", "<unk>", "a", "photo", "dog", "of"});
  CHECK(common.encode("the cat in a hat") == Ids{1, 1, 1, 2, 1});

  const WordTokenizer capped = WordTokenizer::build(kCaptions, 1, 5);
  CHECK(capped.vocab() == Words{"</s>", "<unk>", "a", "photo", "dog"});
  CHECK(capped.vocab_size() == 5);
  CHECK(WordTokenizer::build(kCaptions, 1, 2).vocab() == Words{"</s>", "<unk>"});
  CHECK(WordTokenizer::build(kCaptions, 1, 100).vocab_size() == 13);
  CHECK(WordTokenizer::build({}).vocab_size() == 2);

  CHECK_THROWS_WITH(WordTokenizer::build(kCaptions, 0), Contains("min_count 0"));
  CHECK_THROWS_WITH(WordTokenizer::build(kCaptions, 1, 1), Contains("max_vocab 1"));
  CHECK_THROWS_WITH(WordTokenizer::build(kCaptions, 1, -3), Contains("max_vocab -3"));
}

TEST_CASE("Tokenizer pads with EOS and keeps EOS last when truncating (sticky EOS)", "[tokenizer]") {
  const WordTokenizer tok = WordTokenizer::build(kCaptions);
  const int64_t eos = tok.eos_id();
  // "a photo of a dog" = {2, 3, 5, 2, 4}: 5 tokens.
  SECTION("short text: tokens, EOS, EOS padding") {
    CHECK(tok.encode_padded("a photo of a dog", 8) == Ids{2, 3, 5, 2, 4, eos, eos, eos});
  }
  SECTION("one token short of the length: tokens then EOS") {
    CHECK(tok.encode_padded("a photo of a dog", 6) == Ids{2, 3, 5, 2, 4, eos});
  }
  SECTION("exactly the length: the last token gives way to EOS") {
    CHECK(tok.encode_padded("a photo of a dog", 5) == Ids{2, 3, 5, 2, eos});
  }
  SECTION("too long: first length-1 tokens, then EOS") {
    CHECK(tok.encode_padded("a photo of a dog", 3) == Ids{2, 3, eos});
  }
  SECTION("length 1 and empty text: EOS only") {
    CHECK(tok.encode_padded("a photo of a dog", 1) == Ids{eos});
    CHECK(tok.encode_padded("", 4) == Ids{eos, eos, eos, eos});
  }
  SECTION("length below 1 is an error") {
    CHECK_THROWS_WITH(tok.encode_padded("a", 0), Contains("length 0"));
    CHECK_THROWS_WITH(tok.batch({"a"}, -1), Contains("length -1"));
  }
}

TEST_CASE("Tokenizer::batch gives [N, length] rows that all end in EOS", "[tokenizer]") {
  const WordTokenizer tok = WordTokenizer::build(kCaptions);
  const std::vector<std::string> texts{"a cat", "a photo of a dog in a t-shirt", "", "zebra"};
  const Tensor<int64_t> ids = tok.batch(texts, 6);
  CHECK(ids.shape() == Shape{4, 6});
  CHECK(ids.is_contiguous());
  require_sticky_eos(ids, tok.eos_id());
  CHECK(ids.to_vector() == Ids{2, 6, 0, 0, 0, 0,   //
                               2, 3, 5, 2, 4, 0,   // truncated: 8 tokens -> 5, then EOS
                               0, 0, 0, 0, 0, 0,   //
                               1, 0, 0, 0, 0, 0});
  for (size_t r = 0; r < texts.size(); ++r) {
    const Tensor<int64_t> row = ids.slice(0, static_cast<int64_t>(r), static_cast<int64_t>(r) + 1);
    CHECK(row.to_vector() == tok.encode_padded(texts[r], 6));
  }
  CHECK(tok.batch({}, 6).shape() == Shape{0, 6});
  require_sticky_eos(tok.batch(texts, 1), tok.eos_id());
}

TEST_CASE("WordTokenizer save/load round trip", "[tokenizer]") {
  TempDir dir;
  const WordTokenizer tok = WordTokenizer::build(kCaptions);
  const fs::path path = dir / kWordTokenizerFile;
  tok.save(path);
  const WordTokenizer back = WordTokenizer::load(path);
  CHECK(back.vocab() == tok.vocab());
  CHECK(back.eos_id() == tok.eos_id());
  CHECK(back.unk_id() == tok.unk_id());
  CHECK(back.encode("a dog in a hat") == tok.encode("a dog in a hat"));

  const nlohmann::json doc = nlohmann::json::parse(read_text(path));
  CHECK(doc["type"] == "word");
  CHECK(doc["eos"] == "</s>");
  CHECK(doc["unk"] == "<unk>");
  CHECK(doc["vocab"].size() == 13);
  CHECK(doc["vocab"][10] == "t-shirt");

  // Saving over an existing file replaces it and leaves no temporary file behind.
  WordTokenizer::build({"one two"}).save(path);
  CHECK(WordTokenizer::load(path).vocab() == Words{"</s>", "<unk>", "one", "two"});
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

  // Non-ASCII words survive the round trip.
  WordTokenizer::build({"Caf\xC3\xA9 au lait"}).save(path);
  CHECK(WordTokenizer::load(path).id("caf\xC3\xA9") >= 2);

  // Special tokens need not sit at 0 and 1.
  write_text(path, R"({"type": "word", "eos": "[eos]", "unk": "[unk]", "vocab": ["cat", "[unk]", "[eos]"]})");
  const WordTokenizer custom = WordTokenizer::load(path);
  CHECK(custom.eos_id() == 2);
  CHECK(custom.unk_id() == 1);
  CHECK(custom.encode_padded("cat dog", 4) == Ids{0, 1, 2, 2});

  // A failed save (the directory is gone) throws and names the file.
  const fs::path gone = dir / "missing-dir" / "tok.json";
  CHECK_THROWS_WITH(tok.save(gone), Contains(gone.string()));
}

TEST_CASE("WordTokenizer::load errors name the file and the problem", "[tokenizer]") {
  TempDir dir;
  const fs::path path = dir / "tok.json";
  const auto load_error = [&](const std::string& text, const std::string& problem) {
    write_text(path, text);
    CHECK_THROWS_WITH(WordTokenizer::load(path), Contains(path.string()) && Contains(problem));
  };
  CHECK_THROWS_WITH(WordTokenizer::load(dir / "absent.json"),
                    Contains((dir / "absent.json").string()) && Contains("cannot open"));
  load_error("{\"type\": \"word\", ", "not valid JSON");
  load_error("", "not valid JSON");
  load_error("[1, 2]", "expected a JSON object");
  load_error(R"({"eos": "</s>", "unk": "<unk>", "vocab": []})", "\"type\" is missing");
  load_error(R"({"type": "bpe", "eos": "</s>", "unk": "<unk>", "vocab": []})", "expected \"word\"");
  load_error(R"({"type": "word", "unk": "<unk>", "vocab": ["</s>", "<unk>"]})", "\"eos\" is missing");
  load_error(R"({"type": "word", "eos": 0, "unk": "<unk>", "vocab": ["</s>", "<unk>"]})", "\"eos\" is missing");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>"})", "\"vocab\" is missing");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": {"a": 1}})", "not an array");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>", "<unk>", 7]})",
             "vocab entry 2 is a number");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>", "<unk>", "cat", "dog", "cat"]})",
             "vocab entry 4 \"cat\" repeats entry 2");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>", "<unk>", "Cat"]})",
             "\"Cat\" is not a normalised word");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>", "<unk>", "two words"]})",
             "is not a normalised word");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>", "<unk>", ""]})",
             "is not a normalised word");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["<unk>", "cat"]})",
             "eos token \"</s>\" is not in the vocab");
  load_error(R"({"type": "word", "eos": "</s>", "unk": "<unk>", "vocab": ["</s>"]})",
             "unk token \"<unk>\" is not in the vocab");
  load_error(R"({"type": "word", "eos": "x", "unk": "x", "vocab": ["x"]})", "the same token");

  CHECK_THROWS_WITH(WordTokenizer::from_vocab({"</s>", "<unk>", "a", "a"}), Contains("repeats"));
  CHECK(WordTokenizer::from_vocab({"</s>", "<unk>", "a"}).encode("A b") == Ids{2, 1});
}

#ifdef SIGLITE_WITH_SENTENCEPIECE

namespace {

/// Trains a tiny unigram model with the special-token layout assumed for SigLIP's spiece.model
/// (pad 0, eos "</s>" 1, unk 2, no bos) into `dir`/spiece.model.
fs::path train_tiny_model(const TempDir& dir, bool dummy_prefix) {
  const fs::path corpus = dir / "corpus.txt";
  write_text(corpus,
             "a photo of a cat\na photo of a dog\na dog in a tshirt on a photo\nthe cat is on the mat\n"
             "a small red car\na big blue house\nthe dog and the cat\na photo of the sea\n");
  const fs::path prefix = dir / (dummy_prefix ? "spiece" : "nodummy");
  // The map form, not the command-line string: that one logs the command before minloglevel takes effect.
  const auto status = sentencepiece::SentencePieceTrainer::Train(std::unordered_map<std::string, std::string>{
      {"input", corpus.string()}, {"model_prefix", prefix.string()}, {"vocab_size", "40"},
      {"model_type", "unigram"}, {"character_coverage", "1.0"}, {"hard_vocab_limit", "false"}, {"pad_id", "0"},
      {"eos_id", "1"}, {"unk_id", "2"}, {"bos_id", "-1"}, {"minloglevel", "2"}, {"num_threads", "1"},
      {"add_dummy_prefix", dummy_prefix ? "true" : "false"}});
  INFO(status.ToString());
  REQUIRE(status.ok());
  return prefix.string() + ".model";
}

}  // namespace

TEST_CASE("SentencePieceTokenizer gives the ids of HF's SiglipTokenizer on two models it made", "[tokenizer][golden]") {
  // tests/reference/make_tokenizer_golden.py: transformers' SiglipTokenizer, padding to "length" with truncation.
  const fs::path dir = fs::path(SIGLITE_TEST_DATA) / "tokenizer";
  std::ifstream in(dir / "golden.json");
  REQUIRE(in);
  const nlohmann::json golden = nlohmann::json::parse(in);
  const int64_t length = golden.at("length");
  std::map<std::string, int> cases;
  for (const nlohmann::json& c : golden.at("cases")) {
    const std::string model = c.at("model"), text = c.at("text");
    INFO(model << ": '" << text << "'");
    const SentencePieceTokenizer tok(dir / model);
    CHECK(tok.encode_padded(text, length) == c.at("ids").get<Ids>());
    ++cases[model];
  }
  CHECK(cases == std::map<std::string, int>{{"nodummy.model", 13}, {"spiece.model", 13}});
}

TEST_CASE("SentencePieceTokenizer::canonicalize deletes ASCII punctuation, collapses whitespace, lower-cases",
          "[tokenizer]") {
  CHECK(SentencePieceTokenizer::canonicalize("A T-Shirt, on a Photo!") == "a tshirt on a photo");
  CHECK(SentencePieceTokenizer::canonicalize("  lots \t of\n\nspace  ") == "lots of space");
  CHECK(SentencePieceTokenizer::canonicalize("a , b") == "a b");
  CHECK(SentencePieceTokenizer::canonicalize("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").empty());
  CHECK(SentencePieceTokenizer::canonicalize("Keep Case", false) == "Keep Case");
  CHECK(SentencePieceTokenizer::canonicalize("Caf\xC3\xA9") == "caf\xC3\xA9");
}

TEST_CASE("SentencePieceTokenizer encodes, pads with EOS and reads a checkpoint directory", "[tokenizer]") {
  TempDir dir;
  const fs::path model = train_tiny_model(dir, true);
  const SentencePieceTokenizer tok(model);
  const auto& sp = tok.processor();
  CHECK(tok.eos_id() == 1);
  CHECK(tok.pad_id() == 1);  // the model's own <pad> (0) is not used: sticky EOS
  CHECK(sp.pad_id() == 0);
  CHECK(tok.vocab_size() == sp.GetPieceSize());
  CHECK(tok.vocab_size() <= 40);

  // The ids are the model's ids of the canonical text, without EOS.
  const Ids ids = tok.encode("A Photo of a CAT!");
  std::vector<int> raw;
  REQUIRE(sp.Encode("a photo of a cat", &raw).ok());
  CHECK(ids == Ids(raw.begin(), raw.end()));
  CHECK(!ids.empty());
  CHECK(std::find(ids.begin(), ids.end(), tok.eos_id()) == ids.end());
  CHECK(tok.decode(ids) == "a photo of a cat");
  CHECK(tok.encode("").empty());
  CHECK(tok.encode("?!").empty());

  const int64_t n = static_cast<int64_t>(ids.size());
  Ids padded = ids;
  padded.resize(static_cast<size_t>(n + 3), 1);
  CHECK(tok.encode_padded("a photo of a cat", n + 3) == padded);
  CHECK(tok.encode_padded("a photo of a cat", n).back() == 1);
  CHECK(tok.encode_padded("a photo of a cat", n).front() == ids.front());
  const Tensor<int64_t> batch = tok.batch({"a photo of a cat", "", "the dog"}, kHfTextLength);
  CHECK(batch.shape() == Shape{3, kHfTextLength});
  require_sticky_eos(batch, 1);
  CHECK(batch.at({1, 0}) == 1);
  require_sticky_eos(tok.batch({"a photo of a cat"}, 2), 1);

  // An HF checkpoint directory: spiece.model is found inside it.
  CHECK(SentencePieceTokenizer(dir.path).encode("a dog") == tok.encode("a dog"));

  CHECK_THROWS_WITH(tok.decode({0, tok.vocab_size()}), Contains("outside the vocabulary"));
  CHECK_THROWS_WITH(SentencePieceTokenizer(dir / "absent.model"),
                    Contains((dir / "absent.model").string()) && Contains("no such file"));
  write_text(dir / "bad.model", "this is not a model");
  CHECK_THROWS_WITH(SentencePieceTokenizer(dir / "bad.model"),
                    Contains((dir / "bad.model").string()) && Contains("cannot load"));
}

TEST_CASE("SentencePieceTokenizer keeps the word-boundary mark for a model without dummy prefix", "[tokenizer]") {
  TempDir dir;
  const SentencePieceTokenizer tok(train_tiny_model(dir, false));
  const auto& sp = tok.processor();
  std::vector<std::string> raw;
  REQUIRE(sp.Encode("a photo", &raw).ok());
  REQUIRE(!raw.empty());
  CHECK(raw.front().rfind("\xE2\x96\x81", 0) != 0);  // the model alone starts without the mark

  // As HF: the first piece starts with the mark, the <unk> prefix is gone.
  const Ids ids = tok.encode("A photo!");
  REQUIRE(!ids.empty());
  std::string joined;
  for (int64_t i : ids) joined += sp.IdToPiece(static_cast<int>(i));
  CHECK(joined == "\xE2\x96\x81" "a" "\xE2\x96\x81" "photo");
  CHECK(tok.encode_padded("a photo", 8).back() == tok.eos_id());
}

TEST_CASE("SentencePieceTokenizer: a model the library's trie builder throws on is an Error naming the file",
          "[tokenizer]") {
  // Found by libFuzzer (tests/fuzz): a piece holding a NUL byte made sentencepiece throw Darts' exception
  // ("zero-length key") out of SentencePieceProcessor::Load.
  const std::string path = std::string(SIGLITE_TEST_DATA) + "/../fuzz/corpus/sentencepiece/darts-zero-length-key.model";
  REQUIRE(fs::is_regular_file(path));
  CHECK_THROWS_WITH(SentencePieceTokenizer(path), Contains(path) && Contains("cannot load the model") &&
                                                      Contains("zero-length key"));
}

TEST_CASE("SentencePieceTokenizer: a model without an unknown piece is an Error naming the file", "[tokenizer]") {
  // Found by libFuzzer (tests/fuzz): a model without dummy prefix whose unk id is -1 made SentencePieceProcessor's
  // IdToPiece abort the process (a protobuf CHECK) where the tokenizer looks up HF's "<unk>" prefix.
  const std::string path = std::string(SIGLITE_TEST_DATA) + "/../fuzz/corpus/sentencepiece/no-unknown-piece.model";
  REQUIRE(fs::is_regular_file(path));
  CHECK_THROWS_WITH(SentencePieceTokenizer(path), Contains(path) && Contains("no unknown piece"));
}

#endif  // SIGLITE_WITH_SENTENCEPIECE
