#include "modtrain/data/prepare.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/wordpiece.h"
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

struct Preparer {
  const Config& config;
  const WordPieceTokenizer& tokenizer;
  ShardSchema schema;
  int threads;
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
      }
    };
    size_t n = units.size(), per = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) {
      size_t b = std::min(n, per * static_cast<size_t>(t)), e = std::min(n, b + per);
      if (b < e) pool.emplace_back(work, b, e);
    }
    work(0, std::min(n, per));
    for (auto& th : pool) th.join();
  }

  void reject(const std::string& file, const RawUnit& unit, const std::string& reason) {
    if (config.data.on_bad_record == BadRecordPolicy::kFail) {
      throw UserError(file + ":" + std::to_string(unit.line) + ": " + reason +
                      " (set data.on_bad_record=skip to write such records to rejected.jsonl and go on)");
    }
    rejected << json{{"file", file}, {"line", unit.line}, {"reason", reason}, {"record", unit.source}}.dump(
                    -1, ' ', false, json::error_handler_t::replace)
             << "\n";
  }

  ShardEntry prepare_file(const std::string& source, const std::string& out_path, const std::string& split,
                          size_t index, size_t count) {
    LabelSpec spec{config.data.labels, config.data.problem};
    RawShardReader reader(source, spec);
    for (const auto& w : reader.warnings()) log::warn(w);
    ShardWriter writer(out_path, schema);
    ShardEntry entry;
    entry.file = fs::path(out_path).filename().string();
    entry.source = source;
    entry.source_bytes = fs::file_size(source);
    std::vector<RawUnit> units;
    std::vector<Processed> results;
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
        writer.add(p.ids, p.labels.data(), units[i].line);
      }
      progress.update(split, index + 1, count, writer.records(), bytes_done);
    }
    entry.records = writer.records();
    entry.tokens = writer.tokens();
    writer.finish();
    return entry;
  }
};

}  // namespace

std::string PrepareReport::summary() const {
  std::string out;
  for (const auto& [name, split] : manifest.splits) {
    uint64_t blank = 0, truncated = 0, repaired = 0, tokens = 0;
    for (const auto& s : split.shards) {
      blank += s.blank;
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
  }
  return out;
}

PrepareReport prepare_data(const Config& config, const PrepareOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const std::string dir = config.data.prepared_dir;
  auto vocab = std::make_shared<Vocab>(Vocab::load(config.tokenizer.vocab));
  WordPieceTokenizer tokenizer(vocab, {config.tokenizer.lowercase, 100});

  Manifest m;
  m.vocab_path = config.tokenizer.vocab;
  m.vocab_sha256 = io::sha256_file(config.tokenizer.vocab);
  m.vocab_size = vocab->size();
  m.labels = config.data.labels;
  m.problem = to_string(config.data.problem);
  m.max_len = static_cast<uint32_t>(config.data.max_len);
  m.lowercase = config.tokenizer.lowercase;
  m.normalize_tweets = config.tokenizer.normalize_tweets;
  m.token_bytes = vocab->size() <= 65536 ? 2 : 4;
  m.created_by = std::string("modtrain ") + build_version() + " (" + build_commit() + ")";

  std::vector<std::pair<std::string, std::vector<std::string>>> splits = {
      {"train", expand_globs(config.data.train, "data.train")}};
  if (!config.data.valid.empty()) splits.emplace_back("valid", expand_globs(config.data.valid, "data.valid"));

  fs::create_directories(dir);
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
      {},
      (fs::path(dir) / "rejected.jsonl").string(),
      Progress(options.progress)};
  fs::remove(p.rejected_path);
  if (config.data.on_bad_record == BadRecordPolicy::kSkip) p.rejected.open(p.rejected_path);

  for (const auto& [name, files] : splits) {
    SplitEntry split;
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

}  // namespace modtrain
