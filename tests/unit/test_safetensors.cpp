// The safetensors reader treats files as untrusted: a randomized corruption test (bit flips,
// truncations, rewritten header lengths, edited header JSON) must only ever produce a valid view
// or a clear UserError, never a crash or an out-of-bounds read (run it under ASan to be sure).
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "modtrain/core/error.h"
#include "modtrain/io/safetensors.h"
#include "test_util.h"

using namespace modtrain;

namespace {
std::vector<uint8_t> valid_file(const test::TempDir& dir) {
  std::vector<float> a(12, 1.5f);
  std::vector<int64_t> b(5, 7);
  std::vector<uint16_t> c(3, 0x3f80);
  io::write_safetensors(dir.file("v.safetensors"), {{"a.weight", "F32", {3, 4}, a.data(), a.size() * 4},
                                                    {"b", "I64", {5}, b.data(), b.size() * 8},
                                                    {"c.bias", "BF16", {3}, c.data(), c.size() * 2}});
  std::string bytes = test::read(dir.file("v.safetensors"));
  return {bytes.begin(), bytes.end()};
}

// Opens `bytes`; true when valid, false on a UserError. Reads every tensor byte when valid.
bool opens(const std::vector<uint8_t>& bytes) {
  try {
    io::SafetensorsView view(bytes.data(), bytes.size(), "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : view.tensors())
      for (size_t i = 0; i < t.bytes; ++i) sink ^= static_cast<const uint8_t*>(t.data)[i];
    (void)sink;
    return true;
  } catch (const UserError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith("fuzz.safetensors: malformed safetensors file: "));
    return false;
  }
}
}  // namespace

TEST_CASE("a valid file opens, its tensors and metadata read back", "[safetensors]") {
  test::TempDir dir;
  auto bytes = valid_file(dir);
  io::SafetensorsView view(bytes.data(), bytes.size(), "v");
  REQUIRE(view.tensors().size() == 3);
  CHECK(view.find("a.weight")->shape == std::vector<int64_t>{3, 4});
  CHECK(view.find("b")->bytes == 40);
  CHECK(view.metadata().at("format") == "pt");
  CHECK(reinterpret_cast<uintptr_t>(view.find("a.weight")->data) % 8 == reinterpret_cast<uintptr_t>(bytes.data()) % 8);
}

TEST_CASE("specific malformations are named", "[safetensors]") {
  test::TempDir dir;
  const auto good = valid_file(dir);
  auto error = [](const std::vector<uint8_t>& b) -> std::string {
    try {
      io::SafetensorsView v(b.data(), b.size(), "f");
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THAT(error({1, 2, 3}), Catch::Matchers::Contains("shorter than the 8-byte header length"));
  auto huge = good;
  huge[7] = 0x7f;
  CHECK_THAT(error(huge), Catch::Matchers::Contains("over the 100 MiB limit"));
  auto past = good;
  past[0] = 0xff, past[1] = 0xff, past[2] = 0x0f;
  CHECK_THAT(error(past), Catch::Matchers::Contains("runs past the end of the file"));
  auto truncated = good;
  truncated.resize(truncated.size() - 3);
  CHECK_THAT(error(truncated), Catch::Matchers::Contains("outside the"));
  auto trailing = good;
  trailing.push_back(0);
  CHECK_THAT(error(trailing), Catch::Matchers::Contains("trailing bytes"));
  std::string header(good.begin() + 8, good.end());
  size_t at = header.find("\"F32\"");
  REQUIRE(at != std::string::npos);
  auto bad_dtype = good;
  std::memcpy(bad_dtype.data() + 8 + at, "\"Q32\"", 5);
  CHECK_THAT(error(bad_dtype), Catch::Matchers::Contains("unknown dtype 'Q32'"));
}

TEST_CASE("randomized corruption never crashes the reader", "[safetensors][fuzz]") {
  test::TempDir dir;
  const auto good = valid_file(dir);
  std::mt19937_64 rng(20261128);
  int valid = 0, rejected = 0;
  for (int round = 0; round < 20000; ++round) {
    auto b = good;
    switch (rng() % 6) {
      case 0:  // flip bits anywhere
        for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k)
          b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // truncate
        b.resize(rng() % b.size());
        break;
      case 2: {  // rewrite the header length
        uint64_t n = rng() % (b.size() + 64);
        for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
        break;
      }
      case 3: {  // replace a digit in the header JSON (offsets, shapes)
        for (int tries = 0; tries < 50; ++tries) {
          size_t i = 8 + rng() % (b.size() - 8);
          if (b[i] >= '0' && b[i] <= '9') {
            b[i] = static_cast<uint8_t>('0' + rng() % 10);
            break;
          }
        }
        break;
      }
      case 4:  // garbage appended or inserted
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng() % b.size()), static_cast<uint8_t>(rng()));
        break;
      default:  // random bytes in the header region
        for (int k = 0; k < 8; ++k) b[8 + rng() % 120] = static_cast<uint8_t>(rng());
    }
    (opens(b) ? valid : rejected)++;
  }
  INFO(valid << " still valid, " << rejected << " rejected");
  CHECK(rejected > 10000);
}
