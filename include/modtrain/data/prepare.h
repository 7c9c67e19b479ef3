// `modtrain data prepare`: raw shards -> normalised, tokenized, validated binary shards plus
// manifest.json, on all cores of every rank. Bad records stop the run (data.on_bad_record: fail,
// with file:line: reason) or go to rejected.jsonl (skip); every input record is accounted for.
// Distributed: a raw file is cut into chunks at line ends (data.shard_bytes), every chunk becomes
// one shard, and the chunks are split between the ranks by bytes; rank 0 writes the manifest. The output is
// byte for byte what one process writes from the same input.
#pragma once

#include <cstdint>
#include <functional>
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

// The ranks that prepare together: `mpirun -np N modtrain data prepare`, or every rank of `train`
// under data.prepare: auto. The default is one process. data/ knows no MPI: the caller passes the
// control plane's gather (bounded by data.prepare_timeout_s).
struct PrepareGroup {
  int rank = 0, size = 1;
  // Collective: every rank's text, indexed by rank; `what` names the step in a timeout's error.
  std::function<std::vector<std::string>(const std::string& text, const std::string& what)> all_gather;
};

// Every rank of `group` calls it. Only rank 0's report holds the whole manifest. Fails alike on
// every rank (one line, from rank 0) with data.prepared_dir as it was: the new shards are written
// in a staging directory and swapped in only when every rank has finished.
PrepareReport prepare_data(const Config& config, const PrepareOptions& options, const PrepareGroup& group = {});

// Why data.prepared_dir no longer matches its sources and this config, in one phrase ("data.max_len
// is 128, it was prepared with 64", "data/train-00001.jsonl changed since it was prepared ..."), or
// "" when it matches. Cheap: stats of the raw files, the vocab's hash and the shards' sizes; the
// shards' checksums are verified when they are opened (PreparedDataset::open). Throws UserError
// when data.train / data.valid match nothing.
std::string prepared_data_stale(const Config& config);
// The same check split between ranks: the settings on every rank, the per-file checks (stat, hash
// with data.verify_sources: hash, the shard files' sizes) only for the files i with i % size ==
// rank. `order` is where in the one-process check the reason was found: the lowest over the ranks
// is the one-process answer.
struct Staleness {
  uint64_t order = UINT64_MAX;
  std::string reason;  // "": fresh as far as this rank's share goes
};
Staleness prepared_data_staleness(const Config& config, int rank, int size);

}  // namespace modtrain
