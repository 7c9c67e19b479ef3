#include "modtrain/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/serve/model_dir.h"
#include "modtrain/train/schedule.h"

namespace modtrain {

using nlohmann::json;

namespace {

constexpr int kMaxConsecutiveSkips = 20;  // train.on_nonfinite=skip gives up after this many in a row

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// AdamW with BERT's two parameter groups: no weight decay on biases and LayerNorm weights.
std::unique_ptr<torch::optim::AdamW> make_adamw(BertForClassificationImpl& model, const TrainConfig& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    bool exempt = name.size() >= 5 && (name.compare(name.size() - 5, 5, ".bias") == 0 || name.find("LayerNorm") != std::string::npos);
    (exempt ? no_decay : decay).push_back(p.value());
  }
  auto options = torch::optim::AdamWOptions(t.lr).betas({t.adam_beta1, t.adam_beta2}).eps(t.adam_eps).weight_decay(t.weight_decay);
  auto no_decay_options = options;
  no_decay_options.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(no_decay_options));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), options);
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

// Per label: positives and annotated records over the whole split, in one pass.
void label_counts(const PreparedDataset& data, std::vector<uint64_t>& positives, std::vector<uint64_t>& annotated) {
  positives.assign(data.num_labels(), 0);
  annotated.assign(data.num_labels(), 0);
  for (size_t s = 0; s < data.num_shards(); ++s)
    for (uint64_t r = 0; r < data.shard(s).size(); ++r)
      for (size_t l = 0; l < positives.size(); ++l) {
        uint8_t v = data.shard(s).labels(r)[l];
        positives[l] += v == kLabelPositive;
        annotated[l] += v != kLabelUnannotated;
      }
}

}  // namespace

Trainer::Trainer(const ResolvedConfig& resolved, const Placement& placement, TrainComms comms,
                 std::function<std::unique_ptr<GradientSync>(BertForClassificationImpl&)> make_sync)
    : resolved_(resolved),
      config_(resolved_.config),
      placement_(placement),
      comms_(std::move(comms)),
      device_(placement.cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(placement.cuda_index)) : torch::Device(torch::kCPU)),
      scaler_(config_.train.precision == Precision::kFp16),
      run_dir_(config_.run.dir, comms_.rank == 0) {
  const Config& c = config_;
  check_precision(c.train.precision, device_);

  // ---- data ----
  vocab_ = std::make_shared<Vocab>(Vocab::load(c.tokenizer.vocab));
  DataExpectations expect = DataExpectations::from_config(c);
  train_data_ = std::make_shared<PreparedDataset>(PreparedDataset::open(c.data.prepared_dir, "train", expect));
  if (!c.data.valid.empty()) valid_data_ = std::make_shared<PreparedDataset>(PreparedDataset::open(c.data.prepared_dir, "valid", expect));
  SamplerOptions sampler_options{c.run.seed, comms_.rank, comms_.world, static_cast<uint32_t>(c.train.micro_batch), true,
                                 c.data.group_by_length, 64};
  auto data = train_data_;
  sampler_ = std::make_shared<DistributedSampler>(train_data_->size(), sampler_options, [data](uint64_t i) { return data->length(i); });
  LoaderOptions loader_options;
  loader_options.pad_id = vocab_->pad_id();
  loader_options.pin_memory = device_.is_cuda();
  loader_ = std::make_unique<Loader>(train_data_, sampler_, loader_options);
  total_steps_ = c.train.epochs > 0
                     ? static_cast<int64_t>(std::ceil(c.train.epochs * static_cast<double>(sampler_->batches_per_epoch()) / c.train.accum_steps))
                     : c.train.max_steps;

  // ---- model: identical initialisation on every rank, then per-rank dropout streams ----
  bert_config_ = BertConfig::from(c.model, static_cast<int64_t>(vocab_->size()), static_cast<int64_t>(c.data.labels.size()),
                                  c.data.max_len, vocab_->pad_id());
  bert_config_.attention_dropout = c.model.attention_dropout;
  bert_config_.layer_norm_eps = c.model.layer_norm_eps;
  set_blas_threads(c.dist.blas_threads, c.model.hidden, placement_.cpu_threads);
  torch::manual_seed(c.run.seed);
  model_ = BertForClassification(bert_config_);
  model_->to(device_);
  model_->train();
  torch::manual_seed(c.run.seed ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(comms_.rank + 1)));

  // ---- loss, optimiser, gradient sync ----
  loss_options_.problem = c.data.problem;
  loss_options_.label_smoothing = c.train.label_smoothing;
  if (c.data.problem == Problem::kMultiLabel && c.train.pos_weight.kind != PosWeight::Kind::kNone) {
    std::vector<double> weights = c.train.pos_weight.values;
    if (c.train.pos_weight.kind == PosWeight::Kind::kAuto) {
      std::vector<uint64_t> positives, annotated;
      label_counts(*train_data_, positives, annotated);
      weights = auto_pos_weight(positives, annotated, c.train.pos_weight_cap);
    }
    loss_options_.pos_weight = torch::tensor(weights, torch::kFloat32).to(device_);
  }
  optimizer_ = make_adamw(*model_, c.train);
  sync_ = make_sync ? make_sync(*model_) : std::make_unique<GradientSync>();
}

