// Prepared shards: tokenized records in a versioned, little-endian, memory-mappable binary file
// (layout in docs/data-format.md). The writer is atomic (temp file + rename); the reader
// validates everything before use, so a truncated, corrupted or mismatched shard is a clear
// error, never a crash or silent garbage.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "modtrain/io/files.h"

namespace modtrain {

inline constexpr char kShardMagic[8] = {'M', 'T', 'S', 'H', 'A', 'R', 'D', '\0'};
// Version 2 adds soft labels (label_scale), subgroup mentions and slice fields; version 3 a
// checksum per block of kShardBlockRecords records, so that a reader verifies what it reads instead
// of the whole file at open. Versions 1 and 2 still load (verified whole at open).
inline constexpr uint32_t kShardVersion = 3;
inline constexpr size_t kShardHeaderBytes = 64;
inline constexpr size_t kShardExtensionBytes = 64;   // version 2: after the header, inside the checksum
inline constexpr uint32_t kShardBlockRecords = 256;  // version 3: records per verified block

// What a shard must agree with: written into the header, checked by the reader.
struct ShardSchema {
  uint32_t token_bytes = 2;  // 2 when the vocab has at most 65,536 tokens, else 4
  uint32_t num_labels = 0;
  uint32_t max_len = 0;                // no record is longer (tokens, [CLS] and [SEP] included)
  uint64_t vocab_fingerprint = 0;      // first 8 bytes of the vocab's SHA-256
  uint64_t labels_fingerprint = 0;     // hash of the problem type and label names
  uint64_t vocab_size = 0;             // reader only: every token id must be below it
  uint32_t label_scale = 1;            // a label byte v (not 255) means v / label_scale: 1 hard, 240 soft
  std::vector<std::string> subgroups;  // identity-mention fields, a byte each per record (scale 240)
  std::vector<std::string> slice_by;   // slice fields, a value index each per record
};

uint64_t labels_fingerprint(const std::vector<std::string>& labels, const std::string& problem);
uint64_t names_fingerprint(const std::vector<std::string>& names);  // subgroup / slice field lists
uint64_t vocab_fingerprint(const std::string& vocab_sha256_hex);

class ShardWriter {
 public:
  ShardWriter(std::string path, ShardSchema schema);
  // subgroups: schema.subgroups.size() bytes; slices / slice_present: one per schema.slice_by (may be
  // empty when there are none).
  void add(const std::vector<int32_t>& ids, const uint8_t* labels, uint64_t source_line,
           const uint8_t* subgroups = nullptr, const std::vector<std::string>& slices = {},
           const std::vector<uint8_t>& slice_present = {});
  uint64_t records() const { return lines_.size(); }
  uint64_t tokens() const { return tokens_.size() / schema_.token_bytes; }
  void finish();                                   // writes and renames into place
  uint64_t checksum() const { return checksum_; }  // after finish(): the body checksum in the header
  uint64_t bytes() const { return bytes_; }        // after finish(): the file's size

 private:
  std::string path_;
  ShardSchema schema_;
  std::vector<uint64_t> offsets_{0};
  std::vector<uint64_t> lines_;
  std::vector<uint8_t> tokens_;  // token_bytes each, little-endian
  std::vector<uint8_t> labels_;
  std::vector<uint8_t> subgroups_;
  std::vector<uint32_t> slices_;                  // per record and field: 0 = no value, k = values[f][k - 1]
  std::vector<std::vector<std::string>> values_;  // per slice field, in order of first appearance
  uint64_t checksum_ = 0, bytes_ = 0;
};

// A validated, memory-mapped shard.
class PreparedShard {
 public:
  // How much the constructor checks. kAll: every byte (checksums, offsets, labels, token ids) before
  // it returns. kHeader (version 3): the header, the sizes and the block checksum table; each block's
  // records are then verified at their first verify_block_of(), so opening a shard reads kilobytes,
  // not the file (versions 1 and 2 have no block checksums: verified whole either way).
  enum class Verify { kAll, kHeader };
  // Throws UserError ("<path>: ...") when the file is not a valid shard for `expected`.
  PreparedShard(const std::string& path, const ShardSchema& expected, Verify verify = Verify::kAll);
  PreparedShard(const PreparedShard&) = delete;
  PreparedShard& operator=(const PreparedShard&) = delete;

  // Verifies the block holding `record` unless already verified (thread-safe; a bad block throws
  // UserError naming the shard and the records, at every call until the file is fixed).
  void verify_block_of(uint64_t record) const {
    const uint64_t b = record / kShardBlockRecords;
    if (!(verified_[b / 64].load(std::memory_order_acquire) >> (b % 64) & 1)) verify_block(b);
  }
  void verify_all() const;           // every block
  uint64_t blocks_verified() const;  // how many blocks have been verified (for tests and benchmarks)

  uint64_t size() const { return records_; }
  uint64_t tokens() const { return tokens_; }
  uint32_t length(uint64_t record) const { return static_cast<uint32_t>(offsets_[record + 1] - offsets_[record]); }
  int32_t token(uint64_t record, uint32_t position) const;
  // Copies the record's ids into dst (length(record) values).
  void copy_tokens(uint64_t record, int64_t* dst) const;
  std::vector<int32_t> ids(uint64_t record) const;
  const uint8_t* labels(uint64_t record) const { return labels_ + record * num_labels_; }
  uint32_t label_scale() const { return label_scale_; }  // a label byte v (not 255) means v / label_scale()
  // The label as a target in [0, 1], or a negative number when not annotated.
  float label_value(uint64_t record, size_t label) const {
    const uint8_t v = labels(record)[label];
    return v == 0xFF ? -1.0f : static_cast<float>(v) / static_cast<float>(label_scale_);
  }
  size_t num_subgroups() const { return num_subgroups_; }
  // Subgroup g's byte (0..240, 255 = no value); a mention when >= 120 (0.5).
  uint8_t subgroup(uint64_t record, size_t g) const { return subgroups_[record * num_subgroups_ + g]; }
  size_t num_slices() const { return num_slices_; }
  // Slice field f's value of the record; nullptr when it has none.
  const std::string* slice(uint64_t record, size_t f) const;
  uint64_t source_line(uint64_t record) const { return lines_[record]; }
  uint64_t checksum() const { return checksum_; }  // of the body, verified at open
  uint64_t bytes() const { return file_->size(); }
  const std::string& path() const { return file_->path(); }
  void release_pages() const { file_->release_pages(); }  // see io::MappedFile

 private:
  std::shared_ptr<io::MappedFile> file_;
  uint64_t records_ = 0, tokens_ = 0, checksum_ = 0;
  uint32_t token_bytes_ = 2, num_labels_ = 0;
  const uint64_t* offsets_ = nullptr;
  const uint64_t* lines_ = nullptr;
  const uint8_t* token_data_ = nullptr;
  const uint8_t* labels_ = nullptr;
  uint32_t label_scale_ = 1;
  size_t num_subgroups_ = 0, num_slices_ = 0;
  const uint8_t* subgroups_ = nullptr;
  const uint32_t* slices_ = nullptr;
  std::vector<std::vector<std::string>> slice_values_;
  uint32_t max_len_ = 0, version_ = 0;
  uint64_t vocab_size_ = 0;
  const uint64_t* block_sums_ = nullptr;  // version 3: one checksum per block
  uint64_t blocks_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> verified_;  // a bit per block
  std::string fix_;                                    // the advice every error ends with

  void verify_block(uint64_t block) const;
  void check_records(uint64_t begin, uint64_t end) const;  // structure and values of records [begin, end)
};

}  // namespace modtrain
