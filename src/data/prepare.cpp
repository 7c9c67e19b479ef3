#include "modtrain/data/prepare.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "modtrain/core/build_info.h"
#include "modtrain/core/check.h"
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

// A part of a raw file that becomes one shard: the file whole, or (a line format, data.shard_bytes
// > 0) the lines between two cut points. The list depends on the files alone, so every rank
// computes the same one, and a shard's bytes do not depend on how many ranks prepared.
struct Chunk {
  std::string split;   // "train" or "valid"
  size_t file = 0;     // the file's index in its split
  std::string source;  // as the pattern matched it
  SourceStamp stamp;
  ByteRange range;  // first_line is known after the line count
  bool last_of_file = true;
  std::string shard;  // "train-00000.bin": by the chunk's position in its split
};

// The byte offset just after the first '\n' at or after `from` (`size` when there is none).
uint64_t next_line_start(int fd, const std::string& path, uint64_t from, uint64_t size) {
  char buffer[1 << 16];
  for (uint64_t at = from; at < size;) {
    const ssize_t got = ::pread(fd, buffer, sizeof buffer, static_cast<off_t>(at));
    if (got < 0) throw UserError("cannot read " + path + ": " + std::strerror(errno));
    if (got == 0) break;  // the file shrank: the staleness stamps tell later
    if (const void* nl = std::memchr(buffer, '\n', static_cast<size_t>(got)))
      return at + static_cast<uint64_t>(static_cast<const char*>(nl) - buffer) + 1;
    at += static_cast<uint64_t>(got);
  }
  return size;
}

// Newlines in [begin, end) of a file: how many lines a chunk holds (its successor's first line).
uint64_t count_lines(const std::string& path, uint64_t begin, uint64_t end) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError("cannot read " + path + ": " + std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  uint64_t lines = 0;
  for (uint64_t at = begin; at < end;) {
    const ssize_t got = ::pread(fd, buffer.data(), std::min<uint64_t>(buffer.size(), end - at), static_cast<off_t>(at));
    if (got <= 0) {
      const std::string why = got < 0 ? std::strerror(errno) : "it ended early (changed while being prepared?)";
      ::close(fd);
      throw UserError("cannot read " + path + ": " + why);
    }
    lines += static_cast<uint64_t>(std::count(buffer.data(), buffer.data() + got, '\n'));
    at += static_cast<uint64_t>(got);
  }
  ::close(fd);
  return lines;
}

