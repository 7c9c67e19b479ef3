// Distributed sampler: disjoint and complete coverage, equal batch counts for awkward
// shard/rank combinations, determinism, exact resume, length grouping.
#include <catch2/catch.hpp>

#include <algorithm>
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
