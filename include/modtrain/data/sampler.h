// Distributed sampler: one global order over all prepared records per epoch, seeded by (seed,
// epoch), and each rank's share of every step, in memory bounded by the config, not by the dataset.
//
// The order (data-format.md, "Sampling across ranks"): records are taken in blocks of
// `block_records` consecutive records; the full blocks are permuted by a keyed bijection computed
// per block (a Feistel network, no array), the partial last block comes last; consecutive blocks
// form windows of `shuffle_window` records, and each window's records are shuffled; a split that
// fits in one window is one permutation of all its records (the order earlier versions drew). Only
// the window in use is held (4 bytes per record of it). The order does not depend on the
// world size, so W ranks at batch B read exactly the records of one rank at batch W x B, step for
// step; every rank gets the same number of batches (the last ceil(N/W)*W - N positions repeat
// records from the start of the order, at most W-1 per epoch, flagged as padding); the state
// (epoch, batch) is saved and restored exactly.
// Length grouping: windows of `group_window` global batches are sorted by length and their steps
// shuffled within the window (over the whole epoch when the split fits in one shuffle window).
// Token budgets (tokens_per_batch > 0, train.tokens_per_batch): an epoch of S global steps, S =
// ceil(all tokens / (W x budget)), the same in every epoch; the order is cut into S x W contiguous
// parts of about equal tokens (a record belongs to the part holding its middle token; every part
// keeps at least one record), part s x W + r being rank r's batch at step s. The cuts are found by
// walking the order's lengths from the epoch's start (a cursor kept between calls), so a rank reads
// the lengths of every step's records, not only its own. So every rank takes S steps, a rank's
// batch holds about `budget` real tokens (never more than one record over), and W ranks at budget B
// cut the epoch exactly where one rank at budget W x B does.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace modtrain {

struct SamplerOptions {
  uint64_t seed = 0;
  int rank = 0;
  int world = 1;
  uint32_t batch_size = 32;           // per rank
  bool shuffle = true;                // false: records in order (evaluation)
  bool group_by_length = false;       // batches of similar lengths (less padding), batch order shuffled
  uint32_t group_window = 64;         // length-sorting window, in global batches
  uint32_t tokens_per_batch = 0;      // > 0: batches by real tokens per rank (needs lengths), not batch_size
  uint64_t shuffle_window = 1 << 20;  // records shuffled together (rounded up to whole blocks)
  uint32_t block_records = 256;       // consecutive records whose order the block permutation keeps
  uint64_t total_tokens = 0;          // token budgets: all records' tokens (0: summed from the lengths)
};

struct SamplerState {
  uint64_t epoch = 0;
  uint64_t batch = 0;  // next batch within the epoch
  bool operator==(const SamplerState& o) const { return epoch == o.epoch && batch == o.batch; }
};

struct SampledBatch {
  std::vector<uint64_t> indices;  // global record indices, this rank's part
  std::vector<uint8_t> padding;   // 1 where the index repeats a record to even out the ranks
  uint64_t epoch = 0, batch = 0;
};

// A keyed bijection of [0, n), evaluated one value at a time in O(1) memory: a 4-round balanced
// Feistel network on the smallest even number of bits covering n, walking the cycle past values
// outside [0, n) (Black and Rogaway's cycle-walking).
class KeyedPermutation {
 public:
  KeyedPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t n_, key_, mask_ = 0;
  unsigned half_bits_ = 0;
};

class DistributedSampler {
 public:
  using LengthFn = std::function<uint32_t(uint64_t)>;
  DistributedSampler(uint64_t num_records, SamplerOptions options, LengthFn lengths = nullptr);

  uint64_t batches_per_epoch() const { return batches_; }
  const SamplerOptions& options() const { return options_; }

  SampledBatch batch(uint64_t epoch, uint64_t batch) const;

  // Advances a state by one batch (wrapping into the next epoch).
  SamplerState next(SamplerState state) const;

  // The record at position p of epoch's global order (p past the records: repeats from the start).
  uint64_t record_at(uint64_t epoch, uint64_t position) const;

  // Bytes the sampler holds now (its caches): bounded by the windows, whatever the dataset's size.
  uint64_t memory_bytes() const;

 private:
  struct Window {
    uint64_t epoch = UINT64_MAX, index = 0;
    std::vector<uint32_t> slots;  // the split in one window: records; else positions in the window's blocks
  };
  struct Sorted {
    uint64_t epoch = UINT64_MAX, index = 0;
    std::vector<uint64_t> records;
  };
  const Window& window(uint64_t epoch, uint64_t index) const;   // shuffle window `index` (the last one kept)
  uint64_t grouped_step(uint64_t epoch, uint64_t batch) const;  // length grouping: the step a batch takes
  uint64_t record_locked(uint64_t epoch, uint64_t position) const;
  uint64_t sorted_at(uint64_t epoch, uint64_t position) const;  // length grouping: the sorted order
  uint64_t cut(uint64_t epoch, uint64_t k) const;               // token budgets: part k's first position

  uint64_t n_;
  SamplerOptions options_;
  LengthFn lengths_;
  uint64_t per_rank_, batches_;
  uint64_t full_blocks_, window_records_;
  KeyedPermutation block_order(uint64_t epoch) const;
  mutable std::mutex mutex_;
  mutable Window window_;
  mutable Sorted sorted_;                // length grouping: one sorting window (its index in `index`)
  mutable std::vector<uint64_t> steps_;  // length grouping, the split in one window: the epoch's step order
  mutable uint64_t steps_epoch_ = UINT64_MAX;
  uint64_t total_tokens_ = 0;
  // Token budgets: parts, padded positions, their tokens, and the walk's cursor.
  uint64_t parts_ = 0, padded_ = 0;
  struct Cursor {
    uint64_t epoch = UINT64_MAX, tokens = 0;  // tokens: the epoch's, padding included
    uint64_t k = 1, position = 0, before = 0, last_index = 0, last_value = 0;
  };
  mutable Cursor cursor_;
};

// SplitMix64: a tiny, portable generator (std::shuffle's results differ between standard
// libraries, which would break "same seed, same data order" across machines).
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t bound) {  // uniform in [0, bound), rejection sampling
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }
};

}  // namespace modtrain
