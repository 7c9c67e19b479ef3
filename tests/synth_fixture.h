// Test helper shared by the training tests (unit, MPI, CUDA): synthetic tweets in RAW_DIR and a
// WordPiece vocabulary trained on them at VOCAB_PATH. Returns the `data.*` / `tokenizer.vocab`
// overrides that point a config at them (prepared data goes to PREPARED_DIR).
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "modtrain/data/synth.h"
#include "modtrain/data/vocab_trainer.h"

namespace modtrain::test {

// The overrides that point a config at synthetic data laid out as synth_with_vocab writes it.
inline std::vector<std::string> synth_overrides(const std::string& raw_dir, const std::string& vocab_path,
                                                const std::string& prepared_dir) {
  return {"data.train=[" + raw_dir + "/train-*.jsonl]", "data.valid=[" + raw_dir + "/valid-*.jsonl]",
          "tokenizer.vocab=" + vocab_path, "data.prepared_dir=" + prepared_dir};
}

inline std::vector<std::string> synth_with_vocab(const std::string& raw_dir, const std::string& vocab_path,
                                                 const std::string& prepared_dir, uint64_t train, uint64_t valid,
                                                 int train_shards = 4, const SynthOptions& base = {}) {
  SynthOptions synth = base;
  synth.out_dir = raw_dir;
  synth.train = train;
  synth.valid = valid;
  synth.train_shards = train_shards;
  synthesize_tweets(synth);
  VocabTrainerOptions options;
  options.vocab_size = 2000;
  VocabTrainer trainer(options);
  std::vector<std::string> texts;
  for (uint64_t i = 0; i < train; ++i) texts.push_back(synth_record(synth.seed, "train", i, synth));
  trainer.add_texts(texts);
  std::ofstream vocab(vocab_path);
  for (const auto& t : trainer.train()) vocab << t << "\n";
  return synth_overrides(raw_dir, vocab_path, prepared_dir);
}

}  // namespace modtrain::test
