// Checkpoints (trainer state, AdamW state, the atomic directory, pointers, pruning, resolve,
// compatibility checks) and model.init_from (Hugging Face BERT import). Exact resume across
// ranks, kill-mid-save and preemption run the real executable: tests/cli/checkpoint_resume.sh
// and tests/cli/preempt.sh.
#include "catch_torch.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "modtrain/core/error.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/model/model.h"
#include "modtrain/modelio/hf_import.h"
#include "modtrain/train/checkpoint.h"
#include "modtrain/train/schedule.h"
#include "test_util.h"

using namespace modtrain;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

BertConfig small(int64_t labels = 3) {
  BertConfig c;
  c.vocab_size = 12;
  c.hidden = 16;
  c.layers = 2;
  c.heads = 2;
  c.intermediate = 32;
  c.max_positions = 24;
  c.num_labels = labels;
  c.hidden_dropout = c.attention_dropout = 0.0;
  return c;
}

// The config that matches small(): model.* and three labels.
Config small_config(const std::string& vocab) {
  Config c;
  c.model.hidden = 16;
  c.model.layers = 2;
  c.model.heads = 2;
  c.model.intermediate = 32;
  c.model.max_positions = 24;
  c.data.labels = {"a", "b", "c"};
  c.tokenizer.vocab = vocab;
  c.train.micro_batch = 8;
  return c;
}

const char* kVocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n##s\nhate\n";

// A model with the trainer's flat buckets and flat AdamW (lr 1e-2, weight decay 0.01).
struct WithAdamW {
  BertForClassification model;
  std::unique_ptr<FlatParams> flat;
  std::unique_ptr<Optimizer> opt;
  explicit WithAdamW(const BertConfig& c) : model(c) {
    NamedParameters params = named_parameters(*model);
    FlatOptions options;
    options.no_decay = no_weight_decay(*model);
    flat = std::make_unique<FlatParams>(params, options);
    opt = make_adamw(*flat, AdamWOptions{}, nullptr);
  }
  // One optimiser step on a fixed batch.
  void step() {
    flat->zero_grads();
    torch::Tensor ids = torch::tensor({{2, 5, 6, 7, 3}, {2, 8, 9, 10, 3}}, torch::kLong);
    torch::Tensor logits = model->forward(ids, torch::ones_like(ids));
    logits.pow(2).sum().backward();
    opt->step(1e-2, std::numeric_limits<double>::infinity(), 1.0);
  }
};

bool same_parameters(BertForClassification& a, BertForClassification& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa)
    if (!torch::equal(item.value(), pb[item.key()])) return false;
  return true;
}

TrainerState some_state(int64_t at) {
  TrainerState s;
  s.step = at;
  s.total_steps = 100;
  s.sampler = {1, 7};
  s.batches_per_epoch = 20;
  s.world = 2;
  s.micro_batch = 8;
  s.labels = {"a", "b", "c"};
  s.problem = "multi_label";
  return s;
}

// A model after one AdamW step with its vocab file and metadata: what a checkpoint holds.
struct Trained {
  test::TempDir run;
  std::string vocab = run.write("vocab.txt", kVocab);
  WithAdamW trained{small()};
  BertForClassification& model = trained.model;
  OptimizerState opt;
  ModelMeta meta{small(),
                 {"a", "b", "c"},
                 Problem::kMultiLabel,
                 {0.5, 0.5, 0.5},
                 true,
                 true,
                 16,
                 "",
                 Objective::kClassify,
                 {},
                 0.5,
                 false,
                 {},
                 {}};
  Trained() {
    trained.step();
    opt = trained.opt->state();
  }
  CheckpointContent at(int64_t step) {
    return {*trained.flat, *trained.opt, meta, vocab, "run:\n  seed: 1\n", some_state(step)};
  }
};

}  // namespace

