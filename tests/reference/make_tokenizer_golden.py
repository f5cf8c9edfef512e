"""Writes the tokenizer golden file for tests/test_tokenizer.cpp: the ids Hugging Face's SiglipTokenizer gives.

Two tiny unigram SentencePiece models are trained here with SigLIP's special-token layout (pad 0, eos "</s>" 1,
unk 2, no bos), one with and one without the dummy prefix, and a list of texts (case, punctuation, runs of
whitespace, characters outside the vocabulary, truncation, empty) is tokenized by transformers' SiglipTokenizer
as a SigLIP user calls it: padding="max_length", truncation=True. Run from the repository root:
  python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch transformers sentencepiece protobuf
  /tmp/hfenv/bin/python tests/reference/make_tokenizer_golden.py

Output, in tests/reference/tokenizer/:
  spiece.model, nodummy.model   the two models (nodummy.model without a normalizer, so that it is small)
  golden.json                   {"transformers", "sentencepiece", "length", "cases": [{"model", "text", "ids"}]}
"""
import json
import os
import tempfile

import sentencepiece as spm
import transformers
from transformers import SiglipTokenizer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")
LENGTH = 12
CORPUS = ("a photo of a cat\na photo of a dog\na dog in a tshirt on a photo\nthe cat is on the mat\n"
          "a small red car\na big blue house\nthe dog and the cat\na photo of the sea\n")
TEXTS = [
    "a photo of a cat",
    "A Photo of a CAT!",
    "A dog in a T-shirt, on a photo.",
    "  lots \t of\n\nspace  ",        # leading whitespace: "▁ lots", a lone mark where the normalizer keeps it
    "? a dog",                       # leading punctuation: the same
    "\u2581a cat \u2581",              # the text's own word-boundary marks count as spaces
    "the cat's mat; the dog's car",
    "a zebra, quietly",           # pieces outside the corpus: characters fall back to <unk>
    "caf\u00e9 \u00fcber \u65e5\u672c",  # non-ASCII, kept as it is (already lower case)
    "a photo of a cat and a dog and the sea and a big blue house on the mat",  # truncated to LENGTH
    "",
    "?!",
    "x",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write(CORPUS)
        for name, dummy in (("spiece", True), ("nodummy", False)):
            spm.SentencePieceTrainer.train(
                input=corpus, model_prefix=os.path.join(OUT, name), vocab_size=40, model_type="unigram",
                character_coverage=1.0, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                num_threads=1, add_dummy_prefix=dummy, minloglevel=2,
                normalization_rule_name="nmt_nfkc" if dummy else "identity")
            os.remove(os.path.join(OUT, name + ".vocab"))
    cases = []
    for model in ("spiece.model", "nodummy.model"):
        tok = SiglipTokenizer(vocab_file=os.path.join(OUT, model))
        for text in TEXTS:
            ids = tok(text, padding="max_length", truncation=True, max_length=LENGTH)["input_ids"]
            cases.append({"model": model, "text": text, "ids": ids})
    golden = {"transformers": transformers.__version__, "sentencepiece": spm.__version__, "length": LENGTH,
              "cases": cases}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
