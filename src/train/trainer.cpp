#include "modtrain/train/trainer.h"
#include "modtrain/train/objective.h"

#include "modtrain/model/model.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/signals.h"
#include "modtrain/core/text.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/dist/grad_reducer.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/schedule.h"

namespace modtrain {

using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order

namespace {

constexpr int kMaxConsecutiveSkips = 20;  // train.on_nonfinite=skip gives up after this many in a row

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

NamedParameters named_parameters(torch::nn::Module& model) {
  NamedParameters out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace

Trainer::Trainer(const ResolvedConfig& resolved, const Placement& placement, TrainComms comms)
    : resolved_(resolved),
      config_(resolved_.config),
      placement_(placement),
      comms_(std::move(comms)),
      local_collectives_(comms_.collectives ? nullptr : make_local_collectives()),
      collectives_(comms_.collectives ? comms_.collectives : local_collectives_.get()),
      rank_(collectives_->rank()),
      world_(collectives_->size()),
      device_(placement.cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(placement.cuda_index))
                             : torch::Device(torch::kCPU)),
      scaler_(config_.train.precision == Precision::kFp16),
      run_dir_(config_.run.dir, rank_ == 0),
      checkpoints_(config_.run.dir, config_.checkpoint, rank_ == 0) {
  const Config& c = config_;
  check_precision(c.train.precision, device_);

  // ---- data ----
  tokenizer_ = load_tokenizer(c.tokenizer);
  DataExpectations expect = DataExpectations::from_config(c);
  train_data_ = std::make_shared<PreparedDataset>(PreparedDataset::open(c.data.prepared_dir, "train", expect));
  if (!c.data.valid.empty())
    valid_data_ = std::make_shared<PreparedDataset>(PreparedDataset::open(c.data.prepared_dir, "valid", expect));

  // ---- the objective and its model: identical initialisation on every rank (dropout: per-rank,
  //      per-step seeds); model.init_from is applied by resume() on a fresh start ----
  bert_config_ =
      BertConfig::from(c.model, static_cast<int64_t>(tokenizer_->vocab_size()),
                       static_cast<int64_t>(c.data.labels.size()), c.data.max_len, tokenizer_->special_ids().pad);
  bert_config_.attention_dropout = c.model.attention_dropout;
  bert_config_.layer_norm_eps = c.model.layer_norm_eps;
  bert_config_.sparse_embedding_grad = !device_.is_cuda();  // accumulated into the flat (dense) gradient
  set_blas_threads(c.dist.blas_threads, c.model.hidden, placement_.cpu_threads);
  torch::manual_seed(c.run.seed);
  objective_ = make_objective(c, bert_config_, *tokenizer_, *train_data_, device_);
  net_ = &objective_->network();
  net_->to(device_);
  net_->train();

  SamplerOptions sampler_options{c.run.seed, rank_,
                                 world_,     static_cast<uint32_t>(c.train.micro_batch),
                                 true,       c.data.group_by_length,
                                 64,         static_cast<uint32_t>(c.train.tokens_per_batch)};
  auto data = train_data_;
  sampler_ = std::make_shared<DistributedSampler>(train_data_->size(), sampler_options,
                                                  [data](uint64_t i) { return data->length(i); });
  LoaderOptions loader_options;
  loader_options.pad_id = tokenizer_->special_ids().pad;
  loader_options.pin_memory = device_.is_cuda();
  loader_options.masker = objective_->masker();  // mlm: masks drawn from (seed, the batch's ordinal, record) here
  loader_options.mask_seed = c.run.seed;
  loader_options.mask_batches_per_epoch = sampler_->batches_per_epoch();
  loader_ = std::make_unique<Loader>(train_data_, sampler_, loader_options);
  total_steps_ = c.train.epochs > 0
                     ? static_cast<int64_t>(std::ceil(
                           c.train.epochs * static_cast<double>(sampler_->batches_per_epoch()) / c.train.accum_steps))
                     : c.train.max_steps;
  if (c.train.warmup_steps > total_steps_) {  // config validation can check this against max_steps only
    char why[320];
    std::snprintf(why, sizeof why,
                  "train.warmup_steps = %lld is more than this run's %lld steps (train.epochs = %g x %llu batches per "
                  "epoch per rank / %d accumulation steps); lower train.warmup_steps or raise train.epochs",
                  static_cast<long long>(c.train.warmup_steps), static_cast<long long>(total_steps_), c.train.epochs,
                  static_cast<unsigned long long>(sampler_->batches_per_epoch()), c.train.accum_steps);
    throw UserError(why);
  }

  // Flat buckets for the parameters and gradients (the same layout on every rank and at every
  // world size); ZeRO-1 shards them when there is a data plane (at one plain process: no-op).
  FlatOptions flat;
  flat.bucket_cap_bytes = static_cast<size_t>(c.dist.bucket_mb * 1024 * 1024);
  flat.first_bucket_cap_bytes = std::min<size_t>(flat.bucket_cap_bytes, 1u << 20);
  if (c.train.zero == 1 && comms_.communicator)
    flat = {flat.bucket_cap_bytes, flat.first_bucket_cap_bytes, true, world_, rank_, {}};
  flat.no_decay = no_weight_decay(*net_);  // the model's modules say which (model/model.h)
  flat_ = std::make_unique<FlatParams>(named_parameters(*net_), flat);
  reducer_ = comms_.make_reducer ? comms_.make_reducer(*flat_) : std::make_unique<LocalReducer>(*flat_);
  optimizer_ = make_optimizer(c.train, *flat_, comms_.communicator);

  // ---- what checkpoints record ----
  state_.total_steps = total_steps_;
  state_.batches_per_epoch = sampler_->batches_per_epoch();
  state_.world = world_;
  state_.micro_batch = c.train.micro_batch;
  state_.accum_steps = c.train.accum_steps;
  state_.seed = c.run.seed;
  state_.best_metric = to_string(effective_best_metric(c));
  state_.objective = to_string(c.train.objective);
  state_.labels = c.data.labels;
  state_.problem = to_string(c.data.problem);
}

Trainer::~Trainer() = default;

std::shared_ptr<ClassifierImpl> Trainer::model() const { return objective_->classifier(); }
std::shared_ptr<MaskedLMImpl> Trainer::mlm_model() const { return objective_->masked_lm(); }

std::string Trainer::agree_on_checkpoint(const std::string& resume) {
  // Only rank 0 looks: on node-local scratch the other ranks may see no checkpoint, or an older one.
  std::string decision;  // "D<dir>" (empty dir: start fresh) or "E<error>"
  if (rank_ == 0) {
    try {
      decision = "D" + (resume.empty() ? "" : Checkpoints::resolve(resume, config_.run.dir, true));
    } catch (const UserError& e) {
      decision = "E" + std::string(e.what());
    }
  }
  decision = collectives_->all_gather_text(decision, "the checkpoint to resume from")[0];
  if (decision[0] == 'E') {
    if (rank_ == 0) log::error(decision.substr(1));
    throw CollectiveError(decision.substr(1), kExitUsage, /*already_reported=*/true);
  }
  return decision.substr(1);
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
  optimizer_->sync_params();
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
  log::info("resumed from " + dir + " at step " + std::to_string(loaded.step) + " of " + std::to_string(total_steps_));
  run_dir_.append_metrics(json({{"event", "resume"}, {"step", loaded.step}, {"checkpoint", dir}}).dump());
  return loaded.step;
}

Trainer::Requests Trainer::agree_on_requests(int64_t step, int64_t stop_after) {
  std::vector<double> flags = {signals::stop_requested() ? 1.0 : 0.0, signals::take_save_request() ? 1.0 : 0.0};
  collectives_->sum(flags, "stop and save requests");  // one signalled rank is enough; all act after the same step
  Requests asked;
  asked.save = flags[1] > 0;
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

Trainer::StepStats Trainer::train_step(int64_t step) {
  StepStats s;
  const int accum = config_.train.accum_steps;
  torch::manual_seed(step_seed(config_.run.seed, rank_, step));  // dropout: a function of (seed, rank, step)
  reducer_->zero_grad();  // in place: the gradients are views into the flat buckets
  // The loss of the step is its sum over annotated labels (mlm: chosen tokens) on all ranks / their
  // count on all ranks (one all-reduced number): each rank contributes world x its sum / that
  // count, and the reducer averages over ranks. Exact data parallelism whatever each rank's share.
  std::vector<Batch> batches;
  std::vector<double> count = {0.0};
  for (int micro = 0; micro < accum; ++micro) {
    batches.push_back(loader_->next());
    count[0] += objective_->loss_count(batches.back());
  }
  collectives_->sum(count, std::string(objective_->targets()) + " of the step");
  const double norm = static_cast<double>(world_) / std::max(1.0, count[0]);
  s.targets = count[0];
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device_));
  for (int micro = 0; micro < accum; ++micro) {
    const Batch& batch = batches[static_cast<size_t>(micro)];
    if (micro == 0) optimizer_->sync_params();  // ZeRO-1: the last step's parameter all-gather ran until here
    torch::Tensor loss;
    {
      Timeline::Scope span(comms_.timeline, "forward");
      loss = objective_->loss_total(batch, config_.model.unpad, config_.train.precision, device_) * norm;
    }
    loss_sum += loss.detach();                       // stays on the device: read at log steps only
    reducer_->prepare_backward(micro + 1 == accum);  // accumulation micro-steps do not communicate
    {
      Timeline::Scope span(comms_.timeline, "backward");
      (loss * scaler_.scale()).backward();
    }
    s.samples += batch.input_ids.size(0);
    s.tokens += batch.tokens;
  }
  reducer_->finalize();  // gradients (or this rank's slices of them, ZeRO-1) are now the average over ranks
  s.loss = loss_sum;     // averaged over ranks at log steps: the step's loss
  Timeline::Scope span(comms_.timeline, "optimizer");
  const double max_norm =
      config_.train.clip_grad_norm > 0 ? config_.train.clip_grad_norm : std::numeric_limits<double>::infinity();
  // Clipping, unscaling and the update in one pass per bucket; the global norm is the one value
  // read back, and it is identical on every rank (the non-finite decision is the same everywhere).
  const UpdateResult u = optimizer_->step(lr_at(config_.train, step, total_steps_), max_norm, scaler_.scale());
  scaler_.update(u.applied);
  s.grad_norm = u.grad_norm;
  s.skipped = !u.applied;
  return s;
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
  optimizer_->sync_params();
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

TrainOutcome Trainer::run(const RunControl& control) {
  const Config& c = config_;
  log_start();
  run_dir_.write_config(resolved_.to_yaml());
  TrainOutcome out;
  out.start_step = resume(control.resume);
  out.skipped_steps = state_.skipped_steps;
  ProgressLine progress(rank_ == 0 && log::enabled(log::Level::kInfo));
  const auto start = std::chrono::steady_clock::now();
  auto window_start = start;
  torch::Tensor window_loss = torch::zeros({}, torch::TensorOptions().device(device_).dtype(torch::kFloat64));
  int64_t window_steps = 0, window_samples = 0, window_tokens = 0, window_empty_steps = 0, consecutive_skips = 0;

  int64_t step = out.start_step;
  for (; step < total_steps_; ++step) {
    StepStats s = train_step(step);

    // ---- non-finite loss or gradients: skip (reported) or stop, the same decision on every rank ----
    if (s.skipped) {
      ++out.skipped_steps;
      state_.skipped_steps = out.skipped_steps;
      std::string what = "step " + std::to_string(step + 1) + ": non-finite loss or gradients (loss " +
                         std::to_string(s.loss.item<double>()) + ", grad norm " + std::to_string(s.grad_norm) + ")";
      if (c.train.on_nonfinite == NonFinitePolicy::kStop || ++consecutive_skips >= kMaxConsecutiveSkips) {
        std::string why =
            what + (c.train.on_nonfinite == NonFinitePolicy::kStop ? "; stopping (train.on_nonfinite=stop)"
                                                                   : "; 20 steps in a row, stopping");
        why +=
            ". Likely causes, most likely first: bad input data or a damaged optimiser state (a resumed run: try "
            "an earlier checkpoint), a learning rate too high (lower train.lr), fp16 overflow (use "
            "train.precision=bf16)";
        if (rank_ == 0) log::error(why);
        throw CollectiveError(why, kExitRuntime, /*already_reported=*/true);
      }
      if (!scaler_.enabled()) log::warn(what + "; step skipped (train.on_nonfinite=skip)");
    } else {
      consecutive_skips = 0;
      if (c.dist.check_replicas_every > 0 && (step + 1) % c.dist.check_replicas_every == 0) {
        optimizer_->sync_params();
        check_replicas(named_parameters(*net_), *collectives_, step + 1);
      }
      // A step with nothing to score (masking chose no token, no label annotated) has loss 0 by
      // construction: it is counted apart, not averaged in as a perfect score.
      if (s.targets > 0) {
        window_loss += s.loss;
        ++window_steps;
      } else {
        ++window_empty_steps;
      }
      window_samples += s.samples;
      window_tokens += s.tokens;
    }

    // ---- logging: every log.every steps and at the last step (not after a skipped step) ----
    if (!s.skipped && ((step + 1) % c.log.every == 0 || step + 1 == total_steps_)) {
      out.last_loss = s.loss.item<double>();  // host reads of the loss: at log steps only
      std::vector<double> totals = {window_loss.item<double>(), static_cast<double>(window_steps),
                                    static_cast<double>(window_samples), static_cast<double>(window_tokens)};
      collectives_->sum(totals, "logged training values");  // loss averaged over ranks, throughput summed
      const double seconds = seconds_since(window_start),
                   mean_loss = totals[1] > 0 ? totals[0] / totals[1] : std::numeric_limits<double>::quiet_NaN();
      const double lr = lr_at(c.train, step, total_steps_);
      const SamplerState pos = loader_->state();
      const double epoch = static_cast<double>(pos.epoch) +
                           static_cast<double>(pos.batch) / static_cast<double>(sampler_->batches_per_epoch());
      const double eta = seconds_since(start) / static_cast<double>(step + 1 - out.start_step) *
                         static_cast<double>(total_steps_ - step - 1);
      json event = {{"event", "train"},
                    {"step", step + 1},
                    {"epoch", epoch},
                    {"loss", mean_loss},
                    {"lr", lr},
                    {"grad_norm", s.grad_norm},
                    {"samples_per_s", totals[2] / seconds},
                    {"tokens_per_s", totals[3] / seconds},
                    {"elapsed_s", seconds_since(start)},
                    {"skipped_steps", out.skipped_steps}};
      if (window_empty_steps > 0) {  // the same count on every rank (the step's targets are summed)
        event["steps_without_targets"] = window_empty_steps;
        if (rank_ == 0)
          log::warn("step " + std::to_string(step + 1) + ": " + std::to_string(window_empty_steps) +
                    " step(s) since the last log line had nothing to score (" + objective_->no_targets_hint() +
                    "); their loss is left out of the logged mean");
      }
      if (scaler_.enabled()) event["loss_scale"] = scaler_.scale();
      std::string extra;  // the objective's own figures (mlm: the window's training perplexity)
      objective_->window_extra(mean_loss, event, extra);
      run_dir_.append_metrics(event.dump());
      progress.update(step + 1, total_steps_, mean_loss, lr, totals[3] / seconds, eta, extra);
      window_loss.zero_();
      window_steps = window_samples = window_tokens = window_empty_steps = 0;
      window_start = std::chrono::steady_clock::now();
    }

    // ---- evaluation: every eval.every steps (the final one follows the loop) ----
    bool best = false;
    if (!s.skipped && valid_data_ && c.eval.every > 0 && (step + 1) % c.eval.every == 0 && step + 1 < total_steps_) {
      best = track_best(step + 1, evaluate_and_record(step + 1, progress, out));
      window_start = std::chrono::steady_clock::now();  // throughput counts training time only
    }

    // ---- checkpoints: every checkpoint.every steps, a new best, a stop or a SIGUSR2 request; after
    //      every step, skipped or not (a stop or --stop-after must not wait for a good step) ----
    const bool stop = checkpoint_after(step + 1, best, control, progress, out);
    if (out.checkpoint_step == step + 1) window_start = std::chrono::steady_clock::now();
    if (stop) {
      ++step;
      out.stopped_early = true;
      break;
    }
  }
  progress.finish();
  optimizer_->sync_params();
  out.steps = step;
  if (out.stopped_early) return out;

  // ---- the end: final evaluation, tuned thresholds, the final checkpoint and model directory ----
  bool best = false;
  if (valid_data_) best = track_best(total_steps_, evaluate_and_record(total_steps_, progress, out));
  out.thresholds = objective_->thresholds();
  out.checkpoint = save_checkpoint(total_steps_, best);
  out.model_dir = run_dir_.path("model");
  if (rank_ == 0) {
    save_model_dir(out.model_dir, *net_, model_meta(), c.tokenizer.vocab);
    log::info("model written to " + out.model_dir + " (" + std::to_string(out.skipped_steps) + " steps skipped)");
  }
  return out;
}

}  // namespace modtrain
