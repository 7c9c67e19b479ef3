// Masked language modelling: the masking (rates, what is never masked, whole words, determinism)
// and the masked-LM heads of each family against the float64 NumPy reference.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "catch_torch.h"
#include "modtrain/config/loader.h"
#include "modtrain/core/error.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/masking.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/modelio/hf_export.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/loss.h"
#include "synth_fixture.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
using Catch::Matchers::Contains;
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

TEST_CASE("each tokenizer family marks word starts: one per space-separated word of plain letters", "[mlm][masking]") {
  // The word marks (WordPiece "##", byte-level BPE "\u0120", SentencePiece "\u2581") behind whole-word
  // masking, checked against the text itself: a sentence of lowercase ASCII words and single spaces
  // has exactly one word start per word.
  for (const char* family : {"wordpiece", "bpe", "unigram"}) {
    INFO(family);
    const auto t = tokenizer_of(family);
    int64_t sentences = 0, multi_piece = 0;
    for (const std::string& text : test::read_jsonl<std::string>("cases.jsonl")) {
      std::string words = text;
      for (char& c : words) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (words.empty() || words.front() == ' ' || words.back() == ' ' || words.find("  ") != std::string::npos ||
          words.find_first_not_of("abcdefghijklmnopqrstuvwxyz ") != std::string::npos)
        continue;
      std::vector<int32_t> ids;
      t->encode(words, ids, 0);
      const int64_t expected = 1 + std::count(words.begin(), words.end(), ' ');
      int64_t starts = 0, pieces = 0;
      bool after_special = true;  // the text's first piece starts a word whatever its mark (BPE: no space before it)
      for (int32_t id : ids) {
        if (id == t->special_ids().cls || id == t->special_ids().sep) {
          after_special = true;
          continue;
        }
        ++pieces;
        starts += after_special || !t->continues_word(id);
        after_special = false;
      }
      CAPTURE(words);
      REQUIRE(starts == expected);
      ++sentences;
      multi_piece += pieces > expected;
    }
    CAPTURE(sentences, multi_piece);
    CHECK(sentences >= 20);
    CHECK(multi_piece >= 5);  // some words were split into several pieces
    for (int32_t id : {t->special_ids().cls, t->special_ids().sep, t->special_ids().pad, t->special_ids().mask})
      CHECK_FALSE(t->continues_word(id));
  }
}

