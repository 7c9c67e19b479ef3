// WordPiece parity with Hugging Face `tokenizers` on 1,864 texts (every BERT rule: accents, CJK,
// punctuation, control characters, emoji, special tokens, [UNK], long words, cased vs uncased,
// truncation). Golden ids come from tests/tokenizer/reference.js; inputs from make_cases.py.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/data/wordpiece.h"

using namespace modtrain;
using nlohmann::json;

namespace {
const std::string kDir = MODTRAIN_TEST_DATA "/tokenizer/";

std::vector<std::string> read_cases() {
  std::ifstream in(kDir + "cases.jsonl");
  std::vector<std::string> cases;
  std::string line;
  while (std::getline(in, line)) cases.push_back(json::parse(line).get<std::string>());
  return cases;
}

std::vector<std::vector<int32_t>> read_golden(const std::string& name) {
  std::ifstream in(kDir + name);
  std::vector<std::vector<int32_t>> rows;
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line).get<std::vector<int32_t>>());
  return rows;
}

void check_parity(const std::string& vocab_file, bool lowercase, const std::string& golden_file, size_t max_len) {
  auto vocab = std::make_shared<Vocab>(Vocab::load(kDir + vocab_file));
  WordPieceTokenizer tokenizer(vocab, {lowercase, 100});
  std::vector<std::string> cases = read_cases();
  auto golden = read_golden(golden_file);
  REQUIRE(cases.size() == golden.size());
  REQUIRE(cases.size() > 1800);
  size_t mismatches = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    bool truncated = tokenizer.encode(cases[i], ids, max_len);
    if (ids != golden[i]) {
      if (++mismatches <= 10) {
        UNSCOPED_INFO("case " << i << " " << json(cases[i]).dump() << "\n  expected " << json(golden[i]).dump()
                              << "\n  got      " << json(ids).dump());
      }
    }
    if (max_len == 0) CHECK_FALSE(truncated);
  }
  CHECK(mismatches == 0);
}
}  // namespace

TEST_CASE("uncased WordPiece matches Hugging Face tokenizers id for id", "[tokenizer]") {
  check_parity("vocab-uncased.txt", true, "golden-uncased.jsonl", 0);
}

TEST_CASE("cased WordPiece matches Hugging Face tokenizers id for id", "[tokenizer]") {
  check_parity("vocab-cased.txt", false, "golden-cased.jsonl", 0);
}

TEST_CASE("truncation to max_len keeps [CLS] ... [SEP] as Hugging Face does", "[tokenizer]") {
  check_parity("vocab-uncased.txt", true, "golden-uncased-max12.jsonl", 12);
}

TEST_CASE("truncation is reported only when tokens were dropped", "[tokenizer]") {
  auto vocab = std::make_shared<Vocab>(Vocab::load(kDir + "vocab-uncased.txt"));
  WordPieceTokenizer tokenizer(vocab);
  std::vector<int32_t> ids;
  CHECK_FALSE(tokenizer.encode("hello world", ids, 4));  // [CLS] hello world [SEP]: fits exactly
  CHECK(ids.size() == 4);
  CHECK(tokenizer.encode("hello world again", ids, 4));
  CHECK(ids.size() == 4);
  CHECK(ids.back() == vocab->sep_id());
  CHECK(tokenizer.encode("helloing", ids, 3));  // a word's pieces are cut too
  CHECK(ids.size() == 3);
}

TEST_CASE("words() shows the normalization and splits", "[tokenizer]") {
  auto vocab = std::make_shared<Vocab>(Vocab::load(kDir + "vocab-uncased.txt"));
  WordPieceTokenizer uncased(vocab, {true, 100});
  WordPieceTokenizer cased(vocab, {false, 100});
  CHECK(uncased.words("Café, NAÏVE!") == std::vector<std::string>{"cafe", ",", "naive", "!"});
  CHECK(cased.words("Café, NAÏVE!") == std::vector<std::string>{"Café", ",", "NAÏVE", "!"});
  CHECK(uncased.words("中国x") == std::vector<std::string>{"中", "国", "x"});
  CHECK(uncased.words("a\x01"
                      "b c\tThe") == std::vector<std::string>{"ab", "c", "the"});
  CHECK(uncased.words("x[SEP]y") == std::vector<std::string>{"x", "[SEP]", "y"});
}