std::vector<Chunk> plan_chunks(const std::string& split, const std::vector<std::string>& files, uint64_t cap) {
  std::vector<Chunk> chunks;
  for (size_t f = 0; f < files.size(); ++f) {
    const SourceStamp stamp = stamp_of(files[f]);
    std::vector<uint64_t> cuts = {0};
    if (cap > 0 && stamp.bytes > cap && splits_at_lines(files[f])) {
      const int fd = ::open(files[f].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw UserError("cannot read " + files[f] + ": " + std::strerror(errno));
      for (uint64_t k = 1; k * cap < stamp.bytes; ++k) {
        const uint64_t cut = next_line_start(fd, files[f], k * cap - 1, stamp.bytes);
        if (cut < stamp.bytes && cut > cuts.back()) cuts.push_back(cut);  // a line longer than cap: one cut fewer
      }
      ::close(fd);
    }
    for (size_t c = 0; c < cuts.size(); ++c) {
      Chunk chunk;
      chunk.split = split, chunk.file = f, chunk.source = files[f], chunk.stamp = stamp;
      chunk.range.begin = cuts[c];
      chunk.range.end = c + 1 < cuts.size() ? cuts[c + 1] : (cuts.size() > 1 ? stamp.bytes : UINT64_MAX);
      chunk.last_of_file = c + 1 == cuts.size();
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05zu.bin", split.c_str(), chunks.size());
      chunk.shard = name;
      chunks.push_back(std::move(chunk));
    }
  }
  return chunks;
}

// One step every rank takes, and its outcome on every rank: what each rank returned (by rank), or
// the first failure (in rank order) thrown on every rank alike, reported once by rank 0. No rank
// is left waiting for one that failed: a failing rank still takes part in the gather.
std::vector<std::string> together(const PrepareGroup& group, const std::string& what,
                                  const std::function<std::string()>& step) {
  if (group.size == 1) return {step()};  // nothing to gather: its error propagates as it is
  std::string mine;
  try {
    mine = "D" + step();
  } catch (const Error& e) {  // UserError, CollectiveError, InternalError (MT_CHECK): keep the exit code
    mine = "E" + std::to_string(e.exit_code()) + " " + e.what();
  } catch (const std::exception& e) {  // a filesystem error, bad_alloc: still reaches the gather
    mine = "E" + std::to_string(kExitRuntime) + " data prepare: " + e.what();
  } catch (...) {
    mine = "E" + std::to_string(kExitRuntime) +
           " internal error: an exception of unknown type (a modtrain bug; please report it with the command line)";
  }
  std::vector<std::string> all = group.all_gather(mine, what);
  for (size_t rank = 0; rank < all.size(); ++rank)
    if (const std::string& r = all[rank]; r.empty() || r[0] != 'D') {
      const size_t space = r.find(' ');
      const std::string where = rank > 0 ? "rank " + std::to_string(rank) + ": " : "";  // rank 0 reports it
      const std::string message = where + (r.empty() ? "sent nothing (" + what + ")" : r.substr(space + 1));
      const int code = r.empty() ? kExitRuntime : std::atoi(r.c_str() + 1);
      if (group.rank == 0) log::error(message);
      throw CollectiveError(message, code, /*already_reported=*/true);
    }
  for (std::string& r : all) r.erase(0, 1);
  return all;
}

// An exclusive flock on DIR/.prepare.lock while one preparation writes DIR (rank 0 holds it).
class PrepareLock {
 public:
  explicit PrepareLock(const std::string& dir) {
    const std::string path = (fs::path(dir) / ".prepare.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw UserError("cannot create " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fd_ = -1;
      throw UserError("another preparation is writing " + dir +
                      " now (`modtrain data prepare`, or `train` preparing its data): wait for it to finish, or "
                      "set data.prepared_dir to another directory");
    }
  }
  ~PrepareLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  PrepareLock(const PrepareLock&) = delete;
  PrepareLock& operator=(const PrepareLock&) = delete;

 private:
  int fd_ = -1;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (end > at) out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// Swaps a complete preparation in: the old manifest goes first (a crash from here on leaves no
// manifest, so the data reads as missing and is prepared again, never as a mix of two), then the
// old shards; the new ones move in (renames within one directory) and the manifest comes last.
void commit(const std::string& dir, const fs::path& staging, const std::vector<Chunk>& chunks, const Manifest& m) {
  const fs::path d(dir);
  fs::remove(d / "manifest.json");
  for (const auto& entry : fs::directory_iterator(d)) {  // shards of an earlier, larger preparation
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".bin" && (name.rfind("train-", 0) == 0 || name.rfind("valid-", 0) == 0))
      fs::remove(entry.path());
  }
  fs::remove(d / "rejected.jsonl");
  for (const Chunk& c : chunks) fs::rename(staging / c.shard, d / c.shard);
  if (fs::exists(staging / "rejected.jsonl")) fs::rename(staging / "rejected.jsonl", d / "rejected.jsonl");
  fault::point("prepare-commit");
  io::write_file_atomic((d / "manifest.json").string(), m.to_json());
  fs::remove_all(staging);
}

struct Preparer {
  const Config& config;
  const Tokenizer& tokenizer;
  ShardSchema schema;
  int threads;
  std::string skip_hint;
  std::ofstream rejected;     // this chunk's rejected records (data.on_bad_record: skip), opened at the first
  std::string rejected_path;  // where the current chunk's go
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
    if (!rejected.is_open()) {
      rejected.open(rejected_path, std::ios::binary | std::ios::trunc);
      if (!rejected) throw UserError("cannot write " + rejected_path + ": " + std::strerror(errno), kExitRuntime);
    }
    rejected << json{{"file", file}, {"line", unit.line}, {"reason", reason}, {"record", unit.source}}.dump(
                    -1, ' ', false, json::error_handler_t::replace)
             << "\n";
  }

  // One chunk of a raw file -> one shard at `out_path` (and its rejected records at rejected_path).
  ShardEntry prepare_chunk(const Chunk& chunk, const std::string& out_path, size_t index, size_t count) {
    const std::string& source = chunk.source;
    LabelSpec spec{config.data.labels,    config.data.problem,  config.data.soft_labels,
                   config.data.subgroups, config.eval.slice_by, config.eval.positive_at};
    RawShardReader reader(source, spec, /*labels_required=*/!spec.names.empty(),  // []: unlabelled text (mlm)
                          static_cast<uint64_t>(config.data.max_record_bytes), chunk.range);
    if (chunk.range.begin == 0)
      for (const auto& w : reader.warnings()) log::warn(w);
    ShardWriter writer(out_path, schema);
    ShardEntry entry;
    entry.file = fs::path(out_path).filename().string();
    entry.source = source;
    entry.source_path = chunk.stamp.path;  // stamped before reading: a file that grows meanwhile reads as stale
    entry.source_bytes = chunk.stamp.bytes;
    entry.source_mtime_ns = chunk.stamp.mtime_ns;
    entry.source_begin = chunk.range.begin;
    entry.source_end = std::min(chunk.range.end, chunk.stamp.bytes);
    entry.source_first_line = chunk.range.first_line;
    // The content hash once per file, on its first chunk's entry (the staleness check reads it there).
    if (config.data.verify_sources == VerifySources::kHash && chunk.range.begin == 0)
      entry.source_sha256 = io::sha256_file(source);
    entry.subgroup_missing.assign(spec.subgroups.size(), 0);
    entry.slice_missing.assign(spec.slice_by.size(), 0);
    entry.label_sums.assign(spec.names.size(), 0);
    entry.label_annotated.assign(spec.names.size(), 0);
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
        for (size_t l = 0; l < p.labels.size() && l < entry.label_sums.size(); ++l)
          if (p.labels[l] != kLabelUnannotated) entry.label_sums[l] += p.labels[l], ++entry.label_annotated[l];
        writer.add(p.ids, p.labels.data(), units[i].line, p.subgroups.data(), p.slices, p.slice_present);
      }
      progress.update(chunk.split, index + 1, count, writer.records(), bytes_done);
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
    if (rejected.is_open()) {
      rejected.close();
      if (!rejected) throw UserError("cannot write " + rejected_path + " (disk full?)", kExitRuntime);
    }
    return entry;
  }
};

