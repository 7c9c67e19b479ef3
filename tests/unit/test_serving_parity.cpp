// No train/serve skew: an exported tokenizer.json carries the tweet normalisation as
// Hugging Face tokenizers normalizers, and HF tokenizers (npm, tests/tokenizer/reference_json.js)
// on that tokenizer.json gives, post for post, the ids modtrain trains on (normalize_tweet, then the
// family's tokenizer, max_len 64) over the normaliser's edge cases and 2,000 synthetic posts with
// mentions, URLs, character references, emoji and odd whitespace, for WordPiece, byte-level BPE
// and Unigram. The tokenizer.json files the ids were made from are committed; the test first
// checks that today's export writes exactly them (tests/tokenizer/make_serving_cases.py says how
// to regenerate both).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "catch_torch.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/io/files.h"
#include "modtrain/modelio/hf_export.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
namespace fs = std::filesystem;

namespace {

constexpr int kMaxLen = 64;

// The exported tokenizer.json of each family, from the same base files as the parity tests use.
std::string exported(const std::string& family) {
  if (family == "wordpiece")
    return with_tweet_normalizer(
        wordpiece_tokenizer_json(Vocab::load(test::kTokenizerData + "vocab-uncased.txt"), true, kMaxLen));
  return with_tweet_normalizer(io::read_file(test::kTokenizerData + family + "/tokenizer.json"));
}

}  // namespace

TEST_CASE("serving parity: HF tokenizers on the exported tokenizer.json gives the ids training saw", "[serving]") {
  const std::string dir = test::kTokenizerData + "serving/";
  const auto cases = test::read_jsonl<std::string>("serving/cases.jsonl");
  REQUIRE(cases.size() == 2050);
  for (const std::string family : {"wordpiece", "bpe", "unigram"}) {
    INFO(family);
    const std::string json = exported(family);
    if (const char* write = std::getenv("MODTRAIN_WRITE_SERVING")) {  // regenerating the goldens
      fs::create_directories(fs::path(write) / family);
      std::ofstream(fs::path(write) / family / "tokenizer.json", std::ios::binary) << json;
      continue;
    }
    // today's export writes the tokenizer.json the golden ids were made from
    REQUIRE(json == io::read_file(dir + family + "/tokenizer.json"));
    // and modtrain reads it back as the family's tokenizer (the tweet steps are its own normaliser)
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(dir + family + "/tokenizer.json", true);
    const auto golden = test::read_jsonl<std::vector<int32_t>>("serving/golden-" + family + ".jsonl");
    REQUIRE(golden.size() == cases.size());
    size_t same = 0;
    std::vector<int32_t> ids;
    for (size_t i = 0; i < cases.size(); ++i) {
      tokenizer->encode(normalize_tweet(cases[i]), ids, kMaxLen);
      if (ids == golden[i]) {
        ++same;
        continue;
      }
      INFO("case " << i << ": " << nlohmann::json(cases[i]).dump() << " normalised "
                   << nlohmann::json(normalize_tweet(cases[i])).dump());
      CHECK(ids == golden[i]);
    }
    CHECK(same == cases.size());
  }
}

TEST_CASE("export: the tweet steps go in front of the family's normalizer once, and modtrain reads them back",
          "[serving]") {
  const std::string once = with_tweet_normalizer(
      wordpiece_tokenizer_json(Vocab::load(test::kTokenizerData + "vocab-uncased.txt"), true, 64));
  CHECK(with_tweet_normalizer(once) == once);  // a re-export keeps one copy
  const nlohmann::json j = nlohmann::json::parse(once);
  const nlohmann::json& steps = j.at("normalizer").at("normalizers");
  const nlohmann::json tweet = nlohmann::json::parse(tweet_normalizer_hf_steps());
  REQUIRE(steps.size() == tweet.size() + 1);
  CHECK(steps.back().at("type") == "BertNormalizer");
  CHECK(steps.front().at("type") == "Replace");
  // the '&' step is the last reference step: its output starts references
  CHECK(tweet[tweet.size() - 5].at("content") == "&");
  // byte-level BPE had no normalizer: the tweet steps alone
  const nlohmann::json bpe =
      nlohmann::json::parse(with_tweet_normalizer(io::read_file(test::kTokenizerData + "bpe/tokenizer.json")));
  CHECK(bpe.at("normalizer").at("normalizers").size() == tweet.size());
}
