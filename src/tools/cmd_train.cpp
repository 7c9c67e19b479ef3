// `modtrain train` (the main job) and `modtrain eval` (a trained model on labelled data).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <iostream>
#include <memory>
#include <set>
#include <thread>
#include "modtrain/io/files.h"

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/signals.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/guard.h"
#include "modtrain/dist/rank0.h"
#include "modtrain/dist/startup.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/modelio/model_path.h"
#include "modtrain/train/distributed.h"
#include "modtrain/train/trainer.h"

namespace modtrain::tools {
namespace {

struct TrainFlags {
  ConfigFlags config;
  RunControl control;
};

// The prepared data is a cache of data.train / data.valid for this config: stale or missing, it is
// prepared again (data.prepare: auto; every rank its share) or every rank stops with what changed
// (check).
void ensure_prepared(const World& world, const Config& config) {
  // Each rank checks its share of the source files (a stat each, a hash each with data.verify_sources:
  // hash, the shard sizes), so 100k files cost 100k / W checks a rank; the reason found first in the
  // one-process order is every rank's answer.
  const std::string what = decide_on_all_ranks(world, [&] {
    const Staleness s = prepared_data_staleness(config, world.rank(), world.size());
    return std::make_pair(s.order, s.reason);
  });
  if (!what.empty() && config.data.prepare == PreparePolicy::kCheck) {
    const std::string error = "the prepared data in " + config.data.prepared_dir + " is stale: " + what +
                              "; run `modtrain data prepare` with this config (or set data.prepare: auto)";
    if (world.is_root()) log::error(error);
    throw CollectiveError(error, kExitUsage, /*already_reported=*/true);
  }
  if (what.empty()) return;
  // Every rank prepares its share (no rank waits unbounded: data.prepare_timeout_s per step).
  if (world.is_root()) log::info("data.prepare: auto: preparing " + config.data.prepared_dir + " again (" + what + ")");
  prepare_on_all_ranks(world, config, 0, stderr);
}

// Rank 0 takes run.dir's lock; every rank learns the outcome, so a refused run ends on all of them.
RunDirLock lock_run_dir(const World& world, const std::string& dir) {
  RunDirLock lock;
  decide_on_rank0(world, [&] {
    lock = RunDirLock::acquire(dir, world.hostname());
    return std::string();
  });
  return lock;
}

// Every rank must see rank 0's run.dir (run_dir.h): a node-local one fails here, before any step.
void check_run_dir_shared(const World& world, const std::string& dir) {
  const std::string id = decide_on_rank0(world, [&] { return write_run_id(dir, world.hostname()); });
  if (id.empty()) return;  // run.dir is not writable: RunDir reports it
  const std::string problem = decide_on_all_ranks(world, [&] {
    const std::string seen = read_run_id(dir);
    if (seen == id) return std::make_pair(static_cast<uint64_t>(world.rank()), std::string());
    return std::make_pair(
        static_cast<uint64_t>(world.rank()),
        "run.dir " + dir + " is not the same directory on every rank: rank " + std::to_string(world.rank()) +
            " on host " + world.hostname() +
            (seen.empty() ? " does not see the .run-id file rank 0 wrote there"
                          : " sees another start's .run-id there") +
            " (rank 0 is on host " + id.substr(5, id.find(',') - 5) +
            "); every rank writes its part of each checkpoint into run.dir and rank 0 commits them: put run.dir "
            "on storage shared by all nodes");
  });
  if (problem.empty()) return;
  if (world.is_root()) log::error(problem);
  throw CollectiveError(problem, kExitUsage, /*already_reported=*/true);
}

int train(const TrainFlags& flags) {
  World world;
  signals::install_handlers();  // SIGTERM / SIGUSR1: finish the step, checkpoint, exit 0; SIGUSR2: checkpoint, go on
  return run_guarded(world, [&] {
    ResolvedConfig resolved = resolve_config_on_all_ranks(world, flags.config.path, flags.config.overrides);
    RunDirLock lock = lock_run_dir(world, resolved.config.run.dir);  // one run per run.dir; held to the end
    check_run_dir_shared(world, resolved.config.run.dir);
    ensure_prepared(world, resolved.config);
    Placement placement = place_rank(world, resolved.config.dist);
    // Before any data-plane set-up; then the watchdog knows every rank's host for its roll call.
    watchdog::arm(world, agree_on_placement(world, placement, resolved.config.dist.allow_uneven_nodes),
                  resolved.config.run.dir);
    DistributedTraining distributed(world, placement, resolved.config);
    Trainer trainer(resolved, placement, distributed.comms());
    TrainOutcome out = trainer.run(flags.control);
    distributed.close();
    std::string timeline = distributed.write_timeline();
    if (!timeline.empty() && world.is_root())
      log::info("timeline: " + timeline + " (one file per rank; open in chrome://tracing)");
    if (out.stopped_early) {
      if (world.is_root())
        log::info("stopped after step " + std::to_string(out.steps) + " of " + std::to_string(trainer.total_steps()) +
                  "; checkpoint " + out.checkpoint + ". Continue with the same command and --resume auto");
      return kExitOk;
    }
    if (world.is_root() && out.final_eval.records > 0) std::printf("\n%s", out.final_eval.to_table().c_str());
    if (world.is_root() && out.final_mlm_eval.tokens > 0)
      std::printf(
          "\nmasked-token evaluation on %lld records (%lld chosen tokens): loss %.4f  accuracy %.4f  "
          "perplexity %.3f\n",
          static_cast<long long>(out.final_mlm_eval.records), static_cast<long long>(out.final_mlm_eval.tokens),
          out.final_mlm_eval.loss, out.final_mlm_eval.accuracy, out.final_mlm_eval.perplexity);
    return kExitOk;
  });
}

struct EvalFlags {
  std::string model;
  std::vector<std::string> data;
  bool json = false;
  int batch = 64;
  std::string on_bad_record = "fail";
  // How to read the data; unset: as the model was trained (modtrain.json).
  std::optional<std::vector<std::string>> subgroups, slice_by;
  std::optional<double> positive_at;
  std::optional<bool> soft_labels;
};

int eval(const EvalFlags& flags) {
  namespace fs = std::filesystem;
  LoadedModel loaded = load_model_dir(flags.model, torch::kCPU);
  const ModelMeta& m = loaded.meta;
  // Tokenize the raw shards exactly as training did, through `data prepare` into a scratch dir.
  std::string pattern = (fs::temp_directory_path() / "modtrain-eval-XXXXXX").string();
  const std::string scratch = mkdtemp(pattern.data());
  struct Cleanup {
    std::string dir;
    ~Cleanup() { io::remove_tree(dir); }
  } cleanup{scratch};
  expand_globs(flags.data, "--data");  // a pattern matching nothing is named as the flag, not data.train
  Config c;
  c.data.train = flags.data;
  c.data.valid = {};
  c.data.labels = m.labels;
  c.data.problem = m.problem;
  c.data.max_len = static_cast<int>(m.max_len);
  c.data.prepared_dir = scratch + "/prepared";
  c.data.on_bad_record = flags.on_bad_record == "skip" ? BadRecordPolicy::kSkip : BadRecordPolicy::kFail;
  c.data.soft_labels = flags.soft_labels.value_or(m.soft_labels);
  c.data.subgroups = flags.subgroups.value_or(m.subgroups);
  c.eval.slice_by = flags.slice_by.value_or(m.slice_by);
  c.eval.positive_at = flags.positive_at.value_or(m.positive_at);  // soft labels are stored exact about it
  if (c.data.soft_labels && m.problem == Problem::kMultiClass)
    throw UserError("--soft-labels: the model is multi_class; its records have exactly one 0/1 label");
  {
    std::set<std::string> taken(m.labels.begin(), m.labels.end());
    taken.insert({"id", "text", "labels"});
    for (const auto& [flag, names] :
         {std::make_pair("--subgroups", c.data.subgroups), std::make_pair("--slice-by", c.eval.slice_by)})
      for (const auto& name : names)
        if (name.empty() || !taken.insert(name).second)
          throw UserError(std::string(flag) + " names '" + name +
                          "', which is empty, a label, id/text/labels or named twice; each field has one role");
  }
  c.tokenizer.vocab = resolve_model_path(flags.model);  // its own tokenizer, whatever the family
  c.tokenizer.lowercase = m.lowercase;
  c.tokenizer.normalize_tweets = m.normalize_tweets;
  PrepareOptions prepare_options;
  prepare_options.skip_hint = "use --on-bad-record skip to leave such records out";
  PrepareReport prepared = prepare_data(c, prepare_options);
  if (!flags.json) {
    std::string summary = prepared.summary();
    if (summary.rfind("train:", 0) == 0) summary.replace(0, 6, "eval data:");  // the scratch split is named train
    std::fprintf(stderr, "%s", summary.c_str());
  }
  PreparedDataset data = PreparedDataset::open(c.data.prepared_dir, "train", DataExpectations::from_config(c));
  EvalOptions o;
  o.labels = m.labels;
  o.problem = m.problem;
  o.loss.problem = m.problem;
  o.batch = flags.batch;
  o.pad_id = loaded.tokenizer->special_ids().pad;
  o.fixed_thresholds = m.thresholds;      // the model's own thresholds
  o.fixed_temperatures = m.temperatures;  // and calibration (eval.calibrate), which the thresholds assume
  o.positive_at = c.eval.positive_at;
  o.unpad = true;  // as predict: no work on padding (equal logits, tested)
  EvalResult r = evaluate_model(*loaded.model, data, o);
  if (!std::isfinite(r.report.loss))
    throw Error("the model's loss on " + std::to_string(r.report.records) +
                    " records is not a finite number; its scores cannot be trusted (overflowing logits?)",
                kExitRuntime);
  std::cout << (flags.json ? r.report.to_json() + "\n" : r.report.to_table());
  return kExitOk;
}

}  // namespace

void add_train_commands(CLI::App& app, Action& action) {
  auto train_flags = std::make_shared<TrainFlags>();
  CLI::App* t = app.add_subcommand("train", "Train a classifier (launch with mpirun for several ranks)");
  add_config_flags(*t, train_flags->config);
  t->add_option("--resume", train_flags->control.resume,
                "Continue from a checkpoint: auto (the newest in run.dir, or start fresh if none) or a checkpoint / "
                "run directory")
      ->type_name("auto|PATH");
  t->add_option("--stop-after", train_flags->control.stop_after,
                "Save a checkpoint and exit 0 after this step (the schedule still spans the whole run); resume later "
                "with --resume")
      ->check(CLI::PositiveNumber)
      ->type_name("STEP");
  t->callback([&action, train_flags] { action = [train_flags] { return train(*train_flags); }; });

  auto eval_flags = std::make_shared<EvalFlags>();
  CLI::App* e = app.add_subcommand("eval", "Evaluate a trained model on labelled raw shards");
  e->add_option("--model", eval_flags->model, "Model directory (RUN/model)")->required();
  e->add_option("--data", eval_flags->data, "Raw shards: files or glob patterns (JSONL/CSV/TSV)")->required();
  e->add_flag("--json", eval_flags->json, "One JSON object instead of the table");
  e->add_option("--batch", eval_flags->batch, "Records per forward pass")->check(CLI::Range(1, 65536));
  e->add_option("--on-bad-record", eval_flags->on_bad_record, "fail or skip (as data.on_bad_record)")
      ->check(CLI::IsMember({"fail", "skip"}));
  e->add_option("--subgroups", eval_flags->subgroups,
                "Identity-mention fields for the bias metrics (default: the model's data.subgroups)")
      ->delimiter(',')
      ->type_name("NAME,...");
  e->add_option("--slice-by", eval_flags->slice_by,
                "Record fields to report metrics per value of (default: the model's eval.slice_by)")
      ->delimiter(',')
      ->type_name("FIELD,...");
  e->add_option("--positive-at", eval_flags->positive_at,
                "A label value at least this counts as positive (default: the model's eval.positive_at)")
      ->check(CLI::Range(1e-9, 1.0));
  e->add_option("--soft-labels", eval_flags->soft_labels, "Label values in [0, 1] (default: as the model was trained)")
      ->type_name("true|false");
  e->callback(
      [&action, eval_flags] { action = [eval_flags] { return run_local([&] { return eval(*eval_flags); }); }; });
}

}  // namespace modtrain::tools
