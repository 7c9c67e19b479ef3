// Distributed sampler: disjoint and complete coverage, equal batch counts for awkward
// shard/rank combinations, determinism, exact resume, length grouping.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <set>

#include "modtrain/data/sampler.h"

using namespace modtrain;

namespace {
std::vector<uint64_t> epoch_indices(const DistributedSampler& s, uint64_t epoch, bool skip_padding) {
  std::vector<uint64_t> out;
  for (uint64_t b = 0; b < s.batches_per_epoch(); ++b) {
    SampledBatch batch = s.batch(epoch, b);
    for (size_t i = 0; i < batch.indices.size(); ++i)
      if (!skip_padding || !batch.padding[i]) out.push_back(batch.indices[i]);
  }
  return out;
}
}  // namespace

TEST_CASE("every record exactly once per epoch across ranks, equal batch counts", "[sampler]") {
  for (uint64_t n : {1, 2, 3, 7, 10, 64, 65, 101, 1000}) {
    for (int world : {1, 2, 3, 4, 7}) {
      for (uint32_t batch : {1u, 3u, 8u, 32u}) {
        INFO("n=" << n << " world=" << world << " batch=" << batch);
        std::vector<uint64_t> all;
        std::vector<uint64_t> batch_counts, sizes;
        for (int r = 0; r < world; ++r) {
          DistributedSampler s(n, {42, r, world, batch, true, false, 64});
          batch_counts.push_back(s.batches_per_epoch());
          auto mine = epoch_indices(s, 3, true);
          all.insert(all.end(), mine.begin(), mine.end());
          sizes.push_back(epoch_indices(s, 3, false).size());
          for (uint64_t b = 0; b < s.batches_per_epoch(); ++b)
            CHECK(s.batch(3, b).indices.size() ==
                  DistributedSampler(n, {42, 0, world, batch, true, false, 64}).batch(3, b).indices.size());
        }
        for (auto c : batch_counts) CHECK(c == batch_counts[0]);
        for (auto z : sizes) CHECK(z == sizes[0]);  // every rank sees as many samples
        std::sort(all.begin(), all.end());
        CHECK(all.size() == n);  // padding excluded: each record once
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
        CHECK((all.empty() || (all.front() == 0 && all.back() == n - 1)));
        CHECK(sizes[0] * static_cast<uint64_t>(world) - n < static_cast<uint64_t>(world));  // at most W-1 repeats
      }
    }
  }
}

