// Config loading: defaults, extends chains, overrides, every error class with its
// file:line:col and suggestion, cross-field rules, and the show -> load round trip.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "modtrain/config/loader.h"
#include "modtrain/config/schema.h"
#include "modtrain/core/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace modtrain;

namespace {
using test::TempDir;

// The message of the ConfigError that `fn` throws ("" if none).
std::string config_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
}  // namespace

TEST_CASE("no file: the built-in defaults", "[config]") {
  ResolvedConfig r = load_config("");
  const Config defaults;
  CHECK(r.config.train.lr == defaults.train.lr);
  CHECK(r.config.model.hidden == 128);
  CHECK(r.config.data.problem == Problem::kMultiLabel);
  CHECK(r.config.eval.thresholds.all.kind == ThresholdPolicy::Kind::kMaxF1);
  CHECK(r.files.empty());
  CHECK(r.origin.empty());
}

TEST_CASE("configs/tiny.yaml resolves to the documented values", "[config]") {
  ResolvedConfig r = load_config(MODTRAIN_SOURCE_DIR "/configs/tiny.yaml");
  const Config& c = r.config;
  CHECK(c.run.dir == "runs/tiny");
  CHECK(c.run.seed == 1234);
  CHECK(c.data.labels.size() == 7);
  CHECK(c.data.max_len == 64);
  CHECK(c.model.layers == 2);
  CHECK(c.model.hidden == 128);
  CHECK(c.train.micro_batch == 32);
  CHECK(c.train.lr == 1.0e-3);
  CHECK(c.model.heads == 4);
  CHECK(c.train.pos_weight.kind == PosWeight::Kind::kAuto);
  CHECK(c.eval.min_precision == 0.3);
  CHECK(c.train.schedule == Schedule::kLinear);
  CHECK(c.dist.bucket_mb == 25.0);
  CHECK(c.checkpoint.keep_last == 3);
  CHECK(c.log.every == 10);
  CHECK(load_config(MODTRAIN_SOURCE_DIR "/configs/base.yaml").config.model.hidden == 768);
}

TEST_CASE("extends chains: parent first, relative paths, nearest file wins", "[config]") {
  TempDir dir;
  dir.write("grand.yaml", "train:\n  lr: 0.1\n  max_steps: 50\nmodel:\n  layers: 4\n");
  dir.write("sub/parent.yaml", "extends: ../grand.yaml\ntrain:\n  lr: 0.2\n");
  std::string child = dir.write("child.yaml", "extends: sub/parent.yaml\nmodel:\n  layers: 6\n");
  ResolvedConfig r = load_config(child);
  CHECK(r.config.train.lr == 0.2);        // parent beats grandparent
  CHECK(r.config.train.max_steps == 50);  // inherited from the grandparent
  CHECK(r.config.model.layers == 6);      // the file itself wins
  CHECK(r.config.model.hidden == 128);    // untouched: default
  REQUIRE(r.files.size() == 3);
  CHECK_THAT(r.files[0], Contains("grand.yaml"));
  CHECK_THAT(r.files[2], Contains("child.yaml"));
  CHECK(r.origin.at("train.lr").str() == (dir.path / "sub/parent.yaml").string() + ":3:7");
  CHECK(r.origin.at("model.layers").line == 3);
}

TEST_CASE("command-line overrides beat every file and are typed by the schema", "[config]") {
  TempDir dir;
  std::string file = dir.write("c.yaml", "train:\n  lr: 0.1\ndata:\n  labels: [a, b, c]\n");
  ResolvedConfig r = load_config(file, {"train.lr=0.01", "data.labels=[x, y]", "data.valid=v.jsonl",
                                        "log.all_ranks=true", "eval.thresholds=precision_at:0.9", "run.seed=7"});
  CHECK(r.config.train.lr == 0.01);
  CHECK(r.config.data.labels == std::vector<std::string>{"x", "y"});
  CHECK(r.config.data.valid == std::vector<std::string>{"v.jsonl"});
  CHECK(r.config.log.all_ranks);
  CHECK(r.config.eval.thresholds.all.kind == ThresholdPolicy::Kind::kPrecisionAt);
  CHECK(r.config.eval.thresholds.all.value == 0.9);
  CHECK(r.config.run.seed == 7);
  CHECK(r.origin.at("train.lr").str() == "--set train.lr=0.01");
  // the later --set wins
  CHECK(load_config("", {"train.lr=0.3", "train.lr=0.4"}).config.train.lr == 0.4);
}