TEST_CASE("trainer state round-trips through JSON, damage is a clear error", "[checkpoint]") {
  TrainerState s = some_state(40);
  s.loss_scale = 1024;
  s.loss_scale_good_steps = 17;
  s.best_metric = "macro_pr_auc";
  s.best_value = 0.625;
  s.best_step = 30;
  TrainerState r = TrainerState::from_json(s.to_json(), "x.json");
  CHECK(r.step == 40);
  CHECK(r.sampler == s.sampler);
  CHECK(r.batches_per_epoch == 20);
  CHECK(r.world == 2);
  CHECK(r.loss_scale == 1024);
  CHECK(r.loss_scale_good_steps == 17);
  CHECK(r.best_value == 0.625);
  CHECK(r.best_step == 30);
  CHECK(r.labels == s.labels);
  CHECK(std::isnan(TrainerState::from_json(some_state(1).to_json(), "x").best_value));
  CHECK_THROWS_WITH(
      TrainerState::from_json("{\"format\": \"modtrain-trainer-state\", \"version\": 1}", "dir/trainer_state.json"),
      Contains("dir/trainer_state.json: malformed trainer state"));
  CHECK_THROWS_WITH(TrainerState::from_json("[1,2", "t.json"), Contains("t.json: malformed"));
  CHECK_THROWS_WITH(TrainerState::from_json("{}", "t.json"), Contains("not a modtrain trainer state"));
}

TEST_CASE("dropout seeds differ per rank and per step and repeat exactly", "[checkpoint]") {
  std::set<uint64_t> seen;
  for (int rank = 0; rank < 4; ++rank)
    for (int64_t s = 0; s < 100; ++s) seen.insert(step_seed(1234, rank, s));
  CHECK(seen.size() == 400);
  CHECK(step_seed(1234, 1, 7) == step_seed(1234, 1, 7));
  CHECK(step_seed(1234, 1, 7) != step_seed(1235, 1, 7));
}

TEST_CASE("AdamW state saved and restored continues bit for bit", "[checkpoint]") {
  test::TempDir dir;
  torch::manual_seed(1);
  WithAdamW a(small());
  a.step();
  a.step();
  save_optimizer_state(dir.file("opt.safetensors"), a.opt->state());

  torch::manual_seed(2);  // different weights: all of it must come from the files
  WithAdamW b(small());
  {
    std::vector<torch::Tensor> keep;
    io::write_safetensors(dir.file("model.safetensors"), state_tensors(*a.model, keep));
    io::SafetensorsFile f(dir.file("model.safetensors"));
    load_state(*b.model, f.view(), "model.safetensors");
  }
  const OptimizerState loaded = load_optimizer_state(dir.file("opt.safetensors"));
  CHECK(loaded.step == 2);
  CHECK(loaded.optimizer == "adamw");
  b.opt->load_state(loaded, "opt.safetensors");
  REQUIRE(same_parameters(a.model, b.model));
  a.step();
  b.step();
  CHECK(same_parameters(a.model, b.model));  // moments and step count restored: identical update

  // Without the optimiser state the next update differs (the test can fail).
  WithAdamW c(small());
  {
    io::SafetensorsFile f(dir.file("model.safetensors"));
    load_state(*c.model, f.view(), "model.safetensors");
  }
  c.step();
  CHECK_FALSE(same_parameters(a.model, c.model));
}

TEST_CASE("optimiser state that does not fit the model or the optimiser: one error naming the first mismatch",
          "[checkpoint]") {
  WithAdamW a(small());
  a.step();
  const OptimizerState state = a.opt->state();
  WithAdamW wide(small(5));
  CHECK_THROWS_WITH(wide.opt->load_state(state, "ckpt/optimizer.safetensors"),
                    Contains("ckpt/optimizer.safetensors: optimiser state exp_avg.classifier.weight has shape [3, 16], "
                             "the parameter [5, 16]"));
  OptimizerState missing = state;
  missing.tensors.erase(missing.tensors.begin());  // exp_avg of the first parameter
  CHECK_THROWS_WITH(a.opt->load_state(missing, "x"),
                    Contains("x: no optimiser state exp_avg.bert.embeddings.word_embeddings.weight"));
  OptimizerState extra = state;
  extra.tensors.emplace_back("exp_avg.bert.pooler.extra", torch::zeros({2}));
  CHECK_THROWS_WITH(a.opt->load_state(extra, "x"),
                    Contains("x: optimiser state exp_avg.bert.pooler.extra names no parameter of this model"));
  OptimizerState other = state;
  other.optimizer = "lion";
  CHECK_THROWS_WITH(a.opt->load_state(other, "x"),
                    Contains("x: optimiser state of lion, but train.optimizer is adamw; resume with "
                             "train.optimizer=lion"));
  // ... and through the file: the optimiser's name is recorded in its metadata
  test::TempDir dir;
  save_optimizer_state(dir.file("o.safetensors"), other);
  CHECK(load_optimizer_state(dir.file("o.safetensors")).optimizer == "lion");
  CHECK_THROWS_WITH(a.opt->load_state(load_optimizer_state(dir.file("o.safetensors")), "o"),
                    Contains("but train.optimizer is adamw"));
}

