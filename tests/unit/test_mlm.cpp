// Masked language modelling: the masking (rates, what is never masked, whole words, determinism)
// and the masked-LM heads of each family against the float64 NumPy reference.
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "catch_torch.h"
#include "modtrain/data/masking.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/modelio/model_dir.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
namespace fs = std::filesystem;

namespace {

// Every parity case, tokenized (specials included), as rows of int64 ids.
std::vector<std::vector<int64_t>> corpus(const Tokenizer& t) {
  std::vector<std::vector<int64_t>> rows;
  for (const std::string& text : test::read_jsonl<std::string>("cases.jsonl")) {
    std::vector<int32_t> ids;
    t.encode(text, ids, 0);
    rows.emplace_back(ids.begin(), ids.end());
  }
  return rows;
}

std::unique_ptr<Tokenizer> tokenizer_of(const std::string& name) {
  if (name == "wordpiece") return load_tokenizer(test::kTokenizerData + "vocab-uncased.txt", true);
  return load_tokenizer(test::kTokenizerData + name);
}

}  // namespace

TEST_CASE("masking: 15% of maskable tokens, 80/10/10, never a special token", "[mlm][masking]") {
  for (const char* family : {"wordpiece", "bpe", "unigram"}) {
    INFO(family);
    const auto t = tokenizer_of(family);
    const TokenMasker masker(*t, {});
    int64_t maskable = 0, chosen = 0, as_mask = 0, as_random = 0, kept = 0;
    for (int pass = 0; pass < 3 && maskable < 20000; ++pass) {
      uint64_t record = 0;
      for (std::vector<int64_t> ids : corpus(*t)) {
        const std::vector<int64_t> original = ids;
        std::vector<int64_t> targets(ids.size());
        const int64_t n = masker.mask(ids.data(), targets.data(), static_cast<int64_t>(ids.size()), 7, pass, record++);
        int64_t counted = 0;
        for (size_t i = 0; i < ids.size(); ++i) {
          maskable += masker.maskable(original[i]);
          if (targets[i] == kNotMasked) {
            REQUIRE(ids[i] == original[i]);  // not chosen: untouched
            continue;
          }
          REQUIRE(masker.maskable(original[i]));  // never <s> </s> [CLS] [SEP] <pad> <unk> <mask>
          REQUIRE(targets[i] == original[i]);
          ++counted;
          if (ids[i] == t->special_ids().mask) ++as_mask;
          else if (ids[i] == original[i]) ++kept;
          else ++as_random;
        }
        REQUIRE(counted == n);
        chosen += n;
      }
    }
    REQUIRE(maskable >= 10000);
    const double rate = static_cast<double>(chosen) / static_cast<double>(maskable);
    CAPTURE(maskable, chosen, as_mask, as_random, kept);
    CHECK(std::abs(rate - 0.15) < 0.01);  // about 3 standard deviations at 10k tokens
    CHECK(std::abs(static_cast<double>(as_mask) / static_cast<double>(chosen) - 0.8) < 0.03);
    // A random draw can land on the original token (counted as kept): 10% random, ~10% kept.
    CHECK(std::abs(static_cast<double>(as_random) / static_cast<double>(chosen) - 0.1) < 0.025);
    CHECK(std::abs(static_cast<double>(kept) / static_cast<double>(chosen) - 0.1) < 0.025);
  }
}

TEST_CASE("masking: whole-word masking chooses all pieces of a word together", "[mlm][masking]") {
  for (const char* family : {"wordpiece", "bpe", "unigram"}) {
    INFO(family);
    const auto t = tokenizer_of(family);
    MaskingOptions o;
    o.whole_word = true;
    o.probability = 0.3;
    const TokenMasker masker(*t, o);
    int64_t words = 0, multi_piece = 0;
    uint64_t record = 0;
    for (std::vector<int64_t> ids : corpus(*t)) {
      const std::vector<int64_t> original = ids;
      std::vector<int64_t> targets(ids.size());
      masker.mask(ids.data(), targets.data(), static_cast<int64_t>(ids.size()), 3, 1, record++);
      // Walk the words: a maskable token that does not continue the previous maskable one starts one.
      for (size_t i = 0; i < original.size();) {
        if (!masker.maskable(original[i])) {
          ++i;
          continue;
        }
        size_t end = i + 1;
        while (end < original.size() && masker.maskable(original[end]) && masker.continues_word(original[end])) ++end;
        ++words;
        multi_piece += end - i > 1;
        for (size_t k = i + 1; k < end; ++k) REQUIRE((targets[k] == kNotMasked) == (targets[i] == kNotMasked));
        i = end;
      }
    }
    CAPTURE(words, multi_piece);
    CHECK(multi_piece > 100);  // the check saw words of several pieces
  }
}

