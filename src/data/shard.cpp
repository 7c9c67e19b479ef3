#include "modtrain/data/shard.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/io/checksum.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "prepared shards are little-endian; this host is not");

namespace modtrain {
namespace {

size_t padded(size_t bytes) { return (bytes + 7) & ~size_t{7}; }

// Checksum of the sections (io/checksum.h: fast enough to verify every shard at open).
uint64_t body_checksum(const uint8_t* data, size_t size) { return io::checksum64(data, size); }

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v * 0xC2B2AE3D27D4EB4FULL;
  return ((h << 31) | (h >> 33)) * 0x9E3779B97F4A7C15ULL;
}

// The per-record sections of a shard, wherever they are (the writer's vectors, the reader's map).
struct Sections {
  const uint64_t* offsets;
  const uint64_t* lines;
  const uint8_t* tokens;
  uint32_t token_bytes;
  const uint8_t* labels;
  size_t num_labels;
  const uint8_t* subgroups;
  size_t num_subgroups;
  const uint32_t* slices;
  size_t num_slices;
};

// Version 3: the checksum of records [a, e) across every section (offsets[a..e] inclusive). The
// caller has checked offsets[a] <= offsets[e] <= the token count.
uint64_t block_checksum(const Sections& s, uint64_t a, uint64_t e) {
  uint64_t h = mix(mix(0x5EEDB10CULL, a), e);
  auto part = [&](const void* p, size_t bytes) { h = mix(h, body_checksum(static_cast<const uint8_t*>(p), bytes)); };
  part(s.offsets + a, (e - a + 1) * 8);
  part(s.lines + a, (e - a) * 8);
  part(s.tokens + s.offsets[a] * s.token_bytes, (s.offsets[e] - s.offsets[a]) * s.token_bytes);
  part(s.labels + a * s.num_labels, (e - a) * s.num_labels);
  part(s.subgroups + a * s.num_subgroups, (e - a) * s.num_subgroups);
  part(s.slices + a * s.num_slices, (e - a) * s.num_slices * 4);
  return h;
}

uint64_t num_blocks(uint64_t records) { return (records + kShardBlockRecords - 1) / kShardBlockRecords; }

// Version 3's header checksum: the extension, the block table and the slice value table, which is
// everything the blocks' checksums do not cover (so it also identifies the whole content).
uint64_t meta_checksum(const uint8_t* ext_and_table, size_t bytes, const uint8_t* dictionary, size_t dict_bytes) {
  return mix(body_checksum(ext_and_table, bytes), body_checksum(dictionary, dict_bytes));
}

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t token_bytes;
  uint64_t records;
  uint64_t tokens;
  uint32_t num_labels;
  uint32_t max_len;
  uint64_t vocab_fingerprint;
  uint64_t labels_fingerprint;
  uint64_t checksum;
};
static_assert(sizeof(Header) == kShardHeaderBytes, "header layout");

// Version 2: right after the header (the checksum covers it).
struct Extension {
  uint32_t label_scale;
  uint32_t num_subgroups;
  uint64_t subgroups_fingerprint;
  uint32_t num_slices;
  uint32_t dictionary_bytes;  // the slice values: JSON [[values of field 0], ...]
  uint64_t slices_fingerprint;
  uint64_t checksum;       // FNV-1a of the 32 bytes above: checked before any of them is used
  uint32_t block_records;  // version 3: records per checksummed block (kShardBlockRecords)
  uint8_t reserved[20];
};
constexpr size_t kExtensionFieldBytes = 32;

uint64_t extension_checksum(const Extension& ext) {
  return text::fnv1a64(std::string(reinterpret_cast<const char*>(&ext), kExtensionFieldBytes));
}
static_assert(sizeof(Extension) == kShardExtensionBytes, "extension layout");

template <class T>
void append_bytes(std::string& out, const T* data, size_t count) {
  out.append(reinterpret_cast<const char*>(data), count * sizeof(T));
}
void pad8(std::string& out) { out.append(padded(out.size()) - out.size(), '\0'); }

}  // namespace

uint64_t labels_fingerprint(const std::vector<std::string>& labels, const std::string& problem) {
  return text::fnv1a64(problem + ":" + text::join(labels, "\x1f"));
}

uint64_t names_fingerprint(const std::vector<std::string>& names) { return text::fnv1a64(text::join(names, "\x1f")); }

