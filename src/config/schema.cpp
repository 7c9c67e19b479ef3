// The schema table: every config key, its type, range, default and meaning, with the yaml-cpp
// glue that parses and emits it. Adding a key = one line in fields() plus the struct member.
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <type_traits>
#include <utility>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "schema_impl.h"

namespace modtrain::config_impl {
namespace {

// ---- enum tables ---------------------------------------------------------------------------
template <class E>
struct EnumTable;
#define MT_ENUM_TABLE(E, ...)                                                    \
  template <>                                                                    \
  struct EnumTable<E> {                                                          \
    static const std::vector<std::pair<E, const char*>>& entries() {             \
      static const std::vector<std::pair<E, const char*>> table = {__VA_ARGS__}; \
      return table;                                                              \
    }                                                                            \
  };
MT_ENUM_TABLE(Problem, {Problem::kMultiLabel, "multi_label"}, {Problem::kMultiClass, "multi_class"})
MT_ENUM_TABLE(BadRecordPolicy, {BadRecordPolicy::kFail, "fail"}, {BadRecordPolicy::kSkip, "skip"})
MT_ENUM_TABLE(PreparePolicy, {PreparePolicy::kAuto, "auto"}, {PreparePolicy::kCheck, "check"})
MT_ENUM_TABLE(VerifySources, {VerifySources::kStat, "stat"}, {VerifySources::kHash, "hash"})
MT_ENUM_TABLE(TokenizerType, {TokenizerType::kAuto, "auto"}, {TokenizerType::kWordPiece, "wordpiece"},
              {TokenizerType::kBpe, "bpe"}, {TokenizerType::kUnigram, "unigram"})
MT_ENUM_TABLE(ModelArch, {ModelArch::kBert, "bert"}, {ModelArch::kRoberta, "roberta"},
              {ModelArch::kXlmRoberta, "xlm-roberta"})
MT_ENUM_TABLE(PositionEmbeddingType, {PositionEmbeddingType::kAbsolute, "absolute"},
              {PositionEmbeddingType::kRelativeKey, "relative_key"},
              {PositionEmbeddingType::kRelativeKeyQuery, "relative_key_query"})
MT_ENUM_TABLE(Objective, {Objective::kClassify, "classify"}, {Objective::kMlm, "mlm"})
MT_ENUM_TABLE(OptimizerKind, {OptimizerKind::kAdamW, "adamw"})
MT_ENUM_TABLE(Schedule, {Schedule::kConstant, "constant"}, {Schedule::kLinear, "linear"}, {Schedule::kCosine, "cosine"})
MT_ENUM_TABLE(Precision, {Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}, {Precision::kFp16, "fp16"})
MT_ENUM_TABLE(GradReduceDtype, {GradReduceDtype::kFp32, "fp32"}, {GradReduceDtype::kBf16, "bf16"})
MT_ENUM_TABLE(Backend, {Backend::kAuto, "auto"}, {Backend::kMpi, "mpi"}, {Backend::kNccl, "nccl"})
MT_ENUM_TABLE(DeviceKind, {DeviceKind::kAuto, "auto"}, {DeviceKind::kCpu, "cpu"}, {DeviceKind::kCuda, "cuda"})
MT_ENUM_TABLE(NonFinitePolicy, {NonFinitePolicy::kSkip, "skip"}, {NonFinitePolicy::kStop, "stop"})
MT_ENUM_TABLE(BestMetric, {BestMetric::kAuto, "auto"}, {BestMetric::kNone, "none"}, {BestMetric::kLoss, "loss"},
              {BestMetric::kMacroF1, "macro_f1"}, {BestMetric::kMicroF1, "micro_f1"},
              {BestMetric::kMacroRocAuc, "macro_roc_auc"}, {BestMetric::kMacroPrAuc, "macro_pr_auc"})
MT_ENUM_TABLE(LogLevel, {LogLevel::kDebug, "debug"}, {LogLevel::kInfo, "info"}, {LogLevel::kWarn, "warn"},
              {LogLevel::kError, "error"})
#undef MT_ENUM_TABLE

template <class E>
const char* enum_name(E value) {
  for (const auto& [v, name] : EnumTable<E>::entries())
    if (v == value) return name;
  return "?";
}

// ---- scalar parsing ------------------------------------------------------------------------
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "an undefined value";
  }
}

[[noreturn]] void type_error(const Location& where, const std::string& key, const std::string& expected,
                             const YAML::Node& value) {
  throw ConfigError(at(where) + key + ": expected " + expected + ", got " + describe(value));
}

