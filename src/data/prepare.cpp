#include "modtrain/data/prepare.h"

#include <sys/stat.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/core/fault.h"
#include "modtrain/core/log.h"
#include "modtrain/core/parallel.h"
#include "modtrain/core/text.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/io/files.h"

namespace modtrain {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kBatchUnits = 8192;  // raw records handed to the workers at a time

struct Processed {
  bool ok = false;
  bool blank = false;
  bool truncated = false;
  size_t utf8_repairs = 0;
  std::string reason;
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;
  std::vector<uint8_t> subgroups;
  std::vector<std::string> slices;
  std::vector<uint8_t> slice_present;
};

class Progress {
 public:
  explicit Progress(bool enabled)
      : enabled_(enabled && ::isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}
  void update(const std::string& split, size_t file, size_t files, uint64_t records, uint64_t bytes) {
    if (!enabled_) return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "\rprepare %s: file %zu/%zu, %llu records, %.1f MB/s   ", split.c_str(), file, files,
                 static_cast<unsigned long long>(records), s > 0 ? bytes / s / 1e6 : 0.0);
    std::fflush(stderr);
  }
  void done() {
    if (enabled_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

// What identifies a raw file's content cheaply: its absolute path, size and modification time.
struct SourceStamp {
  std::string path;
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;
};
SourceStamp stamp_of(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw UserError("cannot stat " + file + ": " + std::strerror(errno));
  SourceStamp s;
  s.path = fs::weakly_canonical(fs::absolute(file)).string();
  s.bytes = static_cast<uint64_t>(st.st_size);
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

struct Preparer {
  const Config& config;
  const Tokenizer& tokenizer;
  ShardSchema schema;
  int threads;
  std::string skip_hint;
  std::ofstream rejected;
  std::string rejected_path;
  Progress progress;
  uint64_t bytes_done = 0;

  void process(const RawShardReader& reader, const std::vector<RawUnit>& units, std::vector<Processed>& out) const {
    out.assign(units.size(), Processed{});
    auto work = [&](size_t begin, size_t end) {
      std::string normalized;
      RawRecord record;
      for (size_t i = begin; i < end; ++i) {
        Processed& p = out[i];
        if (units[i].blank) {
          p.blank = true;
          continue;
        }
        p.ok = reader.decode(units[i], record, p.reason);
        if (!p.ok) continue;
        p.utf8_repairs = record.utf8_repairs;
        std::string_view text = record.text;
        if (config.tokenizer.normalize_tweets) {
          normalize_tweet(text, normalized);
          text = normalized;
        }
        p.truncated = tokenizer.encode(text, p.ids, static_cast<size_t>(config.data.max_len));
        p.labels = std::move(record.labels);
        p.subgroups = std::move(record.subgroups);
        p.slices = std::move(record.slices);
        p.slice_present = std::move(record.slice_present);
      }
    };
    size_t n = units.size(), per = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
    run_parallel(threads, [&](int t) {  // an exception in a worker reaches this thread
      fault::point("prepare-worker");
      size_t b = std::min(n, per * static_cast<size_t>(t)), e = std::min(n, b + per);
      if (b < e) work(b, e);
    });
  }

  void reject(const std::string& file, const RawUnit& unit, const std::string& reason) {
    if (config.data.on_bad_record == BadRecordPolicy::kFail) {
      throw UserError(file + ":" + std::to_string(unit.line) + ": " + reason + " (" + skip_hint + ")");
    }
    rejected << json{{"file", file}, {"line", unit.line}, {"reason", reason}, {"record", unit.source}}.dump(
                    -1, ' ', false, json::error_handler_t::replace)
             << "\n";
  }

  ShardEntry prepare_file(const std::string& source, const std::string& out_path, const std::string& split,
                          size_t index, size_t count) {
    LabelSpec spec{config.data.labels,    config.data.problem,  config.data.soft_labels,
                   config.data.subgroups, config.eval.slice_by, config.eval.positive_at};
    RawShardReader reader(source, spec, /*labels_required=*/!spec.names.empty(),  // []: unlabelled text (mlm)
                          static_cast<uint64_t>(config.data.max_record_bytes));
    for (const auto& w : reader.warnings()) log::warn(w);
    ShardWriter writer(out_path, schema);
    ShardEntry entry;
    entry.file = fs::path(out_path).filename().string();
    entry.source = source;
    const SourceStamp stamp = stamp_of(source);  // before reading: a file that grows meanwhile reads as stale
    entry.source_path = stamp.path;
    entry.source_bytes = stamp.bytes;
    entry.source_mtime_ns = stamp.mtime_ns;
    if (config.data.verify_sources == VerifySources::kHash) entry.source_sha256 = io::sha256_file(source);
    entry.subgroup_missing.assign(spec.subgroups.size(), 0);
    entry.slice_missing.assign(spec.slice_by.size(), 0);
    std::vector<RawUnit> units;
    std::vector<Processed> results;
    std::vector<int32_t> template_only;
    tokenizer.encode("", template_only);
    const size_t template_ids = template_only.size();  // [CLS] [SEP], <s> </s> or none
    bool more = true;
    while (more) {
      units.clear();
      RawUnit unit;
      while (units.size() < kBatchUnits && (more = reader.next(unit))) units.push_back(std::move(unit));
      process(reader, units, results);
      for (size_t i = 0; i < units.size(); ++i) {
        const Processed& p = results[i];
        bytes_done += units[i].source.size() + 1;
        if (p.blank) {
          ++entry.blank;
          continue;
        }
        ++entry.input_records;
        if (!p.ok) {
          ++entry.rejected;
          reject(source, units[i], p.reason);
          continue;
        }
        entry.truncated += p.truncated;
        entry.utf8_repaired += p.utf8_repairs > 0;
        entry.empty_tokens += p.ids.size() <= template_ids;  // nothing but the special tokens
        for (size_t g = 0; g < p.subgroups.size(); ++g)
          entry.subgroup_missing[g] += p.subgroups[g] == kLabelUnannotated;
        for (size_t f = 0; f < p.slice_present.size(); ++f) entry.slice_missing[f] += !p.slice_present[f];
        writer.add(p.ids, p.labels.data(), units[i].line, p.subgroups.data(), p.slices, p.slice_present);
      }
      progress.update(split, index + 1, count, writer.records(), bytes_done);
    }
    entry.records = writer.records();
    entry.tokens = writer.tokens();
    if (reader.format() == RawFormat::kJsonl && entry.records > 0) {  // CSV/TSV: the header check warned already
      for (size_t g = 0; g < spec.subgroups.size(); ++g)
        if (entry.subgroup_missing[g] == entry.records)
          log::warn(source + ": no record has a value for subgroup " + spec.subgroups[g] +
                    " (data.subgroups): it counts as not mentioned in this file");
      for (size_t f = 0; f < spec.slice_by.size(); ++f)
        if (entry.slice_missing[f] == entry.records)
          log::warn(source + ": no record has slice field " + spec.slice_by[f] +
                    " (eval.slice_by): its records count as having no value");
    }
    writer.finish();
    entry.bytes = writer.bytes();
    entry.checksum = text::hex64(writer.checksum());
    return entry;
  }
};

}  // namespace

std::string PrepareReport::summary() const {
  std::string out;
  for (const auto& [name, split] : manifest.splits) {
    uint64_t blank = 0, truncated = 0, repaired = 0, tokens = 0, empty = 0;
    for (const auto& s : split.shards) {
      blank += s.blank;
      empty += s.empty_tokens;
      truncated += s.truncated;
      repaired += s.utf8_repaired;
      tokens += s.tokens;
    }
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s: %llu input records = %llu kept + %llu rejected (%zu shard%s; %llu blank lines skipped; "
                  "%llu truncated to max_len; %llu with invalid UTF-8 repaired; %llu tokens)\n",
                  name.c_str(), static_cast<unsigned long long>(split.input_records()),
                  static_cast<unsigned long long>(split.records()), static_cast<unsigned long long>(split.rejected()),
                  split.shards.size(), split.shards.size() == 1 ? "" : "s", static_cast<unsigned long long>(blank),
                  static_cast<unsigned long long>(truncated), static_cast<unsigned long long>(repaired),
                  static_cast<unsigned long long>(tokens));
    out += line;
    if (empty > 0)  // a zero-width space, a BEL, U+FFFD alone: kept, but nothing for the model to read
      out += "  " + name + ": " + std::to_string(empty) + " kept record(s) tokenize to no tokens at all (only the " +
             "special tokens; e.g. a post of invisible or control characters)\n";
    // Per subgroup / slice field: kept records without a value (shards list one count per name).
    auto missing_lines = [&](const std::vector<std::string>& names, std::vector<uint64_t> ShardEntry::*counts,
                             const std::string& what, const std::string& verb, const std::string& consequence) {
      for (size_t k = 0; k < names.size(); ++k) {
        uint64_t missing = 0;
        for (const auto& s : split.shards) missing += k < (s.*counts).size() ? (s.*counts)[k] : 0;
        if (missing > 0)
          out += "  " + name + ": " + what + " " + names[k] + " " + verb + " " + std::to_string(missing) + " of " +
                 std::to_string(split.records()) + " kept records (" + consequence + ")\n";
      }
    };
    missing_lines(manifest.subgroups, &ShardEntry::subgroup_missing, "subgroup", "has no value in",
                  "counted as not mentioned");
    missing_lines(manifest.slice_by, &ShardEntry::slice_missing, "slice field", "is absent in",
                  "their own slice, \"(none)\"");
  }
  return out;
}

PrepareReport prepare_data(const Config& config, const PrepareOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const std::string dir = config.data.prepared_dir;
  const std::unique_ptr<Tokenizer> loaded = load_tokenizer(config.tokenizer);
  const Tokenizer& tokenizer = *loaded;

  Manifest m;
  m.vocab_path = config.tokenizer.vocab;
  m.vocab_sha256 = find_tokenizer_files(config.tokenizer.vocab).fingerprint();
  m.vocab_type = tokenizer.type();
  m.vocab_size = tokenizer.vocab_size();
  m.labels = config.data.labels;
  m.problem = to_string(config.data.problem);
  m.max_len = static_cast<uint32_t>(config.data.max_len);
  m.lowercase = config.tokenizer.lowercase;
  m.normalize_tweets = config.tokenizer.normalize_tweets;
  m.token_bytes = tokenizer.vocab_size() <= 65536 ? 2 : 4;
  m.tweet_normalizer_version = kTweetNormalizerVersion;
  m.soft_labels = config.data.soft_labels;
  m.positive_at = config.eval.positive_at;
  m.max_record_bytes = static_cast<uint64_t>(config.data.max_record_bytes);
  m.subgroups = config.data.subgroups;
  m.slice_by = config.eval.slice_by;
  m.created_by = std::string("modtrain ") + build_version() + " (" + build_commit() + ")";

  std::vector<std::pair<std::string, std::vector<std::string>>> splits = {
      {"train", expand_globs(config.data.train, "data.train")}};
  if (!config.data.valid.empty()) splits.emplace_back("valid", expand_globs(config.data.valid, "data.valid"));

  fs::create_directories(dir);
  for (const auto& [name, files] : splits)  // its outputs replace files there: never the inputs
    for (const auto& file : files)
      if (io::same_file(fs::path(file).parent_path().empty() ? "." : fs::path(file).parent_path().string(), dir))
        throw UserError("data." + name + " file " + file + " is inside data.prepared_dir " + dir +
                        ", whose files `data prepare` replaces; keep the raw data in another directory");
  fs::remove(fs::path(dir) / "manifest.json");             // stale until the new one is complete
  for (const auto& entry : fs::directory_iterator(dir)) {  // shards of an earlier, larger preparation
    std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".bin" && (name.rfind("train-", 0) == 0 || name.rfind("valid-", 0) == 0))
      fs::remove(entry.path());
  }
  Preparer p{
      config,
      tokenizer,
      m.schema(),
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())),
      options.skip_hint,
      {},
      (fs::path(dir) / "rejected.jsonl").string(),
      Progress(options.progress)};
  fs::remove(p.rejected_path);
  if (config.data.on_bad_record == BadRecordPolicy::kSkip) p.rejected.open(p.rejected_path);

