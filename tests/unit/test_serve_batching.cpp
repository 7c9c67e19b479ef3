// serve's length groups (serve/batcher.h): a cut batch is scored in passes of similar lengths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "modtrain/serve/batcher.h"

using namespace modtrain;

namespace {
// Every index once, in order, in contiguous groups.
size_t check_cover(const std::vector<std::pair<size_t, size_t>>& groups, size_t n) {
  size_t next = 0;
  for (const auto& [begin, end] : groups) {
    REQUIRE(begin == next);
    REQUIRE(end > begin);
    next = end;
  }
  REQUIRE(next == n);
  return groups.size();
}
}  // namespace

TEST_CASE("length groups keep the attention layout near the real tokens") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> length(5, 64);
  std::vector<int64_t> lengths(176);
  for (auto& n : lengths) n = length(rng);
  std::sort(lengths.begin(), lengths.end());
  const auto groups = length_groups(lengths, 512);
  check_cover(groups, lengths.size());
  REQUIRE(groups.size() > 1);
  int64_t area = 0, checked = 0;
  for (const auto& [begin, end] : groups) {
    int64_t real = 0;
    for (size_t i = begin; i < end; ++i) real += lengths[i];
    const int64_t laid_out = static_cast<int64_t>(end - begin) * lengths[end - 1];
    // within 1.25x of its real tokens, unless its last post was taken to reach the minimum
    CHECK((laid_out * 4 <= real * 5 || real - lengths[end - 1] < 512));
    if (end != lengths.size()) CHECK(real >= 512);  // closed only once it reached the minimum
    area += laid_out, ++checked;
  }
  REQUIRE(checked == static_cast<int64_t>(groups.size()));
  // one pass would lay every post out at the longest: 176 x 64
  CHECK(area * 4 < static_cast<int64_t>(lengths.size()) * lengths.back() * 3);
}

TEST_CASE("length groups: equal lengths and small batches are one pass") {
  CHECK(check_cover(length_groups(std::vector<int64_t>(300, 30), 512), 300) == 1);
  CHECK(check_cover(length_groups({3, 9, 40, 64}, 512), 4) == 1);  // 116 tokens: under the minimum
  CHECK(check_cover(length_groups({7}, 512), 1) == 1);
  CHECK(length_groups({}, 512).empty());
}