uint64_t vocab_fingerprint(const std::string& sha) {
  return sha.size() >= 16 ? std::stoull(sha.substr(0, 16), nullptr, 16) : 0;
}

// ---- writer -------------------------------------------------------------------------------------
ShardWriter::ShardWriter(std::string path, ShardSchema schema) : path_(std::move(path)), schema_(schema) {}

void ShardWriter::add(const std::vector<int32_t>& ids, const uint8_t* labels, uint64_t source_line,
                      const uint8_t* subgroups, const std::vector<std::string>& slices,
                      const std::vector<uint8_t>& slice_present) {
  for (int32_t id : ids) {
    uint32_t v = static_cast<uint32_t>(id);
    tokens_.push_back(static_cast<uint8_t>(v));
    tokens_.push_back(static_cast<uint8_t>(v >> 8));
    if (schema_.token_bytes == 4) {
      tokens_.push_back(static_cast<uint8_t>(v >> 16));
      tokens_.push_back(static_cast<uint8_t>(v >> 24));
    }
  }
  offsets_.push_back(tokens());
  lines_.push_back(source_line);
  labels_.insert(labels_.end(), labels, labels + schema_.num_labels);
  if (!schema_.subgroups.empty()) subgroups_.insert(subgroups_.end(), subgroups, subgroups + schema_.subgroups.size());
  values_.resize(schema_.slice_by.size());
  for (size_t f = 0; f < schema_.slice_by.size(); ++f) {
    uint32_t index = 0;
    if (slice_present[f]) {
      auto& values = values_[f];  // few distinct values per field (languages, sources): a linear search
      auto it = std::find(values.begin(), values.end(), slices[f]);
      if (it == values.end()) it = values.insert(values.end(), slices[f]);
      index = static_cast<uint32_t>(it - values.begin()) + 1;
    }
    slices_.push_back(index);
  }
}

