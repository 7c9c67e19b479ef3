// A prepared dataset: manifest.json (what was prepared, from what, with which vocab and labels)
// plus the validated shards of one split, seen as one indexed collection of records.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "modtrain/config/config.h"
#include "modtrain/data/shard.h"

namespace modtrain {

// 2: what the shards were made from (patterns, each source's absolute path, size and mtime) and
// each shard's size and checksum, checked when training starts and when a shard is opened.
// 3: a shard is a byte range of its source (data.shard_bytes cuts large files into chunks at line
// ends), with the line it starts at. Version 2 manifests read as one shard per whole file.
inline constexpr int kManifestVersion = 3;

struct ShardEntry {
  std::string file;         // relative to the prepared dir: "train-00000.bin"
  std::string source;       // the raw shard it came from, as data.train/valid's pattern matched it
  std::string source_path;  // the same, absolute (v2)
  uint64_t source_bytes = 0;
  int64_t source_mtime_ns = 0;                // its modification time when it was read (v2)
  std::string source_sha256;                  // its content hash, when prepared with data.verify_sources: hash
  uint64_t source_begin = 0, source_end = 0;  // the byte range of the source this shard holds (v3)
  uint64_t source_first_line = 1;             // the source line the range starts at (v3)
  uint64_t bytes = 0;                         // the shard file's size (v2)
  std::string checksum;                       // the shard's body checksum, 16 hex digits, as in its header (v2)
  uint64_t records = 0;                       // kept records
  uint64_t tokens = 0;
  uint64_t input_records = 0;  // records read (lines for JSONL, rows for CSV/TSV), blank lines excluded
  uint64_t rejected = 0;
  uint64_t blank = 0;                      // blank lines (not records)
  uint64_t truncated = 0;                  // records cut to max_len
  uint64_t utf8_repaired = 0;              // records whose invalid UTF-8 was replaced
  uint64_t empty_tokens = 0;               // kept records that tokenize to nothing but the special tokens
  std::vector<uint64_t> subgroup_missing;  // per data.subgroups: kept records without a value
  std::vector<uint64_t> slice_missing;     // per eval.slice_by: kept records without a value
  // Per label over the kept records (v3): the sum of the label bytes (0..label_scale each) and how
  // many are annotated, so that label statistics need no pass over the shards. Empty: not recorded.
  std::vector<uint64_t> label_sums, label_annotated;

  std::string to_json() const;  // one line: the manifest's shard object
  static ShardEntry from_json(const nlohmann::json& j, size_t subgroups, size_t slices);  // json exceptions
};

struct SplitEntry {
  std::vector<std::string> patterns;  // data.train / data.valid when it was prepared (v2)
  std::vector<ShardEntry> shards;
  uint64_t records() const;
  uint64_t input_records() const;
  uint64_t rejected() const;
};

struct Manifest {
  int version = kManifestVersion;
  std::string vocab_path, vocab_sha256;  // vocab_sha256: the tokenizer's fingerprint (TokenizerFiles)
  std::string vocab_type = "wordpiece";  // the tokenizer's type()
  uint64_t vocab_size = 0;
  std::vector<std::string> labels;
  std::string problem;
  uint32_t max_len = 0;
  bool lowercase = true, normalize_tweets = true;
  uint32_t token_bytes = 2;
  bool soft_labels = false;                  // absent in older manifests: false
  double positive_at = 0.5;                  // soft labels are stored exact about this (eval.positive_at)
  uint64_t max_record_bytes = 1u << 20;      // data.max_record_bytes (absent: the default)
  uint64_t shard_bytes = 0;                  // data.shard_bytes it was cut with (absent, v2: 0, whole files)
  int tweet_normalizer_version = 1;          // normalization.tweet_normalizer_version (absent: 1)
  std::vector<std::string> subgroups;        // data.subgroups it was prepared with
  std::vector<std::string> slice_by;         // eval.slice_by it was prepared with
  std::string created_by;                    // modtrain version and commit
  std::map<std::string, SplitEntry> splits;  // "train", "valid"

  std::string to_json() const;
  static Manifest load(const std::string& dir);  // throws UserError
  ShardSchema schema() const;
};

// What the config expects of prepared data; a mismatch is an error naming both sides.
struct DataExpectations {
  std::vector<std::string> labels;
  Problem problem = Problem::kMultiLabel;
  uint32_t max_len = 0;
  bool lowercase = true, normalize_tweets = true;
  bool soft_labels = false;
  std::vector<std::string> subgroups, slice_by;
  std::string vocab_sha256;                                   // "" = do not check
  static DataExpectations from_config(const Config& config);  // fingerprints tokenizer.vocab
};

class PreparedDataset {
 public:
  // Reads the manifest and checks it against `expect`. A shard is opened and mapped, its header
  // checked against the manifest entry, when first used, and each block of its records (structure,
  // token ids, checksum) when first read (record() and length()); so a run's start does not read
  // the dataset and a rank maps and verifies only what it reads.
  static PreparedDataset open(const std::string& dir, const std::string& split, const DataExpectations& expect);

  uint64_t size() const { return total_; }
  size_t num_shards() const { return entries_.size(); }
  size_t num_labels() const { return num_labels_; }
  const std::vector<std::string>& subgroups() const { return manifest_.subgroups; }
  const std::vector<std::string>& slice_by() const { return manifest_.slice_by; }
  // Shard i, every record verified (a pass over the whole shard the first time: for whole-shard
  // readers such as `data stats`). Thread-safe; a bad shard throws UserError naming it, at every use
  // until it is fixed.
  const PreparedShard& shard(size_t i) const;
  const Manifest& manifest() const { return manifest_; }
  const std::vector<ShardEntry>& entries() const { return entries_; }  // the split's shards in the manifest

  struct Ref {
    uint32_t shard;
    uint64_t record;
  };
  Ref locate(uint64_t index) const;  // global record index -> shard and record
  // The shard holding `ref`, with the block of records around it verified (the per-record path).
  const PreparedShard& record(const Ref& ref) const;
  // Unmaps the pages of the shards record() touched since the last call (the loader, after each
  // batch): what a rank keeps mapped is what it reads now, not every block it has read.
  void release_pages() const;
  uint32_t length(uint64_t index) const;
  uint64_t tokens() const;  // all records' tokens, from the manifest

 private:
  Manifest manifest_;
  std::string dir_;
  ShardSchema schema_;
  std::vector<ShardEntry> entries_;                             // the split's shards, as the manifest lists them
  mutable std::vector<std::shared_ptr<PreparedShard>> shards_;  // null until first used; written under open_mutex_
  std::unique_ptr<std::atomic<const PreparedShard*>[]> ready_;  // the fast path: set once a shard is verified
  std::unique_ptr<std::mutex> open_mutex_;
  std::unique_ptr<std::atomic<bool>[]> touched_;    // per shard: read by record() since release_pages()
  mutable std::vector<uint32_t> touched_list_;      // those shards, under open_mutex_
  const PreparedShard& open_shard(size_t i) const;  // opened, header checked against the manifest
  std::vector<uint64_t> starts_;                    // first global index of each shard
  uint64_t total_ = 0;
  size_t num_labels_ = 0;
};

}  // namespace modtrain