void Trainer::log_start() const {
  const Config& c = config_;
  int64_t params = 0;
  for (const auto& p : model_->parameters()) params += p.numel();
  const int64_t global = static_cast<int64_t>(c.train.micro_batch) * c.train.accum_steps * comms_.world;
  char line[512];
  std::snprintf(line, sizeof line,
                "train: %lld steps on %d rank(s), %s; global batch = %d micro x %d accum x %d ranks = %lld; "
                "%lld records (%llu batches per epoch per rank); model %.2fM parameters, %s",
                static_cast<long long>(total_steps_), comms_.world, placement_.describe().c_str(), c.train.micro_batch, c.train.accum_steps,
                comms_.world, static_cast<long long>(global), static_cast<long long>(train_data_->size()),
                static_cast<unsigned long long>(sampler_->batches_per_epoch()), params / 1e6, to_string(c.train.precision));
  log::info(line);
  if (loss_options_.pos_weight.defined()) {
    std::string w;
    auto values = loss_options_.pos_weight.to(torch::kCPU);
    for (int64_t i = 0; i < values.numel(); ++i) w += (i ? ", " : "") + c.data.labels[static_cast<size_t>(i)] + " " + std::to_string(values[i].item<float>()).substr(0, 5);
    log::info("pos_weight: " + w);
  }
}

void Trainer::zero_grad() {
  if (sync_->owns_gradients()) sync_->zero_grad();  // gradients are bucket views: zero them in place
  else optimizer_->zero_grad();
}

Trainer::StepStats Trainer::train_step(int64_t step) {
  StepStats s;
  const int accum = config_.train.accum_steps;
  set_lr(*optimizer_, lr_at(config_.train, step));
  zero_grad();
  torch::Tensor loss_total = torch::zeros({}, torch::TensorOptions().device(device_));
  for (int micro = 0; micro < accum; ++micro) {
    Batch batch = loader_->next();
    torch::Tensor logits, loss;
    {
      Timeline::Scope span(comms_.timeline, "forward");
      AutocastScope autocast(config_.train.precision, device_);
      logits = model_->forward(batch.input_ids.to(device_, true), batch.attention_mask.to(device_, true));  // [B, L]
    }
    loss = classification_loss(logits, batch.labels.to(device_, true), batch.label_mask.to(device_, true), loss_options_);
    loss_total += loss.detach() / accum;
    sync_->prepare_backward(micro + 1 == accum);  // accumulation micro-steps do not communicate
    {
      Timeline::Scope span(comms_.timeline, "backward");
      (loss * (scaler_.scale() / accum)).backward();
    }
    s.samples += batch.input_ids.size(0);
    s.tokens += batch.tokens;
  }
  sync_->finalize();  // gradients are now the average over ranks
  if (scaler_.enabled())
    for (auto& p : model_->parameters())
      if (p.grad().defined()) p.grad().mul_(1.0 / scaler_.scale());
  const double max_norm = config_.train.clip_grad_norm > 0 ? config_.train.clip_grad_norm : std::numeric_limits<double>::infinity();
  s.grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
  s.loss = loss_total.item<double>();
  const bool finite = std::isfinite(s.grad_norm);  // identical on every rank after the reduction
  scaler_.update(finite);
  if (!finite) {
    s.skipped = true;
    zero_grad();
    return s;
  }
  Timeline::Scope span(comms_.timeline, "optimizer");
  optimizer_->step();
  return s;
}

EvalResult Trainer::evaluate() {
  EvalOptions o;
  o.labels = config_.data.labels;
  o.problem = config_.data.problem;
  o.loss = loss_options_;
  o.batch = config_.eval.micro_batch > 0 ? config_.eval.micro_batch : 2 * config_.train.micro_batch;
  o.pad_id = vocab_->pad_id();
  o.device = device_;
  o.bf16 = config_.train.precision == Precision::kBf16;
  o.policy = config_.eval.thresholds;
  o.rank = comms_.rank;
  o.world = comms_.world;
  o.all_gather = comms_.all_gather;
  return evaluate_model(*model_, *valid_data_, o);
}