// The manifest's header: what the shards were prepared with.
Manifest manifest_header(const Config& config, const Tokenizer& tokenizer, const std::string& vocab_sha256) {
  Manifest m;
  m.vocab_sha256 = vocab_sha256;
  m.vocab_path = config.tokenizer.vocab;
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
  m.shard_bytes = static_cast<uint64_t>(config.data.shard_bytes);
  m.subgroups = config.data.subgroups;
  m.slice_by = config.eval.slice_by;
  m.created_by = std::string("modtrain ") + build_version() + " (" + build_commit() + ")";
  return m;
}

// Step 1: every rank lists the same chunks, or the ranks see different inputs (one line, exit 2).
std::vector<Chunk> plan_on_every_rank(const Config& config, const PrepareGroup& group) {
  const std::string& dir = config.data.prepared_dir;
  const bool root = group.rank == 0;
  std::vector<Chunk> chunks;
  together(group, "data prepare: the raw files", [&] {
    std::vector<std::pair<std::string, std::vector<std::string>>> splits = {
        {"train", expand_globs(config.data.train, "data.train")}};
    if (!config.data.valid.empty()) splits.emplace_back("valid", expand_globs(config.data.valid, "data.valid"));
    for (const auto& [name, files] : splits)  // its outputs replace files there: never the inputs
      for (const auto& file : files)
        if (io::same_file(fs::path(file).parent_path().empty() ? "." : fs::path(file).parent_path().string(), dir))
          throw UserError("data." + name + " file " + file + " is inside data.prepared_dir " + dir +
                          ", whose files `data prepare` replaces; keep the raw data in another directory");
    for (const auto& [name, files] : splits) {
      auto part = plan_chunks(name, files, static_cast<uint64_t>(config.data.shard_bytes));
      chunks.insert(chunks.end(), part.begin(), part.end());
    }
    return std::string();
  });
  {
    std::string mine;  // what this rank sees: every file's path, size and modification time, every cut
    for (const Chunk& c : chunks)
      mine += c.stamp.path + " " + std::to_string(c.stamp.bytes) + " " + std::to_string(c.stamp.mtime_ns) + " " +
              std::to_string(c.range.begin) + "\n";
    const auto seen = together(group, "data prepare: the raw files each rank sees", [&] { return mine; });
    for (size_t r = 1; r < seen.size(); ++r)
      if (seen[r] != seen[0]) {
        const auto a = lines_of(seen[0]), b = lines_of(seen[r]);
        size_t i = 0;
        while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
        const std::string message =
            "data prepare: rank " + std::to_string(r) +
            " sees other raw files than rank 0 (rank 0: " + (i < a.size() ? a[i] : "nothing more") + "; rank " +
            std::to_string(r) + ": " + (i < b.size() ? b[i] : "nothing more") +
            " (path, bytes, mtime_ns, chunk start)); give every rank the same files, on storage they all see";
        if (root) log::error(message);
        throw CollectiveError(message, kExitUsage, /*already_reported=*/true);
      }
  }
  return chunks;
}