TEST_CASE("checkpoints are written whole, pointed to by latest, pruned to keep_last plus best", "[checkpoint]") {
  Trained t;
  CheckpointConfig cc;
  cc.keep_last = 2;
  auto local = make_local_collectives();
  Checkpoints ckpts(t.run.path.string(), cc, *local);
  for (int64_t at : {10, 20, 30, 40}) ckpts.save(t.at(at), /*best=*/at == 20);
  const fs::path dir = t.run.path / "checkpoints";
  CHECK(test::read(dir / "latest") == "step-0000040\n");
  CHECK(test::read(dir / "best") == "step-0000020\n");
  CHECK_FALSE(fs::exists(dir / "step-0000010"));  // pruned
  CHECK(fs::exists(dir / "step-0000020"));        // the best survives pruning
  CHECK(fs::exists(dir / "step-0000030"));
  for (const char* f : {"model.safetensors", "optimizer.rank-00000.safetensors", "index.json", "trainer_state.json",
                        "config.yaml", "config.json", "modtrain.json", "vocab.txt"})
    CHECK(fs::exists(dir / "step-0000040" / f));
  for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().filename().string().rfind(".tmp", 0) != 0);

  CHECK(Checkpoints::resolve("auto", t.run.path.string()) == (dir / "step-0000040").string());
  CHECK(Checkpoints::resolve(t.run.path.string(), "elsewhere") == (dir / "step-0000040").string());
  CHECK(Checkpoints::resolve((dir / "step-0000030").string(), "x") == (dir / "step-0000030").string());
  // `latest` naming a directory that is gone: the newest complete one instead.
  io::remove_tree((dir / "step-0000040").string());
  CHECK(Checkpoints::resolve("auto", t.run.path.string()) == (dir / "step-0000030").string());
  test::TempDir empty;
  CHECK(Checkpoints::resolve("auto", empty.path.string()).empty());
  CHECK_THROWS_WITH(Checkpoints::resolve(empty.path.string(), "x"), Contains("no complete checkpoint there"));
  CHECK_THROWS_WITH(Checkpoints::resolve("/nonexistent/ckpt", "x"), Contains("no such checkpoint"));
}

TEST_CASE("a sharded checkpoint restores the optimiser bit for bit, and an async save holds the snapshot",
          "[checkpoint]") {
  for (const bool async : {false, true}) {
    Trained t;
    CheckpointConfig cc;
    cc.async = async;
    auto local = make_local_collectives();
    Checkpoints ckpts(t.run.path.string(), cc, *local);
    // The values at the snapshot, then a change right after it: the checkpoint must hold the former.
    const torch::Tensor params_then = t.trained.flat->params_all().clone();
    const torch::Tensor m_then = t.trained.opt->sharded_state().tensor(0).clone();
    const torch::Tensor v_then = t.trained.opt->sharded_state().tensor(1).clone();
    ckpts.begin(t.at(40), false);
    CHECK(ckpts.in_flight());
    {
      torch::NoGradGuard no_grad;
      t.trained.flat->params_all().add_(1.0);
      t.trained.opt->sharded_state().tensor(0).mul_(3.0);
      t.trained.opt->sharded_state().tensor(1).add_(0.5);
    }
    const SavedCheckpoint saved = ckpts.finish();
    CHECK_FALSE(ckpts.in_flight());
    CHECK(saved.bytes > 0);
    CHECK(saved.max_bytes == saved.bytes);
    CHECK(test::read(t.run.path / "checkpoints" / "latest") == "step-0000040\n");

    torch::manual_seed(9);
    WithAdamW fresh(small());
    Config config = small_config(t.vocab);
    load_checkpoint(saved.dir, *fresh.model, *fresh.opt, config, 2, 20);
    CHECK(torch::equal(fresh.flat->params_all(), params_then));
    CHECK(torch::equal(fresh.opt->sharded_state().tensor(0), m_then));
    CHECK(torch::equal(fresh.opt->sharded_state().tensor(1), v_then));
    CHECK(fresh.opt->updates() == 1);
    // Undo the change and step both: identical updates (the moments and step count came back).
    {
      torch::NoGradGuard no_grad;
      t.trained.flat->params_all().copy_(params_then);
      t.trained.opt->sharded_state().tensor(0).copy_(m_then);
      t.trained.opt->sharded_state().tensor(1).copy_(v_then);
    }
    t.trained.step();
    fresh.step();
    CHECK(same_parameters(t.model, fresh.model));
  }
}