TrainOutcome Trainer::run() {
  const Config& c = config_;
  log_start();
  run_dir_.write_config(resolved_.to_yaml());
  ProgressLine progress(comms_.rank == 0 && log::enabled(log::Level::kInfo));
  TrainOutcome out;
  const auto start = std::chrono::steady_clock::now();
  auto window_start = start;
  double window_loss = 0;
  int64_t window_steps = 0, window_samples = 0, window_tokens = 0, consecutive_skips = 0;
  auto eval_event = [&](int64_t step, const EvalResult& r) {
    json event = {{"event", "eval"}, {"step", step}, {"metrics", json::parse(r.report.to_json())}};
    run_dir_.append_metrics(event.dump());
    char line[256];
    std::snprintf(line, sizeof line, "eval @ step %lld: loss %.4f  macro F1 %.3f  macro ROC-AUC %.3f  macro PR-AUC %.3f  micro F1 %.3f",
                  static_cast<long long>(step), r.report.loss, r.report.macro_f1, r.report.macro_roc_auc, r.report.macro_pr_auc,
                  r.report.micro_f1);
    if (progress.live()) std::printf("\n");
    log::info(line);
  };

  for (int64_t step = 0; step < total_steps_; ++step) {
    StepStats s = train_step(step);

    // ---- non-finite loss or gradients: skip (reported) or stop, the same decision on every rank ----
    if (s.skipped) {
      ++out.skipped_steps;
      std::string what = "step " + std::to_string(step + 1) + ": non-finite loss or gradients (loss " + std::to_string(s.loss) +
                         ", grad norm " + std::to_string(s.grad_norm) + ")";
      if (c.train.on_nonfinite == NonFinitePolicy::kStop || ++consecutive_skips >= kMaxConsecutiveSkips) {
        std::string why = what + (c.train.on_nonfinite == NonFinitePolicy::kStop ? "; stopping (train.on_nonfinite=stop)"
                                                                                 : "; 20 steps in a row, stopping");
        why += ". Lower train.lr, check the data, or use train.precision=bf16 instead of fp16";
        if (comms_.rank == 0) log::error(why);
        throw CollectiveError(why, kExitRuntime, /*already_reported=*/true);
      }
      if (!scaler_.enabled()) log::warn(what + "; step skipped (train.on_nonfinite=skip)");
      continue;
    }
    consecutive_skips = 0;
    if (c.dist.check_replicas_every > 0 && (step + 1) % c.dist.check_replicas_every == 0) sync_->check_replicas(step + 1);
    window_loss += s.loss;
    ++window_steps;
    window_samples += s.samples;
    window_tokens += s.tokens;
    out.last_loss = s.loss;

    // ---- logging: every log.every steps and at the last step ----
    if ((step + 1) % c.log.every == 0 || step + 1 == total_steps_) {
      std::vector<double> totals = {window_loss, static_cast<double>(window_steps), static_cast<double>(window_samples),
                                    static_cast<double>(window_tokens)};
      sync_->sum(totals);  // loss averaged over ranks, throughput summed
      const double seconds = seconds_since(window_start), mean_loss = totals[1] > 0 ? totals[0] / totals[1] : 0.0;
      const double lr = lr_at(c.train, step);
      const SamplerState pos = loader_->state();
      const double epoch = static_cast<double>(pos.epoch) + static_cast<double>(pos.batch) / static_cast<double>(sampler_->batches_per_epoch());
      const double eta = seconds_since(start) / static_cast<double>(step + 1) * static_cast<double>(total_steps_ - step - 1);
      json event = {{"event", "train"},        {"step", step + 1},           {"epoch", epoch},
                    {"loss", mean_loss},       {"lr", lr},                   {"grad_norm", s.grad_norm},
                    {"samples_per_s", totals[2] / seconds}, {"tokens_per_s", totals[3] / seconds},
                    {"elapsed_s", seconds_since(start)},    {"skipped_steps", out.skipped_steps}};
      if (scaler_.enabled()) event["loss_scale"] = scaler_.scale();
      run_dir_.append_metrics(event.dump());
      progress.update(step + 1, total_steps_, mean_loss, lr, totals[3] / seconds, eta);
      window_loss = 0;
      window_steps = window_samples = window_tokens = 0;
      window_start = std::chrono::steady_clock::now();
    }

    // ---- evaluation: every eval.every steps (the final one follows the loop) ----
    if (valid_data_ && c.eval.every > 0 && (step + 1) % c.eval.every == 0 && step + 1 < total_steps_) {
      eval_event(step + 1, evaluate());
      window_start = std::chrono::steady_clock::now();  // throughput counts training time only
    }
  }
  progress.finish();
  out.steps = total_steps_;

  // ---- the end: final evaluation, tuned thresholds, the model directory ----
  out.thresholds.assign(c.data.labels.size(), 0.5);
  if (valid_data_) {
    EvalResult r = evaluate();
    eval_event(total_steps_, r);
    out.final_eval = r.report;
    out.thresholds = r.thresholds;
  }
  out.model_dir = run_dir_.path("model");
  if (comms_.rank == 0) {
    ModelMeta meta{bert_config_, c.data.labels, c.data.problem, out.thresholds, c.tokenizer.lowercase, c.tokenizer.normalize_tweets,
                   c.data.max_len};
    save_model_dir(out.model_dir, *model_, meta, c.tokenizer.vocab);
    log::info("model written to " + out.model_dir + " (" + std::to_string(out.skipped_steps) + " steps skipped)");
  }
  return out;
}

}  // namespace modtrain