TEST_CASE("threshold policies in scalar and mapping form", "[config]") {
  auto policy = [](const std::string& yaml) {
    return load_config_text("eval:\n  thresholds: " + yaml + "\n", "t.yaml").config.eval.thresholds;
  };
  CHECK(policy("max_f1").all.kind == ThresholdPolicy::Kind::kMaxF1);
  CHECK(policy("fixed:0.3").all.value == 0.3);
  CHECK(policy("{precision_at: 0.95}").all.value == 0.95);
  CHECK(policy("recall_at:0.8").all.kind == ThresholdPolicy::Kind::kRecallAt);
  CHECK(policy("recall_at:0.8").labels.empty());
  CHECK_THAT(config_error([&] { policy("precision_at:1.5"); }),
             Contains("t.yaml:2:15: eval.thresholds: precision_at 1.5 is out of range (allowed: (0, 1])"));
  CHECK_THAT(config_error([&] { policy("best"); }),
             Contains("use max_f1, precision_at:0.9, recall_at:0.9 or fixed:0.5"));
  // fixed:0 passed config check and train, then every command refused the model as damaged
  CHECK_THAT(config_error([&] { policy("fixed:0"); }),
             Contains("eval.thresholds: fixed 0 is out of range (allowed: (0, 1]; a threshold of 0 would flag every"));
  CHECK_THAT(config_error([&] { policy("{default: max_f1, spam: fixed:0}"); }), Contains("fixed 0 is out of range"));
  CHECK(policy("fixed:1").all.value == 1.0);
}

TEST_CASE("eval.calibrate needs data.valid", "[config]") {
  CHECK_THAT(config_error([] { load_config_text("eval:\n  calibrate: true\ndata:\n  valid: []\n", "t.yaml"); }),
             Contains("t.yaml:2:14: eval.calibrate fits the temperatures on data.valid, which is empty (set at "
                      "t.yaml:4:10): give data.valid or set eval.calibrate: false"));
  CHECK(load_config_text("eval:\n  calibrate: true\n", "t.yaml").config.eval.calibrate);
}

TEST_CASE("per-label threshold policies: a default and one policy per named label", "[config]") {
  const std::string yaml =
      "data:\n  labels: [hate, spam, self_harm]\neval:\n  thresholds: {default: max_f1, spam: "
      "precision_at:0.95, self_harm: {recall_at: 0.9}}\n";
  const ThresholdPolicies p = load_config_text(yaml, "t.yaml").config.eval.thresholds;
  REQUIRE(p.labels.size() == 2);
  CHECK(p.for_label("hate").kind == ThresholdPolicy::Kind::kMaxF1);
  CHECK(p.for_label("spam").kind == ThresholdPolicy::Kind::kPrecisionAt);
  CHECK(p.for_label("spam").value == 0.95);
  CHECK(p.for_label("self_harm").kind == ThresholdPolicy::Kind::kRecallAt);
  CHECK(p.for_label("self_harm").value == 0.9);
  CHECK(to_string(p) == "{default: max_f1, spam: precision_at:0.95, self_harm: recall_at:0.9}");
  // the resolved config round-trips through its YAML dump
  const ResolvedConfig r = load_config_text(yaml, "t.yaml");
  CHECK(load_config_text(r.to_yaml(), "dump.yaml").config.eval.thresholds == p);
  // a label that is not in data.labels, and a label named twice, are one line each
  CHECK_THAT(
      config_error([] {
        load_config_text("data:\n  labels: [hate]\neval:\n  thresholds: {default: max_f1, spma: fixed:0.5}\n",
                         "t.yaml");
      }),
      Contains("eval.thresholds names 'spma', which is not in data.labels (hate); use a label's name or default"));
  CHECK_THAT(config_error([] {
               load_config_text("data:\n  labels: [hate]\neval:\n  thresholds: {spam: fixed:0.5}\n", "t.yaml");
             }),
             Contains("names 'spam', which is not in data.labels (hate)"));
  CHECK_THAT(config_error([] { load_config_text("eval:\n  thresholds: {spam: fixed:0.5, spam: max_f1}\n", "t.yaml"); }),
             Contains("spam"));
  CHECK_THAT(config_error([] { load_config_text("eval:\n  thresholds: {spam: best}\n", "t.yaml"); }),
             Contains("eval.thresholds.spam: 'best' is not a threshold policy"));
}

