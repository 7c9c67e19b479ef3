#include "modtrain/data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/files.h"

namespace modtrain {

using nlohmann::json;
namespace fs = std::filesystem;

uint64_t SplitEntry::records() const {
  uint64_t n = 0;
  for (const auto& s : shards) n += s.records;
  return n;
}
uint64_t SplitEntry::input_records() const {
  uint64_t n = 0;
  for (const auto& s : shards) n += s.input_records;
  return n;
}
uint64_t SplitEntry::rejected() const {
  uint64_t n = 0;
  for (const auto& s : shards) n += s.rejected;
  return n;
}

std::string ShardEntry::to_json() const {
  json j = {{"file", file},
            {"bytes", bytes},
            {"checksum", checksum},
            {"source", source},
            {"source_path", source_path},
            {"source_bytes", source_bytes},
            {"source_mtime_ns", source_mtime_ns},
            {"source_sha256", source_sha256},
            {"source_range", {source_begin, source_end}},
            {"source_first_line", source_first_line},
            {"records", records},
            {"tokens", tokens},
            {"input_records", input_records},
            {"rejected", rejected},
            {"blank_lines", blank},
            {"truncated", truncated},
            {"utf8_repaired", utf8_repaired},
            {"empty_after_tokenization", empty_tokens}};
  if (!subgroup_missing.empty()) j["subgroup_missing"] = subgroup_missing;
  if (!slice_missing.empty()) j["slice_missing"] = slice_missing;
  if (!label_sums.empty()) j["label_sums"] = label_sums, j["label_annotated"] = label_annotated;
  return j.dump();
}

ShardEntry ShardEntry::from_json(const nlohmann::json& s, size_t subgroups, size_t slices) {
  ShardEntry e;
  e.file = s.at("file").get<std::string>();
  e.source = s.value("source", "");
  e.source_bytes = s.value("source_bytes", uint64_t{0});
  e.source_path = s.value("source_path", "");
  e.source_mtime_ns = s.value("source_mtime_ns", int64_t{0});
  e.source_sha256 = s.value("source_sha256", "");
  // Version 2 manifests have one shard per whole file.
  const auto range = s.value("source_range", std::vector<uint64_t>{0, e.source_bytes});
  if (range.size() != 2 || range[0] > range[1])
    throw UserError("a shard's source_range is not [begin, end] (" + e.file + "); run `modtrain data prepare` again");
  e.source_begin = range[0], e.source_end = range[1];
  e.source_first_line = s.value("source_first_line", uint64_t{1});
  e.bytes = s.value("bytes", uint64_t{0});
  e.checksum = s.value("checksum", "");
  e.records = s.at("records").get<uint64_t>();
  e.tokens = s.value("tokens", uint64_t{0});
  e.input_records = s.value("input_records", uint64_t{0});
  e.rejected = s.value("rejected", uint64_t{0});
  e.blank = s.value("blank_lines", uint64_t{0});
  e.truncated = s.value("truncated", uint64_t{0});
  e.utf8_repaired = s.value("utf8_repaired", uint64_t{0});
  e.empty_tokens = s.value("empty_after_tokenization", uint64_t{0});
  e.subgroup_missing = s.value("subgroup_missing", std::vector<uint64_t>(subgroups, 0));
  e.slice_missing = s.value("slice_missing", std::vector<uint64_t>(slices, 0));
  e.label_sums = s.value("label_sums", std::vector<uint64_t>{});
  e.label_annotated = s.value("label_annotated", std::vector<uint64_t>{});
  return e;
}

std::string Manifest::to_json() const {
  json j;
  j["format"] = "modtrain-prepared";
  j["version"] = version;
  j["created_by"] = created_by;
  // sha256: the tokenizer's fingerprint (TokenizerFiles: a single file's hash, e.g. vocab.txt's)
  j["vocab"] = {{"path", vocab_path}, {"sha256", vocab_sha256}, {"size", vocab_size}, {"type", vocab_type}};
  j["labels"] = labels;
  j["labelled"] = !labels.empty();  // false: unlabelled text, for train.objective mlm only
  j["problem"] = problem;
  j["max_len"] = max_len;
  j["normalization"] = {{"lowercase", lowercase},
                        {"normalize_tweets", normalize_tweets},
                        {"tweet_normalizer_version", tweet_normalizer_version}};
  j["token_bytes"] = token_bytes;
  j["soft_labels"] = soft_labels;
  j["label_scale"] = soft_labels ? 240 : 1;
  if (soft_labels) j["positive_at"] = positive_at;
  j["max_record_bytes"] = max_record_bytes;
  j["shard_bytes"] = shard_bytes;
  j["subgroups"] = subgroups;
  j["slice_by"] = slice_by;
  json splits_json = json::object();
  for (const auto& [name, split] : splits) {
    json shards = json::array();
    for (const auto& s : split.shards) {
      shards.push_back(json::parse(s.to_json()));
    }
    splits_json[name] = {{"records", split.records()}, {"patterns", split.patterns}, {"shards", shards}};
  }
  j["splits"] = splits_json;
  return j.dump(2) + "\n";
}

Manifest Manifest::load(const std::string& dir) {
  std::string path = (fs::path(dir) / "manifest.json").string();
  if (!fs::exists(path))
    throw UserError(path +
                    " not found: prepare the data first with `modtrain data prepare --config ...` (data.prepared_dir)");
  Manifest m;
  try {
    json j = json::parse(io::read_file(path));
    if (j.value("format", "") != "modtrain-prepared") throw UserError(path + ": not a modtrain manifest");
    m.version = j.at("version").get<int>();
    if (m.version < 1 || m.version > kManifestVersion)  // 1 loads; it lacks the fingerprints (stale for train)
      throw UserError(path + ": manifest version " + std::to_string(m.version) + ", this modtrain reads 1 to " +
                      std::to_string(kManifestVersion) + "; run `modtrain data prepare` again");
    m.created_by = j.value("created_by", "");
    m.vocab_path = j.at("vocab").at("path").get<std::string>();
    m.vocab_sha256 = j.at("vocab").at("sha256").get<std::string>();
    m.vocab_size = j.at("vocab").at("size").get<uint64_t>();
    m.vocab_type = j.at("vocab").value("type", std::string("wordpiece"));
    m.labels = j.at("labels").get<std::vector<std::string>>();
    m.problem = j.at("problem").get<std::string>();
    m.max_len = j.at("max_len").get<uint32_t>();
    m.lowercase = j.at("normalization").at("lowercase").get<bool>();
    m.normalize_tweets = j.at("normalization").at("normalize_tweets").get<bool>();
    m.tweet_normalizer_version = j.at("normalization").value("tweet_normalizer_version", 1);
    m.token_bytes = j.at("token_bytes").get<uint32_t>();
    m.soft_labels = j.value("soft_labels", false);
    m.positive_at = j.value("positive_at", 0.5);
    m.max_record_bytes = j.value("max_record_bytes", uint64_t{1} << 20);
    m.shard_bytes = j.value("shard_bytes", uint64_t{0});
    m.subgroups = j.value("subgroups", std::vector<std::string>{});
    m.slice_by = j.value("slice_by", std::vector<std::string>{});
    for (const auto& [name, split] : j.at("splits").items()) {
      SplitEntry entry;
      entry.patterns = split.value("patterns", std::vector<std::string>{});
      for (const auto& s : split.at("shards")) {
        ShardEntry e = ShardEntry::from_json(s, m.subgroups.size(), m.slice_by.size());
        if (e.file.find('/') != std::string::npos || e.file.find("..") != std::string::npos)
          throw UserError(path + ": shard file name '" + e.file + "' must be a plain name inside the prepared dir");
        entry.shards.push_back(e);
      }
      m.splits[name] = entry;
    }
  } catch (const json::exception& e) {
    throw UserError(path + ": malformed manifest (" + std::string(e.what()) + "); run `modtrain data prepare` again");
  }
  return m;
}

ShardSchema Manifest::schema() const {
  ShardSchema s;
  s.token_bytes = token_bytes;
  s.num_labels = static_cast<uint32_t>(labels.size());
  s.max_len = max_len;
  s.vocab_fingerprint = vocab_fingerprint(vocab_sha256);
  s.labels_fingerprint = labels_fingerprint(labels, problem);
  s.vocab_size = vocab_size;
  s.label_scale = soft_labels ? kSoftLabelScale : 1;
  s.subgroups = subgroups;
  s.slice_by = slice_by;
  return s;
}

DataExpectations DataExpectations::from_config(const Config& config) {
  DataExpectations e;
  e.labels = config.data.labels;
  e.problem = config.data.problem;
  e.max_len = static_cast<uint32_t>(config.data.max_len);
  e.lowercase = config.tokenizer.lowercase;
  e.normalize_tweets = config.tokenizer.normalize_tweets;
  e.soft_labels = config.data.soft_labels;
  e.subgroups = config.data.subgroups;
  e.slice_by = config.eval.slice_by;
  if (!fs::exists(config.tokenizer.vocab))
    throw UserError("tokenizer.vocab: " + config.tokenizer.vocab +
                    " not found (a model directory or tokenizer file; train a WordPiece vocab.txt with `modtrain "
                    "tokenizer train`)");
  e.vocab_sha256 = find_tokenizer_files(config.tokenizer.vocab).fingerprint();
  return e;
}

PreparedDataset PreparedDataset::open(const std::string& dir, const std::string& split,
                                      const DataExpectations& expect) {
  PreparedDataset d;
  d.manifest_ = Manifest::load(dir);
  const Manifest& m = d.manifest_;
  const std::string where = (fs::path(dir) / "manifest.json").string() + ": ";
  const std::string fix = "; run `modtrain data prepare` again with this config";
  if (m.labels != expect.labels)
    throw UserError(where + "prepared for labels [" + text::join(m.labels, ", ") + "] but data.labels is [" +
                    text::join(expect.labels, ", ") + "]" + fix);
  if (m.problem != to_string(expect.problem))
    throw UserError(where + "prepared as " + m.problem + " but data.problem is " + to_string(expect.problem) + fix);
  if (m.max_len != expect.max_len)  // raised: records stay cut at the old length; lowered: too long
    throw UserError(where + "prepared with max_len " + std::to_string(m.max_len) + " but data.max_len is " +
                    std::to_string(expect.max_len) + fix);
  if (m.lowercase != expect.lowercase || m.normalize_tweets != expect.normalize_tweets)
    throw UserError(where + "prepared with other tokenizer settings (lowercase, normalize_tweets)" + fix);
  if (!expect.vocab_sha256.empty() && m.vocab_sha256 != expect.vocab_sha256)
    throw UserError(where + "prepared with another tokenizer (sha256 " + m.vocab_sha256.substr(0, 12) +
                    ") than tokenizer.vocab (sha256 " + expect.vocab_sha256.substr(0, 12) + ")" + fix);
  if (m.soft_labels != expect.soft_labels)
    throw UserError(where + "prepared with data.soft_labels " + (m.soft_labels ? "true" : "false") + " but it is " +
                    (expect.soft_labels ? "true" : "false") + " now" + fix);
  if (m.subgroups != expect.subgroups)
    throw UserError(where + "prepared with subgroups [" + text::join(m.subgroups, ", ") + "] but data.subgroups is [" +
                    text::join(expect.subgroups, ", ") + "]" + fix);
  if (m.slice_by != expect.slice_by)
    throw UserError(where + "prepared with slice fields [" + text::join(m.slice_by, ", ") + "] but eval.slice_by is [" +
                    text::join(expect.slice_by, ", ") + "]" + fix);
  auto it = m.splits.find(split);
  if (it == m.splits.end()) throw UserError(where + "has no '" + split + "' split (is data." + split + " set?)" + fix);
  d.dir_ = dir;
  d.schema_ = m.schema();
  d.num_labels_ = m.labels.size();
  d.entries_ = it->second.shards;
  for (const ShardEntry& entry : d.entries_) {
    d.starts_.push_back(d.total_);
    d.total_ += entry.records;
  }
  d.shards_.resize(d.entries_.size());
  d.ready_ = std::make_unique<std::atomic<const PreparedShard*>[]>(d.entries_.size());
  d.touched_ = std::make_unique<std::atomic<bool>[]>(d.entries_.size());
  for (size_t i = 0; i < d.entries_.size(); ++i) {
    d.ready_[i].store(nullptr, std::memory_order_relaxed);
    d.touched_[i].store(false, std::memory_order_relaxed);
  }
  d.open_mutex_ = std::make_unique<std::mutex>();
  return d;
}

PreparedDataset::Ref PreparedDataset::locate(uint64_t index) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), index);
  size_t s = static_cast<size_t>(it - starts_.begin()) - 1;  // the last shard starting at or before index
  return {static_cast<uint32_t>(s), index - starts_[s]};
}