bool parse_int(const std::string& s, int64_t& out) {
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (first != last && *first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last && first != last;
}

bool parse_float(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

// ---- codecs: parse a YAML node into T, emit T, describe T --------------------------------
template <class T, class Enable = void>
struct Codec;

// An integer too large for the field's storage type: the field builder reports it against the
// key's own allowed range (not int32's), which it knows and the codec does not.
struct IntegerTooLarge {
  std::string text, storage_range;
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static std::string type() { return "integer"; }
  static T parse(const YAML::Node& v, const Location& where, const std::string& key) {
    if (!v.IsScalar()) type_error(where, key, "an integer", v);
    const std::string& s = v.Scalar();
    const char* first = s.data();
    const char* last = s.data() + s.size();
    if (first != last && *first == '+') ++first;
    T x{};
    auto [ptr, ec] = std::from_chars(first, last, x);
    if (ec == std::errc() && ptr == last && first != last) return x;
    int64_t wide = 0;
    bool integer_syntax = parse_int(s, wide) || (ec == std::errc::result_out_of_range && ptr == last);
    if (!integer_syntax) type_error(where, key, "an integer", v);
    throw IntegerTooLarge{
        s, std::to_string(std::numeric_limits<T>::min()) + " to " + std::to_string(std::numeric_limits<T>::max())};
  }
  static std::string show(T x) { return std::to_string(x); }
  static void emit(YAML::Emitter& out, T x) { out << std::to_string(x); }
};

template <>
struct Codec<double> {
  static std::string type() { return "float"; }
  static double parse(const YAML::Node& v, const Location& where, const std::string& key) {
    double x = 0;
    if (!v.IsScalar() || !parse_float(v.Scalar(), x)) type_error(where, key, "a finite number", v);
    return x;
  }
  static std::string show(double x) { return text::format_double(x); }
  static void emit(YAML::Emitter& out, double x) { out << text::format_double(x); }
};

template <>
struct Codec<bool> {
  static std::string type() { return "bool"; }
  static bool parse(const YAML::Node& v, const Location& where, const std::string& key) {
    if (v.IsScalar()) {
      const std::string& s = v.Scalar();
      if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "off") return false;
    }
    type_error(where, key, "true or false", v);
  }
  static std::string show(bool x) { return x ? "true" : "false"; }
  static void emit(YAML::Emitter& out, bool x) { out << (x ? "true" : "false"); }
};

template <>
struct Codec<std::string> {
  static std::string type() { return "string"; }
  static std::string parse(const YAML::Node& v, const Location& where, const std::string& key) {
    if (!v.IsScalar()) type_error(where, key, "a string", v);
    return v.Scalar();
  }
  static std::string show(const std::string& x) { return "'" + x + "'"; }
  static void emit(YAML::Emitter& out, const std::string& x) { out << YAML::DoubleQuoted << x; }
};

template <>
struct Codec<std::vector<std::string>> {
  static std::string type() { return "list of strings"; }
  static std::vector<std::string> parse(const YAML::Node& v, const Location& where, const std::string& key) {
    std::vector<std::string> items;
    if (v.IsNull()) return items;
    if (v.IsScalar()) return {v.Scalar()};  // a single item may be written without brackets
    if (!v.IsSequence()) type_error(where, key, "a list of strings like [a, b]", v);
    for (const auto& item : v) {
      if (!item.IsScalar()) type_error(location_of(item, where.source), key + " item", "a string", item);
      items.push_back(item.Scalar());
    }
    return items;
  }
  static std::string show(const std::vector<std::string>& x) { return "[" + text::join(x, ", ") + "]"; }
  static void emit(YAML::Emitter& out, const std::vector<std::string>& x) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : x) out << YAML::DoubleQuoted << s;
    out << YAML::EndSeq;
  }
};

template <class E>
struct Codec<E, std::enable_if_t<std::is_enum_v<E>>> {
  static std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& entry : EnumTable<E>::entries()) out.push_back(entry.second);
    return out;
  }
  static std::string type() { return "one of: " + text::join(names(), " | "); }
  static E parse(const YAML::Node& v, const Location& where, const std::string& key) {
    if (!v.IsScalar()) type_error(where, key, type(), v);
    for (const auto& [value, name] : EnumTable<E>::entries())
      if (v.Scalar() == name) return value;
    std::string msg = at(where) + key + ": '" + v.Scalar() + "' is not one of: " + text::join(names(), ", ");
    std::string guess = text::nearest(v.Scalar(), names());
    if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
    throw ConfigError(msg);
  }
  static std::string show(E x) { return enum_name(x); }
  static void emit(YAML::Emitter& out, E x) { out << enum_name(x); }
};

template <>
struct Codec<ThresholdPolicy> {
  static std::string type() { return "max_f1 | precision_at:P | recall_at:R | fixed:T"; }
  static ThresholdPolicy parse(const YAML::Node& v, const Location& where, const std::string& key) {
    // Accept the scalar form `precision_at:0.9` and the mapping form `{precision_at: 0.9}`.
    std::string kind, number;
    if (v.IsScalar()) {
      const std::string& s = v.Scalar();
      size_t colon = s.find(':');
      kind = s.substr(0, colon);
      if (colon != std::string::npos) number = s.substr(colon + 1);
    } else if (v.IsMap() && v.size() == 1) {
      auto it = v.begin();
      kind = it->first.Scalar();
      if (!it->second.IsScalar()) type_error(where, key, type(), v);
      number = it->second.Scalar();
    } else {
      type_error(where, key, type(), v);
    }
    while (!number.empty() && number.front() == ' ') number.erase(number.begin());
    ThresholdPolicy policy;
    if (kind == "max_f1" && number.empty()) {
      policy.kind = ThresholdPolicy::Kind::kMaxF1;
      return policy;
    }
    double x = 0;
    if ((kind == "precision_at" || kind == "recall_at" || kind == "fixed") && parse_float(number, x)) {
      policy.kind = kind == "fixed"          ? ThresholdPolicy::Kind::kFixed
                    : kind == "precision_at" ? ThresholdPolicy::Kind::kPrecisionAt
                                             : ThresholdPolicy::Kind::kRecallAt;
      policy.value = x;
      // (0, 1] for every kind: a model's thresholds are probabilities in (0, 1] (fixed:0 would flag
      // every post, and every command would then refuse the saved model as damaged)
      if (!(x > 0 && x <= 1))
        throw ConfigError(at(where) + key + ": " + kind + " " + number + " is out of range (allowed: (0, 1]" +
                          (kind == "fixed" ? "; a threshold of 0 would flag every post" : "") + ")");
      return policy;
    }
    throw ConfigError(at(where) + key + ": '" + (v.IsScalar() ? v.Scalar() : kind) +
                      "' is not a threshold policy; use max_f1, precision_at:0.9, recall_at:0.9 or fixed:0.5");
  }
  static std::string show(const ThresholdPolicy& x) { return to_string(x); }
  static void emit(YAML::Emitter& out, const ThresholdPolicy& x) { out << to_string(x); }
};

