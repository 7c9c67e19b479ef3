// Moderation-grade labels (docs/data-format.md): soft labels, identity subgroups and slice fields from the raw
// files through prepare into version-2 shards (and version-1 shards still read), the soft-label
// loss, and the bias and slice tables of an evaluation.
#include <cmath>
#include <nlohmann/json.hpp>

#include "catch_torch.h"
#include "modtrain/config/loader.h"
#include "modtrain/data/dataset.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/shard.h"
#include "modtrain/data/synth.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/metrics.h"
#include "test_util.h"
#include "tokenizer_cases.h"

using namespace modtrain;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

LabelSpec soft_spec() {
  LabelSpec s;
  s.names = {"hate", "spam", "threat"};
  s.soft = true;
  s.subgroups = {"quendari", "ostrani"};
  s.slice_by = {"lang"};
  return s;
}

struct Decoded {
  bool ok = false;
  std::string reason;
  RawRecord record;
};
std::vector<Decoded> decode_all(const std::string& path, const LabelSpec& spec,
                                std::vector<std::string>* warnings = nullptr) {
  RawShardReader reader(path, spec);
  if (warnings) *warnings = reader.warnings();
  std::vector<Decoded> out;
  RawUnit unit;
  while (reader.next(unit)) {
    if (unit.blank) continue;
    Decoded d;
    d.ok = reader.decode(unit, d.record, d.reason);
    out.push_back(d);
  }
  return out;
}

std::vector<uint8_t> q(std::initializer_list<double> shares) {  // shares -> stored bytes (255: not annotated)
  std::vector<uint8_t> out;
  for (double v : shares) out.push_back(v < 0 ? kLabelUnannotated : static_cast<uint8_t>(std::lround(v * 240)));
  return out;
}

}  // namespace

TEST_CASE("soft labels in JSONL: shares in [0, 1] kept to 1/240, subgroups and slice fields read", "[data][soft]") {
  test::TempDir dir;
  const std::string path = dir.write(
      "a.jsonl", R"({"text": "a", "labels": {"hate": 0.6, "spam": true, "threat": null}, "quendari": 1, "lang": "en"})"
                 "\n"
                 R"({"text": "b", "labels": {"hate": 0.3333333333333333, "spam": 0}, "ostrani": 0.5, "lang": 7})"
                 "\n"
                 R"({"text": "c", "labels": ["hate"], "quendari": false})"
                 "\n"
                 R"({"text": "d", "labels": {"hate": 1.2}})"
                 "\n"
                 R"({"text": "e", "labels": {"hate": "0.5"}})"
                 "\n"
                 R"({"text": "f", "labels": {"hate": 1}, "quendari": 2})"
                 "\n"
                 R"({"text": "g", "labels": {"hate": 1}, "lang": ["en"]})"
                 "\n");
  const auto rows = decode_all(path, soft_spec());
  REQUIRE(rows.size() == 7);
  REQUIRE(rows[0].ok);
  CHECK(rows[0].record.labels == q({0.6, 1, -1}));
  CHECK(rows[0].record.subgroups == q({1, -1}));  // a field absent from the record: no value
  CHECK(rows[0].record.slices[0] == "en");
  CHECK(rows[0].record.slice_present[0] == 1);
  REQUIRE(rows[1].ok);
  CHECK(rows[1].record.labels == q({1.0 / 3, 0, -1}));  // 80 / 240 exactly
  CHECK(rows[1].record.labels[0] == 80);
  CHECK(rows[1].record.subgroups == q({-1, 0.5}));
  CHECK(rows[1].record.slices[0] == "7");  // integers are values too
  REQUIRE(rows[2].ok);
  CHECK(rows[2].record.labels == q({1, 0, 0}));  // the list form: named positive, others negative
  CHECK(rows[2].record.subgroups == q({0, -1}));
  CHECK(rows[2].record.slice_present[0] == 0);
  CHECK(!rows[3].ok);
  CHECK_THAT(rows[3].reason, Contains("label 'hate' has value 1.2") && Contains("lie in [0, 1]"));
  CHECK(!rows[4].ok);
  CHECK_THAT(rows[4].reason, Contains("label 'hate' has value \"0.5\""));
  CHECK(!rows[5].ok);
  CHECK_THAT(rows[5].reason, Contains("subgroup 'quendari' has value 2") && Contains("[0, 1]"));
  CHECK(!rows[6].ok);
  CHECK_THAT(rows[6].reason, Contains("slice field 'lang'") && Contains("a string or an integer"));

  // Without data.soft_labels a share is refused with the key that allows it.
  LabelSpec strict = soft_spec();
  strict.soft = false;
  const auto hard = decode_all(path, strict);
  CHECK(!hard[0].ok);
  CHECK_THAT(hard[0].reason, Contains("label 'hate' has value 0.6") && Contains("data.soft_labels: true"));
  REQUIRE(hard[2].ok);
  CHECK(hard[2].record.labels == std::vector<uint8_t>{kLabelPositive, kLabelNegative, kLabelNegative});
}