const PreparedShard& PreparedDataset::shard(size_t i) const {
  const PreparedShard& s = open_shard(i);
  s.verify_all();
  return s;
}

const PreparedShard& PreparedDataset::record(const Ref& ref) const {
  const PreparedShard& s = open_shard(ref.shard);
  s.verify_block_of(ref.record);
  if (!touched_[ref.shard].load(std::memory_order_relaxed) && !touched_[ref.shard].exchange(true)) {
    std::lock_guard<std::mutex> lock(*open_mutex_);
    touched_list_.push_back(ref.shard);
  }
  return s;
}

void PreparedDataset::release_pages() const {
  std::vector<uint32_t> shards;
  {
    std::lock_guard<std::mutex> lock(*open_mutex_);
    shards.swap(touched_list_);
  }
  for (uint32_t s : shards) {
    touched_[s].store(false);
    if (const PreparedShard* ready = ready_[s].load(std::memory_order_acquire)) ready->release_pages();
  }
}

uint64_t PreparedDataset::tokens() const {
  uint64_t total = 0;
  for (const ShardEntry& e : entries_) total += e.tokens;
  return total;
}

const PreparedShard& PreparedDataset::open_shard(size_t i) const {
  if (const PreparedShard* ready = ready_[i].load(std::memory_order_acquire)) return *ready;
  std::lock_guard<std::mutex> lock(*open_mutex_);
  if (!shards_[i]) {
    const ShardEntry& entry = entries_[i];
    const std::string path = (fs::path(dir_) / entry.file).string();
    const std::string fix = "; run `modtrain data prepare` again with this config";
    auto shard = std::make_shared<PreparedShard>(path, schema_, PreparedShard::Verify::kHeader);
    // ... and it must be the shard the manifest lists (not a copy of another, not an older one)
    auto differs = [&](const std::string& what, const std::string& found, const std::string& listed) {
      return UserError(path + ": " + what + " " + found + ", the manifest says " + listed +
                       " (the shard was replaced or the manifest belongs to another preparation)" + fix);
    };
    if (shard->size() != entry.records)
      throw differs("has records:", std::to_string(shard->size()), std::to_string(entry.records));
    if (manifest_.version >= 2) {
      if (shard->bytes() != entry.bytes)
        throw differs("has bytes:", std::to_string(shard->bytes()), std::to_string(entry.bytes));
      if (shard->tokens() != entry.tokens)
        throw differs("has tokens:", std::to_string(shard->tokens()), std::to_string(entry.tokens));
      if (text::hex64(shard->checksum()) != entry.checksum)
        throw differs("has checksum", text::hex64(shard->checksum()), entry.checksum);
    }
    shards_[i] = std::move(shard);
    ready_[i].store(shards_[i].get(), std::memory_order_release);
  }
  return *shards_[i];
}

uint32_t PreparedDataset::length(uint64_t index) const {
  const Ref r = locate(index);
  return record(r).length(r.record);
}

}  // namespace modtrain
