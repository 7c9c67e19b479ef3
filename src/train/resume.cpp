// The trainer's start: --resume resolved by rank 0 and agreed on by every rank, checkpoints and
// model.init_from loaded on every rank with the outcome agreed and the weights compared; and the
// per-step agreement on stop and save requests. Part of the Trainer (train/trainer.h).
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
#include "modtrain/dist/rank0.h"
#include "modtrain/dist/replicas.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/objective.h"
#include "modtrain/train/trainer.h"
#include "trainer_internal.h"

namespace modtrain {

using namespace trainer_detail;

std::string Trainer::agree_on_checkpoint(const std::string& resume) {
  // Only rank 0 looks: on node-local scratch the other ranks may see no checkpoint, or an older one.
  return decide_on_rank0(*collectives_, "the checkpoint to resume from", [&] {
    return resume.empty() ? std::string() : Checkpoints::resolve(resume, config_.run.dir, true);
  });
}

void Trainer::load_on_every_rank(const std::string& what, const std::function<void()>& load) {
  std::string failure;
  int code = kExitUsage;
  try {
    load();
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    failure = e.what();
    code = e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    failure = describe_filesystem_error(e);
  } catch (const std::exception& e) {
    failure = e.what();
    failure = failure.substr(0, failure.find('\n'));  // LibTorch appends a backtrace
    code = kExitRuntime;
  }
  const std::vector<std::string> failures = collectives_->all_gather_text(failure, "loading " + what);
  std::vector<std::string> failed, loaded;
  for (size_t r = 0; r < failures.size(); ++r) (failures[r].empty() ? loaded : failed).push_back(std::to_string(r));
  if (failed.empty()) return;
  bool alike = loaded.empty();
  for (const auto& f : failures) alike = alike && f == failures[0];
  if (alike) {  // the same error everywhere (a mismatched checkpoint, a bad file): said once
    if (rank_ == 0) log::error(failure);
  } else if (!failure.empty()) {  // some ranks could read it and this one could not: the storage differs
    log::error("cannot load " + what + " on host " + placement_.host + " (rank(s) " + text::join(loaded, ",") +
               " did): " + failure +
               "; every rank must see the same files at that path: put run.dir and model.init_from on storage "
               "shared by all nodes, or copy them to each node");
  }
  std::fflush(stderr);
  throw CollectiveError("loading " + what + " failed on rank(s) " + text::join(failed, ","), alike ? code : kExitUsage,
                        /*already_reported=*/true);
}

int64_t Trainer::resume(const std::string& resume) {
  if (const size_t stale = checkpoints_.remove_stale_temporaries())
    log::info("removed " + std::to_string(stale) + " unfinished checkpoint file(s) in " + checkpoints_.dir() +
              " left by an earlier run (a failed or killed save)");
  const std::string dir = agree_on_checkpoint(resume);
  if (dir.empty()) {
    if (resume.empty() && std::filesystem::exists(std::filesystem::path(checkpoints_.dir()) / "latest") && rank_ == 0)
      log::warn("run.dir " + config_.run.dir +
                " already holds checkpoints; starting fresh (they are replaced as this run saves). "
                "Pass --resume auto to continue that run instead");
    if (!resume.empty())
      log::info("--resume " + resume + ": no checkpoint in " + config_.run.dir + " yet; starting fresh");
    if (!config_.model.init_from.empty()) {  // every rank reads the weights; the replicas are then compared
      ImportReport imported;
      load_on_every_rank("model.init_from " + config_.model.init_from,
                         [&] { imported = objective_->import_weights(config_.model.init_from, config_, *tokenizer_); });
      check_replicas_after_load(named_parameters(*net_), *collectives_, config_.model.init_from);
      log::info("model.init_from " + config_.model.init_from + ": " + imported.summary());
    }
    run_dir_.append_metrics(json({{"event", "start"}, {"step", 0}}).dump());
    return 0;
  }
  const auto load_start = std::chrono::steady_clock::now();
  TrainerState loaded;
  load_on_every_rank("checkpoint " + dir + " (rank 0 resumes from it)", [&] {
    loaded = load_checkpoint(dir, *net_, *optimizer_, config_, world_, sampler_->batches_per_epoch(), rank_ == 0);
  });
  // The same path may hold different files on different nodes: the ranks must stand at one step.
  const auto steps = collectives_->all_gather(std::vector<double>{static_cast<double>(loaded.step)}, "resumed step");
  for (size_t r = 1; r < steps.size(); ++r) {
    if (steps[r] == steps[0]) continue;
    const std::string why = "the ranks resumed from " + dir +
                            " at different steps (rank 0: " + std::to_string(static_cast<int64_t>(steps[0][0])) +
                            ", rank " + std::to_string(r) + ": " + std::to_string(static_cast<int64_t>(steps[r][0])) +
                            "): each rank read its own copy of that path; put run.dir on storage shared by all nodes";
    if (rank_ == 0) log::error(why);
    throw CollectiveError(why, kExitUsage, /*already_reported=*/true);
  }
  check_replicas_after_load(named_parameters(*net_), *collectives_, dir);
  loader_->restore(loaded.sampler);
  scaler_.restore(loaded.loss_scale, static_cast<int>(loaded.loss_scale_good_steps));
  state_.skipped_steps = loaded.skipped_steps;
  if (loaded.best_metric == state_.best_metric) {
    state_.best_value = loaded.best_value;
    state_.best_step = loaded.best_step;
  }
  if (loaded.step > total_steps_)
    throw UserError(dir + " is at step " + std::to_string(loaded.step) + ", beyond this run's " +
                    std::to_string(total_steps_) +
                    " steps (train.max_steps / train.epochs): raise them to continue training");
  if (loaded.total_steps != total_steps_ && rank_ == 0)
    log::warn(dir + ": written by a run of " + std::to_string(loaded.total_steps) + " steps, continuing to " +
              std::to_string(total_steps_) + " (the learning-rate schedule follows the new length)");
  char took[48];
  std::snprintf(took, sizeof took, " (loaded in %.2f s)",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());
  log::info("resumed from " + dir + " at step " + std::to_string(loaded.step) + " of " + std::to_string(total_steps_) +
            took);
  run_dir_.append_metrics(json({{"event", "resume"}, {"step", loaded.step}, {"checkpoint", dir}}).dump());
  return loaded.step;
}

Trainer::Requests Trainer::agree_on_requests(int64_t step, int64_t stop_after) {
  std::vector<double> flags = {signals::stop_requested() ? 1.0 : 0.0, signals::take_save_request() ? 1.0 : 0.0,
                               checkpoints_.written() ? 1.0 : 0.0};
  collectives_->sum(flags, "stop and save requests");  // one signalled rank is enough; all act after the same step
  Requests asked;
  asked.save = flags[1] > 0;
  asked.written = flags[2] == static_cast<double>(world_);  // every rank's background write has ended
  if (flags[0] > 0) {
    asked.stop = true;
    stop_reason_ =
        "stop requested (" +
        std::string(signals::stop_signal() ? strsignal(signals::stop_signal()) : "a signal on another rank") +
        "): saving a checkpoint after step " + std::to_string(step);
  } else if (stop_after > 0 && step >= stop_after) {
    asked.stop = true;
    stop_reason_ = "--stop-after " + std::to_string(stop_after) + ": saving a checkpoint";
  }
  return asked;
}

}  // namespace modtrain
