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
#include "modtrain/dist/replicas.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/schedule.h"
#include "trainer_internal.h"

namespace modtrain {

using namespace trainer_detail;

namespace {
constexpr int kMaxConsecutiveSkips = 20;  // train.on_nonfinite=skip gives up after this many in a row
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
      checkpoints_(config_.run.dir, config_.checkpoint, *collectives_) {
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
  sampler_options.shuffle_window = static_cast<uint64_t>(c.data.shuffle_window);
  sampler_options.block_records = kShardBlockRecords;
  sampler_options.total_tokens = train_data_->tokens();  // from the manifest: no pass over the lengths
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

TrainOutcome Trainer::run(const RunControl& control) {
  const Config& c = config_;
  log_start();
  run_dir_.write_config(resolved_.to_yaml());
  TrainOutcome out;
  out.start_step = resume(control.resume);
  checkpoints_.reserve(*flat_, *optimizer_);  // the snapshot's host buffers, allocated beside the first steps
  out.skipped_steps = state_.skipped_steps;
  ProgressLine progress(rank_ == 0 && log::enabled(log::Level::kInfo));
  const auto start = std::chrono::steady_clock::now();
  auto window_start = start;
  torch::Tensor window_loss = torch::zeros({}, torch::TensorOptions().device(device_).dtype(torch::kFloat64));
  int64_t window_steps = 0, window_samples = 0, window_tokens = 0, window_empty_steps = 0, consecutive_skips = 0;

  int64_t step = out.start_step;
  for (; step < total_steps_; ++step) {
    watchdog::set_step(step + 1);  // what a rank's watchdog record says it was doing
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
      if (c.dist.check_replicas_every > 0 && (step + 1) % c.dist.check_replicas_every == 0)
        check_replicas(named_parameters(*net_), *collectives_, step + 1);
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
                    {"skipped_steps", out.skipped_steps},
                    {"sampler_bytes", sampler_->memory_bytes()}};  // rank 0's: bounded by data.shuffle_window
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
  out.steps = step;
  finish_checkpoint();  // a save still in the background is committed before anything else
  if (out.stopped_early) return out;

  // ---- the end: final evaluation, tuned thresholds, the final checkpoint and model directory ----
  bool best = false;
  if (valid_data_) best = track_best(total_steps_, evaluate_and_record(total_steps_, progress, out));
  out.thresholds = objective_->thresholds();
  out.checkpoint = save_checkpoint(total_steps_, best, /*wait=*/true);
  out.model_dir = run_dir_.path("model");
  if (rank_ == 0) {
    save_model_dir(out.model_dir, *net_, model_meta(), c.tokenizer.vocab);
    log::info("model written to " + out.model_dir + " (" + std::to_string(out.skipped_steps) + " steps skipped)");
  }
  return out;
}

}  // namespace modtrain