TEST_CASE("the order depends on seed and epoch only, and differs between epochs", "[sampler]") {
  DistributedSampler a(500, {7, 1, 2, 16, true, false, 64});
  DistributedSampler b(500, {7, 1, 2, 16, true, false, 64});
  CHECK(epoch_indices(a, 0, false) == epoch_indices(b, 0, false));
  CHECK(epoch_indices(a, 5, false) == epoch_indices(b, 5, false));
  CHECK(epoch_indices(a, 0, false) != epoch_indices(a, 1, false));
  DistributedSampler c(500, {8, 1, 2, 16, true, false, 64});
  CHECK(epoch_indices(a, 0, false) != epoch_indices(c, 0, false));
  DistributedSampler ordered(10, {7, 0, 1, 4, false, false, 64});
  CHECK(epoch_indices(ordered, 0, false) == std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("resume: batches from a saved state equal the uninterrupted sequence", "[sampler]") {
  DistributedSampler s(103, {1, 0, 3, 5, true, false, 64});
  std::vector<std::vector<uint64_t>> straight;
  SamplerState state;
  for (int i = 0; i < 40; ++i) {
    straight.push_back(s.batch(state.epoch, state.batch).indices);
    state = s.next(state);
  }
  SamplerState saved{0, 0};
  for (int i = 0; i < 17; ++i) saved = s.next(saved);
  CHECK(saved.epoch == 2);  // 7 batches per epoch
  DistributedSampler fresh(103, {1, 0, 3, 5, true, false, 64});
  for (int i = 17; i < 40; ++i) {
    CHECK(fresh.batch(saved.epoch, saved.batch).indices == straight[static_cast<size_t>(i)]);
    saved = fresh.next(saved);
  }
}

TEST_CASE("length grouping: similar lengths together, still complete", "[sampler]") {
  auto length = [](uint64_t i) { return static_cast<uint32_t>((i * 37) % 61 + 2); };
  DistributedSampler s(1000, {3, 0, 1, 20, true, true, 64}, length);
  auto all = epoch_indices(s, 0, true);
  std::sort(all.begin(), all.end());
  CHECK(all.size() == 1000);
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  double spread = 0;
  for (uint64_t b = 0; b < s.batches_per_epoch(); ++b) {
    auto idx = s.batch(0, b).indices;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (auto i : idx) {
      lo = std::min(lo, length(i));
      hi = std::max(hi, length(i));
    }
    spread += hi - lo;
  }
  CHECK(spread / static_cast<double>(s.batches_per_epoch()) < 5.0);  // random batches would span ~55
}

namespace {
// Skewed lengths like posts: most short, a tail up to `longest` (deterministic in the index).
uint32_t post_length(uint64_t i, uint32_t longest) {
  SplitMix64 g(i * 0x9E3779B97F4A7C15ULL + 3);
  const double u = static_cast<double>(g.next() >> 11) / 9007199254740992.0;
  return std::min<uint32_t>(longest, 3 + static_cast<uint32_t>(20.0 * -std::log(1.0 - u)));
}
SamplerOptions budget(int rank, int world, uint32_t tokens) {
  SamplerOptions o{42, rank, world, 1, true, false, 64};
  o.tokens_per_batch = tokens;
  return o;
}
}  // namespace

TEST_CASE("token budgets: equal steps on every rank, every record once per epoch, batches near the budget",
          "[sampler][tokens]") {
  for (uint64_t n : {1, 2, 5, 13, 100, 997, 3000}) {
    for (int world : {1, 2, 3, 4, 7}) {
      for (uint32_t tokens : {64u, 100u, 512u}) {
        INFO("n=" << n << " world=" << world << " tokens=" << tokens);
        auto length = [](uint64_t i) { return post_length(i, 64); };
        std::vector<uint64_t> all, counts;
        uint64_t real_tokens = 0;
        for (int r = 0; r < world; ++r) {
          DistributedSampler s(n, budget(r, world, tokens), length);
          counts.push_back(s.batches_per_epoch());
          for (uint64_t b = 0; b < s.batches_per_epoch(); ++b) {
            SampledBatch batch = s.batch(2, b);
            REQUIRE_FALSE(batch.indices.empty());  // every rank has a record in every step
            uint64_t t = 0, longest = 0;
            for (size_t i = 0; i < batch.indices.size(); ++i) {
              t += length(batch.indices[i]);
              longest = std::max<uint64_t>(longest, length(batch.indices[i]));
              if (!batch.padding[i]) {
                all.push_back(batch.indices[i]);
                real_tokens += length(batch.indices[i]);
              }
            }
            // about the budget: never more than one record over it (except a single record)
            if (batch.indices.size() > 1) CHECK(t <= tokens + longest);
          }
        }
        for (auto c : counts) CHECK(c == counts[0]);
        std::sort(all.begin(), all.end());
        CHECK(all.size() == n);  // each record exactly once (repeats only when n < steps x ranks)
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
        uint64_t total = 0;
        for (uint64_t i = 0; i < n; ++i) total += length(i);
        CHECK(real_tokens == total);
        CHECK(counts[0] == std::max<uint64_t>(1, (total + uint64_t{tokens} * world - 1) / (uint64_t{tokens} * world)));
      }
    }
  }
}

TEST_CASE("token budgets: W ranks at budget B cut each step where one rank at W x B does", "[sampler][tokens]") {
  auto length = [](uint64_t i) { return post_length(i, 128); };
  for (int world : {2, 3, 4}) {
    INFO("world " << world);
    DistributedSampler one(5000, budget(0, 1, 256u * static_cast<uint32_t>(world)), length);
    std::vector<std::unique_ptr<DistributedSampler>> ranks;
    for (int r = 0; r < world; ++r)
      ranks.push_back(std::make_unique<DistributedSampler>(5000, budget(r, world, 256), length));
    REQUIRE(ranks[0]->batches_per_epoch() == one.batches_per_epoch());
    for (uint64_t b = 0; b < one.batches_per_epoch(); ++b) {
      std::vector<uint64_t> joined;
      for (auto& s : ranks) {
        auto part = s->batch(1, b).indices;
        joined.insert(joined.end(), part.begin(), part.end());
      }
      CHECK(joined == one.batch(1, b).indices);  // the same records in the same order
    }
  }
}

TEST_CASE("token budgets: deterministic in (seed, epoch), so a resumed position yields the same batches",
          "[sampler][tokens]") {
  auto length = [](uint64_t i) { return post_length(i, 64); };
  DistributedSampler a(800, budget(1, 2, 200), length), b(800, budget(1, 2, 200), length);
  for (uint64_t e : {0, 3})
    for (uint64_t k : {0, 5, 9}) CHECK(a.batch(e, k).indices == b.batch(e, k).indices);
  // a fresh sampler asked for epoch 3 first (a resume) equals one that went through epochs 0-2
  DistributedSampler fresh(800, budget(1, 2, 200), length);
  CHECK(fresh.batch(3, 4).indices == a.batch(3, 4).indices);
  CHECK(a.batch(0, 0).indices != a.batch(1, 0).indices);
}

TEST_CASE("the keyed permutation is a bijection of 0..n-1 for every n, and differs between keys", "[sampler]") {
  int compared = 0;
  for (uint64_t n : {1, 2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 1000, 4097, 65537}) {
    INFO("n=" << n);
    KeyedPermutation p(n, 11), q(n, 12);
    std::vector<uint8_t> seen(n, 0);
    uint64_t fixed = 0, same = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t v = p(i);
      REQUIRE(v < n);
      CHECK(seen[v] == 0);
      seen[v] = 1;
      fixed += v == i;
      same += v == q(i);
    }
    if (n >= 1000) {
      CHECK(fixed < n / 50);  // about one fixed point expected
      CHECK(same < n / 50);
    }
    ++compared;
  }
  CHECK(compared == 14);
}

TEST_CASE("W ranks at batch B read the records of one rank at W x B, step for step, over many shuffle windows",
          "[sampler]") {
  int steps_compared = 0;
  for (bool group : {false, true}) {
    for (int world : {2, 3, 5}) {
      INFO("world " << world << " group_by_length " << group);
      auto length = [](uint64_t i) { return static_cast<uint32_t>((i * 37) % 61 + 2); };
      auto options = [&](int rank, int w, uint32_t batch) {
        SamplerOptions o{9, rank, w, batch, true, group, 4};
        o.shuffle_window = 1000;  // 4 blocks of 256: 10 windows over the split
        return o;
      };
      const uint64_t n = 9999;
      DistributedSampler one(n, options(0, 1, 8u * static_cast<uint32_t>(world)), length);
      std::vector<std::unique_ptr<DistributedSampler>> ranks;
      for (int r = 0; r < world; ++r)
        ranks.push_back(std::make_unique<DistributedSampler>(n, options(r, world, 8), length));
      REQUIRE(ranks[0]->batches_per_epoch() == one.batches_per_epoch());
      for (uint64_t b = 0; b < one.batches_per_epoch(); ++b) {
        std::vector<uint64_t> joined;
        for (auto& s : ranks) {
          const SampledBatch part = s->batch(2, b);
          for (size_t i = 0; i < part.indices.size(); ++i)
            if (!part.padding[i]) joined.push_back(part.indices[i]);
        }
        const SampledBatch whole = one.batch(2, b);
        CHECK(joined == whole.indices);
        ++steps_compared;
      }
    }
  }
  CHECK(steps_compared > 2000);
}

TEST_CASE("the sampler's memory is bounded by its window, not by the number of records", "[sampler][scale]") {
  // 100k, 50M and 200M records: after reading batches across the epoch, at most one window held.
  auto held = [](uint64_t n) {
    SamplerOptions o{3, 1, 4, 32, true, false, 64};
    DistributedSampler s(n, o);
    for (uint64_t b : {uint64_t{0}, uint64_t{1}, s.batches_per_epoch() / 2, s.batches_per_epoch() - 1}) s.batch(7, b);
    return s.memory_bytes();
  };
  const uint64_t small = held(100000), large = held(50000000);
  CHECK(small < 100000 * 4 + 4096);               // the split in one window: 4 bytes a record
  CHECK(large < (uint64_t{1} << 20) * 4 + 4096);  // one window of 1,048,576 records (the default)
  CHECK(large == held(200000000));                // and no more at 200M records
}

TEST_CASE("the order mixes the whole split: a window's records come from blocks spread over it", "[sampler]") {
  const uint64_t n = 1000000;
  SamplerOptions o{5, 0, 1, 32, true, false, 64};
  o.shuffle_window = 65536;
  DistributedSampler s(n, o);
  std::set<uint64_t> blocks;
  uint64_t neighbours = 0;
  for (uint64_t p = 0; p < 65536; ++p) {
    const uint64_t r = s.record_at(0, p);
    blocks.insert(r / 256);
    if (p > 0 && (r == s.record_at(0, p - 1) + 1)) ++neighbours;
  }
  CHECK(blocks.size() == 256);                              // the first window: 256 whole blocks ...
  CHECK(*blocks.rbegin() - *blocks.begin() > n / 256 / 2);  // ... from all over the split
  CHECK(neighbours < 100);                                  // records are shuffled within the window (about 1 expected)
  // Every record once: the epoch's positions form a permutation of the split.
  std::vector<uint8_t> seen(n, 0);
  for (uint64_t p = 0; p < n; ++p) seen[s.record_at(1, p)]++;
  CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(n));
}