TEST_CASE("unknown keys name file:line:col and the nearest valid key", "[config][errors]") {
  CHECK(config_error([] { load_config_text("train:\n  lrr: 0.1\n", "x.yaml"); }) ==
        "x.yaml:2:3: unknown key 'train.lrr' (did you mean 'train.lr'?); `modtrain config doc` lists every key");
  // the right key in the wrong section
  CHECK_THAT(config_error([] { load_config_text("train:\n  dropout: 0.1\n", "x.yaml"); }),
             Contains("x.yaml:2:3: unknown key 'train.dropout' (did you mean 'model.dropout'?)"));
  CHECK_THAT(config_error([] { load_config_text("trian:\n  lr: 0.1\n", "x.yaml"); }),
             Contains("x.yaml:1:1: unknown section 'trian' (did you mean 'train'?)"));
  CHECK_THAT(config_error([] { load_config_text("train:\n  zzzzzzzz: 1\n", "x.yaml"); }),
             !Contains("did you mean") && Contains("unknown key 'train.zzzzzzzz'"));
  CHECK_THAT(config_error([] { load_config("", {"train.lrr=0.1"}); }),
             StartsWith("--set train.lrr=0.1: unknown key 'train.lrr' (did you mean 'train.lr'?)"));
}

TEST_CASE("wrong types name file:line:col of the value", "[config][errors]") {
  auto err = [](const std::string& yaml) { return config_error([&] { load_config_text(yaml, "x.yaml"); }); };
  CHECK(err("train:\n  max_steps: many\n") == "x.yaml:2:14: train.max_steps: expected an integer, got 'many'");
  CHECK(err("train:\n  max_steps: 1.5\n") == "x.yaml:2:14: train.max_steps: expected an integer, got '1.5'");
  CHECK(err("train:\n  lr: fast\n") == "x.yaml:2:7: train.lr: expected a finite number, got 'fast'");
  CHECK(err("train:\n  lr: .nan\n") == "x.yaml:2:7: train.lr: expected a finite number, got '.nan'");
  CHECK(err("log:\n  all_ranks: maybe\n") == "x.yaml:2:14: log.all_ranks: expected true or false, got 'maybe'");
  CHECK(err("data:\n  labels: {a: 1}\n") ==
        "x.yaml:2:11: data.labels: expected a list of strings like [a, b], got a mapping");
  CHECK(err("data:\n  labels: [a, [b]]\n") == "x.yaml:2:15: data.labels item: expected a string, got a list");
  CHECK(err("run:\n  dir: [a]\n") == "x.yaml:2:8: run.dir: expected a string, got a list");
  CHECK(err("train:\n  schedule: linaer\n") ==
        "x.yaml:2:13: train.schedule: 'linaer' is not one of: constant, linear, cosine (did you mean 'linear'?)");
  CHECK(
      err("train: 5\n") ==
      "x.yaml:1:8: section 'train' must be a mapping of keys (like `train:` followed by indented `key: value` lines)");
  CHECK(err("- a\n- b\n") == "x.yaml:1:1: a config file must be a mapping of sections (run:, data:, train: ...)");
  // too large for the storage type: reported against the key's own range, not int32's
  CHECK(err("train:\n  micro_batch: 99999999999\n") ==
        "x.yaml:2:16: train.micro_batch = 99999999999 is out of range (allowed: [1, 1048576])");
  CHECK_THAT(err("run:\n  seed: -1\n"), StartsWith("x.yaml:2:9: run.seed = -1 is out of range (allowed: "));
}

TEST_CASE("out-of-range values name the allowed range", "[config][errors]") {
  auto err = [](const std::string& yaml) { return config_error([&] { load_config_text(yaml, "x.yaml"); }); };
  CHECK(err("train:\n  lr: -1\n") == "x.yaml:2:7: train.lr = -1.0 is out of range (allowed: (0.0, 10.0])");
  CHECK(err("model:\n  dropout: 1\n") == "x.yaml:2:12: model.dropout = 1.0 is out of range (allowed: [0.0, 1.0))");
  CHECK(err("train:\n  micro_batch: 0\n") ==
        "x.yaml:2:16: train.micro_batch = 0 is out of range (allowed: [1, 1048576])");
  CHECK(err("data:\n  labels: []\n") ==
        "x.yaml:2:11: data.labels is empty: a classifier needs its labels (e.g. [hate, spam]); for pretraining on "
        "unlabelled posts set train.objective: mlm");
  CHECK(err("run:\n  dir: \"\"\n") == "x.yaml:2:8: run.dir = '' is out of range (allowed: non-empty)");
  CHECK_THAT(config_error([] { load_config("", {"dist.bucket_mb=0"}); }),
             StartsWith("--set dist.bucket_mb=0: dist.bucket_mb = 0.0 is out of range (allowed: (0.0, 4096.0])"));
}

