// SentencePiece Unigram in XLM-R's tokenizer.json layout against Hugging Face tokenizers (golden
// ids from tests/tokenizer/reference_json.js on a model spm_train made from fortunes and the
// parity cases: make_unigram.py), whole and truncated to 12, and against SentencePiece itself
// (golden-spm.jsonl: Debian's python3-sentencepiece with XLM-R's fairseq id offset) on every case
// where HF tokenizers and SentencePiece agree.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/data/unigram.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
using nlohmann::json;

namespace {
const std::string& kDir = test::kTokenizerData;
using test::read_jsonl;

const UnigramTokenizer& tokenizer() {
  static const UnigramTokenizer t = UnigramTokenizer::from_tokenizer_json(kDir + "unigram/tokenizer.json");
  return t;
}
}  // namespace

TEST_CASE("Unigram from tokenizer.json matches Hugging Face tokenizers id for id", "[tokenizer][unigram]") {
  const UnigramTokenizer& t = tokenizer();
  CHECK(t.vocab_size() == 2002);
  CHECK(t.type() == "unigram");
  CHECK(t.special_ids().cls == 0);
  CHECK(t.special_ids().pad == 1);
  CHECK(t.special_ids().sep == 2);
  CHECK(t.special_ids().unk == 3);
  CHECK(t.special_ids().mask == 2001);
  const auto cases = read_jsonl<std::string>("cases.jsonl");
  for (const auto& [golden_file, max_len] :
       {std::pair<std::string, size_t>{"golden.jsonl", 0}, {"golden-max12.jsonl", 12}}) {
    const auto golden = read_jsonl<std::vector<int32_t>>("unigram/" + golden_file);
    REQUIRE(golden.size() == cases.size());
    size_t mismatches = 0, truncations = 0;
    std::vector<int32_t> ids;
    for (size_t i = 0; i < cases.size(); ++i) {
      truncations += t.encode(cases[i], ids, max_len);
      if (ids != golden[i] && ++mismatches <= 10)
        UNSCOPED_INFO(golden_file << " case " << i << " " << json(cases[i]).dump() << "\n  expected "
                                  << json(golden[i]).dump() << "\n  got      " << json(ids).dump());
    }
    CHECK(mismatches == 0);
    CHECK((truncations > 0) == (max_len > 0));
  }
}

TEST_CASE("Unigram agrees with SentencePiece itself wherever HF tokenizers does", "[tokenizer][unigram]") {
  const auto cases = read_jsonl<std::string>("cases.jsonl");
  const auto hf = read_jsonl<std::vector<int32_t>>("unigram/golden.jsonl");
  const auto spm = read_jsonl<std::vector<int32_t>>("unigram/golden-spm.jsonl");
  REQUIRE(spm.size() == cases.size());
  size_t agree = 0, mismatches = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (hf[i] != spm[i]) continue;  // trailing whitespace and normalisation inside graphemes differ
    ++agree;
    tokenizer().encode(cases[i], ids);
    if (ids != spm[i] && ++mismatches <= 10) UNSCOPED_INFO("case " << i << " " << json(cases[i]).dump());
  }
  CHECK(mismatches == 0);
  CHECK(agree == 1748);  // of 1,872: the other 124 are where the two references differ
}

TEST_CASE("Unigram details: <mask> lstrip, Metaspace, unknown characters fused", "[tokenizer][unigram]") {
  const UnigramTokenizer& t = tokenizer();
  std::vector<int32_t> a, b;
  t.encode("I <mask> you", a);
  t.encode("I   <mask>you", b);
  REQUIRE(a.size() >= 4);
  CHECK(a[a.size() - 3] == t.special_ids().mask);
  CHECK(std::count(b.begin(), b.end(), t.special_ids().mask) == 1);
  CHECK(t.normalize("a    b") == "a b");  // " {2,}" -> " "
  std::vector<int32_t> unk;
  t.encode("\xEA\xB0\x80\xEA\xB0\x81\xEA\xB0\x82", unk);  // three Hangul syllables outside the vocabulary
  CHECK(std::count(unk.begin(), unk.end(), t.special_ids().unk) <= 1);
}

TEST_CASE("bad Unigram tokenizer files: one line naming the file and the field", "[tokenizer][unigram]") {
  test::TempDir dir;
  const json good = json::parse(io::read_file(kDir + "unigram/tokenizer.json"));
  auto load_with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    UnigramTokenizer::from_tokenizer_json(dir.write("tokenizer.json", j.dump()));
  };
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["type"] = "BPE"; }),
                    Catch::Contains("tokenizer.json: model.type is \"BPE\", not Unigram"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["unk_id"] = 99999; }),
                    Catch::Contains("model.unk_id 99999 is not an id of model.vocab (2002 pieces)"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["model"]["vocab"][5] = "x"; }),
                    Catch::Contains("model.vocab[5] is not [piece, score]"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", "\\s+"}};
                    }),
                    Catch::Contains("normalizer Replace with pattern") && Catch::Contains("is not supported"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "AAAA"; }),
                    Catch::Contains("is not a SentencePiece charsmap"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["pre_tokenizer"] = {{"type", "Whitespace"}};
                    }),
                    Catch::Contains("(Metaspace expected)"));
  CHECK_THROWS_WITH(load_with([](json& j) { j["added_tokens"][4]["id"] = 5000; }),
                    Catch::Contains("added token <mask> has id 5000, past model.vocab"));
  CHECK_THROWS_WITH(load_with([](json& j) {
                      j["normalizer"] = {{"type", "BertNormalizer"}};
                    }),
                    Catch::Contains("normalizer BertNormalizer is not supported with Unigram"));
}

TEST_CASE("Unigram from XLM-R's sentencepiece.bpe.model tokenizes as its tokenizer.json", "[tokenizer][unigram]") {
  const auto t = UnigramTokenizer::from_sentencepiece_model(kDir + "unigram/sentencepiece.bpe.model");
  CHECK(t.vocab_size() == 2002);
  CHECK(t.special_ids().mask == 2001);
  const auto cases = read_jsonl<std::string>("cases.jsonl");
  const auto golden = read_jsonl<std::vector<int32_t>>("unigram/golden.jsonl");
  size_t mismatches = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    t.encode(cases[i], ids);
    if (ids != golden[i] && ++mismatches <= 10) UNSCOPED_INFO("case " << i << " " << json(cases[i]).dump());
  }
  CHECK(mismatches == 0);

  test::TempDir dir;
  const std::string model = io::read_file(kDir + "unigram/sentencepiece.bpe.model");
  CHECK_THROWS_WITH(UnigramTokenizer::from_sentencepiece_model(dir.write("cut.model", model.substr(0, 1000))),
                    Catch::Contains("cut.model: truncated SentencePiece model"));
  CHECK_THROWS_WITH(UnigramTokenizer::from_sentencepiece_model(dir.write("text.model", "hello, not a model\n")),
                    Catch::Contains("text.model: "));
  CHECK_THROWS_WITH(UnigramTokenizer::from_sentencepiece_model(dir.file("absent.model")),
                    Catch::Contains("absent.model"));
}
