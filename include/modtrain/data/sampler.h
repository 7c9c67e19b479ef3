// Distributed sampler: one global view over all prepared records; each epoch a permutation
// seeded by (seed, epoch); every rank gets the same number of batches whatever the shard count
// and sizes (the last ceil(N/W)*W - N positions repeat records from the start of the
// permutation, at most W-1 per epoch, and are flagged as padding); its state (epoch, batch) is
// saved and restored exactly. Identical on every rank: no communication needed.
// Token budgets (tokens_per_batch > 0, train.tokens_per_batch): an epoch of S global steps, S =
// ceil(all tokens / (W x budget)), the same in every epoch; the permuted records are cut into S x W
// contiguous parts of about equal tokens (a record belongs to the part holding its middle token;
// every part keeps at least one record), part s x W + r being rank r's batch at step s. So every
// rank takes S steps, a rank's batch holds about `budget` real tokens (never more than one record
// over), and W ranks at budget B cut the epoch exactly where one rank at budget W x B does.
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
  uint32_t batch_size = 32;       // per rank
  bool shuffle = true;            // false: records in order (evaluation)
  bool group_by_length = false;   // batches of similar lengths (less padding), batch order shuffled
  uint32_t group_window = 64;     // length-sorting window, in global batches
  uint32_t tokens_per_batch = 0;  // > 0: batches by real tokens per rank (needs lengths), not batch_size
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

class DistributedSampler {
 public:
  using LengthFn = std::function<uint32_t(uint64_t)>;
  DistributedSampler(uint64_t num_records, SamplerOptions options, LengthFn lengths = nullptr);

  uint64_t batches_per_epoch() const { return batches_; }
  const SamplerOptions& options() const { return options_; }

  SampledBatch batch(uint64_t epoch, uint64_t batch) const;

  // Advances a state by one batch (wrapping into the next epoch).
  SamplerState next(SamplerState state) const;

 private:
  const std::vector<uint64_t>& order(uint64_t epoch) const;  // the padded global order of an epoch
  void cut(uint64_t epoch) const;                            // token budgets: the parts of an epoch (cached)

  uint64_t n_;
  SamplerOptions options_;
  LengthFn lengths_;
  uint64_t per_rank_, batches_;
  mutable std::mutex mutex_;
  mutable uint64_t cached_epoch_ = UINT64_MAX;
  mutable std::vector<uint64_t> cached_order_;
  uint64_t total_tokens_ = 0;  // token budgets: over all records
  mutable uint64_t cut_epoch_ = UINT64_MAX;
  mutable std::vector<uint64_t> cuts_;  // token budgets: S x W + 1 part boundaries into order(epoch)
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
