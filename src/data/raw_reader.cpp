#include "modtrain/data/raw_reader.h"

#include <csv.h>
#include <glob.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "unicode.h"

namespace modtrain {
namespace {

using nlohmann::json;

std::string lower_extension(const std::string& path) {
  size_t dot = path.find_last_of('.');
  size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

int label_index(const LabelSpec& spec, const std::string& name) {
  for (size_t i = 0; i < spec.names.size(); ++i)
    if (spec.names[i] == name) return static_cast<int>(i);
  return -1;
}

// A field modtrain reads besides the labels: text, id, a subgroup or a slice field.
bool reads_field(const LabelSpec& spec, const std::string& name) {
  return name == "text" || name == "id" || std::count(spec.subgroups.begin(), spec.subgroups.end(), name) > 0 ||
         std::count(spec.slice_by.begin(), spec.slice_by.end(), name) > 0;
}

std::string known_labels(const LabelSpec& spec) {
  std::string s;
  for (const auto& n : spec.names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// libcsv callbacks: collect the cells of one row.
struct CsvRow {
  std::vector<std::string> fields;
  bool done = false;
};
void csv_field(void* data, size_t length, void* row) {
  static_cast<CsvRow*>(row)->fields.emplace_back(static_cast<const char*>(data), length);
}
void csv_row_end(int, void* row) { static_cast<CsvRow*>(row)->done = true; }
int csv_no_space(unsigned char) { return 0; }  // keep cells exactly as written

// A whole cell as a decimal number ("0.25", "1", "1e-1"); false for anything else: strtod alone
// also takes hexadecimal ("0x1" is 1.0), "inf", "nan" and leading spaces.
bool parse_number(const std::string& cell, double& v) {
  if (cell.empty() || cell.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  char* end = nullptr;
  v = std::strtod(cell.c_str(), &end);
  return end == cell.c_str() + cell.size();
}

std::string trimmed(std::string cell) {
  while (!cell.empty() && (cell.back() == ' ' || cell.back() == '\r')) cell.pop_back();
  while (!cell.empty() && cell.front() == ' ') cell.erase(cell.begin());
  return cell;
}

// Subgroup mentions and slice values of a JSONL record: top-level keys named like the field.
bool decode_json_extras(const LabelSpec& spec, const json& j, RawRecord& record, std::string& reason) {
  record.subgroups.assign(spec.subgroups.size(), kLabelUnannotated);
  for (size_t g = 0; g < spec.subgroups.size(); ++g) {
    auto it = j.find(spec.subgroups[g]);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_boolean()) record.subgroups[g] = it->get<bool>() ? kSoftLabelScale : 0;
    else if (!it->is_number() || !encode_fraction(it->get<double>(), record.subgroups[g])) {
      reason = "subgroup '" + spec.subgroups[g] + "' has value " + it->dump() +
               "; use a share in [0, 1], true/false, or null when unknown";
      return false;
    }
  }
  record.slices.assign(spec.slice_by.size(), "");
  record.slice_present.assign(spec.slice_by.size(), 0);
  for (size_t f = 0; f < spec.slice_by.size(); ++f) {
    auto it = j.find(spec.slice_by[f]);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_string()) record.slices[f] = it->get<std::string>();
    else if (it->is_number_integer() || it->is_boolean()) record.slices[f] = it->dump();
    else {
      reason = "slice field '" + spec.slice_by[f] + "' has value " + it->dump() + "; use a string or an integer";
      return false;
    }
    record.slice_present[f] = 1;
  }
  return true;
}

}  // namespace

bool encode_fraction(double v, uint8_t& out, double positive_at) {
  if (!(v >= 0.0 && v <= 1.0)) return false;  // NaN too
  long k = std::lround(v * kSoftLabelScale);
  // As ShardReader::label_value() decodes it, and as the evaluator compares it.
  auto positive = [&](long b) {
    return static_cast<double>(static_cast<float>(b) / static_cast<float>(kSoftLabelScale)) >= positive_at;
  };
  const bool want = v >= positive_at;
  while (positive(k) != want && k >= 0 && k <= kSoftLabelScale) k += want ? 1 : -1;
  out = static_cast<uint8_t>(std::clamp<long>(k, 0, kSoftLabelScale));
  return true;
}

bool splits_at_lines(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == "jsonl" || ext == "ndjson" || ext == "json" || ext == "txt" || ext == "text";
}

RawShardReader::RawShardReader(const std::string& path, LabelSpec spec, bool labels_required, uint64_t max_record_bytes,
                               ByteRange range)
    : path_(path), spec_(std::move(spec)), labels_required_(labels_required), max_record_bytes_(max_record_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(path + " is " + io::describe_path(path) +
                    ", not a data file; give JSONL, CSV or TSV files (.jsonl, .csv, .tsv)");
  std::string ext = lower_extension(path);
  if (ext == "jsonl" || ext == "ndjson" || ext == "json") format_ = RawFormat::kJsonl;
  else if (ext == "csv") format_ = RawFormat::kCsv;
  else if (ext == "tsv" || ext == "tab") format_ = RawFormat::kTsv;
  else if (ext == "txt" || ext == "text") format_ = RawFormat::kText;
  else if (ext.empty())
    throw UserError(path +
                    ": no file extension to tell the data format; name it .jsonl (one JSON object per line), "
                    ".csv or .tsv");
  else
    throw UserError(path + ": unknown data format '." + ext +
                    "'; use .jsonl (one JSON object per line), .csv, .tsv, or .txt (one unlabelled post per line)");
  if (format_ == RawFormat::kText && labels_required_ && !spec_.names.empty())
    throw UserError(path +
                    ": a .txt file is unlabelled text (one post per line) but data.labels names labels; pretrain on "
                    "it with train.objective: mlm and data.labels: [], or give labelled JSONL/CSV/TSV");
  in_.open(path, std::ios::binary);
  if (!in_) throw UserError(path + ": cannot open data file (check the path and permissions)");
  if (format_ == RawFormat::kJsonl || format_ == RawFormat::kText) {
    if (range.begin > 0 && !in_.seekg(static_cast<std::streamoff>(range.begin)))
      throw UserError(path + ": cannot seek to byte " + std::to_string(range.begin) + " (the file shrank?)");
    position_ = range.begin, end_ = range.end, line_ = range.first_line - 1;
    return;
  }
  MT_CHECK(range.whole(), path << ": a CSV/TSV file is read whole, not in byte ranges");

  RawUnit header;
  if (!read_csv_row(header))
    throw UserError(path + ":1: empty file; a CSV/TSV shard needs a header row with a `text` column");
  columns_ = header.fields.size();
  label_columns_.assign(spec_.names.size(), -1);
  subgroup_columns_.assign(spec_.subgroups.size(), -1);
  slice_columns_.assign(spec_.slice_by.size(), -1);
  std::map<std::string, size_t> seen;  // a column modtrain reads, named twice: refused, not last-one-wins
  for (size_t c = 0; c < header.fields.size(); ++c) {
    std::string name = header.fields[c];
    if (c == 0 && name.rfind("\xEF\xBB\xBF", 0) == 0) name = name.substr(3);  // UTF-8 byte order mark
    const bool read = reads_field(spec_, name) || label_index(spec_, name) >= 0;
    if (read && !seen.emplace(name, c + 1).second)
      throw UserError(path + ":1: the header names column \"" + name + "\" twice (columns " +
                      std::to_string(seen[name]) + " and " + std::to_string(c + 1) +
                      "); which one is meant is ambiguous: rename or remove one");
    if (name == "text") text_column_ = static_cast<int>(c);
    else if (name == "id") id_column_ = static_cast<int>(c);
    else if (int l = label_index(spec_, name); l >= 0) label_columns_[static_cast<size_t>(l)] = static_cast<int>(c);
    for (size_t g = 0; g < spec_.subgroups.size(); ++g)
      if (spec_.subgroups[g] == name) subgroup_columns_[g] = static_cast<int>(c);
    for (size_t f = 0; f < spec_.slice_by.size(); ++f)
      if (spec_.slice_by[f] == name) slice_columns_[f] = static_cast<int>(c);
  }
  for (size_t g = 0; g < spec_.subgroups.size(); ++g)
    if (subgroup_columns_[g] < 0)
      warnings_.push_back(path + ":1: no column for subgroup " + spec_.subgroups[g] +
                          " (data.subgroups): not annotated in this file (its records count as not mentioning it)");
  for (size_t f = 0; f < spec_.slice_by.size(); ++f)
    if (slice_columns_[f] < 0)
      warnings_.push_back(path + ":1: no column for slice field " + spec_.slice_by[f] +
                          " (eval.slice_by): its records count as having no value");
  if (text_column_ < 0) throw UserError(path + ":1: the header has no `text` column (columns: " + header.source + ")");
  std::vector<std::string> missing;
  for (size_t l = 0; l < spec_.names.size(); ++l)
    if (label_columns_[l] < 0) missing.push_back(spec_.names[l]);
  if (!missing.empty() && labels_required_) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    if (spec_.problem == Problem::kMultiClass)
      throw UserError(path + ":1: no column for label(s) " + names + "; multi_class data needs a 0/1 column per label");
    warnings_.push_back(path + ":1: no column for label(s) " + names + ": they count as not annotated in this file");
  }
}

bool RawShardReader::read_line(std::string& out, uint64_t& length, uint64_t* quotes) {
  return io::read_line_capped(in_, out, max_record_bytes_, length, '"', quotes);
}

bool RawShardReader::read_csv_row(RawUnit& unit) {
  csv_parser parser;
  csv_init(&parser, CSV_APPEND_NULL);
  csv_set_space_func(&parser, csv_no_space);
  if (format_ == RawFormat::kTsv) csv_set_delim(&parser, '\t');
  CsvRow row;
  std::string line;
  unit = RawUnit{};
  bool any = false;
  uint64_t quotes = 0, length = 0;  // quote characters so far: an odd count means inside a quoted cell
  while (!row.done && read_line(line, length, &quotes)) {
    ++line_;
    if (!any) {
      unit.line = line_;
      if (length == line.size() && is_blank(line)) {  // a blank line between rows
        unit.blank = true;
        unit.source = line;
        csv_free(&parser);
        return true;
      }
    }
    any = true;
    unit.bytes += length + (unit.bytes > 0 ? 1 : 0);
    if (unit.too_long || unit.bytes > max_record_bytes_) {
      // Too long: read past the rest of the row without keeping it. The row ends at a line end
      // outside quotes (a doubled "" inside a quoted cell counts twice, so parity tells).
      if (!unit.too_long) unit.source.resize(std::min<size_t>(unit.source.size(), 200));
      unit.too_long = true;
      if (quotes % 2 == 0) break;
      continue;
    }
    if (!unit.source.empty()) unit.source += '\n';
    unit.source += line;
    line += '\n';
    csv_parse(&parser, line.data(), line.size(), csv_field, csv_row_end, &row);
  }
  if (any && !row.done && !unit.too_long)
    csv_fini(&parser, csv_field, csv_row_end, &row);  // last row without newline / open quote
  csv_free(&parser);
  if (!any) return false;
  if (!unit.too_long) unit.fields = std::move(row.fields);
  return true;
}

bool RawShardReader::next(RawUnit& unit) {
  if (format_ == RawFormat::kCsv || format_ == RawFormat::kTsv) return read_csv_row(unit);
  unit = RawUnit{};
  if (position_ >= end_ || !read_line(unit.source, unit.bytes)) return false;
  position_ += unit.bytes + 1;  // the line and its '\n' (past the end only for a last line without one)
  ++line_;
  unit.line = line_;
  if (unit.bytes > max_record_bytes_) {
    unit.too_long = true;
    unit.source.resize(200);  // enough for rejected.jsonl to show which record it was
    return true;
  }
  if (!unit.source.empty() && unit.source.back() == '\r') unit.source.pop_back();
  unit.blank = is_blank(unit.source);
  return true;
}

bool RawShardReader::decode(const RawUnit& unit, RawRecord& record, std::string& reason) const {
  record = RawRecord{};
  if (unit.too_long) {
    reason = "a record of " + std::to_string(unit.bytes) + " bytes, longer than data.max_record_bytes (" +
             std::to_string(max_record_bytes_) + "); raise data.max_record_bytes if such posts are real";
    return false;
  }
  bool ok = true;
  if (format_ == RawFormat::kText) {  // the line is the post; no id, no labels
    record.text = unit.source;
    record.utf8_repairs = unicode::repair_utf8(record.text);
    record.labels.assign(spec_.names.size(), kLabelUnannotated);
    record.subgroups.assign(spec_.subgroups.size(), kLabelUnannotated);
    record.slices.assign(spec_.slice_by.size(), "");
    record.slice_present.assign(spec_.slice_by.size(), 0);
  } else {
    ok = format_ == RawFormat::kJsonl ? decode_json(unit, record, reason) : decode_csv(unit, record, reason);
  }
  if (!ok) return false;
  if (record.id.empty()) record.id = path_ + ":" + std::to_string(unit.line);
  if (is_blank(record.text)) {
    reason = "empty text";
    return false;
  }
  return spec_.problem != Problem::kMultiClass || !labels_required_ || check_multi_class(record, reason);
}

// A key modtrain reads that appears twice in a record (top level, or inside an object of labels);
// "" when none. A cheap scan first: a key can only repeat if its quoted name occurs twice.
std::string RawShardReader::duplicate_key(const std::string& line) const {
  auto twice = [&](const std::string& k) {
    const std::string quoted = "\"" + k + "\"";
    const size_t first = line.find(quoted);
    return first != std::string::npos && line.find(quoted, first + 1) != std::string::npos;
  };
  bool possible = false;
  for (const char* k : {"text", "id", "labels"}) possible = possible || twice(k);
  for (const auto* names : {&spec_.names, &spec_.subgroups, &spec_.slice_by})
    for (const auto& k : *names) possible = possible || twice(k);
  if (!possible) return "";
  struct Object {
    std::set<std::string> keys;
    bool labels;  // the object of labels: every key is read
  };
  std::vector<Object> open;
  std::string last_top_key, duplicate;
  json::parser_callback_t watch = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open.push_back({{}, open.size() == 1 && last_top_key == "labels"});
    } else if (event == json::parse_event_t::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == json::parse_event_t::key && !open.empty()) {
      const std::string k = parsed.get<std::string>();
      if (open.size() == 1) last_top_key = k;
      const bool watched = open.size() == 1 ? k == "labels" || reads_field(spec_, k) : open.back().labels;
      if (watched && !open.back().keys.insert(k).second && duplicate.empty())
        duplicate = (open.size() == 1 ? "" : "labels.") + k;
    }
    return true;
  };
  try {
    (void)json::parse(line, watch, /*allow_exceptions=*/false);
  } catch (const json::exception&) {}
  return duplicate;
}