// Which rank prepares each chunk: the largest first, each to the rank with the fewest bytes so far
// (ties: the lower rank). Computed alike on every rank; round robin by index would give one rank
// every file's large first chunk when each file has a small tail.
std::vector<int> assign_chunks(const std::vector<Chunk>& chunks, int ranks) {
  auto size_of = [](const Chunk& c) { return std::min(c.range.end, c.stamp.bytes) - c.range.begin; };
  std::vector<size_t> order(chunks.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return size_of(chunks[a]) > size_of(chunks[b]); });
  std::vector<uint64_t> load(static_cast<size_t>(ranks), 0);
  std::vector<int> owner(chunks.size(), 0);
  for (size_t j : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[j] = static_cast<int>(r);
    load[r] += size_of(chunks[j]) + 1;  // + 1: empty files spread too
  }
  return owner;
}

// Step 3: where each chunk starts, from the line counts of the chunks before it in its file.
void number_lines(std::vector<Chunk>& chunks, const PrepareGroup& group, const std::function<bool(size_t)>& ours) {
  {
    const auto counts = together(group, "data prepare: line counts", [&] {
      std::string out;
      for (size_t j = 0; j < chunks.size(); ++j)
        if (ours(j) && !chunks[j].last_of_file)
          out += std::to_string(j) + " " +
                 std::to_string(count_lines(chunks[j].source, chunks[j].range.begin, chunks[j].range.end)) + "\n";
      return out;
    });
    std::vector<uint64_t> lines(chunks.size(), 0);
    for (const std::string& text : counts)
      for (const std::string& line : lines_of(text)) {
        if (line.empty()) continue;
        const size_t space = line.find(' ');
        lines.at(std::stoull(line.substr(0, space))) = std::stoull(line.substr(space + 1));
      }
    for (size_t j = 1; j < chunks.size(); ++j)
      if (chunks[j].range.begin > 0) chunks[j].range.first_line = chunks[j - 1].range.first_line + lines[j - 1];
  }
}

// Step 4: this rank's chunks into the staging directory; their manifest entries as "CHUNK JSON" lines.
std::string prepare_ours(Preparer& p, const std::vector<Chunk>& chunks, const fs::path& staging,
                         const std::function<bool(size_t)>& ours) {
  std::string out;
  size_t done = 0, count = 0;
  for (size_t j = 0; j < chunks.size(); ++j) count += ours(j);
  for (size_t j = 0; j < chunks.size(); ++j) {
    if (!ours(j)) continue;
    fault::point("prepare-chunk");
    p.rejected_path = (staging / ("rejected-" + chunks[j].shard + ".jsonl")).string();
    const ShardEntry e = p.prepare_chunk(chunks[j], (staging / chunks[j].shard).string(), done++, count);
    out += std::to_string(j) + " " + e.to_json() + "\n";
  }
  return out;
}

