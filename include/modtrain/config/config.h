// The typed experiment configuration. YAML is parsed once (config/loader.h) into these plain
// structs; nothing downstream looks a key up by string. Defaults live here, next to the fields.
// Every field is described (type, range, meaning) in src/config/schema.cpp, the single table
// that `config show`, `config doc` and the strict loader all use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace modtrain {

enum class Problem { kMultiLabel, kMultiClass };
enum class BadRecordPolicy { kFail, kSkip };
enum class PreparePolicy { kAuto, kCheck };
enum class VerifySources { kStat, kHash };  // how train tells that a raw shard changed since prepare
enum class TokenizerType { kAuto, kWordPiece, kBpe, kUnigram };
enum class ModelArch { kBert, kRoberta, kXlmRoberta };
enum class PositionEmbeddingType { kAbsolute, kRelativeKey, kRelativeKeyQuery };
enum class Objective { kClassify, kMlm };
enum class Schedule { kConstant, kLinear, kCosine };
enum class OptimizerKind { kAdamW };
enum class Precision { kFp32, kBf16, kFp16 };
enum class GradReduceDtype { kFp32, kBf16 };  // dist.grad_reduce_dtype: what gradients travel as
enum class Backend { kAuto, kMpi, kNccl };
enum class DeviceKind { kAuto, kCpu, kCuda };
enum class LogLevel { kDebug, kInfo, kWarn, kError };

// How per-label decision thresholds are chosen on the validation set.
// YAML: `max_f1`, `precision_at:0.9` (the lowest threshold whose precision reaches 0.9) or
// `fixed:0.5` (no tuning).
struct ThresholdPolicy {
  enum class Kind { kFixed, kMaxF1, kPrecisionAt, kRecallAt };
  Kind kind = Kind::kMaxF1;
  double value = 0.5;  // the fixed threshold, or the target precision / recall
  bool operator==(const ThresholdPolicy& o) const { return kind == o.kind && value == o.value; }
};
// eval.thresholds: one policy for every label, or per label with a default for the others
// ({default: max_f1, spam: precision_at:0.95, self_harm: recall_at:0.9}).
struct ThresholdPolicies {
  ThresholdPolicy all;
  std::vector<std::pair<std::string, ThresholdPolicy>> labels;
  const ThresholdPolicy& for_label(const std::string& name) const {
    for (const auto& [label, policy] : labels)
      if (label == name) return policy;
    return all;
  }
  bool operator==(const ThresholdPolicies& o) const { return all == o.all && labels == o.labels; }
};

// The threshold that never flags: the double just above 1 (std::nextafter(1.0, 2.0)), written by
// threshold tuning when no cut reaches a precision_at target. Valid thresholds are (0, 1] or this.
constexpr double kNeverFlagThreshold = 1.0000000000000002;

// Per-label weight of positive examples in the multi_label loss: none, auto (negatives /
// positives over the annotated training records, capped by train.pos_weight_cap) or explicit
// values, one per label.
struct PosWeight {
  enum class Kind { kNone, kAuto, kExplicit };
  Kind kind = Kind::kNone;
  std::vector<double> values;
  bool operator==(const PosWeight& o) const { return kind == o.kind && values == o.values; }
};

enum class NonFinitePolicy { kSkip, kStop };
// The evaluation metric that picks the best checkpoint (kept besides the newest ones). kAuto:
// macro PR-AUC for train.objective classify, the masked-token loss for mlm.
enum class BestMetric { kAuto, kNone, kLoss, kMacroF1, kMicroF1, kMacroRocAuc, kMacroPrAuc };

struct RunConfig {
  std::string dir = "runs/default";
  uint64_t seed = 1234;
};

