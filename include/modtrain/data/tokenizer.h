// The tokenizer interface: what the data path, evaluation and predict need from any tokenizer
// family (WordPiece for BERT, byte-level BPE for RoBERTa, SentencePiece Unigram for XLM-R and
// TwHIN-BERT). Special tokens come from the tokenizer's own files, never from the data path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

// The ids a model needs to know; -1 where the tokenizer has no such token.
struct SpecialIds {
  int32_t pad = -1;
  int32_t unk = -1;
  int32_t cls = -1;   // the sequence start the classifier reads: [CLS] or <s>
  int32_t sep = -1;   // the sequence end: [SEP] or </s>
  int32_t mask = -1;  // [MASK] or <mask>
};

namespace hf {
struct AddedToken {  // a token matched in the raw text before anything else
  std::string content;
  int32_t id;
  bool lstrip, rstrip;
  bool fold_case = false;  // match ASCII letters in either case (a normalized token under a lowercasing normalizer)
};
struct Template {  // the post-processor's special tokens before and after a single sequence
  std::vector<int32_t> before, after;
};
}  // namespace hf

struct TokenizerFiles;

// A tokenizer as Hugging Face's transformers and tokenizers lay it out (what `modtrain export`
// writes beside the model): each family says it, so the export never switches on the family.
struct HfTokenizerLayout {
  // Files to write besides the tokenizer's own (name, contents): the fast tokenizer.json when no
  // tokenizer.json defines the tokenizer; the slow tokenizer's files when transformers' slow class
  // needs them and they are missing.
  std::vector<std::pair<std::string, std::string>> files;
  std::string config_json;  // tokenizer_config.json's family keys (a JSON object: tokenizer_class, ...)
  // special_tokens_map.json in its order: the role (bos_token, unk_token, ...) and the id (-1: null).
  std::vector<std::pair<std::string, int32_t>> special_tokens;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Appends the ids of `text` with the family's special tokens around them to `out` (cleared
  // first), at most `max_len` ids in all (0 = no limit). Returns true when the text was truncated.
  // Thread-safe (const, no shared scratch).
  virtual bool encode(std::string_view text, std::vector<int32_t>& out, size_t max_len = 0) const = 0;
  virtual size_t vocab_size() const = 0;
  virtual const SpecialIds& special_ids() const = 0;
  virtual std::string token(int32_t id) const = 0;  // the vocabulary entry (for `modtrain tokenize`)
  virtual std::string type() const = 0;             // "wordpiece", "bpe", "unigram"
  // True when `id` is a piece inside a word, not its first (whole-word masking): WordPiece marks
  // continuations ("##"), byte-level BPE and SentencePiece mark word starts ("\u0120", "\u2581").
  // False for special tokens. A text's first piece may lack its family's word-start mark (byte-level
  // BPE without a prefix space): callers take a piece after a special token as a word start.
  virtual bool continues_word(int32_t id) const = 0;
  // The Hugging Face layout of this tokenizer, loaded from `files` (find_tokenizer_files), for a
  // model of `max_len` tokens.
  virtual HfTokenizerLayout hugging_face(const TokenizerFiles& files, int max_len) const = 0;
};

// special_tokens_map.json's roles for `ids`: unk, sep, pad, cls and mask, after bos (= cls) and
// eos (= sep) when `bos_eos` (RoBERTa and XLM-R name their sequence tokens twice).
std::vector<std::pair<std::string, int32_t>> hf_special_tokens(const SpecialIds& ids, bool bos_eos);

// A tokenizer from a model directory or a tokenizer file. A directory: tokenizer.json (the family
// by its model.type: WordPiece, BPE, Unigram), else vocab.json + merges.txt (byte-level BPE), else
// sentencepiece.bpe.model (XLM-R's Unigram), else vocab.txt (WordPiece; lowercased unless
// tokenizer_config.json says do_lower_case false or `lowercase` is false). A file: one of those by
// its name. Throws UserError naming what is missing or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, bool lowercase = true);

// tokenizer.vocab, checked against the rest of the config: tokenizer.type (when not auto), and for
// WordPiece tokenizer.lowercase against what the files say (tokenizer.json's normalizer,
// tokenizer_config.json's do_lower_case). A tokenizer without a padding token is refused.
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerConfig& config);

// The files a tokenizer is made of, found as load_tokenizer finds them: what checkpoints and model
// directories carry, and what prepared data's manifest fingerprints.
struct TokenizerFiles {
  using File = std::pair<std::string, std::string>;  // the name a model directory gives it, its path
  std::vector<File> defining;  // what load_tokenizer reads: tokenizer.json, vocab.json + merges.txt, ...
  // Beside a tokenizer.json, the slow tokenizer's files (vocab.json + merges.txt, sentencepiece.bpe.model,
  // vocab.txt) that transformers' slow classes read: carried along, not part of the fingerprint.
  std::vector<File> companions;
  // One defining file: its SHA-256 (so a vocab.txt's fingerprint is its hash, as manifests always
  // recorded); several: the SHA-256 of their "name sha256" lines.
  std::string fingerprint() const;
};
TokenizerFiles find_tokenizer_files(const std::string& path);  // throws UserError as load_tokenizer does

// Writes the defining and companion files into `dir` under their model-directory names.
void copy_tokenizer_files(const TokenizerFiles& files, const std::string& dir);

}  // namespace modtrain