TEST_CASE("replicated optimiser state is written 1/N by each of N ranks, every element once", "[checkpoint]") {
  torch::manual_seed(3);
  BertForClassification model(small());
  FlatOptions options;
  options.no_decay = no_weight_decay(*model);
  options.bucket_cap_bytes = 4096;  // several buckets
  FlatParams flat(named_parameters(*model), options);
  int64_t total = 0;
  for (const auto& s : flat.slots()) total += s.numel;
  size_t compared = 0;
  for (int world : {1, 2, 3, 7}) {
    std::vector<std::vector<int>> seen(flat.slots().size());
    for (size_t k = 0; k < seen.size(); ++k) seen[k].assign(static_cast<size_t>(flat.slots()[k].numel), 0);
    int64_t largest = 0;
    for (int rank = 0; rank < world; ++rank) {
      ShardedState state(flat, {"m"}, nullptr, rank, world);
      int64_t mine = 0;
      for (const auto& p : state.to_write()) {
        for (int64_t e = p.begin; e < p.end; ++e) ++seen[p.slot][static_cast<size_t>(e)];
        mine += p.numel();
      }
      largest = std::max(largest, mine);
    }
    CHECK(largest <= total / world + 1);  // an even split, to the element
    for (const auto& counts : seen)
      for (int c : counts) {
        CHECK(c == 1);
        ++compared;
      }
  }
  CHECK(compared == 4 * static_cast<size_t>(total));
}

TEST_CASE("a checkpoint that does not fit the run is a clear error", "[checkpoint]") {
  Trained t;
  auto local = make_local_collectives();
  const std::string dir = Checkpoints(t.run.path.string(), {}, *local).save(t.at(40), false).dir;
  Config config = small_config(t.vocab);

  WithAdamW fresh_model(small());
  BertForClassification& fresh = fresh_model.model;
  Optimizer& opt_fresh = *fresh_model.opt;
  TrainerState s = load_checkpoint(dir, *fresh, opt_fresh, config, /*world=*/2, /*batches_per_epoch=*/20);
  CHECK(s.step == 40);
  CHECK(s.sampler == SamplerState{1, 7});
  CHECK(same_parameters(t.model, fresh));

  Config other_labels = config;
  other_labels.data.labels = {"a", "b", "x"};
  CHECK_THROWS_WITH(load_checkpoint(dir, *fresh, opt_fresh, other_labels, 2, 20),
                    Contains("checkpoint labels [a, b, c] differ"));
  Config other_problem = config;
  other_problem.data.problem = Problem::kMultiClass;
  CHECK_THROWS_WITH(load_checkpoint(dir, *fresh, opt_fresh, other_problem, 2, 20),
                    Contains("differs from data.problem multi_class"));
  Config other_vocab = config;
  other_vocab.tokenizer.vocab = t.run.write("vocab2.txt", std::string(kVocab) + "extra\n");
  CHECK_THROWS_WITH(load_checkpoint(dir, *fresh, opt_fresh, other_vocab, 2, 20),
                    Contains("the checkpoint's tokenizer differs from tokenizer.vocab"));
  WithAdamW wide(small(4));
  CHECK_THROWS_WITH(load_checkpoint(dir, *wide.model, *wide.opt, config, 2, 20),
                    Contains("tensor 'classifier.weight' has shape [3x16]"));

  // Another world size: same fraction of the epoch (7 of 20 batches -> 4 of 10 with twice the ranks).
  s = load_checkpoint(dir, *fresh, opt_fresh, config, /*world=*/4, /*batches_per_epoch=*/10);
  CHECK(s.sampler == SamplerState{1, 4});
}

