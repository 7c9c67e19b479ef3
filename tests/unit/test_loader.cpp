// Loader: dynamic padding to a multiple of 8, masks and labels, prefetching in order, exact
// resume from a saved state, and synthetic data determinism.
#include "catch_torch.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "modtrain/data/loader.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/synth.h"
#include "test_util.h"

using namespace modtrain;

namespace {
struct Fixture {
  test::TempDir dir;
  Config config;
  std::shared_ptr<PreparedDataset> data;
  Fixture() {
    SynthOptions synth;
    synth.out_dir = (dir.path / "raw").string();
    synth.train = 300;
    synth.valid = 20;
    synth.train_shards = 3;
    synthesize_tweets(synth);
    config.data.train = {synth.out_dir + "/train-*.jsonl"};
    config.data.valid = {synth.out_dir + "/valid-*.jsonl"};
    config.data.labels = synth_labels();
    config.data.max_len = 32;
    config.data.prepared_dir = (dir.path / "prep").string();
    config.data.on_bad_record = BadRecordPolicy::kFail;
    config.tokenizer.vocab = MODTRAIN_TEST_DATA "/tokenizer/vocab-uncased.txt";
    prepare_data(config, {2, false});
    data = std::make_shared<PreparedDataset>(
        PreparedDataset::open(config.data.prepared_dir, "train", DataExpectations::from_config(config)));
  }
};
}  // namespace

TEST_CASE("collate: padding, masks and labels", "[loader]") {
  Fixture f;
  REQUIRE(f.data->size() == 300);
  DistributedSampler sampler(f.data->size(), {1, 0, 1, 16, true, false, 64});
  LoaderOptions options;
  options.pad_id = 0;
  Batch b = collate(*f.data, sampler.batch(0, 0), options);
  const int64_t t = b.input_ids.size(1);
  CHECK(b.input_ids.sizes() == torch::IntArrayRef{16, t});
  CHECK(t % 8 == 0);
  CHECK(t <= 32);
  CHECK(b.labels.sizes() == torch::IntArrayRef{16, 7});
  CHECK(b.label_mask.sizes() == torch::IntArrayRef{16, 7});
  int64_t longest = 0, tokens = 0;
  for (int64_t i = 0; i < 16; ++i) {
    auto ref = f.data->locate(b.indices[static_cast<size_t>(i)]);
    const auto& shard = f.data->shard(ref.shard);
    const int64_t len = shard.length(ref.record);
    longest = std::max(longest, len);
    tokens += len;
    auto ids = shard.ids(ref.record);
    for (int64_t p = 0; p < t; ++p) {
      CHECK(b.attention_mask[i][p].item<int64_t>() == (p < len ? 1 : 0));
      CHECK(b.input_ids[i][p].item<int64_t>() == (p < len ? ids[static_cast<size_t>(p)] : 0));
    }
    for (int64_t k = 0; k < 7; ++k) {
      uint8_t v = shard.labels(ref.record)[k];
      CHECK(b.labels[i][k].item<float>() == (v == kLabelPositive ? 1.0f : 0.0f));
      CHECK(b.label_mask[i][k].item<float>() == (v == kLabelUnannotated ? 0.0f : 1.0f));
    }
  }
  CHECK(t == (longest + 7) / 8 * 8);
  CHECK(b.tokens == tokens);
  CHECK_FALSE(b.padding.any().item<bool>());
}

TEST_CASE("the prefetching loader yields the sampler's batches in order, across epochs", "[loader]") {
  Fixture f;
  auto sampler = std::make_shared<DistributedSampler>(f.data->size(), SamplerOptions{5, 1, 2, 32, true, false, 64});
  Loader loader(f.data, sampler, {});
  SamplerState expected;
  for (int i = 0; i < 12; ++i) {  // 5 batches per epoch: crosses two epoch boundaries
    CHECK(loader.state() == expected);
    Batch b = loader.next();
    CHECK(b.position == expected);
    CHECK(b.indices == sampler->batch(expected.epoch, expected.batch).indices);
    expected = sampler->next(expected);
  }
}

