// Trains a WordPiece vocabulary the way Hugging Face's WordPieceTrainer does: words from BERT's
// normalizer and pre-tokenizer are counted (on all cores), the alphabet seeds the vocabulary
// (word-initial characters plus "##" continuations), then the most frequent adjacent pair is
// merged until the vocabulary is full. Deterministic: same corpus and options, same vocab.txt,
// whatever the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace modtrain {

struct VocabTrainerOptions {
  size_t vocab_size = 16000;     // including the 5 special tokens
  uint64_t min_frequency = 2;    // pairs seen fewer times are never merged
  size_t limit_alphabet = 1000;  // keep the most frequent characters (others become [UNK])
  bool lowercase = true;
  bool normalize_tweets = true;
  int threads = 0;  // 0 = all cores
};

struct VocabTrainerReport {
  uint64_t texts = 0, words = 0, unique_words = 0, alphabet = 0, merges = 0;
};

class VocabTrainer {
 public:
  explicit VocabTrainer(VocabTrainerOptions options) : options_(options) {}

  // Counts the words of `texts` (may be called repeatedly; uses options.threads threads).
  void add_texts(const std::vector<std::string>& texts);

  // Runs the merges; tokens in id order: [PAD] [UNK] [CLS] [SEP] [MASK], alphabet, merges.
  std::vector<std::string> train(VocabTrainerReport* report = nullptr) const;

 private:
  VocabTrainerOptions options_;
  std::unordered_map<std::string, uint64_t> word_counts_;
  uint64_t texts_ = 0, words_ = 0;
};

}  // namespace modtrain