// Step 5 (rank 0): the manifest from every rank's entries, rejected.jsonl in chunk order, the swap.
void assemble_and_commit(const Config& config, const std::vector<Chunk>& chunks,
                         const std::vector<std::string>& entries, const fs::path& staging, Manifest& m) {
  std::vector<ShardEntry> by_chunk(chunks.size());
  std::vector<bool> have(chunks.size(), false);
  for (const std::string& text : entries)
    for (const std::string& line : lines_of(text)) {
      if (line.empty()) continue;
      const size_t space = line.find(' ');
      const size_t j = std::stoull(line.substr(0, space));
      by_chunk.at(j) =
          ShardEntry::from_json(json::parse(line.substr(space + 1)), m.subgroups.size(), m.slice_by.size());
      have[j] = true;
    }
  for (size_t j = 0; j < chunks.size(); ++j) {
    MT_CHECK(have[j], "data prepare: no rank reported chunk " << j << " (" << chunks[j].shard << ")");
    SplitEntry& split = m.splits[chunks[j].split];
    split.patterns = chunks[j].split == "train" ? config.data.train : config.data.valid;
    split.shards.push_back(by_chunk[j]);
  }
  // rejected.jsonl: every chunk's rejected records, in chunk order (as one process writes them).
  if (config.data.on_bad_record == BadRecordPolicy::kSkip) {
    std::ofstream all(staging / "rejected.jsonl", std::ios::binary | std::ios::trunc);
    for (const Chunk& c : chunks) {
      const fs::path part = staging / ("rejected-" + c.shard + ".jsonl");
      if (!fs::exists(part)) continue;
      all << io::read_file(part.string());
      fs::remove(part);
    }
    all.close();
    if (!all) throw UserError("cannot write " + (staging / "rejected.jsonl").string() + " (disk full?)", kExitRuntime);
  }
  commit(config.data.prepared_dir, staging, chunks, m);
}

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

PrepareReport prepare_data(const Config& config, const PrepareOptions& options, const PrepareGroup& group) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = config.data.prepared_dir;
  const bool root = group.rank == 0;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string vocab_sha256;
  together(group, "data prepare: the tokenizer", [&] {
    tokenizer = load_tokenizer(config.tokenizer);
    vocab_sha256 = find_tokenizer_files(config.tokenizer.vocab).fingerprint();
    return std::string();
  });
  Manifest m = manifest_header(config, *tokenizer, vocab_sha256);
  std::vector<Chunk> chunks = plan_on_every_rank(config, group);  // 1.
  const std::vector<int> owner = assign_chunks(chunks, group.size);
  const auto ours = [&](size_t j) { return owner[j] == group.rank; };

  // 2. One preparation at a time, written where the previous data is not touched.
  const fs::path staging = fs::path(dir) / ".prepare-staging";
  std::unique_ptr<PrepareLock> lock;
  struct RemoveStaging {  // on rank 0, when the preparation fails: nothing half-written stays behind
    const fs::path& path;
    bool armed = false;
    ~RemoveStaging() {
      std::error_code ec;
      if (armed) fs::remove_all(path, ec);
    }
  } cleanup{staging};
  together(group, "data prepare: the lock on data.prepared_dir", [&] {
    if (!root) return std::string();
    fs::create_directories(dir);
    lock = std::make_unique<PrepareLock>(dir);
    std::error_code ec;
    fs::remove_all(staging, ec);  // what an interrupted preparation left
    fs::create_directories(staging);
    cleanup.armed = true;
    return std::string();
  });
  number_lines(chunks, group, ours);  // 3.
  Preparer p{
      config,
      *tokenizer,
      m.schema(),
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())),
      options.skip_hint,
      {},
      {},
      Progress(options.progress && root)};
  const auto entries = together(group, "data prepare: every rank's shards",  // 4.
                                [&] { return prepare_ours(p, chunks, staging, ours); });
  p.progress.done();
  together(group, "data prepare: the manifest", [&] {  // 5., then every rank returns
    if (root) assemble_and_commit(config, chunks, entries, staging, m);
    return std::string();
  });
  PrepareReport report;
  report.manifest = m;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

namespace {
// What the settings and the manifest say, before any source file is looked at ("": fresh so far).
std::string stale_settings(const Config& config, const Manifest& m) {
  if (m.version < 2)  // version 2 reads as one shard per whole file (data.shard_bytes 0)
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
  if (const uint64_t cap = static_cast<uint64_t>(config.data.shard_bytes); m.shard_bytes != cap) {
    // Stale only where it cuts a file otherwise (a dataset of small files reads the same).
    auto cut = [](uint64_t c, uint64_t bytes) { return c > 0 && bytes > c; };
    for (const auto& [name, split] : m.splits)
      for (const ShardEntry& e : split.shards)
        if (e.source_begin == 0 && splits_at_lines(e.source) &&
            (cut(cap, e.source_bytes) || cut(m.shard_bytes, e.source_bytes)))
          return "data.shard_bytes is " + std::to_string(cap) + ", it was prepared with " +
                 std::to_string(m.shard_bytes) + " (" + e.source + " is cut otherwise)";
  }
  if (m.subgroups != config.data.subgroups)
    return "data.subgroups is [" + text::join(config.data.subgroups, ", ") + "], it was prepared with [" +
           text::join(m.subgroups, ", ") + "]";
  if (m.slice_by != config.eval.slice_by)
    return "eval.slice_by is [" + text::join(config.eval.slice_by, ", ") + "], it was prepared with [" +
           text::join(m.slice_by, ", ") + "]";
  return "";
}
}  // namespace