TEST_CASE("loader resume: restore(state) continues exactly", "[loader]") {
  Fixture f;
  auto sampler = std::make_shared<DistributedSampler>(f.data->size(), SamplerOptions{5, 0, 1, 32, true, false, 64});
  std::vector<std::vector<uint64_t>> straight;
  {
    Loader loader(f.data, sampler, {});
    for (int i = 0; i < 15; ++i) straight.push_back(loader.next().indices);
  }
  Loader first(f.data, sampler, {});
  for (int i = 0; i < 6; ++i) first.next();
  SamplerState saved = first.state();
  Loader resumed(f.data, sampler, {}, saved);
  for (int i = 6; i < 15; ++i) CHECK(resumed.next().indices == straight[static_cast<size_t>(i)]);
  first.restore(saved);
  CHECK(first.next().indices == straight[6]);
}

TEST_CASE("synthetic tweets are deterministic and look like tweets", "[synth]") {
  SynthOptions o;
  CHECK(synth_record(1, "train", 5, o) == synth_record(1, "train", 5, o));
  CHECK(synth_record(1, "train", 5, o) != synth_record(2, "train", 5, o));
  CHECK(synth_record(1, "train", 5, o) != synth_record(1, "valid", 5, o));
  test::TempDir a, b;
  o.train = 2000;
  o.valid = 10;
  o.out_dir = a.path.string();
  SynthReport ra = synthesize_tweets(o);
  o.out_dir = b.path.string();
  o.train_shards = 3;  // a different sharding writes the same records
  synthesize_tweets(o);
  std::string joined_a, joined_b;
  for (const auto& entry : {"train-00000.jsonl", "train-00001.jsonl", "train-00002.jsonl", "train-00003.jsonl"}) {
    if (std::filesystem::exists(a.path / entry)) joined_a += test::read(a.path / entry);
    if (std::filesystem::exists(b.path / entry)) joined_b += test::read(b.path / entry);
  }
  CHECK(joined_a == joined_b);
  CHECK(joined_a.find("@") != std::string::npos);
  CHECK(joined_a.find("http") != std::string::npos);
  CHECK(joined_a.find("#") != std::string::npos);
  CHECK(joined_a.find("null") != std::string::npos);  // some labels not annotated
  // imbalance: every label present, none common
  for (size_t l = 0; l < ra.positives.size(); ++l) {
    double rate = static_cast<double>(ra.positives[l]) / static_cast<double>(ra.records);
    CHECK(rate > 0.01);
    CHECK(rate < 0.25);
  }
}

TEST_CASE("data synth --languages: posts in six scripts, the same label model, English alone unchanged", "[synth]") {
  SynthOptions en, many;
  many.languages = {"en", "es", "ar", "hi", "ru", "ja"};
  std::map<std::string, int> seen;
  // What marks each language's script: a byte sequence only its phrases have.
  const std::map<std::string, std::string> script = {
      {"es", "\xC3"}, {"ar", "\xD8"}, {"hi", "\xE0\xA4"}, {"ru", "\xD0"}, {"ja", "\xE3\x81"}};
  size_t positives_en = 0, positives_many = 0;
  for (uint64_t i = 0; i < 600; ++i) {
    const auto one = nlohmann::json::parse(synth_record(9, "train", i, en));
    const auto mixed = nlohmann::json::parse(synth_record(9, "train", i, many));
    CHECK_FALSE(one.contains("lang"));  // the English dataset is the one it always was
    const std::string lang = mixed.at("lang");
    ++seen[lang];
    if (lang != "en") {
      INFO(lang << ": " << mixed.at("text").get<std::string>());
      CHECK(mixed.at("text").get<std::string>().find(script.at(lang)) != std::string::npos);
    } else {
      CHECK(mixed.at("text") == one.at("text"));
    }
    if (lang == "en") CHECK(mixed.at("labels") == one.at("labels"));
    positives_en += one.at("labels").is_array() ? one.at("labels").size() : 0;
    positives_many += mixed.at("labels").is_array() ? mixed.at("labels").size() : 0;
  }
  CHECK(seen.size() == 6);
  for (const auto& [lang, n] : seen) CHECK(n > 60);  // about 100 each
  // The same label model in every language (label noise is drawn after the text, so counts differ a little).
  CHECK(std::abs(static_cast<double>(positives_many) - static_cast<double>(positives_en)) < 0.2 * positives_en);
  SynthOptions bad = many;
  bad.languages = {"en", "xx"};
  test::TempDir dir;
  bad.out_dir = dir.path.string();
  CHECK_THROWS_WITH(synthesize_tweets(bad), Catch::Contains("--languages has 'xx'; known: en, es, ar, hi, ru, ja"));
}
