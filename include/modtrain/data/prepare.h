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
};

struct PrepareReport {
  Manifest manifest;
  double seconds = 0;
  std::string summary() const;  // the lines printed at the end: input = kept + rejected per split
};

PrepareReport prepare_data(const Config& config, const PrepareOptions& options);

}  // namespace modtrain
