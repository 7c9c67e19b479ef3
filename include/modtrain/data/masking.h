// Masked-language-model inputs (train.objective: mlm): which tokens of a record are chosen, and
// what the model sees there, as BERT / RoBERTa pretraining and transformers'
// DataCollatorForLanguageModeling do it: each maskable token is chosen with probability p (15%);
// a chosen token becomes the mask token 80% of the time, a uniformly random vocabulary token 10%,
// and stays itself 10%; the loss is taken at the chosen tokens only. Special tokens (<s>, </s>,
// [CLS], [SEP], <pad>, [PAD], <unk>, [UNK], <mask>, [MASK]) and padding are never chosen. With
// whole-word masking a word is chosen (with the same p) and all its pieces are masked together:
// a piece continues a word when it is "##..." (WordPiece), or does not start with the word-start
// mark (SentencePiece "▁", byte-level BPE "Ġ"), and does not follow a special token.
//
// The draws are a function of (seed, step, the record's global index) only: a record is masked
// the same way whichever rank holds it and however many ranks there are (2 ranks = 1 rank with
// the doubled batch), and a resumed run draws what the uninterrupted one drew.
#pragma once

#include <cstdint>
#include <vector>

#include "modtrain/data/tokenizer.h"

namespace modtrain {

struct MaskingOptions {
  double probability = 0.15;     // chance that a token (or a word, with whole_word) is chosen
  double mask_fraction = 0.8;    // of the chosen: replaced by the mask token
  double random_fraction = 0.1;  // of the chosen: replaced by a random token (the rest stay)
  bool whole_word = false;
};

inline constexpr int64_t kNotMasked = -100;  // a target that takes no loss (PyTorch's ignore_index)

class TokenMasker {
 public:
  // Reads the tokenizer's special ids (a mask token is required) and its vocabulary's word marks.
  TokenMasker(const Tokenizer& tokenizer, MaskingOptions options);

  // One record: `ids` (n tokens, specials included, no padding) is rewritten in place to what the
  // model sees; targets[i] is the original id where token i was chosen, else kNotMasked. Returns
  // how many were chosen.
  int64_t mask(int64_t* ids, int64_t* targets, int64_t n, uint64_t seed, int64_t step, uint64_t record) const;

  // A right-padded batch [rows, width] (attention 1 for real tokens): each row's real prefix as
  // mask(); targets of padding are kNotMasked. Returns the number of chosen tokens.
  int64_t mask_batch(int64_t* ids, int64_t* targets, const int64_t* attention, int64_t rows, int64_t width,
                     const uint64_t* records, uint64_t seed, int64_t step) const;

  bool maskable(int64_t id) const { return id >= 0 && id < vocab_ && !special_[static_cast<size_t>(id)]; }
  bool continues_word(int64_t id) const { return id >= 0 && id < vocab_ && continues_[static_cast<size_t>(id)]; }
  const MaskingOptions& options() const { return options_; }

 private:
  MaskingOptions options_;
  int64_t vocab_ = 0, mask_id_ = -1;
  std::vector<uint8_t> special_, continues_;
};

}  // namespace modtrain