void ShardWriter::finish() {
  std::string body;
  Extension ext{};
  ext.label_scale = schema_.label_scale;
  ext.num_subgroups = static_cast<uint32_t>(schema_.subgroups.size());
  ext.subgroups_fingerprint = names_fingerprint(schema_.subgroups);
  ext.num_slices = static_cast<uint32_t>(schema_.slice_by.size());
  ext.slices_fingerprint = names_fingerprint(schema_.slice_by);
  values_.resize(schema_.slice_by.size());
  const std::string dictionary = nlohmann::json(values_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  ext.dictionary_bytes = static_cast<uint32_t>(dictionary.size());
  ext.checksum = extension_checksum(ext);
  ext.block_records = kShardBlockRecords;
  append_bytes(body, &ext, 1);
  const Sections sections{offsets_.data(), lines_.data(),          tokens_.data(),    schema_.token_bytes,
                          labels_.data(),  schema_.num_labels,     subgroups_.data(), schema_.subgroups.size(),
                          slices_.data(),  schema_.slice_by.size()};
  for (uint64_t b = 0; b < num_blocks(records()); ++b) {
    const uint64_t sum =
        block_checksum(sections, b * kShardBlockRecords, std::min<uint64_t>(records(), (b + 1) * kShardBlockRecords));
    append_bytes(body, &sum, 1);
  }
  const size_t meta_bytes = body.size();
  append_bytes(body, offsets_.data(), offsets_.size());
  append_bytes(body, lines_.data(), lines_.size());
  append_bytes(body, tokens_.data(), tokens_.size());
  pad8(body);
  append_bytes(body, labels_.data(), labels_.size());
  pad8(body);
  append_bytes(body, subgroups_.data(), subgroups_.size());
  pad8(body);
  append_bytes(body, slices_.data(), slices_.size());
  pad8(body);
  const size_t dictionary_at = body.size();
  body += dictionary;
  pad8(body);
  Header h{};
  std::memcpy(h.magic, kShardMagic, 8);
  h.version = kShardVersion;
  h.token_bytes = schema_.token_bytes;
  h.records = records();
  h.tokens = tokens();
  h.num_labels = schema_.num_labels;
  h.max_len = schema_.max_len;
  h.vocab_fingerprint = schema_.vocab_fingerprint;
  h.labels_fingerprint = schema_.labels_fingerprint;
  const auto* b = reinterpret_cast<const uint8_t*>(body.data());
  h.checksum = meta_checksum(b, meta_bytes, b + dictionary_at, body.size() - dictionary_at);
  std::string file(reinterpret_cast<const char*>(&h), sizeof h);
  file += body;
  io::write_file_atomic(path_, file);
  checksum_ = h.checksum;
  bytes_ = file.size();
}

// ---- reader -------------------------------------------------------------------------------------
PreparedShard::PreparedShard(const std::string& path, const ShardSchema& expected, Verify verify)
    : file_(std::make_shared<io::MappedFile>(path)),
      fix_("; run `modtrain data prepare` again to rebuild the prepared data") {
  auto fail = [&](const std::string& what) -> UserError { return UserError(path + ": " + what + fix_); };
  const uint8_t* data = file_->data();
  const size_t size = file_->size();
  if (size < kShardHeaderBytes)
    throw fail("truncated shard (" + std::to_string(size) + " bytes, the header alone is 64)");
  Header h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kShardMagic, 8) != 0) throw fail("not a modtrain prepared shard (bad magic number)");
  if (h.version < 1 || h.version > kShardVersion)
    throw fail("shard format version " + std::to_string(h.version) + ", this modtrain reads versions 1 to " +
               std::to_string(kShardVersion));
  Extension ext{};  // version 1: hard labels, no subgroups, no slices
  ext.label_scale = 1;
  ext.subgroups_fingerprint = names_fingerprint({});
  ext.slices_fingerprint = names_fingerprint({});
  const size_t ext_bytes = h.version >= 2 ? kShardExtensionBytes : 0;
  if (ext_bytes > 0) {
    if (size < kShardHeaderBytes + ext_bytes) throw fail("truncated shard (no room for the version 2 header)");
    std::memcpy(&ext, data + kShardHeaderBytes, sizeof ext);
    if (ext.checksum != extension_checksum(ext)) throw fail("corrupted header (extension checksum mismatch)");
  }
  if (h.version >= 3 && ext.block_records != kShardBlockRecords)
    throw fail("corrupted header (" + std::to_string(ext.block_records) + " records per block, not " +
               std::to_string(kShardBlockRecords) + ")");
  if (ext.label_scale != 1 && ext.label_scale != kSoftLabelScale)
    throw fail("corrupted header (label scale " + std::to_string(ext.label_scale) + ")");
  if (ext.label_scale != expected.label_scale)
    throw fail(ext.label_scale == 1 ? "prepared with 0/1 labels, data.soft_labels is true"
                                    : "prepared with soft labels, data.soft_labels is false");
  if (ext.num_subgroups != expected.subgroups.size() ||
      ext.subgroups_fingerprint != names_fingerprint(expected.subgroups))
    throw fail("prepared with other subgroups than data.subgroups");
  if (ext.num_slices != expected.slice_by.size() || ext.slices_fingerprint != names_fingerprint(expected.slice_by))
    throw fail("prepared with other slice fields than eval.slice_by");
  if (h.token_bytes != 2 && h.token_bytes != 4)
    throw fail("corrupted header (token width " + std::to_string(h.token_bytes) + ")");
  if (h.vocab_fingerprint != expected.vocab_fingerprint)
    throw fail("prepared with a different vocabulary than tokenizer.vocab");
  if (h.labels_fingerprint != expected.labels_fingerprint || h.num_labels != expected.num_labels)
    throw fail("prepared with a different label set or problem type than data.labels / data.problem");
  if (h.max_len > expected.max_len)
    throw fail("prepared with max_len " + std::to_string(h.max_len) + ", more than data.max_len " +
               std::to_string(expected.max_len));
  // Section sizes, with overflow-safe arithmetic: counts beyond the file size are corruption.
  if (h.records > size / 16 || h.tokens > size / h.token_bytes)
    throw fail("truncated or corrupted (record counts exceed the file)");
  const size_t table_bytes = h.version >= 3 ? num_blocks(h.records) * 8 : 0;
  const size_t offsets_bytes = (h.records + 1) * 8;
  const size_t lines_bytes = h.records * 8;
  const size_t token_bytes = padded(h.tokens * h.token_bytes);
  if (h.num_labels > 0 && h.records > size / h.num_labels)
    throw fail("truncated or corrupted (label section exceeds the file)");
  const size_t label_bytes = padded(h.records * h.num_labels);
  if ((ext.num_subgroups > 0 && h.records > size / ext.num_subgroups) ||
      (ext.num_slices > 0 && h.records > size / (4 * ext.num_slices)) || ext.dictionary_bytes > size)
    throw fail("truncated or corrupted (subgroup or slice section exceeds the file)");
  const size_t subgroup_bytes = padded(h.records * ext.num_subgroups);
  const size_t slice_bytes = padded(h.records * ext.num_slices * 4);
  const size_t dictionary_bytes = padded(ext.dictionary_bytes);
  const size_t want = kShardHeaderBytes + ext_bytes + table_bytes + offsets_bytes + lines_bytes + token_bytes +
                      label_bytes + subgroup_bytes + slice_bytes + dictionary_bytes;
  if (size != want)
    throw fail(size < want ? "truncated shard (" + std::to_string(size) + " of " + std::to_string(want) + " bytes)"
                           : "corrupted shard (" + std::to_string(size - want) + " unexpected trailing bytes)");
  const uint8_t* dictionary = data + size - dictionary_bytes;
  if (h.version >= 3) {
    if (meta_checksum(data + kShardHeaderBytes, ext_bytes + table_bytes, dictionary, dictionary_bytes) != h.checksum)
      throw fail("corrupted shard (header checksum mismatch)");
  } else if (body_checksum(data + kShardHeaderBytes, size - kShardHeaderBytes) != h.checksum) {
    throw fail("corrupted shard (checksum mismatch)");
  }

  records_ = h.records;
  tokens_ = h.tokens;
  checksum_ = h.checksum;
  token_bytes_ = h.token_bytes;
  num_labels_ = h.num_labels;
  label_scale_ = ext.label_scale;
  num_subgroups_ = ext.num_subgroups;
  num_slices_ = ext.num_slices;
  max_len_ = h.max_len;
  version_ = h.version;
  vocab_size_ = expected.vocab_size;
  block_sums_ = reinterpret_cast<const uint64_t*>(data + kShardHeaderBytes + ext_bytes);
  offsets_ = reinterpret_cast<const uint64_t*>(data + kShardHeaderBytes + ext_bytes + table_bytes);
  lines_ = offsets_ + h.records + 1;
  token_data_ = reinterpret_cast<const uint8_t*>(lines_ + h.records);
  labels_ = token_data_ + token_bytes;
  subgroups_ = labels_ + label_bytes;
  slices_ = reinterpret_cast<const uint32_t*>(subgroups_ + subgroup_bytes);
  if (num_slices_ > 0) {
    const char* dict = reinterpret_cast<const char*>(dictionary);
    const nlohmann::json values = nlohmann::json::parse(dict, dict + ext.dictionary_bytes, nullptr, false);
    bool ok = values.is_array() && values.size() == num_slices_;
    for (size_t f = 0; ok && f < num_slices_; ++f) {
      ok = values[f].is_array();
      slice_values_.emplace_back();
      for (size_t k = 0; ok && k < values[f].size(); ++k) {
        ok = values[f][k].is_string();
        if (ok) slice_values_.back().push_back(values[f][k].get<std::string>());
      }
    }
    if (!ok) throw fail("corrupted slice value table");
  }
  if (offsets_[0] != 0 || offsets_[records_] != tokens_) throw fail("corrupted offsets table");
  // The padding after each section is zero (no checksum covers it in version 3).
  auto zero_padding = [&](const uint8_t* section, size_t used) {
    for (size_t i = used; i < padded(used); ++i)
      if (section[i] != 0) throw fail("corrupted shard (non-zero padding)");
  };
  zero_padding(token_data_, h.tokens * h.token_bytes);
  zero_padding(labels_, h.records * h.num_labels);
  zero_padding(subgroups_, h.records * ext.num_subgroups);
  zero_padding(reinterpret_cast<const uint8_t*>(slices_), h.records * ext.num_slices * 4);
  zero_padding(dictionary, ext.dictionary_bytes);
  blocks_ = num_blocks(records_);
  const uint64_t words = blocks_ / 64 + 1;
  verified_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  for (uint64_t w = 0; w < words; ++w) verified_[w].store(0, std::memory_order_relaxed);
  if (version_ < 3) {  // no block checksums: the whole checksum above, now every record's structure
    check_records(0, records_);
    for (uint64_t w = 0; w < words; ++w) verified_[w].store(~uint64_t{0}, std::memory_order_relaxed);
  } else if (verify == Verify::kAll) {
    verify_all();
  }
}