TEST_CASE("a split that fits in one shuffle window keeps the order earlier versions drew", "[sampler]") {
  // The earlier sampler: one Fisher-Yates permutation of all records per epoch, and with length
  // grouping the epoch's steps in one seeded order; written out here as it was.
  auto old_order = [](uint64_t n, uint64_t seed, uint64_t epoch) {
    std::vector<uint64_t> perm(n);
    std::iota(perm.begin(), perm.end(), uint64_t{0});
    SplitMix64 rng(seed * 0x9E3779B97F4A7C15ULL + epoch * 0xD1B54A32D192ED03ULL + 0x5EED);
    for (uint64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
    return perm;
  };
  int compared = 0;
  for (uint64_t n : {7, 1000, 100000}) {
    for (uint64_t epoch : {0, 3}) {
      DistributedSampler s(n, {1234, 0, 1, 32, true, false, 64});
      const std::vector<uint64_t> want = old_order(n, 1234, epoch);
      std::vector<uint64_t> got(n);
      for (uint64_t p = 0; p < n; ++p) got[p] = s.record_at(epoch, p);
      CHECK(got == want);
      ++compared;
    }
  }
  // Length grouping: the epoch's steps in the earlier order.
  auto length = [](uint64_t i) { return static_cast<uint32_t>((i * 37) % 61 + 2); };
  DistributedSampler grouped(1000, {3, 0, 1, 20, true, true, 64}, length);
  std::vector<uint64_t> steps(grouped.batches_per_epoch());
  std::iota(steps.begin(), steps.end(), uint64_t{0});
  SplitMix64 rng(3 ^ (2 * 0x2545F4914F6CDD1DULL) ^ 0xBA7C4);
  for (uint64_t i = steps.size() - 1; i > 0; --i) std::swap(steps[i], steps[rng.below(i + 1)]);
  std::vector<uint64_t> sorted = old_order(1000, 3, 2);
  std::stable_sort(sorted.begin(), sorted.end(), [&](uint64_t a, uint64_t b) { return length(a) > length(b); });
  for (uint64_t b = 0; b < grouped.batches_per_epoch(); ++b) {
    const std::vector<uint64_t> want(sorted.begin() + static_cast<std::ptrdiff_t>(steps[b] * 20),
                                     sorted.begin() + static_cast<std::ptrdiff_t>(steps[b] * 20 + 20));
    CHECK(grouped.batch(2, b).indices == want);
    ++compared;
  }
  CHECK(compared == 6 + 50);
}
