// Byte-level BPE (RoBERTa's tokenizer) against Hugging Face tokenizers: the golden ids in
// tests/data/tokenizer/bpe come from tests/tokenizer/reference_json.js (npm tokenizers 0.23.2) on a
// BPE trained on fortunes text (make_bpe.py), over the shared parity cases (emoji, CJK, Arabic,
// Hindi, accents, controls, whitespace runs, contractions) and BPE-specific ones (<mask> lstrip,
// special tokens in the text, numbers, mentions and URLs), whole and truncated to 12.
#include <catch2/catch.hpp>

#include <climits>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "modtrain/core/error.h"
#include "modtrain/data/bpe.h"
#include "modtrain/data/sampler.h"
#include "modtrain/io/files.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
using nlohmann::json;

namespace {
const std::string& kDir = test::kTokenizerData;
using test::read_jsonl;

void check_parity(const Tokenizer& tokenizer, const std::string& cases_file, const std::string& golden_file,
                  size_t max_len) {
  const auto cases = read_jsonl<std::string>(cases_file);
  const auto golden = read_jsonl<std::vector<int32_t>>("bpe/" + golden_file);
  REQUIRE(cases.size() == golden.size());
  REQUIRE(cases.size() > 20);
  size_t mismatches = 0, truncations = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    truncations += tokenizer.encode(cases[i], ids, max_len);
    if (ids != golden[i] && ++mismatches <= 10)
      UNSCOPED_INFO("case " << i << " " << json(cases[i]).dump() << "\n  expected " << json(golden[i]).dump()
                            << "\n  got      " << json(ids).dump());
  }
  CHECK(mismatches == 0);
  if (max_len == 0) CHECK(truncations == 0);
  if (max_len > 0) CHECK(truncations > 0);
}
}  // namespace

TEST_CASE("byte-level BPE from tokenizer.json matches Hugging Face tokenizers id for id", "[tokenizer][bpe]") {
  const auto t = ByteLevelBpeTokenizer::from_tokenizer_json(kDir + "bpe/tokenizer.json");
  CHECK(t.vocab_size() == 3261);
  CHECK(t.special_ids().cls == 0);
  CHECK(t.special_ids().pad == 1);
  CHECK(t.special_ids().sep == 2);
  CHECK(t.special_ids().unk == 3);
  CHECK(t.special_ids().mask == 3260);
  check_parity(t, "cases.jsonl", "golden.jsonl", 0);
  check_parity(t, "bpe/cases-bpe.jsonl", "golden-bpe.jsonl", 0);
  check_parity(t, "cases.jsonl", "golden-max12.jsonl", 12);
}

TEST_CASE("byte-level BPE from vocab.json + merges.txt equals the tokenizer.json load", "[tokenizer][bpe]") {
  const auto t = ByteLevelBpeTokenizer::from_files(kDir + "bpe/vocab.json", kDir + "bpe/merges.txt");
  CHECK(t.type() == "bpe");
  check_parity(t, "cases.jsonl", "golden.jsonl", 0);
  check_parity(t, "bpe/cases-bpe.jsonl", "golden-bpe.jsonl", 0);
}

namespace {
// GPT-2's original bpe() (openai/gpt-2 encoder.py), the algorithm HF's Word::merge_all reproduces:
// repeatedly take the lowest-ranked adjacent pair and merge every occurrence of it, left to right.
// Quadratic; the oracle for the heap-based merge on long words.
std::vector<int32_t> gpt2_bpe(const ByteLevelBpeTokenizer& t, std::string_view word,
                              const std::unordered_map<std::string, int>& ranks) {
  std::vector<std::string> chars(256);
  for (int b = 0, next = 256; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : next++;
    chars[static_cast<size_t>(b)] =
        cp < 0x80 ? std::string(1, static_cast<char>(cp))
                  : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  }
  std::vector<std::string> symbols;
  for (unsigned char b : word) symbols.push_back(chars[b]);
  for (;;) {
    int best = INT_MAX;
    std::string a, b;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      auto it = ranks.find(symbols[k] + " " + symbols[k + 1]);
      if (it != ranks.end() && it->second < best) best = it->second, a = symbols[k], b = symbols[k + 1];
    }
    if (best == INT_MAX) break;
    std::vector<std::string> merged;
    for (size_t k = 0; k < symbols.size(); ++k) {
      if (k + 1 < symbols.size() && symbols[k] == a && symbols[k + 1] == b) {
        merged.push_back(a + b);
        ++k;
      } else {
        merged.push_back(symbols[k]);
      }
    }
    symbols = std::move(merged);
  }
  std::vector<int32_t> ids;
  for (const auto& s : symbols) ids.push_back(t.id_of(s));
  return ids;
}
}  // namespace

