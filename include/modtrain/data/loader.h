// Batches for training and evaluation: the sampler's indices -> padded tensors, produced on a
// background thread (a bounded prefetch queue) so the training step never waits on data.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "modtrain/data/dataset.h"
#include "modtrain/data/masking.h"
#include "modtrain/data/sampler.h"

namespace modtrain {

struct Batch {
  torch::Tensor input_ids;        // [B, T] int64, T = longest in the batch rounded up to pad_multiple
  torch::Tensor attention_mask;   // [B, T] int64, 1 for real tokens
  torch::Tensor labels;           // [B, L] float32, 1 positive / 0 negative (0 where not annotated)
  torch::Tensor label_mask;       // [B, L] float32, 1 where the label is annotated
  torch::Tensor padding;          // [B] bool, true for records repeated to even out the ranks
  std::vector<uint64_t> indices;  // global record indices
  SamplerState position;          // where this batch came from (epoch, batch)
  int64_t tokens = 0;             // real (non-pad) tokens
  // train.objective mlm (LoaderOptions::masker): input_ids already hold what the model sees; the M
  // chosen tokens, in row-major order, are these. Records repeated to even out the ranks have none.
  torch::Tensor mlm_labels;     // [M] int64, the original ids (the targets)
  torch::Tensor mlm_positions;  // [M] int64, flat indices into [B, T] (the padded path)
  torch::Tensor mlm_packed;     // [M] int64, indices into the batch's real tokens (UnpaddedBatch, model.unpad)
  int64_t masked = 0;           // M
};

struct LoaderOptions {
  int64_t pad_id = 0;
  int64_t pad_multiple = 8;  // dynamic padding rounds T up to this (tensor-core friendly)
  size_t prefetch = 4;       // batches built ahead
  bool pin_memory = false;   // page-locked host tensors for fast async copies to CUDA
  // MLM: mask each batch with this masker, drawn from (mask_seed, the batch's ordinal epoch x
  // mask_batches_per_epoch + batch, record). mask_batches_per_epoch 0: one fixed draw (evaluation,
  // so that every evaluation of a run scores the same masked tokens).
  std::shared_ptr<const TokenMasker> masker;
  uint64_t mask_seed = 0;
  uint64_t mask_batches_per_epoch = 0;
};

// Builds one batch (used by the loader thread; exposed for tests and benchmarks).
Batch collate(const PreparedDataset& data, const SampledBatch& sampled, const LoaderOptions& options);

class Loader {
 public:
  Loader(std::shared_ptr<const PreparedDataset> data, std::shared_ptr<const DistributedSampler> sampler,
         LoaderOptions options, SamplerState start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();                      // blocks until the next batch is ready; epochs follow each other
  SamplerState state() const;        // position of the batch next() returns next (save this to resume)
  void restore(SamplerState state);  // continue from `state` (drops prefetched batches)

 private:
  void start(SamplerState from);
  void stop();
  void produce(SamplerState from, uint64_t generation);

  std::shared_ptr<const PreparedDataset> data_;
  std::shared_ptr<const DistributedSampler> sampler_;
  LoaderOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> queue_;
  SamplerState consumer_;  // position of the next batch handed out
  bool stopping_ = false;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace modtrain