TEST_CASE("each tokenizer family says its Hugging Face layout: the files it adds, its class, its special tokens",
          "[mlm][export]") {
  struct Case {
    std::string path, family, added, tokenizer_class;
    size_t specials;
  };
  test::TempDir dir;  // a fast BPE tokenizer without its slow files
  fs::copy_file(test::kTokenizerData + "bpe/tokenizer.json", dir.file("tokenizer.json"));
  const std::vector<Case> cases = {
      {test::kTokenizerData + "vocab-uncased.txt", "wordpiece", "tokenizer.json", "BertTokenizer", 5},
      {test::kTokenizerData + "bpe/vocab.json", "bpe", "tokenizer.json", "RobertaTokenizer", 7},
      {dir.path.string(), "bpe", "vocab.json merges.txt", "RobertaTokenizer", 7},
      {test::kTokenizerData + "unigram/sentencepiece.bpe.model", "unigram", "tokenizer.json", "XLMRobertaTokenizer", 7},
      {test::kTokenizerData + "unigram/tokenizer.json", "unigram", "", "XLMRobertaTokenizer", 7},
  };
  for (const Case& c : cases) {
    INFO(c.path);
    const auto t = load_tokenizer(c.path, true);
    REQUIRE(t->type() == c.family);
    const HfTokenizerLayout layout = t->hugging_face(find_tokenizer_files(c.path), 64);
    std::string added;
    for (const auto& [name, contents] : layout.files) {
      added += (added.empty() ? "" : " ") + name;
      CHECK(contents.size() > 1000);
      if (name == "tokenizer.json") {  // the written fast tokenizer loads and encodes as the original does
        const std::string written = dir.write("written-" + c.family + ".json", contents);
        const auto again = load_tokenizer(written, true);
        std::vector<int32_t> a, b;
        for (const std::string& text :
             {std::string("Hello world, this is a test!"), std::string("caf\xC3\xA9 #tag @user")}) {
          t->encode(text, a, 64);
          again->encode(text, b, 64);
          CHECK(a == b);
        }
      }
    }
    CHECK(added == c.added);
    CHECK(nlohmann::json::parse(layout.config_json).at("tokenizer_class") == c.tokenizer_class);
    CHECK(layout.special_tokens.size() == c.specials);
    for (const auto& [role, id] : layout.special_tokens) {
      INFO(role);
      CHECK(id >= 0);
    }
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

namespace {

// Unlabelled posts (a .txt file, one per line) prepared for train.objective mlm, and its config.
struct UnlabelledData {
  test::TempDir dir;
  Config config;
  UnlabelledData() {
    const auto overrides = test::synth_with_vocab(dir.file("raw"), dir.file("vocab.txt"), dir.file("prep"), 300, 40, 1);
    std::string lines;
    std::ifstream raw(dir.file("raw/train-00000.jsonl"));
    for (std::string line; std::getline(raw, line);)
      lines += nlohmann::json::parse(line).at("text").get<std::string>() + "\n";
    dir.write("posts.txt", lines + "\n");  // a trailing blank line: counted, not a record
    std::vector<std::string> all = overrides;
    for (const char* o : {"data.labels=[]", "train.objective=mlm", "data.max_len=32"}) all.push_back(o);
    all.push_back("data.train=[" + dir.file("posts.txt") + "]");
    config = load_config("", all).config;
  }
};

}  // namespace

TEST_CASE("unlabelled posts: .txt lines and text-only JSONL prepare with no labels, the manifest says so",
          "[mlm][data]") {
  UnlabelledData u;
  prepare_data(u.config, {1, false});
  const nlohmann::json manifest =
      nlohmann::json::parse(test::read(fs::path(u.config.data.prepared_dir) / "manifest.json"));
  CHECK(manifest.at("labelled") == false);
  CHECK(manifest.at("labels").empty());
  const auto& shard = manifest.at("splits").at("train").at("shards").at(0);
  CHECK(shard.at("input_records") == 300);
  CHECK(shard.at("records") == 300);  // input = kept + rejected
  CHECK(shard.at("rejected") == 0);
  CHECK(shard.at("blank_lines") == 1);
  const PreparedDataset data =
      PreparedDataset::open(u.config.data.prepared_dir, "train", DataExpectations::from_config(u.config));
  CHECK(data.size() == 300);
  CHECK(data.num_labels() == 0);
  // the labelled validation JSONL is read as text only: data.labels is empty
  CHECK(PreparedDataset::open(u.config.data.prepared_dir, "valid", DataExpectations::from_config(u.config)).size() ==
        40);

  // A .txt file where labels are required is one line saying what to do.
  Config labelled = u.config;
  labelled.data.labels = {"hate"};
  labelled.train.objective = Objective::kClassify;
  labelled.data.prepared_dir = u.dir.file("prep-labelled");
  CHECK_THROWS_WITH(prepare_data(labelled, {1, false}),
                    Contains("posts.txt: a .txt file is unlabelled text") && Contains("data.labels: []"));
}

TEST_CASE("MLM batches: masked on the loader thread, the chosen tokens agree in both layouts, drawn from the batch",
          "[mlm][data]") {
  UnlabelledData u;
  prepare_data(u.config, {1, false});
  auto data = std::make_shared<PreparedDataset>(
      PreparedDataset::open(u.config.data.prepared_dir, "train", DataExpectations::from_config(u.config)));
  const auto tokenizer = load_tokenizer(u.config.tokenizer);
  auto masker = std::make_shared<const TokenMasker>(*tokenizer, MaskingOptions{});
  DistributedSampler sampler(data->size(), {5, 0, 1, 16, true, false, 64});
  LoaderOptions plain;
  plain.pad_id = tokenizer->special_ids().pad;
  LoaderOptions masked = plain;
  masked.masker = masker;
  masked.mask_seed = 5;
  masked.mask_batches_per_epoch = sampler.batches_per_epoch();

  const SampledBatch sampled = sampler.batch(0, 2);
  const Batch original = collate(*data, sampled, plain), batch = collate(*data, sampled, masked);
  REQUIRE(batch.masked > 0);
  REQUIRE(batch.mlm_labels.numel() == batch.masked);
  const torch::Tensor flat_original = original.input_ids.flatten(), flat = batch.input_ids.flatten();
  // targets are the original ids at the chosen positions; the packed indices name the same tokens
  CHECK(torch::equal(flat_original.index_select(0, batch.mlm_positions), batch.mlm_labels));
  const UnpaddedBatch unpadded = unpad_batch(batch.input_ids, batch.attention_mask);
  CHECK(torch::equal(unpadded.ids.index_select(0, batch.mlm_packed), flat.index_select(0, batch.mlm_positions)));
  // only chosen tokens differ; most of the chosen became the mask token
  const torch::Tensor changed = flat.ne(flat_original);
  CHECK(changed.sum().item<int64_t>() <= batch.masked);
  const int64_t as_mask =
      flat.index_select(0, batch.mlm_positions).eq(tokenizer->special_ids().mask).sum().item<int64_t>();
  CHECK(as_mask > batch.masked / 2);
  CHECK(torch::equal(batch.attention_mask, original.attention_mask));

  // the same batch draws the same (a resumed run, another rank layout); another batch ordinal other masks
  const Batch again = collate(*data, sampled, masked);
  CHECK(torch::equal(again.input_ids, batch.input_ids));
  CHECK(torch::equal(again.mlm_positions, batch.mlm_positions));
  SampledBatch next_epoch = sampled;
  next_epoch.epoch = 1;
  CHECK_FALSE(torch::equal(collate(*data, next_epoch, masked).mlm_positions, batch.mlm_positions));

  // records repeated to even out the ranks take no loss
  SampledBatch repeated = sampled;
  repeated.padding.assign(repeated.indices.size(), 0);
  repeated.padding[0] = 1;
  const Batch with_padding = collate(*data, repeated, masked);
  const int64_t width = with_padding.input_ids.size(1);
  CHECK(with_padding.mlm_positions.lt(width).sum().item<int64_t>() == 0);
  CHECK(torch::equal(with_padding.input_ids[0], original.input_ids[0]));
}

TEST_CASE("the MLM loss is the summed cross-entropy of the chosen tokens, and 0 when none are chosen", "[mlm][loss]") {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({5, 11}, torch::kFloat32).requires_grad_(true);
  const torch::Tensor targets = torch::tensor(std::vector<int64_t>{0, 3, 10, 3, 7});
  const torch::Tensor loss = mlm_loss_total(logits, targets);
  const torch::Tensor l64 = logits.detach().to(torch::kFloat64);
  double want = 0;
  for (int64_t i = 0; i < 5; ++i)
    want += (l64[i].exp().sum().log() - l64[i][targets[i].item<int64_t>()]).item<double>();
  CHECK(std::abs(loss.item<double>() - want) < 1e-5);
  const torch::Tensor none = torch::zeros({0, 11}, torch::kFloat32).requires_grad_(true);
  const torch::Tensor zero = mlm_loss_total(none, torch::zeros({0}, torch::kInt64));
  CHECK(zero.item<double>() == 0.0);
  zero.backward();
  CHECK(none.grad().numel() == 0);
}

TEST_CASE("an MLM model directory: the ForMaskedLM layout, both bias names, export, and the hand-over to fine-tuning",
          "[mlm][modelio]") {
  for (const char* family : {"roberta", "bert"}) {
    INFO(family);
    const bool roberta = std::string(family) == "roberta";
    test::TempDir dir;
    const fs::path hf = dir.path / "hf";
    REQUIRE(std::system(("/usr/bin/python3 " MODTRAIN_SOURCE_DIR "/tests/reference/make_hf_model.py " +
                         std::string(family) + " " + MODTRAIN_TEST_DATA "/tokenizer " + hf.string() + " --max-len 40")
                            .c_str()) == 0);
    const nlohmann::json cfg = nlohmann::json::parse(test::read(hf / "config.json"));
    Config config;
    config.train.objective = Objective::kMlm;
    config.data.labels = {};
    config.model.arch = roberta ? ModelArch::kRoberta : ModelArch::kBert;
    config.model.hidden = 32, config.model.layers = 2, config.model.heads = 2, config.model.intermediate = 64;
    config.model.max_positions = cfg.at("max_position_embeddings");
    config.model.layer_norm_eps = cfg.at("layer_norm_eps");
    config.data.max_len = roberta ? config.model.max_positions - 2 : config.model.max_positions;
    config.tokenizer.vocab = hf.string();
    const auto tokenizer = load_tokenizer(config.tokenizer);
    BertConfig c = BertConfig::from(config.model, static_cast<int64_t>(tokenizer->vocab_size()), 0, config.data.max_len,
                                    tokenizer->special_ids().pad);
    c.layer_norm_eps = config.model.layer_norm_eps;

    // import: the encoder and the masked-LM head, one for one
    BertForMaskedLM imported(c), by_name(c);
    imported->eval(), by_name->eval();
    const ImportReport r = import_huggingface(hf.string(), *imported, config, *tokenizer);
    CHECK(r.head);
    CHECK(r.tensors == imported->named_parameters().size());
    io::SafetensorsFile weights((hf / "model.safetensors").string());
    load_state(*by_name, weights.view(), "hf");
    for (const auto& p : imported->named_parameters())
      CHECK(torch::equal(p.value(), by_name->named_parameters()[p.key()]));

    // the model directory: ...ForMaskedLM, no labels, the bias under both names
    ModelMeta meta;
    meta.bert = c;
    meta.objective = Objective::kMlm;
    meta.max_len = config.data.max_len;
    const std::string model_dir = (dir.path / "model").string();
    save_model_dir(model_dir, *imported, meta, hf.string());
    const nlohmann::json written = nlohmann::json::parse(test::read(fs::path(model_dir) / "config.json"));
    CHECK(written.at("architectures").at(0) == std::string(roberta ? "RobertaForMaskedLM" : "BertForMaskedLM"));
    CHECK_FALSE(written.contains("id2label"));
    CHECK(written.at("tie_word_embeddings") == true);
    const std::string head = roberta ? "lm_head." : "cls.predictions.";
    io::SafetensorsFile saved((fs::path(model_dir) / "model.safetensors").string());
    REQUIRE(saved.view().find(head + "bias"));
    REQUIRE(saved.view().find(head + "decoder.bias"));
    CHECK(nlohmann::json::parse(test::read(fs::path(model_dir) / "modtrain.json")).at("objective") == "mlm");
    CHECK(model_dir_objective(model_dir) == Objective::kMlm);

    // serving it as a classifier is one line with the fix; export and its own loader take it
    CHECK_THROWS_WITH(load_model_dir(model_dir, torch::kCPU),
                      Contains("is a masked-language model") && Contains("model.init_from: " + model_dir));
    LoadedModel loaded = load_model_dir(model_dir, torch::kCPU, /*allow_mlm=*/true);
    REQUIRE(loaded.mlm_model);
    for (const auto& p : loaded.mlm_model->named_parameters())
      CHECK(torch::equal(p.value(), imported->named_parameters()[p.key()]));
    const std::string exported = (dir.path / "export").string();
    export_huggingface(model_dir, exported);
    CHECK_THAT(test::read(fs::path(exported) / "README.md"), Contains("AutoModelForMaskedLM"));
    CHECK_FALSE(fs::exists(fs::path(exported) / "thresholds.json"));
    CHECK(fs::exists(fs::path(exported) / "tokenizer.json"));

    // a checkpoint that has the bias only under decoder.bias imports it
    std::vector<torch::Tensor> keep;
    std::vector<io::TensorBytes> tensors = state_tensors(*imported, keep);
    for (auto& t : tensors)
      if (t.name == head + "bias") t.name = head + "decoder.bias";
    const fs::path renamed = dir.path / "renamed";
    fs::create_directories(renamed);
    for (const auto& entry : fs::directory_iterator(model_dir))
      if (entry.path().filename() != "model.safetensors") fs::copy(entry.path(), renamed / entry.path().filename());
    io::write_safetensors((renamed / "model.safetensors").string(), tensors, {{"format", "pt"}});
    BertForMaskedLM from_alias(c);
    CHECK(import_huggingface(renamed.string(), *from_alias, config, *tokenizer).head);
    CHECK(torch::equal(from_alias->bias, imported->bias));

    // the hand-over: a classifier takes the encoder from the MLM directory, the head is fresh
    Config classify = config;
    classify.train.objective = Objective::kClassify;
    classify.data.labels = {"a", "b"};
    BertConfig cc = c;
    cc.num_labels = 2;
    BertForClassification classifier(cc);
    const ImportReport h = import_huggingface(model_dir, *classifier, classify, *tokenizer);
    CHECK_FALSE(h.head);
    const std::string prefix = std::string(c.prefix()) + ".";
    for (const auto& p : imported->named_parameters())
      if (p.key().rfind(prefix, 0) == 0) CHECK(torch::equal(p.value(), classifier->named_parameters()[p.key()]));
  }
}