TEST_CASE("vocab files: ids by line, specials required", "[tokenizer]") {
  Vocab v = Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "##s"});
  CHECK(v.size() == 8);
  CHECK(v.id_of("play") == 5);
  CHECK(v.id_of("##ing") == 6);
  CHECK(v.find("ing", true) == 6);
  CHECK(v.find("ing", false) == -1);
  CHECK(v.mask_id() == 4);
  CHECK_THROWS_WITH(Vocab::from_tokens({"a", "b"}), Catch::Matchers::Contains("not a BERT vocab"));
  CHECK_THROWS_AS(Vocab::load("/nonexistent/vocab.txt"), UserError);
}

TEST_CASE("WordPiece tokenizer.json: added tokens are honoured, bad ids refused", "[tokenizer]") {
  const std::string source = kDir + "wordpiece/tokenizer.json";
  std::ifstream in(source);
  const json good = json::parse(in);
  const int32_t size = static_cast<int32_t>(good["model"]["vocab"].size());
  const std::string dir = std::filesystem::temp_directory_path() / ("modtrain-added-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto load_with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    const std::string path = dir + "/tokenizer.json";
    std::ofstream(path) << j.dump();
    return WordPieceTokenizer::from_tokenizer_json(path);
  };
  auto user = [&](int32_t id, bool normalized, bool special) {
    return json{{"id", id},        {"content", "[USER]"},      {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", normalized}, {"special", special}};
  };
  // As BertTokenizerFast after add_tokens(["[USER]"]): one id (the next after the vocabulary), in
  // either case (normalized under a lowercasing normalizer), anywhere in the text.
  const WordPieceTokenizer t = load_with([&](json& j) { j["added_tokens"].push_back(user(size, true, false)); });
  CHECK(t.vocab_size() == static_cast<size_t>(size) + 1);
  std::vector<int32_t> ids, plain;
  size_t compared = 0;
  for (const char* text : {"hi [USER] there", "hi [user] there", "hi[USER]there"}) {
    t.encode(text, ids);
    REQUIRE(ids.size() >= 4);
    CHECK(std::count(ids.begin(), ids.end(), size) == 1);
    ++compared;
  }
  t.encode("hi there", plain);
  t.encode("hi [USER] there", ids);
  ids.erase(std::find(ids.begin(), ids.end(), size));
  CHECK(ids == plain);  // the rest is tokenized as without it
  CHECK(compared == 3);
  // not normalized (or special): matched as written only
  const WordPieceTokenizer exact = load_with([&](json& j) { j["added_tokens"].push_back(user(size, false, true)); });
  exact.encode("[user]", ids);
  CHECK(std::count(ids.begin(), ids.end(), size) == 0);
  exact.encode("[USER]", ids);
  CHECK(std::count(ids.begin(), ids.end(), size) == 1);
  // bad ids: another token's, past a gap, beyond int32
  CHECK_THROWS_WITH(load_with([&](json& j) { j["added_tokens"].push_back(user(5, false, true)); }),
                    Catch::Contains("added_tokens: \"[USER]\" has id 5, which model.vocab gives to"));
  CHECK_THROWS_WITH(load_with([&](json& j) { j["added_tokens"].push_back(user(size + 3, false, true)); }),
                    Catch::Contains("take the ids from " + std::to_string(size) + " on, in order, without gaps"));
  CHECK_THROWS_WITH(load_with([&](json& j) {
                      json u = user(0, false, true);
                      u["id"] = (int64_t{1} << 32) + 1;
                      j["added_tokens"].push_back(u);
                    }),
                    Catch::Contains("added_tokens: the id of [USER] is 4294967297, outside 0..2147483647"));
  CHECK_THROWS_WITH(load_with([&](json& j) { j["model"]["vocab"] = json::object(); }),
                    Catch::Contains("model.vocab is an empty object"));
  std::filesystem::remove_all(dir);
}