TEST_CASE("missing files, bad YAML, duplicates and extends cycles", "[config][errors]") {
  TempDir dir;
  std::string missing = (dir.path / "nope.yaml").string();
  CHECK_THAT(config_error([&] { load_config(missing); }), StartsWith("--config: config file not found: " + missing));
  std::string orphan = dir.write("orphan.yaml", "# comment\nextends: gone.yaml\n");
  CHECK_THAT(config_error([&] { load_config(orphan); }),
             StartsWith(orphan + ":2:10: config file not found: " + (dir.path / "gone.yaml").string()));
  std::string broken = dir.write("broken.yaml", "train:\n  lr: [0.1\n  max_steps: 3\n");
  CHECK_THAT(config_error([&] { load_config(broken); }), StartsWith(broken + ":3:12: YAML syntax error:"));
  std::string tabs = dir.write("tabs.yaml", "train:\n  lr: 0.1\n   max_steps: 3\n");
  CHECK_THAT(config_error([&] { load_config(tabs); }), Contains("YAML syntax error"));
  CHECK(config_error([] { load_config_text("train:\n  lr: 0.1\n  lr: 0.2\n", "x.yaml"); }) ==
        "x.yaml:3:3: duplicate key 'train.lr'; remove one of them");
  CHECK(config_error([] { load_config_text("train: {}\ntrain: {}\n", "x.yaml"); }) ==
        "x.yaml:2:1: duplicate key 'train'; remove one of them");
  std::string a = dir.write("a.yaml", "extends: b.yaml\n");
  dir.write("b.yaml", "extends: c.yaml\n");
  dir.write("c.yaml", "extends: a.yaml\n");
  std::string cycle = config_error([&] { load_config(a); });
  CHECK_THAT(cycle, StartsWith((dir.path / "c.yaml").string() + ":1:10: extends cycle: "));
  CHECK_THAT(cycle, Contains("a.yaml -> ") && Contains("b.yaml -> ") && Contains("remove one of the `extends:` lines"));
  std::string self = dir.write("self.yaml", "extends: self.yaml\n");
  CHECK_THAT(config_error([&] { load_config(self); }), Contains("extends cycle"));
  CHECK_THAT(config_error([&] { load_config(dir.write("e.yaml", "extends: [a.yaml]\n")); }),
             Contains("e.yaml:1:10: extends: expected a file name"));
  CHECK(load_config(dir.write("empty.yaml", "")).config.train.lr == Config{}.train.lr);
}

TEST_CASE("malformed override arguments", "[config][errors]") {
  CHECK_THAT(config_error([] { load_config("", {"train.lr"}); }),
             StartsWith("--set train.lr: expected section.key=value"));
  CHECK_THAT(config_error([] { load_config("", {"lr=0.1"}); }), StartsWith("--set lr=0.1: 'lr' is not section.key"));
  CHECK_THAT(config_error([] { load_config("", {"data.labels=[a,"}); }),
             StartsWith("--set data.labels=[a,: the value is not valid YAML"));
  CHECK_THAT(config_error([] { load_config("", {"trainn.lr=1"}); }),
             Contains("unknown section 'trainn' (did you mean 'train'?)"));
  CHECK(config_error([] { load_config("", {"train.lr="}); }) ==
        "--set train.lr=: train.lr: expected a finite number, got nothing (null)");
}

TEST_CASE("cross-field rules name where both values came from", "[config][errors]") {
  CHECK(config_error([] { load_config_text("model:\n  hidden: 100\n  heads: 3\n", "x.yaml"); }) ==
        "x.yaml:2:11: model.hidden = 100 is not divisible by model.heads = 3 (set at x.yaml:3:10); "
        "pick heads that divide hidden, e.g. hidden 768 with 12 heads");
  CHECK_THAT(config_error([] { load_config_text("data:\n  max_len: 1024\n", "x.yaml"); }),
             StartsWith("x.yaml:2:12: data.max_len = 1024 exceeds model.max_positions = 512 (set at default)"));
  CHECK_THAT(config_error([] { load_config("", {"data.labels=[a,b,a]"}); }), Contains("data.labels lists 'a' twice"));
  CHECK_THAT(config_error([] {
               load_config("", {"data.labels=[a]", "data.problem=multi_class"});
             }),
             StartsWith("--set data.problem=multi_class: data.problem = multi_class needs at least 2 labels"));
  CHECK_THAT(config_error([] {
               load_config("", {"train.max_steps=10", "train.warmup_steps=20"});
             }),
             Contains("train.warmup_steps = 20 is more than train.max_steps = 10"));
}