TEST_CASE("soft labels in CSV, and a subgroup or slice column missing from a file is one warning for the file",
          "[data][soft]") {
  test::TempDir dir;
  const std::string path = dir.write("a.csv",
                                     "text,hate,spam,quendari\n"
                                     "x,0.25,1,0.5\n"
                                     "y,,true,\n"
                                     "z,-0.1,0,1\n"
                                     "w,0.5,0,maybe\n");
  std::vector<std::string> warnings;
  const auto rows = decode_all(path, soft_spec(), &warnings);
  REQUIRE(warnings.size() == 3);  // no threat, ostrani or lang column
  CHECK_THAT(warnings[0], Contains("a.csv:1: no column for subgroup ostrani") && Contains("not annotated"));
  CHECK_THAT(warnings[1], Contains("a.csv:1: no column for slice field lang"));
  CHECK_THAT(warnings[2], Contains("no column for label(s) threat"));
  REQUIRE(rows.size() == 4);
  REQUIRE(rows[0].ok);
  CHECK(rows[0].record.labels == q({0.25, 1, -1}));
  CHECK(rows[0].record.subgroups == q({0.5, -1}));
  CHECK(rows[0].record.slice_present[0] == 0);
  REQUIRE(rows[1].ok);
  CHECK(rows[1].record.labels == q({-1, 1, -1}));
  CHECK(!rows[2].ok);
  CHECK_THAT(rows[2].reason, Contains("label 'hate' has value '-0.1'"));
  CHECK(!rows[3].ok);
  CHECK_THAT(rows[3].reason, Contains("subgroup 'quendari' has value 'maybe'"));
}

