// The trainer's reports: the start banner, and each evaluation's record (metrics.jsonl, the log
// line, the model card's evaluation). Part of the Trainer (train/trainer.h).
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

void Trainer::log_start() const {
  const Config& c = config_;
  int64_t params = 0;
  for (const auto& p : net_->parameters()) params += p.numel();
  const bool tokens = c.train.tokens_per_batch > 0;
  const int per_rank = tokens ? c.train.tokens_per_batch : c.train.micro_batch;
  const int64_t global = static_cast<int64_t>(per_rank) * c.train.accum_steps * world_;
  char line[640];
  std::snprintf(line, sizeof line,
                "train: %lld steps on %d rank(s), %s; global batch = %d %s x %d accum x %d ranks = %lld%s; "
                "%lld records (%llu batches per epoch per rank); model %.2fM parameters, %s%s; %s",
                static_cast<long long>(total_steps_), world_, placement_.describe().c_str(), per_rank,
                tokens ? "tokens" : "micro", c.train.accum_steps, world_, static_cast<long long>(global),
                tokens ? " real tokens (train.tokens_per_batch)" : "", static_cast<long long>(train_data_->size()),
                static_cast<unsigned long long>(sampler_->batches_per_epoch()), params / 1e6,
                to_string(c.train.precision), c.model.unpad ? ", unpadded" : "",
                comms_.backend.empty() ? "one process"
                                       : ("data parallel, gradients over " + comms_.backend +
                                          (flat_->sharded() ? ", ZeRO-1: optimiser state and update sharded over " +
                                                                  std::to_string(world_) + " rank(s)"
                                                            : ""))
                                             .c_str());
  log::info(line);
  objective_->log_start();
}

EvalOptions Trainer::eval_options() const {
  EvalOptions o;
  o.batch = config_.eval.micro_batch > 0 ? config_.eval.micro_batch : 2 * config_.train.micro_batch;
  o.pad_id = tokenizer_->special_ids().pad;
  o.device = device_;
  o.unpad = config_.model.unpad;
  o.collectives = collectives_;
  o.positive_at = config_.eval.positive_at;
  o.calibrate = config_.eval.calibrate;
  o.min_subgroup_records = static_cast<uint64_t>(config_.eval.min_subgroup_records);
  o.min_subgroup_class = static_cast<uint64_t>(config_.eval.min_subgroup_class);
  return o;
}

double Trainer::evaluate_and_record(int64_t step, const ProgressLine& progress, TrainOutcome& out) {
  const Config& c = config_;
  const TrainingObjective::Evaluation e = objective_->evaluate(step, *valid_data_, eval_options(), rank_);
  out.final_eval = objective_->final_eval();
  out.final_mlm_eval = objective_->final_mlm_eval();
  evaluation_ = json({{"step", step},
                      {"train_records", train_data_->size()},
                      {"data", {{"train", c.data.train}, {"valid", c.data.valid}}},
                      {"metrics", e.metrics}})
                    .dump();
  run_dir_.append_metrics(json({{"event", "eval"}, {"step", step}, {"metrics", e.metrics}}).dump());
  if (progress.live()) std::printf("\n");
  log::info(e.line);
  return e.best_value;
}

}  // namespace modtrain
