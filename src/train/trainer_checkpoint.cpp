// The trainer's checkpoints: the best metric tracked, when to save (periodic, a new best, a stop
// or a request), what the model directory records, and the save with its timing. Part of the
// Trainer (train/trainer.h); the checkpoint format itself is train/checkpoint.cpp.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/signals.h"
#include "modtrain/core/text.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/objective.h"
#include "modtrain/train/trainer.h"
#include "trainer_internal.h"

namespace modtrain {

using namespace trainer_detail;

bool Trainer::track_best(int64_t step, double value) {
  const BestMetric metric = effective_best_metric(config_);
  if (metric == BestMetric::kNone || !std::isfinite(value)) return false;
  const bool lower_is_better = metric == BestMetric::kLoss;
  const bool better =
      std::isnan(state_.best_value) || (lower_is_better ? value < state_.best_value : value > state_.best_value);
  if (!better) return false;
  state_.best_value = value;
  state_.best_step = step;
  return true;
}

bool Trainer::checkpoint_after(int64_t step, bool best, const RunControl& control, const ProgressLine& progress,
                               TrainOutcome& out) {
  const Requests asked = agree_on_requests(step, control.stop_after);  // SIGTERM/SIGUSR1, SIGUSR2, --stop-after
  const bool last = step == total_steps_;                              // the final checkpoint follows the loop
  const bool stop = asked.stop && !last;
  const bool periodic = config_.checkpoint.every > 0 && step % config_.checkpoint.every == 0 && !last;
  const bool requested = asked.save && !last;
  if (stop) {
    if (progress.live()) std::printf("\n");
    log::info(stop_reason_);
  } else if (requested) {
    log::info("checkpoint requested (SIGUSR2) after step " + std::to_string(step));
  }
  if (periodic || best || stop || requested) {
    out.checkpoint = save_checkpoint(step, best);
    out.checkpoint_step = step;
  }
  return stop;
}

ModelMeta Trainer::model_meta() const {
  const Config& c = config_;
  ModelMeta m;
  m.bert = bert_config_;
  m.objective = c.train.objective;
  m.labels = c.data.labels;
  m.problem = c.data.problem;
  objective_->describe(m);  // thresholds, temperatures
  m.positive_at = c.eval.positive_at;
  m.soft_labels = c.data.soft_labels;
  m.subgroups = c.data.subgroups;
  m.slice_by = c.eval.slice_by;
  m.lowercase = c.tokenizer.lowercase;
  m.normalize_tweets = c.tokenizer.normalize_tweets;
  m.max_len = c.data.max_len;
  m.evaluation = evaluation_;
  return m;
}

std::string Trainer::save_checkpoint(int64_t step, bool best) {
  const Config& c = config_;
  state_.step = step;
  state_.sampler = loader_->state();
  state_.loss_scale = scaler_.scale();
  state_.loss_scale_good_steps = scaler_.good_steps();
  const auto start = std::chrono::steady_clock::now();
  const OptimizerState optimizer_state = optimizer_->state();  // collective under ZeRO-1: gathered everywhere
  std::string dir =
      checkpoints_.save({*net_, optimizer_state, model_meta(), c.tokenizer.vocab, resolved_.to_yaml(), state_}, best);
  std::vector<double> done = {1.0};
  collectives_->sum(done, "checkpoint written");  // all wait until rank 0 has written (an error there aborts the job)
  if (rank_ == 0) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", seconds_since(start));
    log::info("checkpoint " + dir + (best ? " (best " + state_.best_metric + ")" : "") + " written in " + seconds +
              " s");
    run_dir_.append_metrics(json({{"event", "checkpoint"}, {"step", step}, {"dir", dir}, {"best", best}}).dump());
  }
  return dir;
}

}  // namespace modtrain
