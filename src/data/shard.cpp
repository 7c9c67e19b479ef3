#include "modtrain/data/shard.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/raw_reader.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "prepared shards are little-endian; this host is not");

namespace modtrain {
namespace {

size_t padded(size_t bytes) { return (bytes + 7) & ~size_t{7}; }

// Checksum of the sections: 8 bytes per step, multiply-rotate mixing (fast enough to verify
// every shard at open: several GB/s).
uint64_t body_checksum(const uint8_t* data, size_t size) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h ^= w * 0xC2B2AE3D27D4EB4FULL;
    h = ((h << 31) | (h >> 33)) * 0x9E3779B97F4A7C15ULL;
  }
  for (; i < size; ++i) h = (h ^ data[i]) * 0x100000001B3ULL;
  return h ^ (h >> 29);
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
  uint64_t checksum;  // FNV-1a of the 32 bytes above: checked before any of them is used
  uint8_t reserved[24];
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
  append_bytes(body, &ext, 1);
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
  h.checksum = body_checksum(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  std::string file(reinterpret_cast<const char*>(&h), sizeof h);
  file += body;
  io::write_file_atomic(path_, file);
  checksum_ = h.checksum;
  bytes_ = file.size();
}

// ---- reader -------------------------------------------------------------------------------------
PreparedShard::PreparedShard(const std::string& path, const ShardSchema& expected)
    : file_(std::make_shared<io::MappedFile>(path)) {
  auto fail = [&](const std::string& what) -> UserError {
    return UserError(path + ": " + what + "; run `modtrain data prepare` again to rebuild the prepared data");
  };
  const uint8_t* data = file_->data();
  const size_t size = file_->size();
  if (size < kShardHeaderBytes)
    throw fail("truncated shard (" + std::to_string(size) + " bytes, the header alone is 64)");
  Header h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kShardMagic, 8) != 0) throw fail("not a modtrain prepared shard (bad magic number)");
  if (h.version != 1 && h.version != kShardVersion)
    throw fail("shard format version " + std::to_string(h.version) + ", this modtrain reads versions 1 and " +
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
  const size_t want = kShardHeaderBytes + ext_bytes + offsets_bytes + lines_bytes + token_bytes + label_bytes +
                      subgroup_bytes + slice_bytes + dictionary_bytes;
  if (size != want)
    throw fail(size < want ? "truncated shard (" + std::to_string(size) + " of " + std::to_string(want) + " bytes)"
                           : "corrupted shard (" + std::to_string(size - want) + " unexpected trailing bytes)");
  if (body_checksum(data + kShardHeaderBytes, size - kShardHeaderBytes) != h.checksum)
    throw fail("corrupted shard (checksum mismatch)");

  records_ = h.records;
  tokens_ = h.tokens;
  checksum_ = h.checksum;
  token_bytes_ = h.token_bytes;
  num_labels_ = h.num_labels;
  label_scale_ = ext.label_scale;
  num_subgroups_ = ext.num_subgroups;
  num_slices_ = ext.num_slices;
  offsets_ = reinterpret_cast<const uint64_t*>(data + kShardHeaderBytes + ext_bytes);
  lines_ = offsets_ + h.records + 1;
  token_data_ = reinterpret_cast<const uint8_t*>(lines_ + h.records);
  labels_ = token_data_ + token_bytes;
  subgroups_ = labels_ + label_bytes;
  slices_ = reinterpret_cast<const uint32_t*>(subgroups_ + subgroup_bytes);
  if (num_slices_ > 0) {
    const char* dict = reinterpret_cast<const char*>(subgroups_ + subgroup_bytes + slice_bytes);
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
    for (uint64_t i = 0; i < records_ * num_slices_; ++i)
      if (slices_[i] > slice_values_[i % num_slices_].size())
        throw fail("corrupted slice value at record " + std::to_string(i / num_slices_));
  }
  for (uint64_t i = 0; i < records_ * num_subgroups_; ++i)
    if (subgroups_[i] > kSoftLabelScale && subgroups_[i] != kLabelUnannotated)
      throw fail("corrupted subgroup value at record " + std::to_string(i / num_subgroups_));
  // Structure: offsets, lengths, label values, token ids.
  if (offsets_[0] != 0 || offsets_[records_] != tokens_) throw fail("corrupted offsets table");
  for (uint64_t r = 0; r < records_; ++r) {
    if (offsets_[r + 1] < offsets_[r]) throw fail("corrupted offsets table at record " + std::to_string(r));
    uint64_t len = offsets_[r + 1] - offsets_[r];
    if (len < 2 || len > h.max_len)
      throw fail("record " + std::to_string(r) + " has " + std::to_string(len) + " tokens");
  }
  for (uint64_t i = 0; i < records_ * num_labels_; ++i)
    if (labels_[i] > label_scale_ && labels_[i] != kLabelUnannotated)
      throw fail("corrupted label value at record " + std::to_string(i / num_labels_));
  if (expected.vocab_size > 0) {
    for (uint64_t r = 0; r < records_; ++r)
      for (uint32_t p = 0; p < length(r); ++p)
        if (static_cast<uint64_t>(token(r, p)) >= expected.vocab_size)
          throw fail("record " + std::to_string(r) + " has token id " + std::to_string(token(r, p)) +
                     " outside the vocabulary");
  }
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