std::string prepared_data_stale(const Config& config) { return prepared_data_staleness(config, 0, 1).reason; }

Staleness prepared_data_staleness(const Config& config, int rank, int size) {
  const fs::path dir = config.data.prepared_dir;
  if (!fs::exists(dir / "manifest.json")) return {0, "there is no " + (dir / "manifest.json").string() + " yet"};
  const Manifest m = Manifest::load(dir.string());
  if (std::string why = stale_settings(config, m); !why.empty()) return {0, why};
  if (!fs::exists(config.tokenizer.vocab)) return {};  // the trainer says tokenizer.vocab is missing
  if (find_tokenizer_files(config.tokenizer.vocab).fingerprint() != m.vocab_sha256)
    return {0, "tokenizer.vocab " + config.tokenizer.vocab + " is not the tokenizer it was prepared with"};
  // The sources: the same files (what the patterns match now), unchanged since.
  std::vector<std::pair<std::string, std::vector<std::string>>> splits = {{"train", config.data.train}};
  if (!config.data.valid.empty()) splits.emplace_back("valid", config.data.valid);
  if (m.splits.count("valid") && config.data.valid.empty()) return {0, "data.valid is now empty"};
  uint64_t base = 1;  // the order of a split's checks: its file count, then each file's
  for (const auto& [name, patterns] : splits) {
    auto it = m.splits.find(name);
    if (it == m.splits.end()) return {base, "it has no " + name + " split (data." + name + " was empty then)"};
    const std::vector<std::string> files = expand_globs(patterns, "data." + name);  // matching nothing is an error
    const std::vector<ShardEntry>& shards = it->second.shards;
    // The shards in file order, each file's chunks together (a chunk after a file's first starts past byte 0).
    std::vector<size_t> first;  // index of each file's first shard
    for (size_t k = 0; k < shards.size(); ++k)
      if (k == 0 || shards[k].source_begin == 0 || shards[k].source_path != shards[k - 1].source_path)
        first.push_back(k);
    if (files.size() != first.size())
      return {base, "data." + name + " matches " + std::to_string(files.size()) +
                        " file(s) now, it was prepared from " + std::to_string(first.size())};
    for (size_t i = 0; i < files.size(); ++i) {
      if (i % static_cast<size_t>(size) != static_cast<size_t>(rank)) continue;  // another rank's file
      const uint64_t order = base + 1 + i;
      const auto stale = [&](std::string why) { return Staleness{order, std::move(why)}; };
      const SourceStamp now = stamp_of(files[i]);
      const ShardEntry& e = shards[first[i]];
      if (now.path != e.source_path)
        return stale("data." + name + " file " + std::to_string(i + 1) + " is " + now.path + ", it was " +
                     e.source_path);
      if (now.bytes != e.source_bytes || now.mtime_ns != e.source_mtime_ns)
        return stale(files[i] + " changed since it was prepared (" + std::to_string(e.source_bytes) + " -> " +
                     std::to_string(now.bytes) + " bytes" + (now.mtime_ns != e.source_mtime_ns ? ", modified" : "") +
                     ")");
      if (config.data.verify_sources == VerifySources::kHash) {  // what size and mtime cannot tell
        if (e.source_sha256.empty())
          return stale(files[i] + " was prepared without a content hash (data.verify_sources: stat)");
        if (io::sha256_file(files[i]) != e.source_sha256)
          return stale(files[i] +
                       "'s content changed since it was prepared (same size and modification time, another "
                       "SHA-256)");
      }
      const size_t end = i + 1 < first.size() ? first[i + 1] : shards.size();
      for (size_t k = first[i]; k < end; ++k) {
        std::error_code ec;
        const uint64_t shard_bytes = fs::file_size(dir / shards[k].file, ec);
        if (ec || shard_bytes != shards[k].bytes)
          return stale((dir / shards[k].file).string() +
                       (ec ? " is missing" : " has another size than the manifest says"));
      }
    }
    base += 1 + files.size();
  }
  return {};
}

}  // namespace modtrain