bool RawShardReader::decode_json(const RawUnit& unit, RawRecord& record, std::string& reason) const {
  std::string line = unit.source;
  record.utf8_repairs = unicode::repair_utf8(line);
  // What the parser says, from "parse error ..." or "number overflow ..." on (a number that
  // overflows a double, 1e400 even in an ignored key, is a bad record like any other).
  auto invalid = [&](const json::exception& e) {
    const std::string what = e.what();
    size_t at = what.find("parse error");
    if (at == std::string::npos) at = what.find("number overflow");
    reason = "invalid JSON: " + (at == std::string::npos ? what : what.substr(at));
    if (what.find("number overflow") != std::string::npos) reason += " (does not fit a double)";
    return false;
  };
  json j;
  try {  // the overflow may throw even without exceptions
    j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  } catch (const json::exception& e) {
    return invalid(e);
  }
  if (j.is_discarded()) {
    try {  // parse again only to get the parser's message
      json reparsed = json::parse(line);
      (void)reparsed;
    } catch (const json::exception& e) {
      return invalid(e);
    }
  }
  if (!j.is_object()) {
    reason = "expected a JSON object {\"text\": ..., \"labels\": ...}";
    return false;
  }
  if (const std::string key = duplicate_key(line); !key.empty()) {  // the parser keeps the last one silently
    reason = "the key \"" + key + "\" appears twice; which value is meant is ambiguous (keep one)";
    return false;
  }
  auto text = j.find("text");
  if (text == j.end() || text->is_null()) {
    reason = "missing \"text\"";
    return false;
  }
  if (!text->is_string()) {
    reason = "\"text\" must be a string";
    return false;
  }
  record.text = text->get<std::string>();
  if (auto id = j.find("id"); id != j.end()) {
    if (id->is_string()) record.id = id->get<std::string>();
    else if (id->is_number_integer()) record.id = std::to_string(id->get<int64_t>());
    else if (!id->is_null()) {
      reason = "\"id\" must be a string or an integer";
      return false;
    }
  }
  if (!decode_json_extras(spec_, j, record, reason)) return false;
  const size_t n = spec_.names.size();
  if (!labels_required_ && n == 0) return true;  // text only (vocabulary training)
  auto labels = j.find("labels");
  if (labels == j.end() || labels->is_null()) {
    if (labels_required_) {
      reason = "missing \"labels\" (a list of label names, or an object {label: 1/0/null})";
      return false;
    }
    record.labels.assign(n, kLabelUnannotated);
    return true;
  }
  const uint8_t positive = static_cast<uint8_t>(spec_.label_scale());
  if (labels->is_array()) {  // the labels listed are positive, every other label negative
    record.labels.assign(n, kLabelNegative);
    for (const auto& name : *labels) {
      if (!name.is_string()) {
        reason = "\"labels\" list items must be label names (strings)";
        return false;
      }
      int l = label_index(spec_, name.get<std::string>());
      if (l < 0) {
        reason = "unknown label '" + name.get<std::string>() + "' (data.labels: " + known_labels(spec_) + ")";
        return false;
      }
      record.labels[static_cast<size_t>(l)] = positive;
    }
    return true;
  }
  if (labels->is_object()) {  // {label: 1 | 0 | true | false | null | -1}; labels not named: not annotated
    record.labels.assign(n, kLabelUnannotated);
    for (const auto& [name, value] : labels->items()) {
      int l = label_index(spec_, name);
      if (l < 0) {
        reason = "unknown label '" + name + "' (data.labels: " + known_labels(spec_) + ")";
        return false;
      }
      uint8_t v;
      if (value.is_null() || (value.is_number_integer() && value.get<int64_t>() == -1)) v = kLabelUnannotated;
      else if (value.is_boolean()) v = value.get<bool>() ? positive : kLabelNegative;
      else if (spec_.soft) {
        if (!value.is_number() || !encode_fraction(value.get<double>(), v, spec_.positive_at)) {
          reason = "label '" + name + "' has value " + value.dump() +
                   "; soft labels (data.soft_labels) lie in [0, 1], or null/-1 for not annotated";
          return false;
        }
      } else if (value.is_number() && (value.get<double>() == 0.0 || value.get<double>() == 1.0))
        v = value.get<double>() == 1.0 ? kLabelPositive : kLabelNegative;
      else {
        const bool share = value.is_number() && value.get<double>() > 0.0 && value.get<double>() < 1.0;
        reason = "label '" + name + "' has value " + value.dump() + "; use 1, 0, or null/-1 for not annotated" +
                 (share ? " (shares in [0, 1] need data.soft_labels: true)" : "");
        return false;
      }
      record.labels[static_cast<size_t>(l)] = v;
    }
    return true;
  }
  reason = "\"labels\" must be a list of names or an object {label: 1/0/null}";
  return false;
}