TEST_CASE("prepared shards v2: soft labels, subgroups and slice values round-trip, missing values are counted",
          "[data][soft][prepare]") {
  test::TempDir dir;
  dir.write("raw/train.jsonl",
            R"({"text": "you are vermin", "labels": {"hate": 0.8, "spam": 0}, "quendari": 1, "lang": "en"})"
            "\n"
            R"({"text": "buy now", "labels": {"hate": 0, "spam": 0.6}, "lang": "es"})"
            "\n"
            R"({"text": "hello there", "labels": {"hate": 0.1, "spam": null}, "quendari": 0})"
            "\n"
            R"({"text": "bad one", "labels": {"hate": 1.5}})"
            "\n");
  ResolvedConfig rc = load_config(
      "", {"data.train=[" + dir.file("raw/train.jsonl") + "]", "data.valid=[]", "data.labels=[hate,spam]",
           "data.soft_labels=true", "data.subgroups=[quendari,ostrani]", "eval.slice_by=[lang]",
           "data.on_bad_record=skip", "data.max_len=16",
           "tokenizer.vocab=" + test::kTokenizerData + "vocab-uncased.txt", "data.prepared_dir=" + dir.file("prep")});
  const PrepareReport report = prepare_data(rc.config, {1, false});
  const std::string summary = report.summary();
  CHECK_THAT(summary, Contains("4 input records = 3 kept + 1 rejected"));
  CHECK_THAT(summary, Contains("subgroup quendari has no value in 1 of 3 kept records"));
  CHECK_THAT(summary, Contains("subgroup ostrani has no value in 3 of 3 kept records"));
  CHECK_THAT(summary, Contains("slice field lang is absent in 1 of 3 kept records"));
  const nlohmann::json rejected = nlohmann::json::parse(test::read(dir.file("prep/rejected.jsonl")));
  CHECK_THAT(rejected.at("reason").get<std::string>(), Contains("label 'hate' has value 1.5"));
  const nlohmann::json manifest = nlohmann::json::parse(test::read(dir.file("prep/manifest.json")));
  CHECK(manifest.at("soft_labels") == true);
  CHECK(manifest.at("label_scale") == 240);
  CHECK(manifest.at("subgroups") == nlohmann::json({"quendari", "ostrani"}));

  const PreparedDataset data =
      PreparedDataset::open(rc.config.data.prepared_dir, "train", DataExpectations::from_config(rc.config));
  REQUIRE(data.size() == 3);
  const PreparedShard& shard = data.shard(0);
  CHECK(shard.label_scale() == 240);
  CHECK(shard.label_value(0, 0) == Approx(0.8).margin(1.0 / 480));
  CHECK(shard.label_value(1, 1) == 0.6f);  // 144 / 240
  CHECK(shard.label_value(2, 1) < 0);      // not annotated
  CHECK(shard.subgroup(0, 0) == 240);
  CHECK(shard.subgroup(1, 0) == kLabelUnannotated);
  CHECK(shard.subgroup(2, 0) == 0);
  REQUIRE(shard.slice(0, 0));
  CHECK(*shard.slice(0, 0) == "en");
  CHECK(*shard.slice(1, 0) == "es");
  CHECK(shard.slice(2, 0) == nullptr);

  // batches carry the shares as targets, masked where not annotated
  SampledBatch sampled;
  sampled.indices = {0, 1, 2};
  sampled.padding = {0, 0, 0};
  const Batch batch = collate(data, sampled, LoaderOptions{});
  CHECK(batch.labels[0][0].item<float>() == Approx(192.0 / 240));
  CHECK(batch.labels[1][1].item<float>() == Approx(0.6));
  CHECK(batch.label_mask[2][1].item<float>() == 0.0f);

  // the config changed: stale with the reason; the shard refuses another schema
  Config hard = rc.config;
  hard.data.soft_labels = false;
  CHECK_THAT(prepared_data_stale(hard), Contains("data.soft_labels is false"));
  Config other = rc.config;
  other.data.subgroups = {"quendari"};
  CHECK_THAT(prepared_data_stale(other), Contains("data.subgroups is [quendari]"));
  CHECK_THROWS_WITH(PreparedDataset::open(rc.config.data.prepared_dir, "train", DataExpectations::from_config(other)),
                    Contains("prepared with subgroups [quendari, ostrani]"));
  ShardSchema schema = data.manifest().schema();
  schema.label_scale = 1;
  CHECK_THROWS_WITH(PreparedShard(data.shard(0).path(), schema), Contains("prepared with soft labels"));
}