// ---- model.init_from -----------------------------------------------------------------------
namespace {

// Writes a Hugging Face-style BERT directory from `m`'s weights: `prefix` "" (BertModel) or
// "bert." (BertForPreTraining / ForSequenceClassification); old gamma/beta LayerNorm names when
// `gamma_beta`; pre-training heads (cls.*) and position_ids as real checkpoints have them.
void write_hf(const test::TempDir& dir, BertForClassification& m, const std::string& prefix, bool gamma_beta, bool head,
              const nlohmann::json& config_json) {
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorBytes> tensors;
  for (io::TensorBytes t : state_tensors(*m, keep)) {
    if (t.name.rfind("classifier.", 0) == 0) {
      if (!head) continue;
    } else {
      t.name = prefix + t.name.substr(5);  // strip our "bert."
      if (gamma_beta && t.name.find("LayerNorm.weight") != std::string::npos)
        t.name.replace(t.name.size() - 6, 6, "gamma");
      if (gamma_beta && t.name.find("LayerNorm.bias") != std::string::npos)
        t.name.replace(t.name.size() - 4, 4, "beta");
    }
    tensors.push_back(t);
  }
  static const float mlm_bias[12] = {};
  tensors.push_back({"cls.predictions.bias", "F32", {12}, mlm_bias, sizeof mlm_bias});
  static const int64_t position_ids[24] = {};
  tensors.push_back({prefix + "embeddings.position_ids", "I64", {1, 24}, position_ids, sizeof position_ids});
  io::write_safetensors(dir.file("model.safetensors"), tensors);
  dir.write("config.json", config_json.dump());
  dir.write("vocab.txt", kVocab);
}

nlohmann::json hf_config() {
  return {{"model_type", "bert"},     {"hidden_size", 16},       {"num_hidden_layers", 2},
          {"num_attention_heads", 2}, {"intermediate_size", 32}, {"max_position_embeddings", 24},
          {"vocab_size", 12},         {"hidden_act", "gelu"},    {"type_vocab_size", 2}};
}

BertForClassification seeded(uint64_t seed) {
  torch::manual_seed(seed);
  return BertForClassification(small());
}

// A "pretrained" model and the run config and vocab that fit it.
struct Pretrained {
  BertForClassification model;
  test::TempDir stage;
  std::string vocab_path = stage.write("vocab.txt", kVocab);
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(vocab_path);
  Config config = small_config(vocab_path);
  explicit Pretrained(uint64_t seed) : model(seeded(seed)) {}
};

bool same_encoder(BertForClassification& a, BertForClassification& b) {
  auto pb = b->named_parameters();
  for (const auto& item : a->named_parameters())
    if (item.key().rfind("classifier.", 0) != 0 && !torch::equal(item.value(), pb[item.key()])) return false;
  return true;
}

}  // namespace

TEST_CASE("model.init_from loads BertModel and BertForPreTraining weights with a fresh head", "[checkpoint][import]") {
  Pretrained p(3);

  for (const std::string prefix : {"", "bert."})
    for (bool gamma_beta : {false, true}) {
      CAPTURE(prefix, gamma_beta);
      test::TempDir hf;
      write_hf(hf, p.model, prefix, gamma_beta, /*head=*/false, hf_config());
      BertForClassification model = seeded(4);
      const torch::Tensor head_before = model->classifier->weight.clone();
      ImportReport r = import_huggingface(hf.path.string(), *model, p.config, *p.tokenizer);
      CHECK(same_encoder(model, p.model));
      CHECK(torch::equal(model->classifier->weight, head_before));  // fresh head
      CHECK_FALSE(r.head);
      CHECK(r.pooler);
      CHECK(r.ignored.empty());  // cls.* and position_ids are expected extras
    }
}

TEST_CASE("model.init_from keeps the classifier head only when the labels are ours", "[checkpoint][import]") {
  Pretrained p(5);
  nlohmann::json same = hf_config(), other = hf_config();
  same["id2label"] = {{"0", "a"}, {"1", "b"}, {"2", "c"}};
  other["id2label"] = {{"0", "a"}, {"1", "c"}, {"2", "b"}};  // same names, another order
  for (bool ours : {true, false}) {
    test::TempDir hf;
    write_hf(hf, p.model, "bert.", false, /*head=*/true, ours ? same : other);
    BertForClassification model(small());
    ImportReport r = import_huggingface(hf.path.string(), *model, p.config, *p.tokenizer);
    CHECK(r.head == ours);
    CHECK(torch::equal(model->classifier->weight, p.model->classifier->weight) == ours);
  }
}

