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
    out.checkpoint = save_checkpoint(step, best, /*wait=*/stop);  // a stop waits for the write before exit
    out.checkpoint_step = step;
  } else if (asked.written) {
    finish_checkpoint();  // every rank's background write has ended: commit it
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

std::string Trainer::save_checkpoint(int64_t step, bool best, bool wait) {
  const Config& c = config_;
  if (checkpoints_.in_flight()) report_checkpoint(checkpoints_.finish());  // a save waits for the previous one
  state_.step = step;
  state_.sampler = loader_->state();
  state_.loss_scale = scaler_.scale();
  state_.loss_scale_good_steps = scaler_.good_steps();
  // Each rank snapshots its part (rank 0 the parameters, every rank its own optimiser pieces);
  // with checkpoint.async the files are written while training goes on, committed at a later step.
  checkpoints_.begin({*flat_, *optimizer_, model_meta(), c.tokenizer.vocab, resolved_.to_yaml(), state_}, best);
  const std::string dir = (std::filesystem::path(checkpoints_.dir()) / Checkpoints::name(step)).string();
  if (wait || !c.checkpoint.async) report_checkpoint(checkpoints_.finish());
  return dir;
}

void Trainer::finish_checkpoint() {
  if (checkpoints_.in_flight()) report_checkpoint(checkpoints_.finish());
}

void Trainer::report_checkpoint(const SavedCheckpoint& saved) {
  if (rank_ != 0) return;
  char line[200];
  std::snprintf(
      line, sizeof line,
      " written: training waited %.3f s (snapshot %.3f s), the write took %.2f s%s, %.1f MB on the busiest rank",
      saved.waited_s(), saved.snapshot_s, saved.write_s, config_.checkpoint.async ? " in the background" : "",
      static_cast<double>(saved.max_bytes) / 1e6);
  log::info("checkpoint " + saved.dir + (saved.best ? " (best " + state_.best_metric + ")" : "") + line);
  auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  run_dir_.append_metrics(json({{"event", "checkpoint"},
                                {"step", saved.step},
                                {"dir", saved.dir},
                                {"best", saved.best},
                                {"waited_s", saved.waited_s()},
                                {"snapshot_s", saved.snapshot_s},
                                {"write_s", saved.write_s},
                                {"commit_s", saved.commit_s},
                                {"max_rank_bytes", saved.max_bytes},
                                {"rss_anon_before_mb", number(saved.rss_anon_before_mb)},
                                {"rss_anon_after_mb", number(saved.rss_anon_after_mb)}})
                              .dump());
}

}  // namespace modtrain