TEST_CASE("masking is a function of (seed, step, record): resume and any rank layout draw the same", "[mlm][masking]") {
  const auto t = tokenizer_of("unigram");
  const TokenMasker masker(*t, {});
  const auto rows = corpus(*t);
  // Four records padded into one [4, W] batch (one rank) and as two [2, W] batches (two ranks).
  const int64_t width = 64;
  std::vector<int64_t> ids(4 * width, t->special_ids().pad), attention(4 * width, 0);
  const uint64_t records[4] = {100, 205, 17, 9};
  for (int64_t r = 0; r < 4; ++r) {
    const auto& row = rows[static_cast<size_t>(records[r])];
    for (int64_t i = 0; i < std::min<int64_t>(width, static_cast<int64_t>(row.size())); ++i)
      ids[r * width + i] = row[static_cast<size_t>(i)], attention[r * width + i] = 1;
  }
  std::vector<int64_t> one_ids = ids, one_targets(ids.size());
  masker.mask_batch(one_ids.data(), one_targets.data(), attention.data(), 4, width, records, 11, 42);
  std::vector<int64_t> two_ids = ids, two_targets(ids.size());
  masker.mask_batch(two_ids.data(), two_targets.data(), attention.data(), 2, width, records, 11, 42);  // rank 0
  masker.mask_batch(two_ids.data() + 2 * width, two_targets.data() + 2 * width, attention.data() + 2 * width, 2, width,
                    records + 2, 11, 42);  // rank 1
  CHECK(one_ids == two_ids);
  CHECK(one_targets == two_targets);
  for (int64_t i = 0; i < 4 * width; ++i)
    if (!attention[static_cast<size_t>(i)]) REQUIRE(one_targets[static_cast<size_t>(i)] == kNotMasked);
  // Again (a resumed run at the same step): the same; another step: different.
  std::vector<int64_t> again = ids, again_targets(ids.size());
  masker.mask_batch(again.data(), again_targets.data(), attention.data(), 4, width, records, 11, 42);
  CHECK(again == one_ids);
  std::vector<int64_t> later = ids, later_targets(ids.size());
  masker.mask_batch(later.data(), later_targets.data(), attention.data(), 4, width, records, 11, 43);
  CHECK(later_targets != one_targets);
}

TEST_CASE("a tokenizer without a mask token cannot train a masked LM", "[mlm][masking]") {
  test::TempDir dir;
  const std::string vocab = dir.write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\n");
  const auto t = load_tokenizer(vocab, true);
  CHECK_THROWS_WITH(TokenMasker(*t, {}), Catch::Contains("has no mask token ([MASK] or <mask>)"));
}