void PreparedShard::check_records(uint64_t begin, uint64_t end) const {
  auto fail = [&](uint64_t r, const std::string& what) -> UserError {
    return UserError(path() + ": record " + std::to_string(r) + " " + what + fix_);
  };
  for (uint64_t r = begin; r < end; ++r) {
    if (offsets_[r + 1] < offsets_[r] || offsets_[r + 1] > tokens_) throw fail(r, "has a corrupted offsets entry");
    const uint64_t len = offsets_[r + 1] - offsets_[r];
    if (len < 2 || len > max_len_) throw fail(r, "has " + std::to_string(len) + " tokens");
    for (size_t l = 0; l < num_labels_; ++l)
      if (labels(r)[l] > label_scale_ && labels(r)[l] != kLabelUnannotated)
        throw fail(r, "has a corrupted label value");
    for (size_t g = 0; g < num_subgroups_; ++g)
      if (subgroup(r, g) > kSoftLabelScale && subgroup(r, g) != kLabelUnannotated)
        throw fail(r, "has a corrupted subgroup value");
    for (size_t f = 0; f < num_slices_; ++f)
      if (slices_[r * num_slices_ + f] > slice_values_[f].size()) throw fail(r, "has a corrupted slice value");
    if (vocab_size_ > 0)
      for (uint32_t p = 0; p < len; ++p)
        if (static_cast<uint64_t>(token(r, p)) >= vocab_size_)
          throw fail(r, "has token id " + std::to_string(token(r, p)) + " outside the vocabulary");
  }
}