TEST_CASE("a version 1 shard written before soft labels still loads", "[data][soft][shard]") {
  // tests/reference/make_v1_shard.py writes it from the documented layout, not with modtrain
  ShardSchema schema;
  schema.token_bytes = 2;
  schema.num_labels = 2;
  schema.max_len = 8;
  schema.vocab_fingerprint = 0x0123456789abcdefULL;
  schema.labels_fingerprint = labels_fingerprint({"hate", "spam"}, "multi_label");
  schema.vocab_size = 100;
  const std::string path = std::string(MODTRAIN_TEST_DATA) + "/shards/v1-hate-spam.bin";
  const PreparedShard shard(path, schema);
  REQUIRE(shard.size() == 3);
  CHECK(shard.ids(1) == std::vector<int32_t>{2, 6, 7, 3});
  CHECK(shard.source_line(2) == 4);
  CHECK(shard.label_scale() == 1);
  CHECK(shard.label_value(0, 0) == 1.0f);
  CHECK(shard.label_value(0, 1) == 0.0f);
  CHECK(shard.label_value(1, 1) < 0);
  CHECK(shard.num_subgroups() == 0);
  CHECK(shard.num_slices() == 0);
  schema.label_scale = kSoftLabelScale;
  CHECK_THROWS_WITH(PreparedShard(path, schema), Contains("prepared with 0/1 labels, data.soft_labels is true"));
  schema.label_scale = 1;
  schema.subgroups = {"quendari"};
  CHECK_THROWS_WITH(PreparedShard(path, schema), Contains("other subgroups than data.subgroups"));
}

TEST_CASE("binary cross-entropy with soft targets equals the closed form", "[train][loss][soft]") {
  const torch::Tensor logits = torch::tensor({{2.0, -1.0, 0.5}, {-3.0, 0.25, 4.0}});
  const torch::Tensor targets = torch::tensor({{0.6, 0.0, 1.0}, {1.0 / 3, 0.5, 0.9}});
  torch::Tensor mask = torch::ones({2, 3});
  mask[0][1] = 0;
  LossOptions o;
  auto [sum, count] = classification_loss_sum(logits, targets, mask, o);
  double expected = 0;
  for (int i = 0; i < 2; ++i)
    for (int l = 0; l < 3; ++l) {
      if (mask[i][l].item<float>() == 0) continue;
      const double z = logits[i][l].item<double>(), y = targets[i][l].item<double>();
      const double p = 1 / (1 + std::exp(-z));
      expected += -(y * std::log(p) + (1 - y) * std::log(1 - p));
    }
  CHECK(count == 5);
  CHECK(sum == Approx(expected).epsilon(1e-6));
  // the loss is smallest where the prediction equals the share
  const torch::Tensor at_share = torch::logit(torch::tensor({{0.6}}));
  const torch::Tensor off = torch::logit(torch::tensor({{0.9}}));
  const torch::Tensor y = torch::tensor({{0.6}}), m = torch::ones({1, 1});
  CHECK(classification_loss_sum(at_share, y, m, o).first < classification_loss_sum(off, y, m, o).first);
}