template <>
struct Codec<ThresholdPolicies> {
  static std::string type() {
    return Codec<ThresholdPolicy>::type() + ", or a map {default: POLICY, LABEL: POLICY, ...}";
  }
  static bool is_policy_name(const std::string& k) {
    return k == "max_f1" || k == "precision_at" || k == "recall_at" || k == "fixed";
  }
  static ThresholdPolicies parse(const YAML::Node& v, const Location& where, const std::string& key) {
    ThresholdPolicies p;
    if (v.IsScalar() || (v.IsMap() && v.size() == 1 && is_policy_name(v.begin()->first.Scalar()))) {
      p.all = Codec<ThresholdPolicy>::parse(v, where, key);
      return p;
    }
    if (!v.IsMap() || v.size() == 0) type_error(where, key, type(), v);
    for (const auto& item : v) {
      const std::string name = item.first.Scalar();
      const ThresholdPolicy policy = Codec<ThresholdPolicy>::parse(item.second, where, key + "." + name);
      if (name == "default") {
        p.all = policy;
        continue;
      }
      for (const auto& [seen, unused] : p.labels)
        if (seen == name) throw ConfigError(at(where) + key + " names '" + name + "' twice; one policy per label");
      p.labels.emplace_back(name, policy);
    }
    return p;
  }
  static std::string show(const ThresholdPolicies& x) { return to_string(x); }
  static void emit(YAML::Emitter& out, const ThresholdPolicies& x) {
    if (x.labels.empty()) {
      out << to_string(x.all);
      return;
    }
    out << YAML::BeginMap << YAML::Key << "default" << YAML::Value << to_string(x.all);
    for (const auto& [label, policy] : x.labels) out << YAML::Key << label << YAML::Value << to_string(policy);
    out << YAML::EndMap;
  }
};

template <>
struct Codec<PosWeight> {
  static std::string type() { return "none | auto | list of floats"; }
  static PosWeight parse(const YAML::Node& v, const Location& where, const std::string& key) {
    PosWeight w;
    if (v.IsScalar() && (v.Scalar() == "none" || v.Scalar() == "auto")) {
      w.kind = v.Scalar() == "auto" ? PosWeight::Kind::kAuto : PosWeight::Kind::kNone;
      return w;
    }
    if (!v.IsSequence()) type_error(where, key, "none, auto or a list of floats (one per label)", v);
    w.kind = PosWeight::Kind::kExplicit;
    for (const auto& item : v) {
      double x = 0;
      if (!item.IsScalar() || !parse_float(item.Scalar(), x) || x <= 0)
        throw ConfigError(at(location_of(item, where.source)) + key + ": each weight must be a number > 0, got " +
                          describe(item));
      w.values.push_back(x);
    }
    return w;
  }
  static std::string show(const PosWeight& x) { return to_string(x); }
  static void emit(YAML::Emitter& out, const PosWeight& x) {
    if (x.kind != PosWeight::Kind::kExplicit) {
      out << to_string(x);
      return;
    }
    out << YAML::Flow << YAML::BeginSeq;
    for (double d : x.values) out << text::format_double(d);
    out << YAML::EndSeq;
  }
};

// ---- range rules ---------------------------------------------------------------------------
template <class T>
struct Rule {
  std::string text;                  // shown in docs and errors; "" = no constraint
  std::function<bool(const T&)> ok;  // null = always ok
};
template <class T>
Rule<T> any() {
  return {"", nullptr};
}
template <class T>
Rule<T> between(T lo, T hi) {  // [lo, hi]
  return {"[" + Codec<T>::show(lo) + ", " + Codec<T>::show(hi) + "]", [=](const T& x) { return x >= lo && x <= hi; }};
}
Rule<double> open_closed(double lo, double hi) {  // (lo, hi]
  return {"(" + text::format_double(lo) + ", " + text::format_double(hi) + "]",
          [=](double x) { return x > lo && x <= hi; }};
}
Rule<double> closed_open(double lo, double hi) {  // [lo, hi)
  return {"[" + text::format_double(lo) + ", " + text::format_double(hi) + ")",
          [=](double x) { return x >= lo && x < hi; }};
}
Rule<std::string> non_empty() {
  return {"non-empty", [](const std::string& s) { return !s.empty(); }};
}
Rule<std::vector<std::string>> no_empty_items() {
  return {"no empty items", [](const std::vector<std::string>& v) {
            for (const auto& s : v)
              if (s.empty()) return false;
            return true;
          }};
}

// ---- the field builder ---------------------------------------------------------------------
template <class Sec, class T>
Field make(const char* section, Sec Config::*sec, const char* key, T Sec::*member, Rule<T> rule, const char* doc) {
  Field f;
  std::string dotted = std::string(section) + "." + key;
  f.info.section = section;
  f.info.key = key;
  f.info.type = Codec<T>::type();
  f.info.range = rule.text;
  f.info.doc = doc;
  f.assign = [=](Config& config, const YAML::Node& value, const Location& where) {
    T parsed{};
    try {
      parsed = Codec<T>::parse(value, where, dotted);
    } catch (const IntegerTooLarge& e) {
      throw ConfigError(at(where) + dotted + " = " + e.text +
                        " is out of range (allowed: " + (rule.text.empty() ? e.storage_range : rule.text) + ")");
    }
    if (rule.ok && !rule.ok(parsed))
      throw ConfigError(at(where) + dotted + " = " + Codec<T>::show(parsed) +
                        " is out of range (allowed: " + rule.text + ")");
    (config.*sec).*member = std::move(parsed);
  };
  f.emit = [=](const Config& config, YAML::Emitter& out) { Codec<T>::emit(out, (config.*sec).*member); };
  YAML::Emitter out;
  const Config defaults;  // (a `Config{}` temporary here crashes GCC 12 with an ICE)
  f.emit(defaults, out);
  f.info.default_value = out.c_str();
  return f;
}

constexpr int64_t kMaxSteps = int64_t{1} << 40;
constexpr int64_t kMaxRecordBytes = (int64_t{1} << 31) - 1;  // a record is one std::string; BPE words are int32-indexed