bool RawShardReader::decode_csv(const RawUnit& unit, RawRecord& record, std::string& reason) const {
  if (unit.fields.size() != columns_) {
    reason = "expected " + std::to_string(columns_) + " columns as in the header, got " +
             std::to_string(unit.fields.size()) + " (an unquoted delimiter or an unclosed quote?)";
    return false;
  }
  record.text = unit.fields[static_cast<size_t>(text_column_)];
  record.utf8_repairs = unicode::repair_utf8(record.text);
  if (id_column_ >= 0) record.id = unit.fields[static_cast<size_t>(id_column_)];
  record.labels.assign(spec_.names.size(), kLabelUnannotated);
  for (size_t l = 0; l < spec_.names.size(); ++l) {
    int column = label_columns_[l];
    if (column < 0) continue;
    const std::string cell = trimmed(unit.fields[static_cast<size_t>(column)]);
    if (cell.empty() || cell == "-1") continue;
    double v = 0;
    if (cell == "true") record.labels[l] = static_cast<uint8_t>(spec_.label_scale());
    else if (cell == "false") record.labels[l] = kLabelNegative;
    else if (spec_.soft) {
      if (!parse_number(cell, v) || !encode_fraction(v, record.labels[l], spec_.positive_at)) {
        reason = "label '" + spec_.names[l] + "' has value '" + cell +
                 "'; soft labels (data.soft_labels) lie in [0, 1], or empty for not annotated";
        return false;
      }
    } else if (cell == "1" || cell == "1.0") record.labels[l] = kLabelPositive;
    else if (cell == "0" || cell == "0.0") record.labels[l] = kLabelNegative;
    else {
      const bool share = parse_number(cell, v) && v > 0.0 && v < 1.0;
      reason = "label '" + spec_.names[l] + "' has value '" + cell + "'; use 1, 0, or empty for not annotated" +
               (share ? " (shares in [0, 1] need data.soft_labels: true)" : "");
      return false;
    }
  }
  record.subgroups.assign(spec_.subgroups.size(), kLabelUnannotated);
  for (size_t g = 0; g < spec_.subgroups.size(); ++g) {
    if (subgroup_columns_[g] < 0) continue;
    const std::string cell = trimmed(unit.fields[static_cast<size_t>(subgroup_columns_[g])]);
    double v = 0;
    if (cell.empty()) continue;
    if (cell == "true" || cell == "false") record.subgroups[g] = cell == "true" ? kSoftLabelScale : 0;
    else if (!parse_number(cell, v) || !encode_fraction(v, record.subgroups[g])) {
      reason = "subgroup '" + spec_.subgroups[g] + "' has value '" + cell +
               "'; use a share in [0, 1], true/false, or empty when unknown";
      return false;
    }
  }
  record.slices.assign(spec_.slice_by.size(), "");
  record.slice_present.assign(spec_.slice_by.size(), 0);
  for (size_t f = 0; f < spec_.slice_by.size(); ++f) {
    if (slice_columns_[f] < 0) continue;
    record.slices[f] = trimmed(unit.fields[static_cast<size_t>(slice_columns_[f])]);
    record.slice_present[f] = !record.slices[f].empty();
  }
  return true;
}