TEST_CASE("byte-level BPE on long words: the heap merge equals GPT-2's algorithm", "[tokenizer][bpe]") {
  const auto t = ByteLevelBpeTokenizer::from_files(kDir + "bpe/vocab.json", kDir + "bpe/merges.txt");
  std::unordered_map<std::string, int> ranks;
  std::istringstream merges(io::read_file(kDir + "bpe/merges.txt"));
  std::string line;
  for (int rank = 0; std::getline(merges, line);)
    if (!line.empty() && line[0] != '#') ranks.emplace(line, rank++);
  REQUIRE(ranks.size() == 3000);
  // Long single pre-tokens: the parity cases' letters run together (one \p{L}+ word), a run of
  // punctuation, and one of a repeated byte (every merge of one pair overlaps the next).
  std::string letters, punctuation, same(5000, 'e');
  for (const auto& c : test::read_jsonl<std::string>("bpe/cases-bpe.jsonl"))
    for (char ch : c)
      if (std::isalpha(static_cast<unsigned char>(ch))) letters += ch;
  while (letters.size() < 6000) letters += letters;
  SplitMix64 rng(7);
  const std::string marks = "!?.,;:-_*#()[]{}<>";
  for (int i = 0; i < 4000; ++i) punctuation += marks[rng.below(marks.size())];
  size_t words = 0, ids_compared = 0;
  for (const std::string& word : {letters, punctuation, same, letters.substr(1, 777)}) {
    REQUIRE(ByteLevelBpeTokenizer::split(word).size() == 1);
    std::vector<int32_t> got;
    t.encode(word, got);
    REQUIRE(got.size() >= 2);
    got = std::vector<int32_t>(got.begin() + 1, got.end() - 1);  // without <s> ... </s>
    const std::vector<int32_t> expected = gpt2_bpe(t, word, ranks);
    CHECK(got == expected);
    CHECK(got.size() < word.size());  // merges did happen
    ++words;
    ids_compared += expected.size();
  }
  CHECK(words == 4);
  CHECK(ids_compared > 3000);
}

TEST_CASE("GPT-2's pre-tokenizer split", "[tokenizer][bpe]") {
  using V = std::vector<std::string>;
  CHECK(ByteLevelBpeTokenizer::split("Hello world's") == V{"Hello", " world", "'s"});
  CHECK(ByteLevelBpeTokenizer::split("a   b") == V{"a", "  ", " b"});
  CHECK(ByteLevelBpeTokenizer::split("a\t\nb  ") == V{"a", "\t", "\n", "b", "  "});
  CHECK(ByteLevelBpeTokenizer::split("I'LL we'll 'x") == V{"I", "'", "LL", " we", "'ll", " '", "x"});
  CHECK(ByteLevelBpeTokenizer::split("route 66!? #tag") == V{"route", " 66", "!?", " #", "tag"});
  CHECK(ByteLevelBpeTokenizer::split("日本語 ٣٤") == V{"日本語", " ٣٤"});
}

TEST_CASE("bad BPE tokenizer files: one line naming the file and the field", "[tokenizer][bpe]") {
  test::TempDir dir;
  const json good = json::parse(io::read_file(kDir + "bpe/tokenizer.json"));
  auto load_with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    const std::string path = dir.write("tokenizer.json", j.dump());
    ByteLevelBpeTokenizer::from_tokenizer_json(path);
  };
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["type"] = "Unigram"; }),
                    Catch::Contains("tokenizer.json: model.type is \"Unigram\", not BPE"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["merges"].push_back("Ġzz qq"); }),
                    Catch::Contains("merge 3001 (Ġzz qq): Ġzz is not in the vocabulary"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"].erase("Ā"); }),
                    Catch::Contains("not 0..") || Catch::Contains("byte-level character for byte 0"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["normalizer"] = {{"type", "NFC"}};
                    }),
                    Catch::Contains("normalizer NFC is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["pre_tokenizer"] = {{"type", "Whitespace"}};
                    }),
                    Catch::Contains("pre_tokenizer") && Catch::Contains("ByteLevel with use_regex expected"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["post_processor"] = {{"type", "Sequence"}};
                    }),
                    Catch::Contains("post_processor Sequence is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["merges"][0] = "onlyone"; }),
                    Catch::Contains("model.merges[0] is not a merge"));
  CHECK_THROWS_AS(load_with([](json& j) { j.erase("model"); }), UserError);
  const std::string broken = dir.write("broken.json", "{\"model\": ");
  CHECK_THROWS_WITH(ByteLevelBpeTokenizer::from_tokenizer_json(broken), Catch::Contains("broken.json: not valid JSON"));
  CHECK_THROWS_WITH(ByteLevelBpeTokenizer::from_tokenizer_json(dir.file("missing.json")),
                    Catch::Contains("missing.json"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"]["Ġzz"] = (int64_t{1} << 32) + 5; }),
                    Catch::Contains("model.vocab: the id of Ġzz is 4294967301, outside 0..2147483647"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"] = json::object(); }),
                    Catch::Contains("model.vocab is an empty object"));
  const std::string vocab = dir.write("vocab.json", "{\"a\": 0}");
  CHECK_THROWS_WITH(ByteLevelBpeTokenizer::from_files(vocab, kDir + "bpe/merges.txt"),
                    Catch::Contains("byte-level character for byte 0"));
}