std::vector<Field> build_fields() {
  using C = Config;
  return {
      make("run", &C::run, "dir", &RunConfig::dir, non_empty(),
           "Run directory: resolved config, metrics.jsonl, checkpoints, timelines."),
      make("run", &C::run, "seed", &RunConfig::seed, any<uint64_t>(),
           "Seed for initialisation, data order and dropout (same seed + config + world size = same run)."),

      make("data", &C::data, "train", &DataConfig::train, no_empty_items(),
           "Training shards: glob patterns of JSONL/CSV/TSV files."),
      make("data", &C::data, "valid", &DataConfig::valid, no_empty_items(),
           "Validation shards: glob patterns; empty disables evaluation."),
      make("data", &C::data, "labels", &DataConfig::labels, no_empty_items(),
           "The label set, in output order (names as they appear in the data). Empty ([]) only with "
           "train.objective: mlm: unlabelled shards (JSONL with only `text`, CSV/TSV with a `text` column, or .txt "
           "files, one post per line)."),
      make("data", &C::data, "problem", &DataConfig::problem, any<Problem>(),
           "multi_label: independent sigmoid per label; multi_class: exactly one label per record (softmax)."),
      make("data", &C::data, "max_len", &DataConfig::max_len, between(8, 8192),
           "Maximum tokens per record including the special tokens ([CLS] [SEP] or <s> </s>); longer texts are "
           "truncated (and counted)."),
      make("data", &C::data, "prepared_dir", &DataConfig::prepared_dir, non_empty(),
           "Where `modtrain data prepare` writes the binary shards and manifest.json."),
      make("data", &C::data, "on_bad_record", &DataConfig::on_bad_record, any<BadRecordPolicy>(),
           "fail: stop at the first bad record with file:line; skip: write it to rejected.jsonl and go on."),
      make("data", &C::data, "prepare", &DataConfig::prepare, any<PreparePolicy>(),
           "At `train` start the prepared data is checked against its sources and this config (files, sizes, "
           "modification times, labels, max_len, tokenizer): auto prepares it again when it is missing or stale; "
           "check stops with what changed."),
      make("data", &C::data, "verify_sources", &DataConfig::verify_sources, any<VerifySources>(),
           "How train's staleness check tells that a raw shard changed since it was prepared. stat: its path, size "
           "and modification time (free; misses a same-size edit whose modification time was put back, or a "
           "clock that went backwards); hash: also its SHA-256, computed once by prepare and again by rank 0 at "
           "every train start (reads every source once: about 1 s per GB per start)."),
      make("data", &C::data, "max_record_bytes", &DataConfig::max_record_bytes, between<int64_t>(256, kMaxRecordBytes),
           "The largest record (a JSONL line, a CSV/TSV row) read; a longer one is a bad record (data.on_bad_record), "
           "read past without being kept in memory. 1 MiB holds any post with its metadata."),
      make("data", &C::data, "shard_bytes", &DataConfig::shard_bytes, between<int64_t>(0, int64_t{1} << 40),
           "Prepare cuts a JSONL or .txt file larger than this into shards of about this many bytes, at line ends, "
           "so that one huge export spreads over every preparing rank and every training rank can read a part "
           "of it; 0: one shard per file. CSV/TSV files are never cut (a quoted cell may hold a line end)."),
      make("data", &C::data, "prepare_timeout_s", &DataConfig::prepare_timeout_s, open_closed(0.0, 7.0 * 86400.0),
           "Distributed prepare: how long a rank that finished a step waits for the slowest rank before the job "
           "stops with an error naming the step (the longest step is preparing a rank's share of the chunks)."),
      make("data", &C::data, "group_by_length", &DataConfig::group_by_length, any<bool>(),
           "Batch records of similar length together (less padding); batch order stays shuffled."),
      make("data", &C::data, "shuffle_window", &DataConfig::shuffle_window, between<int64_t>(1, int64_t{1} << 32),
           "Training order: a split of at most this many records is shuffled record by record every epoch; a "
           "larger one is cut into blocks of 256 consecutive records, permuted over the whole split, and the "
           "records of each run of blocks this long are shuffled together. Costs 4 bytes per record of it on "
           "every rank (4 MiB at the default); the order does not depend on the number of ranks."),
      make("data", &C::data, "soft_labels", &DataConfig::soft_labels, any<bool>(),
           "Label values in [0, 1] (e.g. the share of annotators who said yes, as Jigsaw's Civil Comments): "
           "trained on with binary cross-entropy against the value, stored to 1/240 (exact for 1-6, 8, 10, 12, "
           "15, 16 or 20 annotators); metrics binarise at eval.positive_at. Off: labels must be 0/1. "
           "multi_label only."),
      make("data", &C::data, "subgroups", &DataConfig::subgroups, no_empty_items(),
           "Identity-mention fields (JSONL keys / CSV columns named like the subgroup, values in [0, 1] or "
           "true/false; a mention when >= 0.5; missing = not mentioned), carried into the shards: every "
           "evaluation reports subgroup, BPSN and BNSP AUC per label and subgroup and the Jigsaw bias score."),

      make("tokenizer", &C::tokenizer, "vocab", &TokenizerConfig::vocab, non_empty(),
           "The tokenizer: a Hugging Face model directory or one tokenizer file. A directory is read as "
           "transformers would: tokenizer.json (WordPiece, byte-level BPE or SentencePiece Unigram), else "
           "vocab.json + merges.txt (RoBERTa's byte-level BPE), else sentencepiece.bpe.model (XLM-R's Unigram), "
           "else vocab.txt (BERT's WordPiece, [PAD] [UNK] [CLS] [SEP] [MASK] included). Special tokens come from "
           "these files."),
      make("tokenizer", &C::tokenizer, "type", &TokenizerConfig::type, any<TokenizerType>(),
           "auto: whatever tokenizer.vocab holds; wordpiece, bpe or unigram: the same, and an error if it holds "
           "another kind."),
      make("tokenizer", &C::tokenizer, "lowercase", &TokenizerConfig::lowercase, any<bool>(),
           "WordPiece: lowercase and strip accents (uncased BERT); false for cased vocabularies. Must agree with "
           "the directory's tokenizer.json / tokenizer_config.json where they say. BPE and Unigram tokenizers "
           "normalise as their tokenizer.json says and ignore it."),
      make("tokenizer", &C::tokenizer, "normalize_tweets", &TokenizerConfig::normalize_tweets, any<bool>(),
           "@mentions -> @user, URLs -> http, character references unescaped (a bounded set), whitespace collapsed; "
           "an export writes the same steps into tokenizer.json (docs/data-format.md)."),

      make("model", &C::model, "arch", &ModelConfig::arch, any<ModelArch>(),
           "Model architecture: bert (BertForSequenceClassification: pooler, linear head), roberta or xlm-roberta "
           "(RobertaForSequenceClassification: positions start at pad id + 1, so max_positions must exceed "
           "data.max_len by 2 as in RoBERTa's 514; one token type; no pooler; head dense, tanh, out_proj on <s>)."),
      make("model", &C::model, "position_embedding_type", &ModelConfig::position_embedding_type,
           any<PositionEmbeddingType>(),
           "absolute (learned positions added to the embeddings) or, as TwHIN-BERT, relative_key / "
           "relative_key_query: a learned embedding of the distance between two positions per attention layer, "
           "added to the attention scores (transformers' BertSelfAttention); no absolute positions then."),
      make("model", &C::model, "layers", &ModelConfig::layers, between(1, 128), "Transformer layers."),
      make("model", &C::model, "hidden", &ModelConfig::hidden, between(8, 16384),
           "Hidden size; must be divisible by model.heads."),
      make("model", &C::model, "heads", &ModelConfig::heads, between(1, 256), "Attention heads per layer."),
      make("model", &C::model, "intermediate", &ModelConfig::intermediate, between(8, 65536),
           "Feed-forward inner size (4 x hidden in BERT)."),
      make("model", &C::model, "dropout", &ModelConfig::dropout, closed_open(0.0, 1.0),
           "Hidden dropout (embeddings, residual branches, before the classifier), as in BERT."),
      make("model", &C::model, "attention_dropout", &ModelConfig::attention_dropout, closed_open(0.0, 1.0),
           "Dropout on attention probabilities."),
      make("model", &C::model, "max_positions", &ModelConfig::max_positions, between(8, 65536),
           "Size of the position embedding table; data.max_len must not exceed it."),
      make("model", &C::model, "layer_norm_eps", &ModelConfig::layer_norm_eps, open_closed(0.0, 0.1),
           "LayerNorm epsilon (BERT: 1e-12)."),
      make("model", &C::model, "unpad", &ModelConfig::unpad, any<bool>(),
           "Padding-free batches: embeddings, linear layers, GELU, dropout and LayerNorm run on the real tokens "
           "only, attention per record (MosaicBERT's unpadding; on CUDA in bf16/fp16 flash attention with cumulative "
           "offsets, once it passed its check on the device). Same parameters and logits (1e-5) as the padded path; "
           "training, evaluation and predict. false: every batch padded to its longest record."),
      make("model", &C::model, "init_from", &ModelConfig::init_from, any<std::string>(),
           "Fine-tune a pretrained Hugging Face encoder of the BERT or RoBERTa family (BERT, TwHIN-BERT, RoBERTa, "
           "twitter-roberta, XLM-R, XLM-T): a directory with config.json, model.safetensors and its tokenizer "
           "(...Model, ...ForMaskedLM, ...ForPreTraining or ...ForSequenceClassification weights). model.* must "
           "match its config.json (model_type: model.arch) and tokenizer.vocab should be the same directory; the "
           "classifier head is fresh unless its labels match. Empty = random initialisation."),

      make("train", &C::train, "objective", &TrainConfig::objective, any<Objective>(),
           "classify: train the classifier on data.labels; mlm: masked-language-model pretraining of the encoder on "
           "the posts' text (mlm.*; labels, if any, are ignored), written as a ...ForMaskedLM model that "
           "model.init_from fine-tunes."),
      make("train", &C::train, "micro_batch", &TrainConfig::micro_batch, between(1, 1 << 20),
           "Records per rank per forward/backward pass."),
      make("train", &C::train, "tokens_per_batch", &TrainConfig::tokens_per_batch, between(0, 1 << 24),
           "Token-budget batches instead of train.micro_batch records: each rank's micro batch holds about this many "
           "real tokens (at most one record over), every rank takes the same number of steps, and the loss is "
           "normalised by the step's annotated labels over all ranks. At least data.max_len; 0 = off."),
      make("train", &C::train, "accum_steps", &TrainConfig::accum_steps, between(1, 1 << 16),
           "Micro-batches accumulated per optimiser step (global batch = micro_batch x accum_steps x ranks)."),
      make("train", &C::train, "max_steps", &TrainConfig::max_steps, between<int64_t>(1, kMaxSteps),
           "Optimiser steps to train (unless train.epochs is set)."),
      make("train", &C::train, "epochs", &TrainConfig::epochs, between(0.0, 1.0e6),
           "> 0: train this many passes over the training data instead of train.max_steps."),
      make("train", &C::train, "lr", &TrainConfig::lr, open_closed(0.0, 10.0), "Peak learning rate (AdamW)."),
      make("train", &C::train, "weight_decay", &TrainConfig::weight_decay, between(0.0, 1.0),
           "AdamW decoupled weight decay (not applied to biases and LayerNorm weights)."),
      make("train", &C::train, "warmup_steps", &TrainConfig::warmup_steps, between<int64_t>(0, kMaxSteps),
           "Linear warmup steps from 0 to train.lr."),
      make("train", &C::train, "schedule", &TrainConfig::schedule, any<Schedule>(),
           "Learning-rate decay after warmup."),
      make("train", &C::train, "clip_grad_norm", &TrainConfig::clip_grad_norm, between(0.0, 1.0e6),
           "Clip gradients to this global L2 norm; 0 disables clipping."),
      make("train", &C::train, "precision", &TrainConfig::precision, any<Precision>(),
           "fp32 everywhere; bf16 autocast or fp16 with loss scaling need CUDA."),
      make("train", &C::train, "optimizer", &TrainConfig::optimizer, any<OptimizerKind>(),
           "adamw: AdamW over flat parameter buffers (one fused pass per buffer; no decay on biases and LayerNorm)."),
      make("train", &C::train, "zero", &TrainConfig::zero, between(0, 1),
           "1: ZeRO-1, each rank keeps and updates the optimiser state of 1/N of the parameters (gradients "
           "reduce-scattered, parameters all-gathered); 0: every rank updates everything."),
      make("train", &C::train, "adam_beta1", &TrainConfig::adam_beta1, closed_open(0.0, 1.0), "AdamW beta1."),
      make("train", &C::train, "adam_beta2", &TrainConfig::adam_beta2, closed_open(0.0, 1.0), "AdamW beta2."),
      make("train", &C::train, "adam_eps", &TrainConfig::adam_eps, open_closed(0.0, 1.0), "AdamW epsilon."),
      make("train", &C::train, "pos_weight", &TrainConfig::pos_weight, any<PosWeight>(),
           "multi_label positive-class weights: none, auto (negatives/positives, capped) or one value per label."),
      make("train", &C::train, "pos_weight_cap", &TrainConfig::pos_weight_cap, between(1.0, 1.0e4),
           "Largest weight pos_weight: auto gives a label."),
      make("train", &C::train, "label_smoothing", &TrainConfig::label_smoothing, closed_open(0.0, 1.0),
           "multi_class cross-entropy label smoothing."),
      make("train", &C::train, "on_nonfinite", &TrainConfig::on_nonfinite, any<NonFinitePolicy>(),
           "A non-finite loss or gradient: skip the step (reported; 20 in a row stop the run) or stop at once."),

      make("mlm", &C::mlm, "probability", &MlmConfig::probability, open_closed(0.0, 1.0),
           "train.objective mlm: the chance that a token (a word, with mlm.whole_word) is chosen for the loss; never "
           "a special token or padding. Drawn from (run.seed, step, record): resume and any rank count draw alike."),
      make("mlm", &C::mlm, "mask_fraction", &MlmConfig::mask_fraction, between(0.0, 1.0),
           "Of the chosen tokens: the share replaced by the mask token (BERT: 0.8)."),
      make("mlm", &C::mlm, "random_fraction", &MlmConfig::random_fraction, between(0.0, 1.0),
           "Of the chosen tokens: the share replaced by a random token (BERT: 0.1); the rest stay as they are. "
           "mask_fraction + random_fraction <= 1."),
      make("mlm", &C::mlm, "whole_word", &MlmConfig::whole_word, any<bool>(),
           "Whole-word masking: choose words and mask all their pieces (WordPiece ##, SentencePiece ▁ and "
           "byte-level BPE Ġ word marks)."),

      make("dist", &C::dist, "backend", &DistConfig::backend, any<Backend>(),
           "Gradient all-reduce backend: auto = nccl on CUDA, mpi on CPU (one rank: no communication). "
           "Set explicitly, even one rank runs the whole multi-rank path (host values always go over MPI)."),
      make("dist", &C::dist, "grad_reduce_dtype", &DistConfig::grad_reduce_dtype, any<GradReduceDtype>(),
           "What gradient buckets travel as between ranks: fp32, or bf16 (half the bytes; PyTorch DDP's "
           "bf16_compress_hook, Megatron's --grad-reduce-in-bf16): each bucket is rounded to bf16, summed in bf16 "
           "(NCCL natively; MPI with a user-defined sum that adds in fp32 and rounds each partial sum to bf16), and "
           "divided by the world size in fp32 into the fp32 gradients the optimiser keeps, with fp32 weights."),
      make("dist", &C::dist, "bucket_mb", &DistConfig::bucket_mb, open_closed(0.0, 4096.0),
           "Gradient bucket size in MiB (the first bucket is smaller so communication starts early)."),
      make("dist", &C::dist, "timeout_s", &DistConfig::timeout_s, open_closed(0.0, 86400.0),
           "A collective that takes longer than this ends the job with an error naming the rank."),
      make("dist", &C::dist, "device", &DistConfig::device, any<DeviceKind>(),
           "auto: cuda:<local rank> when CUDA is available, else CPU."),
      make("dist", &C::dist, "threads", &DistConfig::threads, between(0, 1024),
           "CPU threads per rank; 0 = cores on the node / ranks on the node."),
      make("dist", &C::dist, "blas_threads", &DistConfig::blas_threads, between(0, 1024),
           "OpenBLAS threads per rank; 0 = auto: 1 for small models (hidden <= 256), else dist.threads."),
      make("dist", &C::dist, "check_replicas_every", &DistConfig::check_replicas_every, between<int64_t>(0, kMaxSteps),
           "Every N steps compare parameter checksums across ranks (divergence is an error naming the parameter); 0 = "
           "never."),
      make("dist", &C::dist, "allow_uneven_nodes", &DistConfig::allow_uneven_nodes, any<bool>(),
           "Nodes (hosts) running different numbers of ranks are an error at start (usually a node with a GPU "
           "missing, or a launch that did not ask for the same tasks per node); true: train anyway."),
      make("dist", &C::dist, "timeline", &DistConfig::timeline, any<std::string>(),
           "Chrome-trace timeline of forward, backward, each bucket's all-reduce, waits and optimiser: "
           "FILE.json -> FILE-rank<R>.json per rank; empty = off."),

      make("checkpoint", &C::checkpoint, "every", &CheckpointConfig::every, between<int64_t>(0, kMaxSteps),
           "Save RUN/checkpoints/step-NNNNNNN every N steps (atomically; `latest` points to the newest); 0 = only at "
           "the end "
           "and on preemption (SIGTERM/SIGUSR1)."),
      make("checkpoint", &C::checkpoint, "keep_last", &CheckpointConfig::keep_last, between(1, 1000000),
           "Checkpoints kept: the newest K, plus the best one by checkpoint.best_metric."),
      make("checkpoint", &C::checkpoint, "best_metric", &CheckpointConfig::best_metric, any<BestMetric>(),
           "Evaluation metric that marks the best checkpoint (saved when it improves; `best` points to it): "
           "loss (lower is better; the masked-token loss under train.objective mlm), macro_f1, micro_f1, "
           "macro_roc_auc, macro_pr_auc, none, or auto: macro_pr_auc for classify, loss for mlm."),
      make("checkpoint", &C::checkpoint, "async", &CheckpointConfig::async, any<bool>(),
           "Write checkpoints in a background thread: training waits only while each rank copies its part of the "
           "state into host buffers (reused between saves), then continues while the files are written, fsynced "
           "and committed. A save waits for the previous one; a stop (SIGTERM, SIGUSR1) and the end of training "
           "wait for it before exit. A failed background write stops training with one line at the next step. "
           "false: the step loop waits for the whole save."),

      make("eval", &C::eval, "every", &EvalConfig::every, between<int64_t>(0, kMaxSteps),
           "Evaluate on data.valid every N steps; 0 = only at the end."),
      make("eval", &C::eval, "thresholds", &EvalConfig::thresholds, any<ThresholdPolicies>(),
           "Per-label decision thresholds tuned on the validation set: max_f1 (the best F1), precision_at:P (the "
           "most recall at precision >= P: auto-removal), recall_at:R (the most precision at recall >= R: a "
           "review queue) or fixed:T; one policy for all labels, or a map {default: max_f1, spam: "
           "precision_at:0.95, self_harm: recall_at:0.9}. A tuned threshold sits halfway between the lowest "
           "flagged score and the next lower one; eval.min_precision guards max_f1 and recall_at."),
      make("eval", &C::eval, "min_precision", &EvalConfig::min_precision, closed_open(0.0, 1.0),
           "The threshold tuner's guard: max_f1 and recall_at never choose a cut whose validation precision is "
           "below this (a weak model's best F1 can sit at precision 0.1, flagging nearly every post); a label "
           "where no cut reaches it flags nothing, and training and eval say so. 0 = no guard."),
      make("eval", &C::eval, "micro_batch", &EvalConfig::micro_batch, between(0, 1 << 20),
           "Records per rank per evaluation batch; 0 = 2 x train.micro_batch."),
      make("eval", &C::eval, "positive_at", &EvalConfig::positive_at, open_closed(0.0, 1.0),
           "A label value at least this counts as positive for the metrics (soft labels; Jigsaw: 0.5)."),
      make("eval", &C::eval, "calibrate", &EvalConfig::calibrate, any<bool>(),
           "Fit a temperature per label on data.valid (scores sigmoid(logit / T)), save it with the model "
           "(modtrain.json, config.json) and apply it in eval and predict; thresholds are tuned on the calibrated "
           "scores. multi_label only."),
      make("eval", &C::eval, "slice_by", &EvalConfig::slice_by, no_empty_items(),
           "Record fields (JSONL keys / CSV columns, e.g. lang, source) carried through prepare: evaluation "
           "reports the metric table per value of each."),
      make("eval", &C::eval, "min_subgroup_records", &EvalConfig::min_subgroup_records,
           between<int64_t>(1, int64_t{1} << 40),
           "Subgroups with fewer records in data.valid are reported as too small and left out of the bias score."),
      make("eval", &C::eval, "min_subgroup_class", &EvalConfig::min_subgroup_class,
           between<int64_t>(1, int64_t{1} << 40),
           "Likewise subgroups with fewer positives or fewer negatives of a label (an AUC over one or two positives "
           "says little)."),

      make("log", &C::log, "every", &LogConfig::every, between<int64_t>(1, kMaxSteps),
           "Log training metrics every N steps."),
      make("log", &C::log, "level", &LogConfig::level, any<LogLevel>(), "Least severe messages printed."),
      make("log", &C::log, "all_ranks", &LogConfig::all_ranks, any<bool>(),
           "Print info lines from every rank (prefixed with the rank), not only rank 0."),

      make("serve", &C::serve, "host", &ServeConfig::host, non_empty(),
           "Address `modtrain serve` listens on: 127.0.0.1 (loopback) by default; 0.0.0.0 or an interface's "
           "address accepts other machines (put TLS and authentication in front of it)."),
      make("serve", &C::serve, "port", &ServeConfig::port, between(0, 65535),
           "TCP port of `modtrain serve`; 0 = any free port (printed at start)."),
      make("serve", &C::serve, "max_batch_tokens", &ServeConfig::max_batch_tokens,
           between<int64_t>(1, int64_t{1} << 24),
           "Real tokens per forward pass (padding-free): a batch is cut when the queued posts reach it or "
           "serve.max_wait_ms has passed for the oldest, whichever comes first. A longer post is scored alone."),
      make("serve", &C::serve, "max_wait_ms", &ServeConfig::max_wait_ms, closed_open(0.0, 60000.0),
           "The longest a queued post waits for a fuller batch. 0 (continuous batching, as TEI): a free worker "
           "scores what is queued at once, and batches grow by themselves under load while the previous one "
           "runs; measured, waiting bought no throughput at 64 connections and cost latency "
           "(docs/performance.md, \"Serving\"). Worth raising only with several workers."),
      make("serve", &C::serve, "max_queue_posts", &ServeConfig::max_queue_posts, between<int64_t>(1, int64_t{1} << 24),
           "Posts queued or being scored, all requests; a request that does not fit is answered 503 with "
           "Retry-After instead of waiting behind the queue."),
      make("serve", &C::serve, "max_posts_per_request", &ServeConfig::max_posts_per_request,
           between<int64_t>(1, int64_t{1} << 20), "More posts in one request are answered 413."),
      make("serve", &C::serve, "max_body_bytes", &ServeConfig::max_body_bytes, between<int64_t>(1024, int64_t{1} << 30),
           "A larger request body is answered 413."),
      make("serve", &C::serve, "workers", &ServeConfig::workers, between(1, 256),
           "Batches scored at once (threads running forward passes)."),
      make("serve", &C::serve, "threads", &ServeConfig::threads, between(0, 4096),
           "LibTorch intra-op threads for the forward passes; 0 = the machine's cores / serve.workers."),
      make("serve", &C::serve, "http_threads", &ServeConfig::http_threads, between(1, 4096),
           "Connection threads: requests read, encoded and waiting for their scores at once."),
      make("serve", &C::serve, "drain_s", &ServeConfig::drain_s, closed_open(0.0, 86400.0),
           "On SIGTERM or SIGINT: stop accepting, let the requests in flight finish for at most this long, "
           "then exit (0 when they all finished)."),
      make("serve", &C::serve, "device", &ServeConfig::device, any<DeviceKind>(),
           "Where the forward passes run: auto = cuda:0 when CUDA is available (CUDA_VISIBLE_DEVICES picks "
           "the GPU), else the CPU; cuda without a usable GPU is an error."),
  };
}

}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> table = build_fields();
  return table;
}