TEST_CASE("to_yaml loads back to the same config and hash", "[config]") {
  ResolvedConfig a = load_config(MODTRAIN_SOURCE_DIR "/configs/tiny.yaml",
                                 {"data.labels=[hate, \"spam mail\", \"yes\", \"a: b\", '#tag']", "train.lr=3e-4",
                                  "eval.thresholds=fixed:0.25", "run.dir=out dir/x", "run.seed=18446744073709551615"});
  ResolvedConfig b = load_config_text(a.to_yaml(), "dump.yaml");
  CHECK(b.to_yaml() == a.to_yaml());
  CHECK(b.hash() == a.hash());
  CHECK(b.config.data.labels == a.config.data.labels);
  CHECK(b.config.run.seed == 18446744073709551615ULL);
  CHECK(b.config.train.lr == 3e-4);
  // any change changes the hash
  CHECK(load_config_text(a.to_yaml(), "dump.yaml", {"train.lr=3.0000001e-4"}).hash() != a.hash());
}

TEST_CASE("the schema documents every key", "[config]") {
  std::string doc = config_markdown();
  for (const auto& field : config_fields()) {
    INFO(field.dotted());
    CHECK(!field.doc.empty());
    CHECK(!field.type.empty());
    CHECK_THAT(doc, Contains("`" + field.dotted() + "`"));
  }
  CHECK(config_sections() == std::vector<std::string>{"run", "data", "tokenizer", "model", "train", "mlm", "dist",
                                                      "checkpoint", "eval", "log", "serve"});
}

TEST_CASE("train.tokens_per_batch: at least data.max_len, and not with group_by_length", "[config][errors]") {
  CHECK_THAT(config_error([] { load_config_text("data:\n  max_len: 64\ntrain:\n  tokens_per_batch: 40\n", "t.yaml"); }),
             Contains("t.yaml:4:21: train.tokens_per_batch = 40 is less than data.max_len = 64 (set at t.yaml:2:12)"));
  CHECK_THAT(config_error([] {
               load_config_text("data:\n  group_by_length: true\ntrain:\n  tokens_per_batch: 512\n", "t.yaml");
             }),
             Contains("data.group_by_length and train.tokens_per_batch (set at t.yaml:4:21) are alternatives"));
  CHECK(load_config_text("train:\n  tokens_per_batch: 512\n", "t.yaml").config.train.tokens_per_batch == 512);
}

TEST_CASE("train.objective mlm: labels may be empty, best_metric auto is the masked-token loss, mlm.* checked",
          "[config][errors][mlm]") {
  const Config mlm = load_config("", {"train.objective=mlm", "data.labels=[]"}).config;
  CHECK(mlm.data.labels.empty());
  CHECK(effective_best_metric(mlm) == BestMetric::kLoss);
  CHECK(effective_best_metric(load_config("", {}).config) == BestMetric::kMacroPrAuc);
  CHECK(mlm.mlm.probability == 0.15);
  CHECK_THAT(config_error([] { load_config("", {"data.labels=[]"}); }),
             StartsWith("--set data.labels=[]: data.labels is empty: a classifier needs its labels") &&
                 Contains("set train.objective: mlm"));
  CHECK_THAT(config_error([] {
               load_config_text("train:\n  objective: mlm\ncheckpoint:\n  best_metric: macro_f1\n", "m.yaml");
             }),
             StartsWith("m.yaml:4:16: checkpoint.best_metric = macro_f1 is a classification metric, but "
                        "train.objective is mlm (set at m.yaml:2:14)"));
  CHECK_THAT(config_error([] {
               load_config("", {"train.objective=mlm", "mlm.random_fraction=0.3"});
             }),
             Contains("mlm.mask_fraction + mlm.random_fraction = 1.1") && Contains("exceeds 1"));
  CHECK_THAT(config_error([] {
               load_config("", {"train.objective=mlm", "train.pos_weight=auto"});
             }),
             Contains("train.pos_weight weighs classification labels"));
  CHECK_THAT(config_error([] { load_config("", {"mlm.probability=0"}); }), Contains("mlm.probability"));
}
