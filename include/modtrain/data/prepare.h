// `modtrain data prepare`: raw shards -> normalised, tokenized, validated binary shards plus
// manifest.json, on all cores. Bad records stop the run (data.on_bad_record: fail, with
// file:line: reason) or go to rejected.jsonl (skip); every input record is accounted for.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/dataset.h"

namespace modtrain {

struct PrepareOptions {
  int threads = 0;        // 0 = all cores
  bool progress = false;  // a live progress line on stderr (when it is a terminal)
  // How the user skips bad records, in the words of the command that prepares (`eval` has a flag).
  std::string skip_hint = "set data.on_bad_record=skip to write such records to rejected.jsonl and go on";
};

struct PrepareReport {
  Manifest manifest;
  double seconds = 0;
  std::string summary() const;  // the lines printed at the end: input = kept + rejected per split
};

PrepareReport prepare_data(const Config& config, const PrepareOptions& options);

// Why data.prepared_dir no longer matches its sources and this config, in one phrase ("data.max_len
// is 128, it was prepared with 64", "data/train-00001.jsonl changed since it was prepared ..."), or
// "" when it matches. Cheap: stats of the raw files, the vocab's hash and the shards' sizes; the
// shards' checksums are verified when they are opened (PreparedDataset::open). Throws UserError
// when data.train / data.valid match nothing.
std::string prepared_data_stale(const Config& config);

}  // namespace modtrain
