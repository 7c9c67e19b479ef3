#include "modtrain/data/masking.h"

#include <string>

#include "modtrain/core/error.h"
#include "modtrain/data/sampler.h"

namespace modtrain {

TokenMasker::TokenMasker(const Tokenizer& tokenizer, MaskingOptions options)
    : options_(options), vocab_(static_cast<int64_t>(tokenizer.vocab_size())) {
  const SpecialIds& s = tokenizer.special_ids();
  if (s.mask < 0)
    throw UserError("the " + tokenizer.type() +
                    " tokenizer has no mask token ([MASK] or <mask>); masked-language-model training needs one: "
                    "set tokenizer.vocab to a tokenizer that has it (a pretrained model's own, or a vocab.txt "
                    "from `modtrain tokenizer train`)");
  mask_id_ = s.mask;
  special_.assign(static_cast<size_t>(vocab_), 0);
  for (int32_t id : {s.pad, s.unk, s.cls, s.sep, s.mask})
    if (id >= 0 && id < vocab_) special_[static_cast<size_t>(id)] = 1;
  // Which pieces continue a word: the tokenizer's family knows its word marks.
  continues_.assign(static_cast<size_t>(vocab_), 0);
  for (int64_t id = 0; id < vocab_; ++id)
    if (!special_[static_cast<size_t>(id)])
      continues_[static_cast<size_t>(id)] = tokenizer.continues_word(static_cast<int32_t>(id));
}

int64_t TokenMasker::mask(int64_t* ids, int64_t* targets, int64_t n, uint64_t seed, int64_t step,
                          uint64_t record) const {
  // One stream per (seed, step, record): SplitMix64 over a well-mixed start.
  SplitMix64 rng(seed ^ (0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(step) + 1)));
  rng.state ^= 0xD1B54A32D192ED03ULL * (record + 1);
  rng.next();
  auto uniform = [&] { return static_cast<double>(rng.next() >> 11) * 0x1.0p-53; };  // [0, 1)
  int64_t chosen = 0;
  bool word_chosen = false;
  int64_t previous = -1;  // the previous token as it was (ids[] is rewritten as we go)
  for (int64_t i = 0; i < n; ++i) {
    targets[i] = kNotMasked;
    const int64_t id = ids[i];
    const bool after_special = !maskable(previous);
    previous = id;
    if (!maskable(id)) {
      word_chosen = false;
      continue;
    }
    // A new draw for each token, or for each word's first piece with whole-word masking (a piece
    // after a special token always starts a word).
    const bool starts_word = !options_.whole_word || after_special || !continues_word(id);
    if (starts_word) word_chosen = uniform() < options_.probability;
    if (!word_chosen) continue;
    targets[i] = id;
    ++chosen;
    const double r = uniform();
    if (r < options_.mask_fraction) ids[i] = mask_id_;
    else if (r < options_.mask_fraction + options_.random_fraction)
      ids[i] = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocab_)));
  }
  return chosen;
}

int64_t TokenMasker::mask_batch(int64_t* ids, int64_t* targets, const int64_t* attention, int64_t rows, int64_t width,
                                const uint64_t* records, uint64_t seed, int64_t step) const {
  int64_t chosen = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = 0;
    while (n < width && attention[r * width + n]) ++n;
    chosen += mask(ids + r * width, targets + r * width, n, seed, step, records[r]);
    for (int64_t i = n; i < width; ++i) targets[r * width + i] = kNotMasked;
  }
  return chosen;
}

}  // namespace modtrain
