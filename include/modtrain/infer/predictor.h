// Scoring texts with a trained model, as a library: what `predict` runs, and what a server would.
// Texts go through the model directory's own input pipeline (tweet normalisation when it was
// trained with it, its tokenizer whatever the family: WordPiece, byte-level BPE, Unigram; its
// max_len), are sorted by length within a window of batches (so a batch's attention layout is
// close to its records' lengths), scored through the padding-free path (logits equal to the padded
// path, tested) and handed back in input order with the labels the model's thresholds flag.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "modtrain/modelio/model_dir.h"

namespace modtrain {

struct Prediction {
  std::string id;
  uint64_t line = 0;
  std::vector<float> scores;    // per label, in the model's label order: sigmoid or softmax probabilities
  std::vector<size_t> flagged;  // labels at or above their threshold (multi_label) or the argmax (multi_class)
  bool finite = true;           // false: a score is NaN or Inf (no flags can be given; the caller decides)
};

// The pieces of scoring, for callers that batch records themselves (`modtrain serve`'s batcher).
// The ids the model sees for `text`: normalised as in training, tokenized, special tokens, max_len.
std::vector<int32_t> encode_for_model(const LoadedModel& model, std::string_view text);
// One padding-free forward pass over records already encoded, in the order given (the batch pads
// to the longest: sort by length first): logits [n x L]. Safe to call from several threads.
std::vector<float> logits_of_encoded(const LoadedModel& model, const std::vector<const std::vector<int32_t>*>& records);
// The model's scores from its logits [n x L]: sigmoid or softmax, with its temperatures.
std::vector<float> scores_from_logits(const ModelMeta& meta, const std::vector<float>& logits, size_t n);
// The labels `scores` (one record, L values) flags: at or above the thresholds (multi_label) or
// the argmax (multi_class). `finite` is false, and nothing flagged, when a score is NaN or Inf.
std::vector<size_t> flagged_labels(const ModelMeta& meta, const std::vector<float>& scores, bool* finite);

class Predictor {
 public:
  static constexpr size_t kWindowBatches = 8;  // records are sorted by length within 8 batches
  using Sink = std::function<void(const Prediction&)>;

  // `model` must outlive the predictor. `batch`: records per forward pass.
  Predictor(LoadedModel& model, int batch, Sink sink);

  // The ids the model sees for `text` (normalised, tokenized, special tokens, cut to max_len).
  std::vector<int32_t> encode(std::string_view text) const;
  // Queues a record; scores a window when it is full.
  void add(std::string id, uint64_t line, std::string_view text);
  // Scores what is queued; every record reaches the sink, in the order added.
  void flush();

 private:
  struct Pending {
    std::string id;
    uint64_t line;
    std::vector<int32_t> ids;
  };
  LoadedModel& m_;
  size_t batch_;
  Sink sink_;
  std::vector<Pending> pending_;
  std::string normalized_;  // add()'s scratch for the normalised text, reused record after record
};

}  // namespace modtrain
