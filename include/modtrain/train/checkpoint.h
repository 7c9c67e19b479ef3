// Checkpoints of a training run, for exact resume and for serving:
//
//   RUN/checkpoints/step-0000040/   model.safetensors, config.json, modtrain.json, the tokenizer (a
//                                   model directory: `predict`, `eval` and `export` read it as is),
//                                   optimizer.safetensors (the optimiser's full, unsharded state
//                                   by parameter name: AdamW moments + step; any world size or
//                                   train.zero setting resumes from it),
//                                   trainer_state.json (step, sampler position, loss scale, best
//                                   metric, ...), config.yaml (the resolved config)
//   RUN/checkpoints/latest          "step-0000040": the newest complete checkpoint, written last
//   RUN/checkpoints/best            the best one by checkpoint.best_metric (kept besides keep_last)
//
// Atomic: everything is written into .tmp-step-NNNNNNN, fsynced, renamed, and only then is
// `latest` replaced (itself atomically). A kill at any moment leaves the previous checkpoint and
// pointer intact. Only rank 0 writes; the ranks decide together when to save (the step number,
// or a preemption flag summed over ranks), so no rank waits on a barrier the others skip.
//
// RNG: dropout draws from a generator reseeded before every step from (run.seed, rank, step), so
// the RNG state of any step is known from the step alone (CPU and CUDA alike); the checkpoint
// records the seed and the step, not generator blobs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/sampler.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/optimizer.h"

namespace modtrain {

struct TrainerState {
  int64_t step = 0;         // optimiser steps completed
  int64_t total_steps = 0;  // of the run that wrote it
  SamplerState sampler;     // the next batch of every rank
  uint64_t batches_per_epoch = 0;
  int world = 1, micro_batch = 1, accum_steps = 1;
  uint64_t seed = 0;
  double loss_scale = 1.0;
  int64_t loss_scale_good_steps = 0;
  int64_t skipped_steps = 0;
  std::string best_metric = "none";
  double best_value = std::numeric_limits<double>::quiet_NaN();
  int64_t best_step = -1;
  std::vector<std::string> labels;
  std::string problem;
  std::string objective = "classify";  // train.objective (absent in older checkpoints: classify)

  std::string to_json() const;
  static TrainerState from_json(const std::string& text, const std::string& source);  // UserError naming source
};

// Optimiser state <-> safetensors: "exp_avg.<parameter>", "exp_avg_sq.<parameter>" (F32) and
// "step.<parameter>" (I64, the same for every parameter), metadata format=modtrain-adamw and
// optimizer=<train.optimizer>. Loading checks the file (dtypes, finite numbers, one step count);
// Optimizer::load_state checks it against the model.
void save_optimizer_state(const std::string& path, const OptimizerState& state);
OptimizerState load_optimizer_state(const std::string& path);

struct CheckpointContent {
  torch::nn::Module& model;
  const OptimizerState& optimizer;  // gathered on every rank before the save (collective under ZeRO-1)
  ModelMeta meta;
  std::string tokenizer_path;  // tokenizer.vocab: its files are copied in
  std::string config_yaml;
  TrainerState state;
};

class Checkpoints {
 public:
  Checkpoints(const std::string& run_dir, const CheckpointConfig& config, bool writer);
  const std::string& dir() const { return dir_; }
  static std::string name(int64_t step);  // "step-0000040"

  // Writes atomically (on the writer rank; others return at once) and prunes old checkpoints.
  // `best` also points RUN/checkpoints/best at it. Returns the checkpoint directory.
  std::string save(const CheckpointContent& content, bool best);

  // `--resume` argument -> a checkpoint directory. "auto": the run's latest, or "" when the run
  // has none yet. A path may be a checkpoint, a run directory or its checkpoints/ directory.
  // When `latest` names a directory that is gone or incomplete, the newest complete one is used
  // (with a warning).
  static std::string resolve(const std::string& resume, const std::string& run_dir, bool report = true);

  // On the writer: removes what saves that failed or were killed left behind (.tmp-step-N/
  // directories, *.tmp.PID files), so an earlier disk-full run does not fill the disk sooner.
  // Returns how many entries were removed.
  size_t remove_stale_temporaries() const;

 private:
  void write(const CheckpointContent& content, bool best);
  void prune() const;
  std::string dir_;
  CheckpointConfig config_;
  bool writer_;
};

// Reads a checkpoint into the model and optimiser after checking that it fits this run: model
// shape, label set, problem and tokenizer are errors when they differ; a different world size or
// micro batch resumes at the same fraction of the epoch with a warning about data order.
// Returns the state with `sampler` already translated to this run's sampler.
// Warnings are printed only when `report` (rank 0), not once per rank.
TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, Optimizer& optimizer,
                             const Config& config, int world, uint64_t batches_per_epoch, bool report = true);

}  // namespace modtrain
