// The encoder families people fine-tune for posts (RoBERTa / twitter-roberta with byte-level BPE,
// XLM-R / XLM-T and TwHIN-BERT with SentencePiece Unigram), end to end through model.init_from:
// a small Hugging Face directory written here (tests/reference/make_hf_model.py: random weights,
// the real test tokenizers), imported, its logits against the independent float64 NumPy reference
// (tests/reference/bert_numpy.py), saved, exported in the family's layout and imported again.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "catch_torch.h"
#include "modtrain/core/error.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/model/family.h"
#include "modtrain/modelio/hf_export.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/modelio/model_dir.h"
#include "test_util.h"

using namespace modtrain;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kReference = MODTRAIN_SOURCE_DIR "/tests/reference/";

struct FamilyCase {
  const char* name;  // make_hf_model.py's
  ModelArch arch;
  PositionEmbeddingType positions;
  const char* tokenizer_type;
  const char* tokenizer_class;  // what the export's tokenizer_config.json must name
};
const FamilyCase kFamilies[] = {
    {"roberta", ModelArch::kRoberta, PositionEmbeddingType::kAbsolute, "bpe", "RobertaTokenizer"},
    {"xlmr", ModelArch::kXlmRoberta, PositionEmbeddingType::kAbsolute, "unigram", "XLMRobertaTokenizer"},
    {"twhin", ModelArch::kBert, PositionEmbeddingType::kRelativeKey, "unigram", "XLMRobertaTokenizer"},
};

const char* kTexts[] = {
    "@user you are a total idiot, get lost 😡",
    "¿Dónde está la estación? Muy lejos de aquí…",
    "هذا منشور عن كرة القدم",
    "यह एक परीक्षण वाक्य है",
    "Это просто тест, ничего больше",
    "今日はとても暑いですね",
    "check http://spam.example/win   FREE $$$ prizes!!!",
    "x",
};

void run(const std::string& command) {
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

// The HF directory of `f` with a classifier for labels a, b, c (seeded, so reruns are equal).
void make_hf(const FamilyCase& f, const fs::path& out, const std::string& extra = "") {
  run(kPython + " " + kReference + "make_hf_model.py " + f.name + " " + MODTRAIN_TEST_DATA "/tokenizer " +
      out.string() + " --labels a,b,c --max-len 40 " + extra);
}

Config config_for(const FamilyCase& f, const std::string& tokenizer) {
  Config c;
  c.model.arch = f.arch;
  c.model.position_embedding_type = f.positions;
  c.model.hidden = 32;
  c.model.layers = 2;
  c.model.heads = 2;
  c.model.intermediate = 64;
  c.data.labels = {"a", "b", "c"};
  c.data.max_len = 40;
  c.model.max_positions = 40 + (f.arch == ModelArch::kBert ? 0 : 2);  // RoBERTa: pad id 1 + 1
  c.model.layer_norm_eps = f.arch == ModelArch::kBert ? 1e-12 : 1e-5;
  c.tokenizer.vocab = tokenizer;
  return c;
}

BertForClassification model_for(const Config& c, const Tokenizer& t) {
  BertConfig b =
      BertConfig::from(c.model, static_cast<int64_t>(t.vocab_size()), 3, c.data.max_len, t.special_ids().pad);
  b.layer_norm_eps = c.model.layer_norm_eps;
  BertForClassification m(b);
  m->eval();
  return m;
}

// The texts' ids as a right-padded batch.
std::pair<torch::Tensor, torch::Tensor> batch_of(const Tokenizer& t, size_t max_len,
                                                 std::vector<std::vector<int32_t>>& rows) {
  rows.clear();
  size_t longest = 0;
  for (const char* text : kTexts) {
    rows.emplace_back();
    t.encode(text, rows.back(), max_len);
    longest = std::max(longest, rows.back().size());
  }
  const int64_t b = static_cast<int64_t>(rows.size()), n = static_cast<int64_t>(longest);
  torch::Tensor ids = torch::full({b, n}, static_cast<int64_t>(t.special_ids().pad), torch::kInt64);
  torch::Tensor mask = torch::zeros({b, n}, torch::kInt64);
  for (int64_t i = 0; i < b; ++i)
    for (size_t k = 0; k < rows[static_cast<size_t>(i)].size(); ++k) {
      ids[i][static_cast<int64_t>(k)] = rows[static_cast<size_t>(i)][k];
      mask[i][static_cast<int64_t>(k)] = 1;
    }
  return {ids, mask};
}

}  // namespace