struct DataConfig {
  std::vector<std::string> train = {"data/train-*.jsonl"};
  std::vector<std::string> valid = {"data/valid-*.jsonl"};
  std::vector<std::string> labels = {"hate", "harassment", "threat", "sexual", "self_harm", "spam", "misinformation"};
  Problem problem = Problem::kMultiLabel;
  int max_len = 128;
  std::string prepared_dir = "runs/default/prepared";
  BadRecordPolicy on_bad_record = BadRecordPolicy::kFail;
  PreparePolicy prepare = PreparePolicy::kAuto;  // train: re-prepare stale or missing data (auto) or refuse (check)
  VerifySources verify_sources = VerifySources::kStat;  // stat: size + mtime; hash: sha256 of every source
  int64_t max_record_bytes = int64_t{1} << 20;  // a longer line / CSV row is a bad record (kDefaultMaxRecordBytes)
  int64_t shard_bytes = int64_t{256} << 20;     // prepare: cut line-format files into shards of about this size
  double prepare_timeout_s = 3600;              // prepare: how long a rank waits for the others at each step
  bool group_by_length = false;
  int64_t shuffle_window = int64_t{1} << 20;  // train: records shuffled together, from blocks spread over the dataset
  // Soft labels: label values in [0, 1] (the share of annotators who said yes), trained on with BCE
  // against the value; metrics binarise at eval.positive_at. Off: labels are strictly 0/1.
  bool soft_labels = false;
  // Identity-mention fields (soft or 0/1; a mention when >= 0.5), carried into the shards for the
  // bias metrics of every evaluation.
  std::vector<std::string> subgroups;
};

struct TokenizerConfig {
  // A tokenizer: a model directory (tokenizer.json, vocab.json + merges.txt,
  // sentencepiece.bpe.model or vocab.txt) or one such file. The key keeps its first name.
  std::string vocab = "runs/default/vocab.txt";
  TokenizerType type = TokenizerType::kAuto;  // checked against what tokenizer.vocab holds
  bool lowercase = true;
  bool normalize_tweets = true;
};

struct ModelConfig {
  ModelArch arch = ModelArch::kBert;  // roberta / xlm-roberta: RobertaForSequenceClassification's layout
  PositionEmbeddingType position_embedding_type = PositionEmbeddingType::kAbsolute;  // relative_*: TwHIN-BERT
  int layers = 2;
  int hidden = 128;
  int heads = 2;
  int intermediate = 512;
  double dropout = 0.1;            // hidden dropout (embeddings, residual branches, classifier)
  double attention_dropout = 0.1;  // dropout on attention probabilities
  int max_positions = 512;
  double layer_norm_eps = 1e-12;
  std::string init_from;  // "" = random init; else a Hugging Face BERT directory to fine-tune
  bool unpad = true;      // compute on the real tokens only (UnpaddedBatch); same parameters and logits
};

struct TrainConfig {
  Objective objective = Objective::kClassify;  // mlm: masked-language-model pretraining (mlm.*), no labels needed
  int micro_batch = 32;
  int tokens_per_batch = 0;  // > 0: each rank's micro batch holds about this many real tokens (not micro_batch records)
  int accum_steps = 1;
  int64_t max_steps = 300;
  double epochs = 0;  // > 0: train this many passes over the data instead of max_steps
  double lr = 5.0e-4;
  double weight_decay = 0.01;
  int64_t warmup_steps = 30;
  Schedule schedule = Schedule::kLinear;
  double clip_grad_norm = 1.0;  // 0 disables clipping
  Precision precision = Precision::kFp32;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  int zero = 0;  // 1: ZeRO-1, optimiser state and update sharded over the ranks
  PosWeight pos_weight;
  double pos_weight_cap = 10.0;
  double label_smoothing = 0.0;  // multi_class only
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kSkip;
};

// train.objective: mlm (data/masking.h): which tokens are chosen and what the model sees there.
struct MlmConfig {
  double probability = 0.15;     // chance that a token (a word, with whole_word) is chosen for the loss
  double mask_fraction = 0.8;    // of the chosen: replaced by the mask token
  double random_fraction = 0.1;  // of the chosen: replaced by a random token (the rest keep theirs)
  bool whole_word = false;       // choose words, mask all their pieces
};

struct DistConfig {
  Backend backend = Backend::kAuto;
  double bucket_mb = 25.0;
  double timeout_s = 300.0;
  DeviceKind device = DeviceKind::kAuto;
  int threads = 0;                   // CPU threads per rank; 0 = cores on this node / ranks on this node
  int blas_threads = 0;              // OpenBLAS threads; 0 = auto (see dist/device.h)
  int64_t check_replicas_every = 0;  // 0 = never
  std::string timeline;              // "" = off; else a Chrome trace per rank: <stem>-rank<R>.json
  bool allow_uneven_nodes = false;   // nodes running different numbers of ranks: an error unless true
  GradReduceDtype grad_reduce_dtype = GradReduceDtype::kFp32;
};