TEST_CASE("BertForMaskedLM and RobertaForMaskedLM logits equal the float64 NumPy reference", "[mlm][model]") {
  for (const char* family : {"roberta", "xlmr", "twhin", "bert"}) {
    INFO(family);
    test::TempDir dir;
    const fs::path hf = dir.path / "hf";
    const std::string command = "/usr/bin/python3 " MODTRAIN_SOURCE_DIR "/tests/reference/make_hf_model.py " +
                                std::string(family) + " " + MODTRAIN_TEST_DATA "/tokenizer " + hf.string() +
                                " --max-len 40";
    REQUIRE(std::system(command.c_str()) == 0);
    const nlohmann::json cfg = nlohmann::json::parse(test::read(hf / "config.json"));
    BertConfig c;
    c.vocab_size = cfg.at("vocab_size");
    c.hidden = 32, c.layers = 2, c.heads = 2, c.intermediate = 64;
    c.max_positions = cfg.at("max_position_embeddings");
    c.type_vocab_size = cfg.at("type_vocab_size");
    c.layer_norm_eps = cfg.at("layer_norm_eps");
    c.pad_token_id = cfg.at("pad_token_id");
    c.arch = cfg.at("model_type") == "roberta"       ? ModelArch::kRoberta
             : cfg.at("model_type") == "xlm-roberta" ? ModelArch::kXlmRoberta
                                                     : ModelArch::kBert;
    c.position_embedding_type = cfg.at("position_embedding_type") == "relative_key"
                                    ? PositionEmbeddingType::kRelativeKey
                                    : PositionEmbeddingType::kAbsolute;
    c.sparse_embedding_grad = true;  // the MLM model turns it off (the decoder is tied)
    BertForMaskedLM model(c);
    model->eval();
    std::map<std::string, std::vector<int64_t>> names;
    for (const auto& p : model->named_parameters()) names[p.key()] = p.value().sizes().vec();
    if (c.roberta()) {
      CHECK(names.count("lm_head.dense.weight"));
      CHECK(names.count("lm_head.layer_norm.weight"));
      CHECK(names.at("lm_head.bias") == std::vector<int64_t>{c.vocab_size});
    } else {
      CHECK(names.count("cls.predictions.transform.dense.weight"));
      CHECK(names.count("cls.predictions.transform.LayerNorm.weight"));
      CHECK(names.at("cls.predictions.bias") == std::vector<int64_t>{c.vocab_size});
      CHECK_FALSE(names.count("bert.pooler.dense.weight"));  // BertForMaskedLM has no pooler
    }
    io::SafetensorsFile weights((hf / "model.safetensors").string());
    load_state(*model, weights.view(), "hf");  // transformers' names, one for one

    const auto t = load_tokenizer(hf.string());
    const std::vector<std::string> texts = {"@user what a day 😡 https://x.co", "هذا منشور", "ok"};
    std::string lines;
    std::vector<std::vector<int32_t>> rows;
    int64_t longest = 0;
    for (const auto& text : texts) {
      rows.emplace_back();
      t->encode(text, rows.back(), 40);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(rows.back().size()));
      lines += nlohmann::json(rows.back()).dump() + "\n";
    }
    const std::string ids_file = dir.write("ids.jsonl", lines), ref_file = dir.file("ref.jsonl");
    REQUIRE(std::system(("/usr/bin/python3 " MODTRAIN_SOURCE_DIR "/tests/reference/bert_numpy.py " + hf.string() + " " +
                         ids_file + " --mlm > " + ref_file)
                            .c_str()) == 0);
    const int64_t b = static_cast<int64_t>(rows.size());
    torch::Tensor ids = torch::full({b, longest}, static_cast<int64_t>(c.pad_token_id), torch::kInt64);
    torch::Tensor mask = torch::zeros({b, longest}, torch::kInt64);
    std::vector<int64_t> flat, packed;  // every real token: in the padded [B x T] layout, in the unpadded [N]
    for (int64_t i = 0; i < b; ++i)
      for (size_t k = 0; k < rows[static_cast<size_t>(i)].size(); ++k) {
        ids[i][static_cast<int64_t>(k)] = rows[static_cast<size_t>(i)][k];
        mask[i][static_cast<int64_t>(k)] = 1;
        flat.push_back(i * longest + static_cast<int64_t>(k));
        packed.push_back(static_cast<int64_t>(packed.size()));
      }
    torch::NoGradGuard no_grad;
    const torch::Tensor padded = model->forward(ids, mask, torch::tensor(flat));
    const torch::Tensor unpadded = model->forward_unpadded(unpad_batch(ids, mask), torch::tensor(packed));
    REQUIRE(padded.sizes() == std::vector<int64_t>{static_cast<int64_t>(flat.size()), c.vocab_size});
    std::ifstream ref(ref_file);
    std::string line;
    int64_t row = 0;
    for (int64_t i = 0; i < b; ++i) {
      REQUIRE(std::getline(ref, line));
      const auto want = nlohmann::json::parse(line).get<std::vector<std::vector<double>>>();
      for (const auto& token : want) {
        const torch::Tensor w = torch::tensor(token, torch::kFloat64);
        CHECK((padded[row].to(torch::kFloat64) - w).abs().max().item<double>() < 1e-5);
        CHECK((unpadded[row].to(torch::kFloat64) - w).abs().max().item<double>() < 1e-5);
        ++row;
      }
    }
  }
}