TEST_CASE("RoBERTa, XLM-R and TwHIN-BERT directories import, match the float64 reference, export and re-import",
          "[modelio][families]") {
  for (const FamilyCase& f : kFamilies) {
    INFO("family " << f.name);
    test::TempDir dir;
    const fs::path hf = dir.path / "hf";
    make_hf(f, hf);
    const Config config = config_for(f, hf.string());
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(config.tokenizer);
    CHECK(tokenizer->type() == f.tokenizer_type);
    BertForClassification model = model_for(config, *tokenizer);
    const ImportReport report = import_huggingface(hf.string(), *model, config, *tokenizer);
    CHECK(report.head);  // id2label a, b, c: ours
    CHECK(report.family == to_string(f.arch));
    INFO(report.summary());
    CHECK(report.ignored.empty());
    // TwHIN-BERT's config.json pads with 0, its tokenizer with 1: said, and the tokenizer's used
    CHECK(report.notes.size() == (std::string(f.name) == "twhin" ? 1u : 0u));

    // Logits against the NumPy reference reading only the HF directory, padded and unpadded.
    std::vector<std::vector<int32_t>> rows;
    auto [ids, mask] = batch_of(*tokenizer, 40, rows);
    std::string lines;
    for (const auto& r : rows) lines += nlohmann::json(r).dump() + "\n";
    const std::string ids_file = dir.write("ids.jsonl", lines), ref_file = dir.file("ref.jsonl");
    run(kPython + " " + kReference + "bert_numpy.py " + hf.string() + " " + ids_file + " > " + ref_file);
    torch::NoGradGuard no_grad;
    const torch::Tensor padded = model->forward(ids, mask), unpadded = model->logits(ids, mask, true, torch::kCPU);
    std::ifstream ref(ref_file);
    std::string line;
    for (int64_t i = 0; i < ids.size(0); ++i) {
      REQUIRE(std::getline(ref, line));
      const auto want = torch::tensor(nlohmann::json::parse(line).get<std::vector<double>>(), torch::kFloat64);
      INFO("text " << i << " (" << rows[static_cast<size_t>(i)].size() << " tokens)");
      CHECK((padded[i].to(torch::kFloat64) - want).abs().max().item<double>() < 1e-5);
      CHECK((unpadded[i].to(torch::kFloat64) - want).abs().max().item<double>() < 1e-5);
    }

    // A modtrain model directory with the family's tokenizer files, then the HF export.
    ModelMeta meta;
    meta.bert = model->config();
    meta.labels = config.data.labels;
    meta.thresholds = {0.5, 0.5, 0.5};
    meta.max_len = 40;
    const std::string model_dir = (dir.path / "model").string(), exported = (dir.path / "export").string();
    save_model_dir(model_dir, *model, meta, hf.string());
    export_huggingface(model_dir, exported);
    const nlohmann::json cfg = nlohmann::json::parse(test::read(fs::path(exported) / "config.json"));
    CHECK(cfg.at("model_type") == to_string(f.arch));
    CHECK(cfg.at("position_embedding_type") == to_string(f.positions));
    const nlohmann::json tc = nlohmann::json::parse(test::read(fs::path(exported) / "tokenizer_config.json"));
    CHECK(tc.at("tokenizer_class") == f.tokenizer_class);
    CHECK(tc.at("pad_token") == "<pad>");
    CHECK(tc.at("cls_token") == "<s>");
    CHECK(tc.at("mask_token") == "<mask>");
    CHECK(fs::exists(fs::path(exported) / "tokenizer.json"));  // the fast tokenizer, whatever the model had
    if (std::string(f.tokenizer_type) == "bpe") {              // and RoBERTa's slow files
      CHECK(fs::exists(fs::path(exported) / "vocab.json"));
      CHECK(fs::exists(fs::path(exported) / "merges.txt"));
    }
    // The export's tokenizer (its tokenizer.json now) gives the same ids.
    const std::unique_ptr<Tokenizer> again = load_tokenizer(exported);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::vector<int32_t> out;
      again->encode(kTexts[i], out, 40);
      CHECK(out == rows[i]);
    }

    // Both load back as model directories with the imported model's weights, bit for bit, and its
    // logits (to rounding: a loaded model's GEMMs run on laid-out copies of its frozen weights), and
    // the export imports again (model.init_from) to the same logits.
    for (const std::string& d : {model_dir, exported}) {
      LoadedModel loaded = load_model_dir(d, torch::kCPU);
      CHECK(loaded.tokenizer->type() == f.tokenizer_type);
      auto mine = model->named_parameters();
      int64_t same = 0;
      for (const auto& p : loaded.model->named_parameters()) same += torch::equal(p.value(), mine[p.key()]) ? 1 : 0;
      CHECK(same == static_cast<int64_t>(mine.size()));
      CHECK(torch::allclose(loaded.model->logits(ids, mask, /*unpad=*/false, torch::kCPU), padded, 1e-5, 1e-6));
    }
    Config reimport = config;
    reimport.tokenizer.vocab = exported;
    const std::unique_ptr<Tokenizer> exported_tokenizer = load_tokenizer(reimport.tokenizer);
    torch::manual_seed(99);
    BertForClassification fresh = model_for(reimport, *exported_tokenizer);
    CHECK(import_huggingface(exported, *fresh, reimport, *exported_tokenizer).head);
    CHECK(torch::equal(fresh->forward(ids, mask), padded));
  }
}