bool RawShardReader::check_multi_class(const RawRecord& record, std::string& reason) const {
  auto positives = std::count(record.labels.begin(), record.labels.end(), kLabelPositive);
  if (positives == 1) return true;
  reason = "multi_class record has " + std::to_string(positives) + " labels; exactly one is required";
  return false;
}

std::vector<std::string> expand_globs(const std::vector<std::string>& patterns, const std::string& what) {
  std::set<std::string> unique;
  for (const auto& pattern : patterns) {
    glob_t g{};
    int rc = ::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
    if (rc == GLOB_NOMATCH || g.gl_pathc == 0) {
      globfree(&g);
      // [ ] * ? are glob characters: train[1].jsonl is a character class that matches train1.jsonl
      std::string hint;
      if (pattern.find_first_of("[]") != std::string::npos && std::filesystem::exists(pattern))
        hint =
            "; a file of that very name exists, but [ ] make a glob character class: write \\[ and \\] for "
            "brackets in a name";
      else if (pattern.find_first_of("[]*?") != std::string::npos) hint = "; note that * ? [ ] are glob characters";
      throw UserError(what + ": '" + pattern + "' matches no file (relative paths start from the current directory" +
                      hint + ")");
    }
    if (rc != 0) {
      globfree(&g);
      throw UserError(what + ": cannot expand '" + pattern + "'");
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) unique.insert(g.gl_pathv[i]);
    globfree(&g);
  }
  return {unique.begin(), unique.end()};
}

}  // namespace modtrain
