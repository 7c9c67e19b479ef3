// Text helpers behind error messages and config dumps.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "modtrain/core/text.h"

using namespace modtrain::text;

TEST_CASE("edit distance counts single-character edits", "[text]") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("lr", "lr") == 0);
  CHECK(edit_distance("lrr", "lr") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
}

TEST_CASE("nearest suggests plausible typos only", "[text]") {
  std::vector<std::string> keys = {"train.lr", "train.max_steps", "model.layers"};
  CHECK(nearest("train.lrr", keys) == "train.lr");
  CHECK(nearest("train.max_step", keys) == "train.max_steps");
  CHECK(nearest("model.layer", keys) == "model.layers");
  CHECK(nearest("completely.different", keys).empty());
  CHECK(nearest("x", {}).empty());
}

TEST_CASE("format_double is the shortest text that round-trips", "[text]") {
  for (double x : {0.0, 1.0, 10.0, 0.1, 5e-4, 1e-8, 3.0e-4, 0.30000000000000004, 123456.789, -2.5, 1e20}) {
    std::string s = format_double(x);
    INFO(s);
    CHECK(std::strtod(s.c_str(), nullptr) == x);
    CHECK(s.find_first_of(".e") != std::string::npos);  // stays a float in YAML
  }
  CHECK(format_double(5e-4) == "0.0005");
  CHECK(format_double(10.0) == "10.0");
  CHECK(format_double(1e-8) == "1e-08");
}

TEST_CASE("fnv1a64 matches the published test vectors", "[text]") {
  CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
  CHECK(hex64(0xabcULL) == "0000000000000abc");
}