TEST_CASE("a pre-training checkpoint of each family: MLM heads ignored, classifier fresh", "[modelio][families]") {
  for (const FamilyCase& f : kFamilies) {
    INFO("family " << f.name);
    test::TempDir dir;
    const fs::path hf = dir.path / "hf";
    run(kPython + " " + kReference + "make_hf_model.py " + f.name + " " + MODTRAIN_TEST_DATA "/tokenizer " +
        hf.string() + " --max-len 40");
    const Config config = config_for(f, hf.string());
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(config.tokenizer);
    BertForClassification model = model_for(config, *tokenizer);
    const ImportReport r = import_huggingface(hf.string(), *model, config, *tokenizer);
    CHECK_FALSE(r.head);
    CHECK(r.ignored.empty());  // lm_head.* / cls.predictions.* are expected extras
    CHECK(r.tensors == model->named_parameters().size() - (f.arch == ModelArch::kBert ? 2 : 4));
  }
}

TEST_CASE("bad model directories of the families are one clear error each", "[modelio][families]") {
  const FamilyCase& roberta = kFamilies[0];
  const FamilyCase& twhin = kFamilies[2];
  test::TempDir dir;
  const fs::path hf = dir.path / "hf";

  SECTION("missing tokenizer files") {
    make_hf(roberta, hf);
    fs::remove(hf / "merges.txt");
    const Config config = config_for(roberta, hf.string());
    CHECK_THROWS_WITH(load_tokenizer(config.tokenizer), Contains("no tokenizer in " + hf.string()));
  }
  SECTION("a tokenizer.json of a type modtrain does not have") {
    make_hf(twhin, hf);
    nlohmann::json t = nlohmann::json::parse(test::read(hf / "tokenizer.json"));
    t["model"]["type"] = "WordLevel";
    dir.write("hf/tokenizer.json", t.dump());
    CHECK_THROWS_WITH(load_tokenizer(config_for(twhin, hf.string()).tokenizer),
                      Contains("tokenizer.json: model.type WordLevel is not a tokenizer modtrain has"));
  }
  SECTION("tokenizer.type that is not what the directory holds") {
    make_hf(roberta, hf);
    Config config = config_for(roberta, hf.string());
    config.tokenizer.type = TokenizerType::kUnigram;
    CHECK_THROWS_WITH(load_tokenizer(config.tokenizer),
                      Contains("holds a bpe tokenizer, tokenizer.type says unigram; set tokenizer.type: bpe"));
  }
  SECTION("a vocabulary that disagrees with the embedding") {
    make_hf(roberta, hf);
    nlohmann::json c = nlohmann::json::parse(test::read(hf / "config.json"));
    c["vocab_size"] = 50265;  // roberta-base's, with the test tokenizer's 3,261 tokens
    dir.write("hf/config.json", c.dump());
    const Config config = config_for(roberta, hf.string());
    const auto tokenizer = load_tokenizer(config.tokenizer);
    BertForClassification model = model_for(config, *tokenizer);
    CHECK_THROWS_WITH(
        import_huggingface(hf.string(), *model, config, *tokenizer),
        Contains("config.json: vocab_size is 50265 but tokenizer.vocab (" + hf.string() + ") has 3261 tokens"));
  }
  SECTION("relative_key with another max_position_embeddings") {
    make_hf(twhin, hf);
    Config config = config_for(twhin, hf.string());
    config.model.max_positions = 64;
    const auto tokenizer = load_tokenizer(config.tokenizer);
    BertForClassification model = model_for(config, *tokenizer);
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("set model.max_positions: 40 (is 64)"));
    // config.json agrees but the tensors were made for other positions: the first one is named
    nlohmann::json c = nlohmann::json::parse(test::read(hf / "config.json"));
    c["max_position_embeddings"] = 64;
    dir.write("hf/config.json", c.dump());
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("tensor 'bert.embeddings.position_embeddings.weight' has shape [40x32], the model "
                               "needs [64x32]"));
    // and TwHIN-BERT's distance embedding, with the absolute table right
    std::vector<io::TensorBytes> tensors;
    io::SafetensorsFile f((hf / "model.safetensors").string());
    const torch::Tensor positions = torch::zeros({64, 32});
    for (const auto& t : f.view().tensors())
      if (t.first == "bert.embeddings.position_embeddings.weight")
        tensors.push_back({t.first, "F32", {64, 32}, positions.data_ptr(), 64 * 32 * sizeof(float)});
      else tensors.push_back(t.second);
    io::write_safetensors(dir.file("hf/model2.safetensors"), tensors);
    fs::rename(hf / "model2.safetensors", hf / "model.safetensors");
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("tensor 'bert.encoder.layer.0.attention.self.distance_embedding.weight' has shape "
                               "[79x16], the model needs [127x16]"));
  }
  SECTION("RoBERTa's pad_token_id must be the tokenizer's (positions start after it)") {
    make_hf(roberta, hf);
    nlohmann::json c = nlohmann::json::parse(test::read(hf / "config.json"));
    c["pad_token_id"] = 0;
    dir.write("hf/config.json", c.dump());
    const Config config = config_for(roberta, hf.string());
    const auto tokenizer = load_tokenizer(config.tokenizer);
    BertForClassification model = model_for(config, *tokenizer);
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("config.json: pad_token_id is 0 but tokenizer.vocab (" + hf.string() +
                               ") pads with id 1 (RoBERTa's positions start after it)"));
  }
  SECTION("RoBERTa's layer_norm_eps and the family are checked") {
    make_hf(roberta, hf);
    Config config = config_for(roberta, hf.string());
    config.model.layer_norm_eps = 1e-12;
    const auto tokenizer = load_tokenizer(config.tokenizer);
    BertForClassification model = model_for(config, *tokenizer);
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("set model.layer_norm_eps: 1e-05 (is 1e-12)"));
    config.model.layer_norm_eps = 1e-5;
    config.model.arch = ModelArch::kXlmRoberta;
    CHECK_THROWS_WITH(import_huggingface(hf.string(), *model, config, *tokenizer),
                      Contains("model_type is roberta but model.arch is xlm-roberta; set model.arch: roberta"));
  }
}

