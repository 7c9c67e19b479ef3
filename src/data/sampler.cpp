#include "modtrain/data/sampler.h"

#include <algorithm>
#include <numeric>

#include "modtrain/core/error.h"

namespace modtrain {

DistributedSampler::DistributedSampler(uint64_t num_records, SamplerOptions options, LengthFn lengths)
    : n_(num_records), options_(options), lengths_(std::move(lengths)) {
  if (options_.world < 1 || options_.rank < 0 || options_.rank >= options_.world || options_.batch_size == 0)
    throw InternalError("sampler: bad rank/world/batch size");
  if (n_ == 0)
    throw UserError("the prepared split has no records; check data.train / data.valid and the prepare summary");
  const uint64_t w = static_cast<uint64_t>(options_.world);
  per_rank_ = (n_ + w - 1) / w;
  batches_ = (per_rank_ + options_.batch_size - 1) / options_.batch_size;
  if (options_.tokens_per_batch > 0) {
    if (!lengths_) throw InternalError("sampler: token budgets need the record lengths");
    uint32_t longest = 0;
    for (uint64_t i = 0; i < n_; ++i) {
      total_tokens_ += lengths_(i);
      longest = std::max(longest, lengths_(i));
    }
    if (longest > options_.tokens_per_batch)
      throw InternalError("sampler: a record is longer than the token budget (the config must prevent that)");
    const uint64_t budget = static_cast<uint64_t>(options_.tokens_per_batch) * w;
    batches_ = std::max<uint64_t>(1, (total_tokens_ + budget - 1) / budget);
  }
}

void DistributedSampler::cut(uint64_t epoch) const {
  if (cut_epoch_ == epoch) return;
  order(epoch);
  std::vector<uint64_t>& perm = cached_order_;
  const uint64_t w = static_cast<uint64_t>(options_.world), parts = batches_ * w;
  // Every part needs a record: repeat records from the start (flagged padding) when there are
  // fewer records than parts (a tiny split on many ranks).
  perm.resize(n_);
  for (uint64_t i = n_; i < parts; ++i) perm.push_back(perm[i % n_]);
  const uint64_t m = perm.size();
  uint64_t total = total_tokens_;
  for (uint64_t i = n_; i < m; ++i) total += lengths_(perm[i]);
  // Part k holds the records whose middle token lies in [k, k + 1) x total / parts (in units of
  // half tokens, exact integers); then every part is made non-empty, keeping the cuts in order.
  cuts_.assign(parts + 1, 0);
  cuts_[parts] = m;
  uint64_t k = 1, before = 0;  // tokens before record i
  for (uint64_t i = 0; i < m && k < parts; ++i) {
    const uint64_t len = lengths_(perm[i]);
    const uint64_t middle2 = 2 * before + len;  // twice the position of the record's middle
    while (k < parts && middle2 * parts >= 2 * k * total) cuts_[k++] = i;
    before += len;
  }
  for (; k < parts; ++k) cuts_[k] = m;
  for (uint64_t j = 1; j < parts; ++j) cuts_[j] = std::max(cuts_[j], cuts_[j - 1] + 1);       // at least one record ...
  for (uint64_t j = parts - 1; j >= 1; --j) cuts_[j] = std::min(cuts_[j], cuts_[j + 1] - 1);  // ... on both sides
  cut_epoch_ = epoch;
}

const std::vector<uint64_t>& DistributedSampler::order(uint64_t epoch) const {
  if (cached_epoch_ == epoch) return cached_order_;
  std::vector<uint64_t> perm(n_);
  std::iota(perm.begin(), perm.end(), uint64_t{0});
  SplitMix64 rng(options_.seed * 0x9E3779B97F4A7C15ULL + epoch * 0xD1B54A32D192ED03ULL + 0x5EED);
  if (options_.shuffle) {
    for (uint64_t i = n_ - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  }
  const uint64_t w = static_cast<uint64_t>(options_.world);
  const uint64_t total = options_.tokens_per_batch > 0 ? n_ : per_rank_ * w;  // token budgets: cut() pads
  for (uint64_t i = n_; i < total; ++i) perm.push_back(perm[i - n_]);         // pad by repeating the start
  if (options_.group_by_length && lengths_ && options_.tokens_per_batch == 0) {
    // Sort windows of global batches by length, then shuffle the order of the global batches.
    const uint64_t global_batch = static_cast<uint64_t>(options_.batch_size) * w;
    const uint64_t window = global_batch * options_.group_window;
    // Keep the padded tail in place so that padding flags stay at the end of the order.
    for (uint64_t begin = 0; begin < n_; begin += window) {
      uint64_t end = std::min(n_, begin + window);
      std::stable_sort(perm.begin() + static_cast<std::ptrdiff_t>(begin),
                       perm.begin() + static_cast<std::ptrdiff_t>(end),
                       [&](uint64_t a, uint64_t b) { return lengths_(a) > lengths_(b); });
    }
  }
  cached_order_ = std::move(perm);
  cached_epoch_ = epoch;
  cut_epoch_ = UINT64_MAX;  // the parts belong to the order just replaced
  return cached_order_;
}

SampledBatch DistributedSampler::batch(uint64_t epoch, uint64_t batch) const {
  if (batch >= batches_) throw InternalError("sampler: batch index past the end of the epoch");
  std::lock_guard<std::mutex> lock(mutex_);
  SampledBatch out;
  out.epoch = epoch;
  out.batch = batch;
  const uint64_t w = static_cast<uint64_t>(options_.world), r = static_cast<uint64_t>(options_.rank);
  if (options_.tokens_per_batch > 0) {
    cut(epoch);
    const std::vector<uint64_t>& perm = cached_order_;
    for (uint64_t position = cuts_[batch * w + r]; position < cuts_[batch * w + r + 1]; ++position) {
      out.indices.push_back(perm[position]);
      out.padding.push_back(position >= n_ ? 1 : 0);
    }
    return out;
  }
  const std::vector<uint64_t>& perm = order(epoch);
  const uint64_t b = options_.batch_size;
  // Global step `s` covers order[s*W*B, ...); its last step is shorter, equally on every rank.
  uint64_t step = batch;
  if (options_.group_by_length) {  // a seeded permutation of the steps, identical on all ranks
    std::vector<uint64_t> steps(batches_);
    std::iota(steps.begin(), steps.end(), uint64_t{0});
    SplitMix64 rng(options_.seed ^ (epoch * 0x2545F4914F6CDD1DULL) ^ 0xBA7C4);
    for (uint64_t i = batches_ - 1; i > 0; --i) std::swap(steps[i], steps[rng.below(i + 1)]);
    step = steps[batch];
  }
  const uint64_t this_batch = std::min<uint64_t>(b, per_rank_ - step * b);
  const uint64_t start = step * b * w + r * this_batch;
  for (uint64_t k = 0; k < this_batch; ++k) {
    uint64_t position = start + k;
    out.indices.push_back(perm[position]);
    out.padding.push_back(position >= n_ ? 1 : 0);
  }
  return out;
}

SamplerState DistributedSampler::next(SamplerState state) const {
  if (++state.batch >= batches_) {
    state.batch = 0;
    ++state.epoch;
  }
  return state;
}

}  // namespace modtrain
