// Raw tweet shards: JSONL ({"id", "text", "labels"}) and CSV/TSV with a header (a `text` column
// and one 0/1 column per label); for unlabelled text (train.objective mlm, data.labels []) also
// plain .txt files, one post per line. A reader yields raw units (a line, or a CSV row) cheaply on one
// thread; decode() turns a unit into a record or a reason it is bad, on any thread.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

// Per-label annotation values in records and prepared shards.
inline constexpr uint8_t kLabelNegative = 0;
inline constexpr uint8_t kLabelPositive = 1;
inline constexpr uint8_t kLabelUnannotated = 0xFF;  // masked out of the loss
// Soft labels (data.soft_labels) and subgroup mentions are fractions stored as round(v x 240): exact
// for shares of 1-6, 8, 10, 12, 15, 16 or 20 annotators, within 1/480 otherwise; 255 = not annotated.
inline constexpr uint8_t kSoftLabelScale = 240;
// A fraction's byte (v in [0, 1]); false for anything else (NaN, outside [0, 1]). The byte is the
// nearest k / 240 on the same side of `positive_at` as v, so that binarising the stored value at
// positive_at (the metrics' rule: label_value() >= positive_at) gives v >= positive_at exactly: a
// share of 0.499 is stored as 119/240, not 120/240, when positive_at is 0.5.
bool encode_fraction(double v, uint8_t& out, double positive_at = 0.5);

struct LabelSpec {
  std::vector<std::string> names;
  Problem problem = Problem::kMultiLabel;
  bool soft = false;                   // labels as fractions (kSoftLabelScale), else 0/1
  std::vector<std::string> subgroups;  // identity-mention fields (data.subgroups)
  std::vector<std::string> slice_by;   // record fields to slice metrics by (eval.slice_by)
  double positive_at = 0.5;            // soft labels: where the metrics binarise (eval.positive_at); kept exact
  uint32_t label_scale() const { return soft ? kSoftLabelScale : 1; }
};

struct RawRecord {
  std::string id;                      // from the data, or "<file>:<line>" when absent
  std::string text;                    // UTF-8 (invalid sequences replaced by U+FFFD)
  std::vector<uint8_t> labels;         // [num labels]: 0..label_scale() (positive) or kLabelUnannotated
  std::vector<uint8_t> subgroups;      // [num subgroups]: 0..kSoftLabelScale or kLabelUnannotated (no value)
  std::vector<std::string> slices;     // [num slice fields]: the value as text
  std::vector<uint8_t> slice_present;  // [num slice fields]: 0 where the record has no value
  size_t utf8_repairs = 0;             // invalid UTF-8 sequences replaced in this record
};

// The largest record a reader keeps (data.max_record_bytes' default): a post is at most a few
// kilobytes of text; a megabyte leaves room for long posts and metadata, and a 2 GB line in a bad
// export costs a rejected record instead of 2 GB of memory on every prepare thread.
inline constexpr uint64_t kDefaultMaxRecordBytes = uint64_t{1} << 20;

struct RawUnit {
  uint64_t line = 0;                // 1-based line where the record starts
  std::string source;               // the record as written (for rejected.jsonl); its first bytes when too long
  uint64_t bytes = 0;               // the record's size in the file (without the line end)
  bool too_long = false;            // more than the reader's max_record_bytes: not kept, a bad record
  std::vector<std::string> fields;  // CSV/TSV: the row's cells
  bool blank = false;               // an empty or whitespace-only line (counted, not a record)
};

enum class RawFormat { kJsonl, kCsv, kTsv, kText };

// A part of a raw file: whole lines from byte `begin` (a line start) to `end` (a line start, or the
// file's end), the first of them line `first_line`. Line-oriented formats only (JSONL, .txt): a
// CSV/TSV row may span lines inside quotes, so a CSV/TSV file is read whole.
struct ByteRange {
  uint64_t begin = 0, end = UINT64_MAX;
  uint64_t first_line = 1;
  bool whole() const { return begin == 0 && end == UINT64_MAX; }
};
// Whether a file's format can be read in ranges (by its extension: .jsonl/.ndjson/.json/.txt/.text).
bool splits_at_lines(const std::string& path);

class RawShardReader {
 public:
  // Picks the format from the extension (.jsonl/.ndjson/.json, .csv, .tsv/.tab, .txt). Throws
  // UserError for an unreadable file, an unknown extension, a CSV header without a `text` column,
  // or a .txt file where labels are required (plain lines carry none).
  // A record (a line, or a CSV row) longer than max_record_bytes is read past, not kept, and
  // decodes as a bad record.
  RawShardReader(const std::string& path, LabelSpec spec, bool labels_required = true,
                 uint64_t max_record_bytes = kDefaultMaxRecordBytes, ByteRange range = {});

  const std::string& path() const { return path_; }
  RawFormat format() const { return format_; }

  bool next(RawUnit& unit);  // false at the end of the file
  // Decodes a unit; on failure returns false with a one-line reason ("invalid JSON: ...").
  bool decode(const RawUnit& unit, RawRecord& record, std::string& reason) const;
  std::vector<std::string> warnings() const { return warnings_; }

 private:
  bool decode_json(const RawUnit& unit, RawRecord& record, std::string& reason) const;
  std::string duplicate_key(const std::string& line) const;
  bool decode_csv(const RawUnit& unit, RawRecord& record, std::string& reason) const;
  bool check_multi_class(const RawRecord& record, std::string& reason) const;
  bool read_csv_row(RawUnit& unit);
  bool read_line(std::string& out, uint64_t& length, uint64_t* quotes = nullptr);  // at most max_record_bytes_ kept

  uint64_t max_record_bytes_;
  std::string path_;
  LabelSpec spec_;
  bool labels_required_;
  RawFormat format_;
  std::ifstream in_;
  uint64_t line_ = 0;
  uint64_t position_ = 0, end_ = UINT64_MAX;  // line formats: the next line's byte offset, the range's end
  // CSV/TSV
  int text_column_ = -1, id_column_ = -1;
  std::vector<int> label_columns_;                     // per label: column index or -1 (not in the file: not annotated)
  std::vector<int> subgroup_columns_, slice_columns_;  // likewise
  size_t columns_ = 0;
  std::vector<std::string> warnings_;
};

// Expands glob patterns (sorted, duplicates removed). Throws UserError naming `what` for a
// pattern that matches nothing.
std::vector<std::string> expand_globs(const std::vector<std::string>& patterns, const std::string& what);

}  // namespace modtrain
