#include "modtrain/data/sampler.h"

#include <algorithm>
#include <numeric>

#include "modtrain/core/error.h"

namespace modtrain {
namespace {

uint64_t hash64(uint64_t x) { return SplitMix64(x).next(); }

// The seeds of the epoch's streams: block permutation, window shuffles, step shuffles.
uint64_t epoch_key(uint64_t seed, uint64_t epoch, uint64_t stream) {
  return hash64(seed * 0x9E3779B97F4A7C15ULL + epoch * 0xD1B54A32D192ED03ULL + stream * 0xA0761D6478BD642FULL + 0x5EED);
}

template <class T>
void shuffle(std::vector<T>& v, uint64_t key) {  // Fisher-Yates with SplitMix64 (portable)
  SplitMix64 rng(key);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace

// ---- keyed permutation ---------------------------------------------------------------------------
KeyedPermutation::KeyedPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < n_) ++half_bits_;
  if (half_bits_ == 0) half_bits_ = 1;
  mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t KeyedPermutation::operator()(uint64_t i) const {
  if (n_ <= 1) return i;
  uint64_t x = i;
  do {  // cycle-walk: at most a few steps, since n > a quarter of the network's domain
    uint64_t left = x >> half_bits_, right = x & mask_;
    for (uint64_t round = 0; round < 4; ++round) {
      const uint64_t f = hash64(right ^ (key_ + round * 0x632BE59BD9B4E019ULL)) & mask_;
      const uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= n_);
  return x;
}

// ---- sampler -------------------------------------------------------------------------------------
DistributedSampler::DistributedSampler(uint64_t num_records, SamplerOptions options, LengthFn lengths)
    : n_(num_records), options_(options), lengths_(std::move(lengths)) {
  if (options_.world < 1 || options_.rank < 0 || options_.rank >= options_.world || options_.batch_size == 0 ||
      options_.block_records == 0 || options_.group_window == 0)
    throw InternalError("sampler: bad rank/world/batch size/block/window");
  if (n_ == 0)
    throw UserError("the prepared split has no records; check data.train / data.valid and the prepare summary");
  const uint64_t w = static_cast<uint64_t>(options_.world), k = options_.block_records;
  per_rank_ = (n_ + w - 1) / w;
  batches_ = (per_rank_ + options_.batch_size - 1) / options_.batch_size;
  full_blocks_ = n_ / k;
  window_records_ = std::max<uint64_t>(1, (options_.shuffle_window + k - 1) / k) * k;
  if ((options_.group_by_length || options_.tokens_per_batch > 0) && !lengths_)
    throw InternalError("sampler: length grouping and token budgets need the record lengths");
  if (options_.tokens_per_batch > 0) {
    total_tokens_ = options_.total_tokens;
    if (total_tokens_ == 0)
      for (uint64_t i = 0; i < n_; ++i) total_tokens_ += lengths_(i);
    const uint64_t budget = static_cast<uint64_t>(options_.tokens_per_batch) * w;
    batches_ = std::max<uint64_t>(1, (total_tokens_ + budget - 1) / budget);
    parts_ = batches_ * w;
    padded_ = std::max(n_, parts_);  // every part needs a record: repeats when there are fewer
  }
}

KeyedPermutation DistributedSampler::block_order(uint64_t epoch) const {
  return KeyedPermutation(full_blocks_, epoch_key(options_.seed, epoch, 1));
}

const DistributedSampler::Window& DistributedSampler::window(uint64_t epoch, uint64_t index) const {
  Window& w = window_;
  if (w.epoch == epoch && w.index == index) return w;
  w.epoch = epoch;
  w.index = index;
  if (n_ <= window_records_) {
    // One window holds the split: a permutation of all records, the one every earlier modtrain
    // drew for (seed, epoch), so a split up to data.shuffle_window records trains in the same order.
    w.slots.resize(n_);
    std::iota(w.slots.begin(), w.slots.end(), uint32_t{0});
    SplitMix64 rng(options_.seed * 0x9E3779B97F4A7C15ULL + epoch * 0xD1B54A32D192ED03ULL + 0x5EED);
    for (uint64_t i = n_ - 1; i > 0; --i) std::swap(w.slots[i], w.slots[rng.below(i + 1)]);
    return w;
  }
  // Positions within the window's run of blocks, shuffled; record_locked() maps one back through
  // the block permutation (4 bytes a record held, not 8).
  const uint64_t begin = index * window_records_, end = std::min(n_, begin + window_records_);
  w.slots.resize(end - begin);
  std::iota(w.slots.begin(), w.slots.end(), uint32_t{0});
  shuffle(w.slots, epoch_key(options_.seed, epoch, 2 + index));
  return w;
}

uint64_t DistributedSampler::record_locked(uint64_t epoch, uint64_t position) const {
  position %= n_;  // past the records: repeat the start of the order
  if (!options_.shuffle) return position;
  const uint64_t index = position / window_records_;
  const uint64_t slot = window(epoch, index).slots[position % window_records_];
  if (n_ <= window_records_) return slot;
  // The slot-th record of the window's run of blocks: block `at / k` of the order, a full block
  // through the permutation or the partial one, which comes last.
  const uint64_t k = options_.block_records, at = index * window_records_ + slot, block = at / k;
  return (block < full_blocks_ ? block_order(epoch)(block) * k : full_blocks_ * k) + at % k;
}

uint64_t DistributedSampler::record_at(uint64_t epoch, uint64_t position) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return record_locked(epoch, position);
}

uint64_t DistributedSampler::sorted_at(uint64_t epoch, uint64_t position) const {
  if (position >= n_) return record_locked(epoch, position);  // the padded tail stays in place
  const uint64_t size =
      static_cast<uint64_t>(options_.batch_size) * static_cast<uint64_t>(options_.world) * options_.group_window;
  const uint64_t index = position / size;
  if (sorted_.epoch != epoch || sorted_.index != index) {
    const uint64_t begin = index * size, end = std::min(n_, begin + size);
    std::vector<std::pair<uint32_t, uint64_t>> keyed;  // (length, record): sorted longest first, stable
    keyed.reserve(end - begin);
    for (uint64_t p = begin; p < end; ++p) {
      const uint64_t r = record_locked(epoch, p);
      keyed.emplace_back(lengths_(r), r);
    }
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    sorted_.records.resize(keyed.size());
    for (size_t i = 0; i < keyed.size(); ++i) sorted_.records[i] = keyed[i].second;
    sorted_.epoch = epoch;
    sorted_.index = index;
  }
  return sorted_.records[position - index * size];
}

uint64_t DistributedSampler::cut(uint64_t epoch, uint64_t k) const {
  if (k == 0) return 0;
  if (k >= parts_) return padded_;
  Cursor& c = cursor_;
  if (c.epoch != epoch || k < c.last_index) {  // a new epoch, or behind the walk (a resume): from the start
    c = Cursor{};
    c.epoch = epoch;
    c.tokens = total_tokens_;
    for (uint64_t p = n_; p < padded_; ++p) c.tokens += lengths_(record_locked(epoch, p));
  }
  // Part k starts at the first position past part k-1's start whose middle token lies at or after
  // k x tokens / parts, or where just enough positions remain for the parts after it.
  const unsigned __int128 parts = parts_, tokens = c.tokens;
  uint64_t len = 0, len_at = UINT64_MAX;
  while (c.last_index < k) {
    if (len_at != c.position) {
      len = lengths_(record_locked(epoch, c.position));
      if (len > options_.tokens_per_batch)
        throw InternalError("sampler: a record is longer than the token budget (the config must prevent that)");
      len_at = c.position;
    }
    const unsigned __int128 middle2 = 2 * static_cast<unsigned __int128>(c.before) + len;
    if (c.position > c.last_value && (middle2 * parts >= 2 * static_cast<unsigned __int128>(c.k) * tokens ||
                                      c.position == padded_ - (parts_ - c.k))) {
      c.last_index = c.k++;
      c.last_value = c.position;
      continue;
    }
    c.before += len;
    ++c.position;
  }
  if (c.last_index != k) throw InternalError("sampler: token budget walk overshot");
  return c.last_value;
}

SampledBatch DistributedSampler::batch(uint64_t epoch, uint64_t batch) const {
  if (batch >= batches_) throw InternalError("sampler: batch index past the end of the epoch");
  std::lock_guard<std::mutex> lock(mutex_);
  SampledBatch out;
  out.epoch = epoch;
  out.batch = batch;
  const uint64_t w = static_cast<uint64_t>(options_.world), r = static_cast<uint64_t>(options_.rank);
  if (options_.tokens_per_batch > 0) {
    const uint64_t begin = cut(epoch, batch * w + r), end = cut(epoch, batch * w + r + 1);
    for (uint64_t position = begin; position < end; ++position) {
      out.indices.push_back(record_locked(epoch, position));
      out.padding.push_back(position >= n_ ? 1 : 0);
    }
    return out;
  }
  const uint64_t b = options_.batch_size;
  // Global step `s` covers order[s*W*B, ...); its last step is shorter, equally on every rank.
  uint64_t step = batch;
  if (options_.group_by_length) step = grouped_step(epoch, batch);
  const uint64_t this_batch = std::min<uint64_t>(b, per_rank_ - step * b);
  const uint64_t start = step * b * w + r * this_batch;
  for (uint64_t k = 0; k < this_batch; ++k) {
    const uint64_t position = start + k;
    out.indices.push_back(options_.group_by_length ? sorted_at(epoch, position) : record_locked(epoch, position));
    out.padding.push_back(position >= n_ ? 1 : 0);
  }
  return out;
}

uint64_t DistributedSampler::grouped_step(uint64_t epoch, uint64_t batch) const {
  if (n_ <= window_records_) {  // the split in one window: the steps of the whole epoch shuffled, as before
    if (steps_epoch_ != epoch) {
      steps_.resize(batches_);
      std::iota(steps_.begin(), steps_.end(), uint64_t{0});
      SplitMix64 rng(options_.seed ^ (epoch * 0x2545F4914F6CDD1DULL) ^ 0xBA7C4);
      for (uint64_t i = batches_ - 1; i > 0; --i) std::swap(steps_[i], steps_[rng.below(i + 1)]);
      steps_epoch_ = epoch;
    }
    return steps_[batch];
  }
  // The steps of a sorting window in a seeded order, identical on every rank.
  const uint64_t first = batch / options_.group_window * options_.group_window;
  std::vector<uint64_t> steps(std::min<uint64_t>(options_.group_window, batches_ - first));
  std::iota(steps.begin(), steps.end(), first);
  shuffle(steps, epoch_key(options_.seed, epoch, 0) ^ first);
  return steps[batch - first];
}

SamplerState DistributedSampler::next(SamplerState state) const {
  if (++state.batch >= batches_) {
    state.batch = 0;
    ++state.epoch;
  }
  return state;
}

uint64_t DistributedSampler::memory_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sizeof(*this) + window_.slots.capacity() * sizeof(uint32_t) +
         (sorted_.records.capacity() + steps_.capacity()) * sizeof(uint64_t);
}

}  // namespace modtrain