TEST_CASE("the family table: one row per model.arch, named as the config names it, found by model_type", "[families]") {
  int rows = 0;
  for (ModelArch arch : {ModelArch::kBert, ModelArch::kRoberta, ModelArch::kXlmRoberta}) {
    const modtrain::Family& f = family_of(arch);
    CHECK(f.arch == arch);
    CHECK(std::string(f.model_type) == to_string(arch));  // config.json's model_type is model.arch's YAML name
    ModelArch parsed;
    REQUIRE(from_string(f.model_type, parsed));
    CHECK(parsed == arch);
    REQUIRE(find_family(f.model_type) == &f);
    BertConfig c;
    c.arch = arch;
    CHECK(std::string(c.prefix()) == f.prefix);
    ++rows;
  }
  CHECK(rows == static_cast<int>(families().size()));
  CHECK(find_family("deberta-v2") == nullptr);
  CHECK(family_list() == "bert, roberta, xlm-roberta (BERT, TwHIN-BERT, RoBERTa, twitter-roberta, XLM-R, XLM-T)");
  CHECK(enum_names<ModelArch>() == "bert | roberta | xlm-roberta");
  PositionEmbeddingType p;
  CHECK(from_string("relative_key_query", p));
  CHECK(p == PositionEmbeddingType::kRelativeKeyQuery);
  CHECK_FALSE(from_string("rotary", p));
}
