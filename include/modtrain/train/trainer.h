// The trainer: builds the data, the objective (train/objective.h: its model, loss and evaluation;
// classify or mlm, the same step, engine and checkpoints), optimiser and schedule from the config
// and runs the step loop (accumulation, precision, clipping,
// non-finite handling), with logging and evaluation in fenced periodic blocks. Data-parallel through two seams: a
// GradientReducer (the data plane: gradients) and Collectives (the control plane: flags, logged sums, scores).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/config/loader.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/flat_params.h"
#include "modtrain/dist/reducer.h"
#include "modtrain/dist/timeline.h"
#include "modtrain/model/bert.h"
#include "modtrain/train/checkpoint.h"
#include "modtrain/train/evaluator.h"
#include "modtrain/train/optimizer.h"
#include "modtrain/train/precision.h"
#include "modtrain/train/run_dir.h"

namespace modtrain {

class TrainingObjective;  // train/objective.h

struct TrainOutcome {
  int64_t steps = 0;           // the step the run ended at
  int64_t start_step = 0;      // > 0 when resumed
  bool stopped_early = false;  // preempted (SIGTERM/SIGUSR1) or --stop-after: a checkpoint, no final model
  std::string checkpoint;      // the last checkpoint written
  int64_t checkpoint_step = -1;
  int64_t skipped_steps = 0;  // non-finite gradients
  double last_loss = 0;
  EvalReport final_eval;         // empty when there is no validation data (or under train.objective mlm)
  MlmEvalReport final_mlm_eval;  // train.objective mlm: tokens == 0 when there is no validation data
  std::vector<double> thresholds;
  std::string model_dir;
};

// How a run starts and ends besides the config.
struct RunControl {
  std::string resume;      // "" = fresh; "auto" = the run dir's latest checkpoint if any; else a path
  int64_t stop_after = 0;  // > 0: save a checkpoint and stop after this step (the schedule still spans the run)
};

// What the trainer needs from data parallelism. The default is one plain process: local
// collectives and a LocalReducer, nothing communicated (train/distributed.h builds the rest).
struct TrainComms {
  Collectives* collectives = nullptr;    // the control plane; null: one process
  Communicator* communicator = nullptr;  // the data plane (ZeRO-1's norm, parameter and state gathers)
  std::function<std::unique_ptr<GradientReducer>(FlatParams&)> make_reducer;  // null: LocalReducer
  std::string backend;           // the data plane's backend for the start line ("" when local)
  Timeline* timeline = nullptr;  // forward / backward / optimiser spans (dist.timeline)
};

class Trainer {
 public:
  Trainer(const ResolvedConfig& resolved, const Placement& placement, TrainComms comms = {});
  ~Trainer();
  TrainOutcome run(const RunControl& control = {});

  std::shared_ptr<ClassifierImpl> model() const;    // null under train.objective mlm
  std::shared_ptr<MaskedLMImpl> mlm_model() const;  // null under train.objective classify
  torch::nn::Module& network() { return *net_; }    // whichever of the two this run trains
  const FlatParams& flat() const { return *flat_; }
  Optimizer& optimizer() { return *optimizer_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  struct StepStats {
    torch::Tensor loss;  // on the device (no host sync per step)
    double grad_norm = 0;
    int64_t samples = 0, tokens = 0;
    double targets = 0;  // what the loss averaged over, summed over ranks: chosen tokens (mlm) or annotated labels
    bool skipped = false;
  };
  StepStats train_step(int64_t step);
  EvalOptions eval_options() const;  // batch, device, path and ranks: what every objective's evaluation shares
  // One evaluation: metrics.jsonl, the log line, the model card's record; returns the value
  // checkpoint.best_metric tracks (NaN: none).
  double evaluate_and_record(int64_t step, const ProgressLine& progress, TrainOutcome& out);
  void log_start() const;
  // The step to start at; a fresh start applies model.init_from. Rank 0 resolves --resume; every
  // rank loads what it chose, the ranks agree that all of them could, and compare the weights.
  int64_t resume(const std::string& resume);
  std::string agree_on_checkpoint(const std::string& resume);  // rank 0's choice on every rank ("": fresh)
  void load_on_every_rank(const std::string& what, const std::function<void()>& load);
  struct Requests {
    bool stop = false, save = false;
    bool written = false;  // a checkpoint is in flight and every rank's write of it has ended
  };
  Requests agree_on_requests(int64_t step, int64_t stop_after);  // every rank returns the same
  bool track_best(int64_t step, double value);                   // true when `value` is a new best
  // Begins a save (after finishing the one in flight); `wait` or checkpoint.async false: also
  // finishes it. Returns the checkpoint's directory.
  std::string save_checkpoint(int64_t step, bool best, bool wait);
  void finish_checkpoint();  // commits the save in flight, if any (collective)
  void report_checkpoint(const SavedCheckpoint& saved);
  ModelMeta model_meta() const;  // what a model directory records of this run
  // After `step`: saves when due (periodic, a new best, SIGUSR2) or asked to stop; true = stop.
  bool checkpoint_after(int64_t step, bool best, const RunControl& control, const ProgressLine& progress,
                        TrainOutcome& out);

  ResolvedConfig resolved_;
  const Config& config_;
  Placement placement_;
  TrainComms comms_;
  std::unique_ptr<Collectives> local_collectives_;  // when comms_.collectives is null
  Collectives* collectives_;                        // the control plane
  int rank_, world_;
  torch::Device device_;
  std::shared_ptr<const Tokenizer> tokenizer_;  // tokenizer.vocab: pad id, vocabulary size
  std::shared_ptr<PreparedDataset> train_data_, valid_data_;
  std::shared_ptr<DistributedSampler> sampler_;
  std::unique_ptr<Loader> loader_;
  BertConfig bert_config_;
  std::unique_ptr<TrainingObjective> objective_;  // train.objective: model, loss, evaluation (train/objective.h)
  torch::nn::Module* net_ = nullptr;              // the objective's model
  std::unique_ptr<FlatParams> flat_;  // parameters and gradients in buckets (before the reducer and optimiser)
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<Optimizer> optimizer_;
  LossScaler scaler_;
  RunDir run_dir_;
  Checkpoints checkpoints_;
  TrainerState state_;       // what checkpoints record (best metric, skipped steps, ...)
  std::string stop_reason_;  // why agree_on_requests() asked to stop
  std::string evaluation_;   // the latest evaluation for the model card (ModelMeta::evaluation)
  int64_t total_steps_ = 0;
};

}  // namespace modtrain