TEST_CASE("evaluation groups: bias per label equals bias_metrics on the label's records, slices partition them",
          "[metrics][bias][slices]") {
  // 60 records, 2 labels, 2 subgroups, a slice field with 3 values; label 1 has unannotated records
  const size_t N = 60, L = 2;
  std::vector<float> probs, targets, mask;
  RecordGroups g;
  g.subgroups = {"a", "b"};
  g.slice_by = {"lang"};
  g.slice_values.resize(1);
  g.min_subgroup_records = 5;
  g.min_subgroup_class = 1;
  SplitMix64 rng(7);
  for (size_t i = 0; i < N; ++i) {
    const bool a = i % 3 == 0, b = i % 7 == 0;
    for (size_t l = 0; l < L; ++l) {
      const bool y = rng.below(3) == 0;
      targets.push_back(y ? 1.0f : 0.0f);
      probs.push_back(
          static_cast<float>((y ? 0.3 : 0.0) + 0.6 * static_cast<double>(rng.below(1000)) / 1000 + (a ? 0.1 : 0.0)));
      mask.push_back(l == 1 && i % 5 == 0 ? 0.0f : 1.0f);
    }
    g.mentions.push_back(a);
    g.mentions.push_back(b);
    g.slice_values[0].push_back(i % 4 == 0 ? "(none)" : (i % 2 ? "en" : "es"));
  }
  const std::vector<double> thresholds = {0.5, 0.5};
  const EvalReport r = evaluate_scores({"x", "y"}, Problem::kMultiLabel, probs, targets, mask, thresholds, 0.0, &g);
  REQUIRE(r.bias.size() == 2);
  for (size_t l = 0; l < L; ++l) {
    LabelScores s;
    std::vector<std::vector<uint8_t>> member(2);
    for (size_t i = 0; i < N; ++i) {
      if (mask[i * L + l] == 0) continue;
      s.scores.push_back(probs[i * L + l]);
      s.truth.push_back(targets[i * L + l] > 0.5f);
      member[0].push_back(g.mentions[i * 2]);
      member[1].push_back(g.mentions[i * 2 + 1]);
    }
    const BiasReport direct = bias_metrics(s, g.subgroups, member, 5);
    CHECK(r.bias[l].bias_score == Approx(direct.bias_score));
    REQUIRE(r.bias[l].subgroups.size() == 2);
    CHECK(r.bias[l].subgroups[1].size == direct.subgroups[1].size);
    CHECK(r.bias[l].subgroups[0].bpsn_auc == Approx(direct.subgroups[0].bpsn_auc));
  }
  CHECK(r.bias[1].subgroups[0].size == 16);  // 20 mention a, 4 of them (i % 15 == 0) not annotated for y
  REQUIRE(r.slices.size() == 1);
  uint64_t total = 0;
  for (const SliceRow& row : r.slices[0].rows) total += row.records;
  CHECK(total == N);
  CHECK(r.slices[0].rows.front().records >= r.slices[0].rows.back().records);
  const nlohmann::json j = nlohmann::json::parse(r.to_json());
  CHECK(j.at("bias").at("labels").at("x").at("subgroups").at("a").at("records") == 20);
  CHECK(j.at("slices").at("lang").size() == 3);
  CHECK_THAT(r.to_table(), Contains("bias x: score") && Contains("slice lang"));
  // subgroups with too few positives or negatives of a label are reported as such, not averaged
  RecordGroups strict = g;
  strict.min_subgroup_class = 8;
  const EvalReport few =
      evaluate_scores({"x", "y"}, Problem::kMultiLabel, probs, targets, mask, thresholds, 0.0, &strict);
  for (const BiasReport& b : few.bias) {
    REQUIRE(!b.subgroups[1].reported);  // 9 records mention b
    CHECK_THAT(b.subgroups[1].why, Contains("negatives (fewer than 8 of one)"));
  }
}

TEST_CASE("synthetic posts: identity mentions (mostly benign) and annotator shares, opt-in", "[data][synth][soft]") {
  SynthOptions o;
  const std::string plain = synth_record(o.seed, "train", 5, o);
  CHECK(plain.find("quendari") == std::string::npos);
  o.identities = true;
  o.annotators = 5;
  size_t mentions = 0, hateful = 0, soft = 0;
  for (uint64_t i = 0; i < 2000; ++i) {
    const nlohmann::json j = nlohmann::json::parse(synth_record(o.seed, "train", i, o));
    bool any = false;
    for (const auto& g : synth_subgroups()) any = any || j.at(g) == 1;
    mentions += any;
    const nlohmann::json& hate = j.at("labels").at("hate");
    hateful += any && hate.is_number() && hate.get<double>() >= 0.5;
    for (const auto& [name, v] : j.at("labels").items()) {
      if (v.is_null()) continue;
      const double share = v.get<double>();
      CHECK(share * 5 == Approx(std::round(share * 5)));  // a share of 5 annotators
      soft += share > 0 && share < 1;
    }
  }
  INFO(mentions << " posts mention a group, " << hateful << " of them hateful; " << soft << " soft labels");
  CHECK(mentions > 300);
  CHECK(hateful < mentions / 2);  // most mentions are benign
  CHECK(soft > 200);
}
