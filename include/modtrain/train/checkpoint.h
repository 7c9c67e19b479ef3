// Checkpoints of a training run, for exact resume and for serving:
//
//   RUN/checkpoints/step-0000040/   model.safetensors, config.json, modtrain.json, the tokenizer (a
//                                   model directory: `predict`, `eval` and `export` read it as is),
//                                   optimizer.rank-RRRRR.safetensors (the optimiser state each rank
//                                   wrote: its own ZeRO-1 slices, or its 1/N share of the replicated
//                                   state), trainer_state.json, config.yaml (the resolved config),
//                                   index.json (written last: every piece of optimiser state by
//                                   parameter, file, byte offset, element range and checksum; every
//                                   file with its writer rank, size and checksum; format version 2)
//   RUN/checkpoints/latest          "step-0000040": the newest complete checkpoint, written last
//   RUN/checkpoints/best            the best one by checkpoint.best_metric (kept besides keep_last)
//
// A save has two phases (docs/checkpoints.md). (1) Every rank snapshots what it writes into host
// buffers that are reused between saves (pinned on CUDA): rank 0 the parameters (model.safetensors
// is one file, for serving), every rank its pieces of the optimiser state, never another rank's.
// The training loop blocks only for this copy. A background thread (checkpoint.async; else the
// caller) writes and fsyncs the rank's files into .tmp-step-NNNNNNN/. (2) finish(), collective:
// every rank's outcome is gathered; when all succeeded rank 0 writes index.json, fsyncs, renames
// the directory into place and only then moves `latest`. A failure on any rank removes the partial
// directory and is one line naming the rank; `latest` keeps naming the previous checkpoint. A kill
// at any moment leaves at most a .tmp- directory, removed at the next start: a step-NNNNNNN
// directory is complete and verified, or it does not exist.
//
// Loading reshards: each rank reads model.safetensors and only the pieces of optimiser state it
// holds in this run (any world size, train.zero setting or model.unpad), each verified by its
// checksum. Checkpoints of format 1 (one optimizer.safetensors, written by rank 0) still load.
//
// RNG: dropout draws from a generator reseeded before every step from (run.seed, rank, step), so
// the RNG state of any step is known from the step alone (CPU and CUDA alike); the checkpoint
// records the seed and the step, not generator blobs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/sampler.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/flat_params.h"
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

// What a save records. References: begin() snapshots what it needs before returning.
struct CheckpointContent {
  const FlatParams& params;  // the model's parameters (names, shapes, values)
  Optimizer& optimizer;      // its sharded state: each rank writes its own pieces
  ModelMeta meta;
  std::string tokenizer_path;  // tokenizer.vocab: its files are copied in
  std::string config_yaml;
  TrainerState state;
};

// A committed checkpoint and what it cost.
struct SavedCheckpoint {
  std::string dir;
  int64_t step = 0;
  bool best = false;
  double snapshot_s = 0;  // the copy into host buffers
  double begin_s = 0;     // begin(): the snapshot, and the write too without checkpoint.async
  double write_s = 0;     // this rank's write and fsync (in the background with checkpoint.async)
  double commit_s = 0;    // finish(): waiting for every rank, the index and the renames
  double join_s = 0;      // ... of which waiting for this rank's own background write
  double waited_s() const { return begin_s + commit_s; }  // what the training loop waited for
  // This process's RssAnon (MB, Linux; NaN elsewhere) before the snapshot and after the commit:
  // the host buffers stay allocated between saves.
  double rss_anon_before_mb = 0, rss_anon_after_mb = 0;
  uint64_t bytes = 0;      // written by this rank
  uint64_t max_bytes = 0;  // by the rank that wrote most
};

class Checkpoints {
 public:
  // `collectives` is the control plane the ranks agree on (make_local_collectives() for one process).
  Checkpoints(const std::string& run_dir, const CheckpointConfig& config, Collectives& collectives);
  ~Checkpoints();  // joins a background write; an uncommitted one is left as .tmp- (removed at the next start)
  Checkpoints(const Checkpoints&) = delete;
  Checkpoints& operator=(const Checkpoints&) = delete;
  const std::string& dir() const { return dir_; }
  static std::string name(int64_t step);  // "step-0000040"

  // Collective. A save in flight must have been finished (the next save waits for the previous
  // one: the trainer calls finish() first). Snapshots this rank's part of `content` and writes it: in the background
  // with checkpoint.async, else before returning. `best` also points RUN/checkpoints/best at it.
  void begin(const CheckpointContent& content, bool best);
  bool in_flight() const;
  // Allocates (and first touches) the host buffers of this rank's snapshot on a background
  // thread, so that the first save blocks no longer than later ones. Optional.
  void reserve(const FlatParams& params, Optimizer& optimizer);
  bool written() const;  // this rank's background write has ended (finish() will not wait for it)
  // Collective: waits for this rank's write, gathers every rank's outcome and commits on rank 0.
  // Throws CollectiveError on every rank when a rank failed (one line, naming it, logged once).
  SavedCheckpoint finish();
  // begin() + finish().
  SavedCheckpoint save(const CheckpointContent& content, bool best);

  // `--resume` argument -> a checkpoint directory. "auto": the run's latest, or "" when the run
  // has none yet. A path may be a checkpoint, a run directory or its checkpoints/ directory.
  // When `latest` names a directory that is gone or incomplete, the newest complete one is used
  // (with a warning).
  static std::string resolve(const std::string& resume, const std::string& run_dir, bool report = true);

  // On rank 0: removes what saves that failed or were killed left behind (.tmp-step-N/
  // directories, *.tmp.PID files), so an earlier disk-full run does not fill the disk sooner.
  // Returns how many entries were removed.
  size_t remove_stale_temporaries() const;

 private:
  struct Pending;
  void commit(int64_t step, bool best, const std::vector<std::string>& outcomes);
  void prune() const;
  std::string dir_;
  CheckpointConfig config_;
  Collectives& collectives_;
  int rank_;
  std::unique_ptr<Pending> pending_;
  nlohmann::json optimizer_meta_;  // the optimiser of the save in flight (its name, updates, state tensors)
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
  std::thread pruner_;    // rank 0: removes checkpoints beyond keep_last after a commit
  std::thread reserver_;  // reserve(): allocates the host buffers  // the snapshot's host memory, kept between saves
};

// Reads a checkpoint into the model and optimiser after checking that it fits this run: model
// shape, label set, problem and tokenizer are errors when they differ; a different world size or
// micro batch resumes at the same fraction of the epoch with a warning about data order.
// Returns the state with `sampler` already translated to this run's sampler.
// Warnings are printed only when `report` (rank 0), not once per rank.
TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, Optimizer& optimizer,
                             const Config& config, int world, uint64_t batches_per_epoch, bool report = true);

}  // namespace modtrain
