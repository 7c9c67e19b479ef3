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
enum class ModelArch { kBert };
enum class Schedule { kConstant, kLinear, kCosine };
enum class Precision { kFp32, kBf16, kFp16 };
enum class Backend { kAuto, kMpi, kNccl };
enum class DeviceKind { kAuto, kCpu, kCuda };
enum class LogLevel { kDebug, kInfo, kWarn, kError };

// How per-label decision thresholds are chosen on the validation set.
// YAML: `max_f1`, `precision_at:0.9` (the lowest threshold whose precision reaches 0.9) or
// `fixed:0.5` (no tuning).
struct ThresholdPolicy {
  enum class Kind { kFixed, kMaxF1, kPrecisionAt };
  Kind kind = Kind::kMaxF1;
  double value = 0.5;  // the fixed threshold, or the target precision
  bool operator==(const ThresholdPolicy& o) const { return kind == o.kind && value == o.value; }
};

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
};

struct TokenizerConfig {
  std::string vocab = "runs/default/vocab.txt";
  bool lowercase = true;
  bool normalize_tweets = true;
};

struct ModelConfig {
  ModelArch arch = ModelArch::kBert;
  int layers = 2;
  int hidden = 128;
  int heads = 2;
  int intermediate = 512;
  double dropout = 0.1;
  int max_positions = 512;
};

struct TrainConfig {
  int micro_batch = 32;
  int accum_steps = 1;
  int64_t max_steps = 300;
  double lr = 5.0e-4;
  double weight_decay = 0.01;
  int64_t warmup_steps = 30;
  Schedule schedule = Schedule::kLinear;
  double clip_grad_norm = 1.0;  // 0 disables clipping
  Precision precision = Precision::kFp32;
};

struct DistConfig {
  Backend backend = Backend::kAuto;
  double bucket_mb = 25.0;
  double timeout_s = 300.0;
  DeviceKind device = DeviceKind::kAuto;
  int threads = 0;  // CPU threads per rank; 0 = cores on this node / ranks on this node
};

struct CheckpointConfig {
  int64_t every = 100;  // 0 = only at the end
  int keep_last = 3;
};

struct EvalConfig {
  int64_t every = 100;  // 0 = only at the end
  ThresholdPolicy thresholds;
};

struct LogConfig {
  int64_t every = 10;
  LogLevel level = LogLevel::kInfo;
  bool all_ranks = false;  // info lines from every rank, prefixed with the rank
};

struct Config {
  RunConfig run;
  DataConfig data;
  TokenizerConfig tokenizer;
  ModelConfig model;
  TrainConfig train;
  DistConfig dist;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
};

// Enum <-> text as written in YAML ("multi_label", "bf16", ...).
const char* to_string(Problem v);
const char* to_string(BadRecordPolicy v);
const char* to_string(ModelArch v);
const char* to_string(Schedule v);
const char* to_string(Precision v);
const char* to_string(Backend v);
const char* to_string(DeviceKind v);
const char* to_string(LogLevel v);
std::string to_string(const ThresholdPolicy& v);

}  // namespace modtrain