  for (const auto& [name, files] : splits) {
    SplitEntry split;
    split.patterns = name == "train" ? config.data.train : config.data.valid;
    for (size_t i = 0; i < files.size(); ++i) {
      char file[64];
      std::snprintf(file, sizeof file, "%s-%05zu.bin", name.c_str(), i);
      split.shards.push_back(p.prepare_file(files[i], (fs::path(dir) / file).string(), name, i, files.size()));
    }
    m.splits[name] = split;
  }
  p.progress.done();
  if (p.rejected.is_open()) {
    p.rejected.close();
    if (!p.rejected) throw UserError("cannot write " + p.rejected_path + " (disk full?)", kExitRuntime);
  }
  io::write_file_atomic((fs::path(dir) / "manifest.json").string(), m.to_json());
  PrepareReport report;
  report.manifest = m;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string prepared_data_stale(const Config& config) {
  const fs::path dir = config.data.prepared_dir;
  if (!fs::exists(dir / "manifest.json")) return "there is no " + (dir / "manifest.json").string() + " yet";
  const Manifest m = Manifest::load(dir.string());
  if (m.version < kManifestVersion)
    return "its manifest (version " + std::to_string(m.version) + ") does not record what it was made from";
  // The settings that shape the shards.
  if (m.labels != config.data.labels)
    return "data.labels is [" + text::join(config.data.labels, ", ") + "], it was prepared for [" +
           text::join(m.labels, ", ") + "]";
  if (m.problem != to_string(config.data.problem))
    return "data.problem is " + std::string(to_string(config.data.problem)) + ", it was prepared as " + m.problem;
  if (m.max_len != static_cast<uint32_t>(config.data.max_len))
    return "data.max_len is " + std::to_string(config.data.max_len) + ", it was prepared with " +
           std::to_string(m.max_len);
  if (m.lowercase != config.tokenizer.lowercase || m.normalize_tweets != config.tokenizer.normalize_tweets)
    return "tokenizer.lowercase / tokenizer.normalize_tweets changed";
  if (m.normalize_tweets && m.tweet_normalizer_version != kTweetNormalizerVersion)
    return "it was normalised with tweet normaliser version " + std::to_string(m.tweet_normalizer_version) +
           ", this modtrain's is version " + std::to_string(kTweetNormalizerVersion) +
           " (character references: a bounded set that exported tokenizers reproduce)";
  if (m.soft_labels != config.data.soft_labels)
    return std::string("data.soft_labels is ") + (config.data.soft_labels ? "true" : "false") + ", it was prepared " +
           (m.soft_labels ? "with" : "without") + " soft labels";
  if (m.soft_labels && m.positive_at != config.eval.positive_at)
    return "eval.positive_at is " + text::format_double(config.eval.positive_at) +
           ", the soft labels were stored for " + text::format_double(m.positive_at);
  if (m.max_record_bytes != static_cast<uint64_t>(config.data.max_record_bytes))
    return "data.max_record_bytes is " + std::to_string(config.data.max_record_bytes) + ", it was prepared with " +
           std::to_string(m.max_record_bytes);
  if (m.subgroups != config.data.subgroups)
    return "data.subgroups is [" + text::join(config.data.subgroups, ", ") + "], it was prepared with [" +
           text::join(m.subgroups, ", ") + "]";
  if (m.slice_by != config.eval.slice_by)
    return "eval.slice_by is [" + text::join(config.eval.slice_by, ", ") + "], it was prepared with [" +
           text::join(m.slice_by, ", ") + "]";
  if (!fs::exists(config.tokenizer.vocab)) return "";  // the trainer says tokenizer.vocab is missing
  if (find_tokenizer_files(config.tokenizer.vocab).fingerprint() != m.vocab_sha256)
    return "tokenizer.vocab " + config.tokenizer.vocab + " is not the tokenizer it was prepared with";
  // The sources: the same files (what the patterns match now), unchanged since.
  std::vector<std::pair<std::string, std::vector<std::string>>> splits = {{"train", config.data.train}};
  if (!config.data.valid.empty()) splits.emplace_back("valid", config.data.valid);
  if (m.splits.count("valid") && config.data.valid.empty()) return "data.valid is now empty";
  for (const auto& [name, patterns] : splits) {
    auto it = m.splits.find(name);
    if (it == m.splits.end()) return "it has no " + name + " split (data." + name + " was empty then)";
    const std::vector<std::string> files = expand_globs(patterns, "data." + name);  // matching nothing is an error
    const std::vector<ShardEntry>& shards = it->second.shards;
    if (files.size() != shards.size())
      return "data." + name + " matches " + std::to_string(files.size()) + " file(s) now, it was prepared from " +
             std::to_string(shards.size());
    for (size_t i = 0; i < files.size(); ++i) {
      const SourceStamp now = stamp_of(files[i]);
      const ShardEntry& e = shards[i];
      if (now.path != e.source_path)
        return "data." + name + " file " + std::to_string(i + 1) + " is " + now.path + ", it was " + e.source_path;
      if (now.bytes != e.source_bytes || now.mtime_ns != e.source_mtime_ns)
        return files[i] + " changed since it was prepared (" + std::to_string(e.source_bytes) + " -> " +
               std::to_string(now.bytes) + " bytes" + (now.mtime_ns != e.source_mtime_ns ? ", modified" : "") + ")";
      if (config.data.verify_sources == VerifySources::kHash) {  // what size and mtime cannot tell
        if (e.source_sha256.empty())
          return files[i] + " was prepared without a content hash (data.verify_sources: stat)";
        if (io::sha256_file(files[i]) != e.source_sha256)
          return files[i] +
                 "'s content changed since it was prepared (same size and modification time, another "
                 "SHA-256)";
      }
      std::error_code ec;
      const uint64_t shard_bytes = fs::file_size(dir / e.file, ec);
      if (ec || shard_bytes != e.bytes)
        return (dir / e.file).string() + (ec ? " is missing" : " has another size than the manifest says");
    }
  }
  return "";
}

}  // namespace modtrain