TEST_CASE("model.init_from mismatches are errors naming the field or tensor", "[checkpoint][import]") {
  Pretrained p(6);
  BertForClassification pretrained = p.model;
  const Config& config = p.config;
  const Tokenizer& vocab = *p.tokenizer;
  BertForClassification model(small());

  SECTION("config.json shape fields") {
    test::TempDir hf;
    nlohmann::json c = hf_config();
    c["hidden_size"] = 768;
    c["num_hidden_layers"] = 12;
    write_hf(hf, pretrained, "bert.", false, false, c);
    CHECK_THROWS_WITH(
        import_huggingface(hf.path.string(), *model, config, vocab),
        Contains("shape differs from this config; set model.hidden: 768 (is 16), model.layers: 12 (is 2)"));
  }
  SECTION("a tensor's shape") {
    torch::manual_seed(7);
    BertConfig bigger = small();
    bigger.vocab_size = 13;
    BertForClassification other(bigger);
    test::TempDir hf;
    write_hf(hf, other, "bert.", false, false, hf_config());
    CHECK_THROWS_WITH(
        import_huggingface(hf.path.string(), *model, config, vocab),
        Contains("tensor 'bert.embeddings.word_embeddings.weight' has shape [13x16], the model needs [12x16]"));
  }
  SECTION("a missing tensor") {
    test::TempDir hf;
    write_hf(hf, pretrained, "bert.", false, false, hf_config());
    std::vector<io::TensorBytes> kept;
    io::SafetensorsFile f(hf.file("model.safetensors"));
    for (const auto& [name, t] : f.view().tensors())
      if (name != "bert.encoder.layer.1.output.dense.weight") kept.push_back(t);
    io::write_safetensors(hf.file("model2.safetensors"), kept);
    fs::rename(hf.file("model2.safetensors"), hf.file("model.safetensors"));
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("missing tensor 'bert.encoder.layer.1.output.dense.weight'"));
  }
  SECTION("another vocab") {
    test::TempDir hf;
    write_hf(hf, pretrained, "", false, false, hf_config());
    std::string changed = kVocab;
    changed.replace(changed.find("hate"), 4, "love");
    hf.write("vocab.txt", changed);
    CHECK_THROWS_WITH(
        import_huggingface(hf.path.string(), *model, config, vocab),
        Contains("its tokenizer differs from tokenizer.vocab (" + config.tokenizer.vocab +
                 "): token 11 is 'love' there, 'hate' in tokenizer.vocab; set tokenizer.vocab: " + hf.path.string()));
  }
  SECTION("not a BERT") {
    test::TempDir hf;
    nlohmann::json c = hf_config();
    c["model_type"] = "roberta";
    write_hf(hf, pretrained, "", false, false, c);
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("model_type is roberta but model.arch is bert; set model.arch: roberta"));
  }
  SECTION("relative positions that the config does not ask for") {
    test::TempDir hf;
    nlohmann::json c = hf_config();
    c["position_embedding_type"] = "relative_key";
    write_hf(hf, pretrained, "", false, false, c);
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("position_embedding_type relative_key differs from model.position_embedding_type "
                               "absolute; set model.position_embedding_type: relative_key"));
  }
  SECTION("a RoBERTa-family architecture") {
    test::TempDir hf;
    write_hf(hf, pretrained, "", false, false, hf_config());
    Config roberta = config;
    roberta.model.arch = ModelArch::kRoberta;
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, roberta, vocab),
                      Contains("model_type is bert but model.arch is roberta; set model.arch: bert"));
  }
  SECTION("missing files") {
    test::TempDir hf;
    hf.write("config.json", hf_config().dump());
    hf.write("vocab.txt", kVocab);
    hf.write("pytorch_model.bin", "x");
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("only pytorch_model.bin is there"));
    CHECK_THROWS_WITH(import_huggingface("/nonexistent/bert", *model, config, vocab), Contains("is not a directory"));
  }
  SECTION("no tokenizer files") {
    test::TempDir hf;
    write_hf(hf, pretrained, "", false, false, hf_config());
    fs::remove(hf.path / "vocab.txt");
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("model.init_from: " + hf.path.string() + ": no tokenizer in " + hf.path.string() +
                               ": expected tokenizer.json, vocab.json + merges.txt, sentencepiece.bpe.model or "
                               "vocab.txt; copy the model's tokenizer files there too"));
  }
  SECTION("a vocab_size that disagrees with the tokenizer") {
    test::TempDir hf;
    nlohmann::json c = hf_config();
    c["vocab_size"] = 13;
    write_hf(hf, pretrained, "", false, false, c);
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("config.json: vocab_size is 13 but tokenizer.vocab (" + config.tokenizer.vocab +
                               ") has 12 tokens; the word embedding needs one row per token"));
  }
  SECTION("a model_type modtrain does not have") {
    test::TempDir hf;
    nlohmann::json c = hf_config();
    c["model_type"] = "deberta-v2";
    write_hf(hf, pretrained, "", false, false, c);
    CHECK_THROWS_WITH(import_huggingface(hf.path.string(), *model, config, vocab),
                      Contains("model_type deberta-v2 is not a family modtrain has"));
  }
}
