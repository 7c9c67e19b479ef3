// The tokenizer interface: load_tokenizer picks the family from a model directory or a file, and
// every family gives HF tokenizers' ids through it (WordPiece from BERT's tokenizer.json too).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/wordpiece.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
using nlohmann::json;

namespace {
const std::string& kDir = test::kTokenizerData;
using test::read_jsonl;

size_t mismatches(const Tokenizer& t, const std::string& golden_file) {
  const auto cases = read_jsonl<std::string>("cases.jsonl");
  const auto golden = read_jsonl<std::vector<int32_t>>(golden_file);
  REQUIRE(golden.size() == cases.size());
  size_t bad = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    t.encode(cases[i], ids);
    if (ids != golden[i] && ++bad <= 5) UNSCOPED_INFO(golden_file << " case " << i << " " << json(cases[i]).dump());
  }
  return bad;
}

void copy(const std::string& from, const std::filesystem::path& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}
}  // namespace

TEST_CASE("load_tokenizer: the family from tokenizer.json's model.type", "[tokenizer][loader]") {
  auto wordpiece = load_tokenizer(kDir + "wordpiece/tokenizer.json");
  CHECK(wordpiece->type() == "wordpiece");
  CHECK(mismatches(*wordpiece, "golden-uncased.jsonl") == 0);
  CHECK(wordpiece->special_ids().cls == 2);
  CHECK(wordpiece->special_ids().mask == 4);
  auto bpe = load_tokenizer(kDir + "bpe");  // a directory with tokenizer.json
  CHECK(bpe->type() == "bpe");
  CHECK(mismatches(*bpe, "bpe/golden.jsonl") == 0);
  auto unigram = load_tokenizer(kDir + "unigram/tokenizer.json");
  CHECK(unigram->type() == "unigram");
  CHECK(mismatches(*unigram, "unigram/golden.jsonl") == 0);
}

TEST_CASE("load_tokenizer: directories without tokenizer.json, by the files they have", "[tokenizer][loader]") {
  test::TempDir dir;
  namespace fs = std::filesystem;
  const fs::path roberta = dir.path / "roberta", xlmr = dir.path / "xlmr", bert = dir.path / "bert";
  for (const auto& d : {roberta, xlmr, bert}) fs::create_directories(d);
  copy(kDir + "bpe/vocab.json", roberta / "vocab.json");
  copy(kDir + "bpe/merges.txt", roberta / "merges.txt");
  copy(kDir + "unigram/sentencepiece.bpe.model", xlmr / "sentencepiece.bpe.model");
  copy(kDir + "vocab-cased.txt", bert / "vocab.txt");
  CHECK(load_tokenizer(roberta.string())->type() == "bpe");
  CHECK(mismatches(*load_tokenizer(roberta.string()), "bpe/golden.jsonl") == 0);
  CHECK(mismatches(*load_tokenizer(xlmr.string()), "unigram/golden.jsonl") == 0);
  // vocab.txt: cased by tokenizer_config.json's do_lower_case, whatever the caller's default
  dir.write("bert/tokenizer_config.json", R"({"do_lower_case": false})");
  CHECK(mismatches(*load_tokenizer(bert.string(), /*lowercase=*/true), "golden-cased.jsonl") == 0);
  CHECK(mismatches(*load_tokenizer((bert / "vocab.txt").string(), true), "golden-cased.jsonl") == 0);

  const fs::path empty = dir.path / "empty";
  fs::create_directories(empty);
  CHECK_THROWS_WITH(
      load_tokenizer(empty.string()),
      Catch::Contains("no tokenizer in") && Catch::Contains("expected tokenizer.json, vocab.json + merges.txt"));
  const std::string wordlevel = dir.write("wordlevel.json", R"({"model": {"type": "WordLevel", "vocab": {}}})");
  CHECK_THROWS_WITH(load_tokenizer(wordlevel),
                    Catch::Contains("wordlevel.json: model.type WordLevel is not a tokenizer"));
}

TEST_CASE("WordPiece from tokenizer.json refuses what it cannot honour", "[tokenizer][loader]") {
  test::TempDir dir;
  const json good = json::parse(io::read_file(kDir + "wordpiece/tokenizer.json"));
  auto load_with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    WordPieceTokenizer::from_tokenizer_json(dir.write("tokenizer.json", j.dump()));
  };
  CHECK_NOTHROW(load_with([](json&) {}));
  CHECK_THROWS_WITH(load_with([](json& j) { j["normalizer"]["strip_accents"] = false; }),
                    Catch::Contains("normalizer.strip_accents false with lowercase true is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["continuing_subword_prefix"] = "@@"; }),
                    Catch::Contains("continuing_subword_prefix must be \"##\""));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"].erase("[SEP]"); }), Catch::Contains("model.vocab"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["pre_tokenizer"] = {{"type", "Whitespace"}};
                    }),
                    Catch::Contains("pre_tokenizer must be BertPreTokenizer"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["post_processor"] = nullptr; }),
                    Catch::Contains("post_processor must put [CLS] before and [SEP] after"));
}

TEST_CASE("tokenizer.vocab is checked against tokenizer.lowercase and carried with its files", "[tokenizer][loader]") {
  // The WordPiece tokenizer.json fixture lowercases (its BertNormalizer says so): a cased config
  // is one line saying what to set.
  TokenizerConfig c;
  c.vocab = kDir + "wordpiece/tokenizer.json";
  c.lowercase = false;
  CHECK_THROWS_WITH(load_tokenizer(c), Catch::Contains("tokenizer.lowercase is false but " + c.vocab +
                                                       " is an uncased WordPiece tokenizer") &&
                                           Catch::Contains("set tokenizer.lowercase: true"));
  c.lowercase = true;
  CHECK(load_tokenizer(c)->type() == "wordpiece");

  // Copied into a directory that held another tokenizer: nothing of the old one stays behind (a
  // stale vocab.txt beside a new tokenizer.json, or the reverse, would be read instead).
  test::TempDir dir;
  dir.write("model/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nold\n");
  const std::string model = (dir.path / "model").string();
  copy_tokenizer_files(find_tokenizer_files(kDir + "bpe"), model);
  const TokenizerFiles copied = find_tokenizer_files(model);
  CHECK(copied.defining.front().first == "tokenizer.json");
  CHECK_FALSE(std::filesystem::exists(dir.path / "model" / "vocab.txt"));
  CHECK(std::filesystem::exists(dir.path / "model" / "merges.txt"));  // the slow files come along
  CHECK(copied.fingerprint() == find_tokenizer_files(kDir + "bpe").fingerprint());
  // The source may be the destination: its files stay whole.
  copy_tokenizer_files(copied, model);
  CHECK(find_tokenizer_files(model).fingerprint() == copied.fingerprint());
  CHECK(load_tokenizer(model)->type() == "bpe");
}