void PreparedShard::verify_block(uint64_t block) const {
  if (block >= blocks_) throw InternalError(path() + ": block " + std::to_string(block) + " past the end");
  const uint64_t a = block * kShardBlockRecords, e = std::min(records_, a + kShardBlockRecords);
  const std::string records = "records " + std::to_string(a) + "-" + std::to_string(e - 1);
  if (offsets_[a] > offsets_[e] || offsets_[e] > tokens_)
    throw UserError(path() + ": corrupted shard (offsets of " + records + " out of range)" + fix_);
  const Sections sections{offsets_,    lines_,     token_data_,    token_bytes_, labels_,
                          num_labels_, subgroups_, num_subgroups_, slices_,      num_slices_};
  if (block_checksum(sections, a, e) != block_sums_[block])
    throw UserError(path() + ": corrupted shard (checksum mismatch in " + records + ")" + fix_);
  check_records(a, e);
  verified_[block / 64].fetch_or(uint64_t{1} << (block % 64), std::memory_order_acq_rel);
}

void PreparedShard::verify_all() const {
  for (uint64_t b = 0; b < blocks_; ++b) verify_block_of(b * kShardBlockRecords);
}

uint64_t PreparedShard::blocks_verified() const {
  uint64_t n = 0;
  for (uint64_t b = 0; b < blocks_; ++b) n += verified_[b / 64].load(std::memory_order_relaxed) >> (b % 64) & 1;
  return n;
}

const std::string* PreparedShard::slice(uint64_t record, size_t f) const {
  const uint32_t index = slices_[record * num_slices_ + f];
  return index == 0 ? nullptr : &slice_values_[f][index - 1];
}

int32_t PreparedShard::token(uint64_t record, uint32_t position) const {
  uint64_t i = offsets_[record] + position;
  if (token_bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, token_data_ + i * 2, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, token_data_ + i * 4, 4);
  return static_cast<int32_t>(v);
}

void PreparedShard::copy_tokens(uint64_t record, int64_t* dst) const {
  const uint64_t begin = offsets_[record], n = offsets_[record + 1] - begin;
  if (token_bytes_ == 2) {
    const uint8_t* p = token_data_ + begin * 2;
    for (uint64_t k = 0; k < n; ++k) dst[k] = static_cast<int64_t>(p[2 * k] | (p[2 * k + 1] << 8));
  } else {
    for (uint64_t k = 0; k < n; ++k) {
      uint32_t v;
      std::memcpy(&v, token_data_ + (begin + k) * 4, 4);
      dst[k] = v;
    }
  }
}

std::vector<int32_t> PreparedShard::ids(uint64_t record) const {
  std::vector<int32_t> out(length(record));
  for (uint32_t p = 0; p < out.size(); ++p) out[p] = token(record, p);
  return out;
}

}  // namespace modtrain
