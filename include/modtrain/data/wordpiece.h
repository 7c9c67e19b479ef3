// BERT's WordPiece tokenizer, id-for-id with Hugging Face's BertTokenizerFast (the `tokenizers`
// library): special tokens matched in the raw text, BertNormalizer (clean text, CJK spacing,
// lowercase + NFD accent stripping when uncased), BertPreTokenizer (whitespace and punctuation
// splits), greedy longest-match-first WordPiece with "##", [CLS] ... [SEP], truncation.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "modtrain/data/tokenizer.h"

namespace modtrain {

// The special tokens every modtrain vocabulary has (a trained vocab puts them at ids 0-4).
inline constexpr const char* kSpecialTokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// A vocab.txt: one token per line, id = line number. Lookups are split into word-initial tokens
// and "##" continuation tokens so the hot loop never builds "##" strings.
class Vocab {
 public:
  static Vocab load(const std::string& path);  // throws UserError (missing file, missing specials)
  static Vocab from_tokens(const std::vector<std::string>& tokens);

  size_t size() const { return tokens_.size(); }
  const std::string& token(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }
  const std::vector<std::string>& tokens() const { return tokens_; }
  // -1 when absent. `continuation` looks up "##" + piece.
  int32_t find(std::string_view piece, bool continuation = false) const;
  int32_t id_of(std::string_view token) const;  // full token text, "##" included; -1 when absent

  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t mask_id() const { return mask_; }
  size_t max_piece_bytes() const { return max_piece_bytes_; }

 private:
  struct Table {  // open addressing, string_view keys into tokens_
    std::vector<std::pair<std::string_view, int32_t>> slots;
    size_t mask = 0;
    void build(const std::vector<std::pair<std::string_view, int32_t>>& entries);
    int32_t find(std::string_view key) const;
  };
  void index(const std::string& source);
  std::vector<std::string> tokens_;
  Table initial_, continuation_;
  int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
  size_t max_piece_bytes_ = 0;
};

struct WordPieceOptions {
  bool lowercase = true;                  // uncased BERT: lowercase + strip accents (NFD, drop Mn)
  size_t max_input_chars_per_word = 100;  // longer words become [UNK], as in BERT
};

// BERT's tokenizer.json for a vocabulary (as transformers' BertConverter writes it), truncating at
// `max_len`: what an export writes when the model has only a vocab.txt.
std::string wordpiece_tokenizer_json(const Vocab& vocab, bool lowercase, int max_len);

class WordPieceTokenizer final : public Tokenizer {
 public:
  WordPieceTokenizer(std::shared_ptr<const Vocab> vocab, WordPieceOptions options = {});
  // BERT's tokenizer.json (model WordPiece with "##", BertNormalizer, BertPreTokenizer, [CLS] $A
  // [SEP]). Throws UserError naming the file and the field that modtrain's WordPiece cannot honour.
  static WordPieceTokenizer from_tokenizer_json(const std::string& path);

  // Appends [CLS] ids... [SEP] to `out` (cleared first), at most `max_len` ids in all (0 = no
  // limit). Returns true when the text was truncated. Thread-safe (const, no shared scratch).
  bool encode(std::string_view text, std::vector<int32_t>& out, size_t max_len = 0) const override;
  size_t vocab_size() const override { return vocab_->size(); }
  const SpecialIds& special_ids() const override { return specials_; }
  std::string token(int32_t id) const override { return vocab_->token(id); }
  std::string type() const override { return "wordpiece"; }
  bool continues_word(int32_t id) const override;
  HfTokenizerLayout hugging_face(const TokenizerFiles& files, int max_len) const override;

  // The BERT pre-tokenized, normalized words of `text` (for tests and vocabulary training).
  std::vector<std::string> words(std::string_view text) const;

  const Vocab& vocab() const { return *vocab_; }
  const WordPieceOptions& options() const { return options_; }

 private:
  void encode_words(std::string_view text, std::vector<int32_t>& out, size_t limit, bool& truncated) const;

  std::shared_ptr<const Vocab> vocab_;
  WordPieceOptions options_;
  SpecialIds specials_;
  std::vector<hf::AddedToken> added_;  // tokenizer.json's added_tokens: matched in the raw text first
  std::array<bool, 256> added_first_{};
};

}  // namespace modtrain