const Field* find_field(const std::string& section, const std::string& key) {
  for (const auto& f : fields())
    if (f.info.section == section && f.info.key == key) return &f;
  return nullptr;
}

}  // namespace modtrain::config_impl

namespace modtrain {

const char* to_string(Problem v) { return config_impl::enum_name(v); }
const char* to_string(BadRecordPolicy v) { return config_impl::enum_name(v); }
const char* to_string(PreparePolicy v) { return config_impl::enum_name(v); }
const char* to_string(VerifySources v) { return config_impl::enum_name(v); }
const char* to_string(TokenizerType v) { return config_impl::enum_name(v); }
const char* to_string(ModelArch v) { return config_impl::enum_name(v); }
const char* to_string(PositionEmbeddingType v) { return config_impl::enum_name(v); }
const char* to_string(Schedule v) { return config_impl::enum_name(v); }
const char* to_string(Objective v) { return config_impl::enum_name(v); }
BestMetric effective_best_metric(const Config& c) {
  if (c.checkpoint.best_metric != BestMetric::kAuto) return c.checkpoint.best_metric;
  return c.train.objective == Objective::kMlm ? BestMetric::kLoss : BestMetric::kMacroPrAuc;
}
const char* to_string(OptimizerKind v) { return config_impl::enum_name(v); }
const char* to_string(Precision v) { return config_impl::enum_name(v); }
const char* to_string(GradReduceDtype v) { return config_impl::enum_name(v); }
const char* to_string(Backend v) { return config_impl::enum_name(v); }
const char* to_string(DeviceKind v) { return config_impl::enum_name(v); }
const char* to_string(LogLevel v) { return config_impl::enum_name(v); }
const char* to_string(NonFinitePolicy v) { return config_impl::enum_name(v); }
const char* to_string(BestMetric v) { return config_impl::enum_name(v); }

template <class E>
bool from_string(const std::string& text, E& out) {
  for (const auto& [v, name] : config_impl::EnumTable<E>::entries())
    if (text == name) {
      out = v;
      return true;
    }
  return false;
}
template <class E>
std::string enum_names() {
  std::string out;
  for (const auto& [v, name] : config_impl::EnumTable<E>::entries())
    out += (out.empty() ? "" : " | ") + std::string(name);
  return out;
}
#define MT_ENUM_TEXT(E)                                          \
  template bool from_string<E>(const std::string& text, E& out); \
  template std::string enum_names<E>();
MT_ENUM_TEXT(Problem)
MT_ENUM_TEXT(BadRecordPolicy)
MT_ENUM_TEXT(PreparePolicy)
MT_ENUM_TEXT(VerifySources)
MT_ENUM_TEXT(TokenizerType)
MT_ENUM_TEXT(ModelArch)
MT_ENUM_TEXT(PositionEmbeddingType)
MT_ENUM_TEXT(Objective)
MT_ENUM_TEXT(OptimizerKind)
MT_ENUM_TEXT(Schedule)
MT_ENUM_TEXT(Precision)
MT_ENUM_TEXT(GradReduceDtype)
MT_ENUM_TEXT(Backend)
MT_ENUM_TEXT(DeviceKind)
MT_ENUM_TEXT(NonFinitePolicy)
MT_ENUM_TEXT(BestMetric)
MT_ENUM_TEXT(LogLevel)
#undef MT_ENUM_TEXT

std::string to_string(const PosWeight& v) {
  switch (v.kind) {
    case PosWeight::Kind::kNone: return "none";
    case PosWeight::Kind::kAuto: return "auto";
    case PosWeight::Kind::kExplicit: {
      std::vector<std::string> parts;
      for (double d : v.values) parts.push_back(text::format_double(d));
      return "[" + text::join(parts, ", ") + "]";
    }
  }
  return "?";
}

std::string to_string(const ThresholdPolicy& v) {
  switch (v.kind) {
    case ThresholdPolicy::Kind::kMaxF1: return "max_f1";
    case ThresholdPolicy::Kind::kPrecisionAt: return "precision_at:" + text::format_double(v.value);
    case ThresholdPolicy::Kind::kRecallAt: return "recall_at:" + text::format_double(v.value);
    case ThresholdPolicy::Kind::kFixed: return "fixed:" + text::format_double(v.value);
  }
  return "?";
}

std::string to_string(const ThresholdPolicies& v) {
  if (v.labels.empty()) return to_string(v.all);
  std::string s = "{default: " + to_string(v.all);
  for (const auto& [label, policy] : v.labels) s += ", " + label + ": " + to_string(policy);
  return s + "}";
}

std::vector<FieldInfo> config_fields() {
  std::vector<FieldInfo> out;
  for (const auto& f : config_impl::fields()) out.push_back(f.info);
  return out;
}

std::vector<std::string> config_sections() {
  std::vector<std::string> out;
  for (const auto& f : config_impl::fields())
    if (out.empty() || out.back() != f.info.section) out.push_back(f.info.section);
  return out;
}

std::string config_markdown() {
  std::ostringstream os;
  os << "# Configuration reference\n\n"
     << "Generated by `modtrain config doc` from the schema in `src/config/schema.cpp`; do not edit by hand.\n\n"
     << "Priority, lowest to highest: built-in defaults < the `extends:` chain (paths relative to the\n"
     << "including file) < the file given with `--config` < `--set section.key=value` (repeatable; the\n"
     << "value is YAML: `--set data.labels=[hate,spam]`). Unknown keys, wrong types and out-of-range\n"
     << "values are errors naming file:line:column. Lists replace, they do not merge.\n";
  std::string section;
  for (const auto& f : config_fields()) {
    if (f.section != section) {
      section = f.section;
      os << "\n## `" << section << "`\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    }
    std::string type = f.type;
    for (size_t p = 0; (p = type.find('|', p)) != std::string::npos; p += 2) type.replace(p, 1, "\\|");
    os << "| `" << f.dotted() << "` | " << type << " | `" << f.default_value << "` | " << f.range << " | " << f.doc
       << " |\n";
  }
  return os.str();
}

}  // namespace modtrain