struct CheckpointConfig {
  int64_t every = 100;  // 0 = only at the end
  int keep_last = 3;
  BestMetric best_metric = BestMetric::kAuto;  // kNone: keep only the newest
  bool async = true;  // write in a background thread; the step loop waits only for the snapshot
};

struct EvalConfig {
  int64_t every = 100;  // 0 = only at the end
  ThresholdPolicies thresholds;
  // The tuner's guard: max_f1 and recall_at never choose a cut whose validation precision is below
  // this (a weak model's best F1 often sits at a precision of 0.1: every post flagged); when no cut
  // reaches it the label flags nothing. 0 = no guard.
  double min_precision = 0.3;
  int micro_batch = 0;                // 0 = 2 x train.micro_batch (no gradients to keep)
  double positive_at = 0.5;           // a (soft) label value at least this counts as positive in the metrics
  bool calibrate = false;             // fit a temperature per label on data.valid; thresholds tuned after it
  std::vector<std::string> slice_by;  // record fields carried through prepare: a metric table per value
  int64_t min_subgroup_records = 10;  // smaller subgroups are reported as too small, not averaged
  int64_t min_subgroup_class = 5;     // ... and those with fewer positives or negatives than this
};

struct LogConfig {
  int64_t every = 10;
  LogLevel level = LogLevel::kInfo;
  bool all_ranks = false;  // info lines from every rank, prefixed with the rank
};

// `modtrain serve` (serve/server.h): where it listens, how it batches, how much it queues.
struct ServeConfig {
  std::string host = "127.0.0.1";   // loopback unless asked
  int port = 8080;                  // 0 = any free port
  int64_t max_batch_tokens = 8192;  // real tokens per forward pass
  double max_wait_ms = 0.0;         // the longest a post waits for a fuller batch (0: continuous batching)
  int64_t max_queue_posts = 4096;   // queued or being scored; more: 503
  int64_t max_posts_per_request = 256;
  int64_t max_body_bytes = int64_t{1} << 20;
  int workers = 1;                        // forward passes at once
  int threads = 0;                        // LibTorch intra-op threads; 0 = cores / workers
  int http_threads = 16;                  // connections served at once
  double drain_s = 30.0;                  // SIGTERM: how long requests in flight may take
  DeviceKind device = DeviceKind::kAuto;  // auto: cuda:0 when CUDA is available, else the CPU
};

struct Config {
  RunConfig run;
  DataConfig data;
  TokenizerConfig tokenizer;
  ModelConfig model;
  TrainConfig train;
  MlmConfig mlm;
  DistConfig dist;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
  ServeConfig serve;
};

// Enum <-> text as written in YAML ("multi_label", "bf16", ...).
const char* to_string(Problem v);
const char* to_string(BadRecordPolicy v);
const char* to_string(PreparePolicy v);
const char* to_string(VerifySources v);
const char* to_string(TokenizerType v);
const char* to_string(ModelArch v);
const char* to_string(PositionEmbeddingType v);
const char* to_string(Objective v);
const char* to_string(Schedule v);
const char* to_string(OptimizerKind v);
const char* to_string(Precision v);
const char* to_string(GradReduceDtype v);
const char* to_string(Backend v);
const char* to_string(DeviceKind v);
const char* to_string(LogLevel v);
const char* to_string(NonFinitePolicy v);
const char* to_string(BestMetric v);
std::string to_string(const PosWeight& v);
// Text -> enum, by the same table: false when `text` is none of its names; enum_names lists them
// ("bert | roberta | xlm-roberta"). One table per enum, so files that read these names back
// (model directories, Hugging Face configs) never keep their own copy.
template <class E>
bool from_string(const std::string& text, E& out);
template <class E>
std::string enum_names();
// checkpoint.best_metric with auto resolved for train.objective (never kAuto).
BestMetric effective_best_metric(const Config& c);
std::string to_string(const ThresholdPolicy& v);
std::string to_string(const ThresholdPolicies& v);

}  // namespace modtrain
