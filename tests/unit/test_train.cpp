// Training: loss masking and pos_weight, schedules, accumulation equivalence (2 x B/2 == 1 x B),
// bitwise determinism on CPU, and a short run on synthetic tweets whose loss falls and whose
// validation macro ROC-AUC clears a bar set from the generator.
#include "catch_torch.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "modtrain/config/loader.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/synth.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/vocab_trainer.h"
#include "modtrain/dist/bucketed_reducer.h"
#include "modtrain/infer/predictor.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/train/distributed.h"
#include "modtrain/train/evaluator.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/schedule.h"
#include "modtrain/train/trainer.h"
#include "synth_fixture.h"
#include "test_util.h"

using namespace modtrain;
namespace fs = std::filesystem;

TEST_CASE("masked BCE: entries not annotated contribute nothing, pos_weight scales positives", "[train][loss]") {
  torch::Tensor logits = torch::tensor({{2.0f, -1.0f}, {0.5f, 0.3f}}).requires_grad_();
  torch::Tensor labels = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  torch::Tensor mask = torch::tensor({{1.0f, 1.0f}, {1.0f, 0.0f}});
  LossOptions o;
  torch::Tensor loss = classification_loss(logits, labels, mask, o);
  auto bce = [](double x, double y, double w) {
    return -(w * y * std::log(1 / (1 + std::exp(-x))) + (1 - y) * std::log(1 - 1 / (1 + std::exp(-x))));
  };
  double expected = (bce(2, 1, 1) + bce(-1, 0, 1) + bce(0.5, 0, 1)) / 4;
  CHECK(loss.item<double>() == Approx(expected).epsilon(1e-6));
  loss.backward();
  CHECK(logits.grad()[1][1].item<float>() == 0.0f);  // the masked entry gets no gradient
  // flipping the masked label changes nothing
  CHECK(classification_loss(logits, torch::tensor({{1.0f, 0.0f}, {0.0f, 0.0f}}), mask, o).item<double>() ==
        Approx(expected));
  o.pos_weight = torch::tensor({3.0f, 1.0f});
  CHECK(classification_loss(logits, labels, mask, o).item<double>() ==
        Approx((bce(2, 1, 3) + bce(-1, 0, 1) + bce(0.5, 0, 1)) / 4).epsilon(1e-6));
  auto [sum, count] = classification_loss_sum(logits, labels, mask, LossOptions{});
  CHECK(count == 3);
  CHECK(sum / count == Approx(expected * 4 / 3).epsilon(1e-6));
  CHECK(auto_pos_weight({10, 0, 50}, {100, 100, 60}, 5.0) == std::vector<double>{5.0, 1.0, 0.2});
}

TEST_CASE("multi_class cross-entropy with label smoothing", "[train][loss]") {
  torch::Tensor logits = torch::tensor({{1.0f, 2.0f, 0.5f}});
  torch::Tensor onehot = torch::tensor({{0.0f, 1.0f, 0.0f}});
  LossOptions o;
  o.problem = Problem::kMultiClass;
  torch::Tensor logp = torch::log_softmax(logits, 1);
  CHECK(classification_loss(logits, onehot, torch::ones({1, 3}), o).item<double>() ==
        Approx(-logp[0][1].item<double>()));
  o.label_smoothing = 0.1;
  double smoothed = -0.9 * logp[0][1].item<double>() - 0.1 * logp.mean().item<double>();
  CHECK(classification_loss(logits, onehot, torch::ones({1, 3}), o).item<double>() == Approx(smoothed));
}

TEST_CASE("learning-rate schedules", "[train][schedule]") {
  TrainConfig t;
  t.lr = 1e-3;
  t.warmup_steps = 10;
  t.max_steps = 300;  // not read: the schedule spans the total it is given
  t.schedule = Schedule::kLinear;
  const int64_t total = 110;
  CHECK(lr_at(t, 0, total) == 0.0);
  CHECK(lr_at(t, 5, total) == Approx(5e-4));
  CHECK(lr_at(t, 10, total) == Approx(1e-3));
  CHECK(lr_at(t, 60, total) == Approx(5e-4));
  CHECK(lr_at(t, 109, total) == Approx(1e-5));
  CHECK(lr_at(t, 110, total) == Approx(0.0).margin(1e-15));
  t.schedule = Schedule::kCosine;
  CHECK(lr_at(t, 60, total) == Approx(5e-4));
  CHECK(lr_at(t, 35, total) == Approx(1e-3 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  t.schedule = Schedule::kConstant;
  CHECK(lr_at(t, 100, total) == Approx(1e-3));
  t.warmup_steps = 0;
  CHECK(lr_at(t, 0, total) == Approx(1e-3));
}

namespace {
// Synthetic tweets, a vocabulary trained on them and prepared shards, once per test binary.
struct TrainData {
  test::TempDir dir;
  std::vector<std::string> overrides;
  TrainData() {
    overrides = test::synth_with_vocab((dir.path / "raw").string(), (dir.path / "vocab.txt").string(),
                                       (dir.path / "prep").string(), 6000, 1000);
    for (const char* o : {"data.max_len=48", "model.hidden=64", "model.heads=2", "model.intermediate=128",
                          "log.level=warn", "dist.threads=1"})
      overrides.push_back(o);
    ResolvedConfig rc = load_config("", overrides);
    prepare_data(rc.config, {1, false});
  }
  ResolvedConfig config(const test::TempDir& run, std::vector<std::string> extra) const {
    std::vector<std::string> all = overrides;
    all.push_back("run.dir=" + run.path.string());
    all.insert(all.end(), extra.begin(), extra.end());
    return load_config("", all);
  }
};
const TrainData& train_data() {
  static TrainData data;
  return data;
}
Placement cpu() {
  Placement p;
  p.cpu_threads = 1;
  torch::set_num_threads(1);
  return p;
}
std::vector<torch::Tensor> params(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  return out;
}
}  // namespace

TEST_CASE("same config and seed: bitwise identical weights", "[train][determinism]") {
  test::TempDir r1, r2;
  std::vector<std::string> extra = {"train.max_steps=6", "train.warmup_steps=2", "data.valid=[]"};
  Trainer a(train_data().config(r1, extra), cpu(), {});
  a.run();
  Trainer b(train_data().config(r2, extra), cpu(), {});
  b.run();
  auto pa = params(a), pb = params(b);
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
  // and a different seed really is different
  test::TempDir r3;
  extra.push_back("run.seed=99");
  Trainer c(train_data().config(r3, extra), cpu(), {});
  c.run();
  CHECK_FALSE(torch::equal(params(c)[0], pa[0]));
}

TEST_CASE("gradient accumulation: 2 x B/2 gives the weights of 1 x B", "[train][accumulation]") {
  test::TempDir r1, r2;
  std::vector<std::string> base = {"train.max_steps=4", "train.warmup_steps=1", "data.valid=[]", "model.dropout=0",
                                   "model.attention_dropout=0"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return more;
  };
  Trainer whole(train_data().config(r1, with({"train.micro_batch=32", "train.accum_steps=1"})), cpu(), {});
  whole.run();
  Trainer halves(train_data().config(r2, with({"train.micro_batch=16", "train.accum_steps=2"})), cpu(), {});
  halves.run();
  auto pa = params(whole), pb = params(halves);
  double worst = 0;
  auto names = whole.model()->named_parameters();
  std::string worst_name;
  for (size_t i = 0; i < pa.size(); ++i) {
    // attention.self.key.bias has a true gradient of exactly 0 (softmax ignores a shift shared by
    // all keys), so what it receives is rounding noise, which Adam normalises into lr-sized steps:
    // its values differ between any two summation orders and say nothing about equivalence.
    if (names[i].key().find("attention.self.key.bias") != std::string::npos) continue;
    double d = ((pa[i] - pb[i]).abs().max() / (pa[i].abs().max() + 1e-12)).item<double>();
    if (d > worst) worst = d, worst_name = names[i].key();
  }
  INFO("in " << worst_name);
  INFO("largest relative difference " << worst);
  CHECK(worst < 1e-5);
}

TEST_CASE("a short CPU run learns the synthetic labels", "[train][slow]") {
  test::TempDir run;
  ResolvedConfig rc = train_data().config(run, {"train.max_steps=250", "train.lr=1e-3", "train.warmup_steps=20",
                                                "log.every=25", "eval.every=0", "train.pos_weight=auto"});
  Trainer trainer(rc, cpu(), {});
  TrainOutcome out = trainer.run();
  // the loss falls: compare the first and last logged windows in metrics.jsonl
  std::ifstream metrics(run.path / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["event"] == "train") losses.push_back(j["loss"].get<double>());
  }
  REQUIRE(losses.size() == 10);
  INFO("first window loss " << losses.front() << ", last " << losses.back() << ", macro ROC-AUC "
                            << out.final_eval.macro_roc_auc);
  CHECK(losses.back() < 0.8 * losses.front());
  // well above chance (0.5); the generator hides cues for 15% of positives and flips 2% of labels
  CHECK(out.final_eval.macro_roc_auc > 0.75);
  CHECK(out.final_eval.records == 1000);
  CHECK(std::filesystem::exists(run.path / "model" / "model.safetensors"));
  CHECK(out.thresholds.size() == 7);
}

TEST_CASE("non-finite gradients: reported and skipped, or the run stops", "[train][nonfinite]") {
  auto poisoned = [](Trainer& t) {
    torch::NoGradGuard g;
    t.model()->named_parameters()["classifier.weight"][0][0] = std::numeric_limits<float>::quiet_NaN();
  };
  test::TempDir r1, r2;
  Trainer stop(train_data().config(
                   r1, {"train.max_steps=5", "train.warmup_steps=1", "data.valid=[]", "train.on_nonfinite=stop"}),
               cpu(), {});
  poisoned(stop);
  CHECK_THROWS_WITH(stop.run(), Catch::Matchers::Contains("step 1: non-finite loss or gradients") &&
                                    Catch::Matchers::Contains("train.on_nonfinite=stop"));
  // skip: every step is skipped (the NaN weight never heals), and 20 in a row end the run
  Trainer skip(train_data().config(r2, {"train.max_steps=30", "train.warmup_steps=1", "data.valid=[]"}), cpu(), {});
  poisoned(skip);
  CHECK_THROWS_WITH(skip.run(), Catch::Matchers::Contains("step 20: non-finite") &&
                                    Catch::Matchers::Contains("20 steps in a row") &&
                                    Catch::Matchers::Contains("bad input data or a damaged optimiser state"));
  // a stop (here --stop-after) is honoured after skipped steps too: it must not wait for a good one
  test::TempDir r3;
  Trainer stopped(train_data().config(r3, {"train.max_steps=30", "train.warmup_steps=1", "data.valid=[]"}), cpu(), {});
  poisoned(stopped);
  RunControl control;
  control.stop_after = 3;
  TrainOutcome out = stopped.run(control);
  CHECK(out.stopped_early);
  CHECK(out.steps == 3);
  CHECK(out.skipped_steps == 3);
  CHECK(std::filesystem::exists(r3.path / "checkpoints" / "step-0000003" / "trainer_state.json"));
}

namespace {
// (step, lr) of every "train" event in RUN/metrics.jsonl (log.every=1: one per step).
std::vector<std::pair<int64_t, double>> logged_lrs(const std::filesystem::path& run) {
  std::ifstream metrics(run / "metrics.jsonl");
  std::vector<std::pair<int64_t, double>> out;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["event"] == "train") out.emplace_back(j["step"].get<int64_t>(), j["lr"].get<double>());
  }
  return out;
}
}  // namespace

TEST_CASE("train.epochs: the schedule spans the epochs' steps, not train.max_steps, and resumes exactly",
          "[train][schedule]") {
  // 6000 records / 32 per batch = 188 batches per epoch; 0.2 epochs = 38 steps, max_steps=10 a trap.
  test::TempDir whole, split;
  std::vector<std::string> extra = {
      "train.epochs=0.2", "train.max_steps=10", "train.warmup_steps=4", "train.schedule=linear",
      "train.lr=1e-3",    "data.valid=[]",      "log.every=1"};
  Trainer t(train_data().config(whole, extra), cpu(), {});
  REQUIRE(t.total_steps() == 38);
  t.run();
  auto lrs = logged_lrs(whole.path);
  REQUIRE(lrs.size() == 38);
  CHECK(lrs[0].second == 0.0);                              // step 1: warmup starts at 0
  CHECK(lrs[4].second == Approx(1e-3));                     // step 5: the peak
  CHECK(lrs[21].second == Approx(1e-3 * (1 - 17.0 / 34)));  // the middle of the decay: half the peak
  CHECK(lrs[37].second == Approx(1e-3 / 34));               // the last step still learns
  for (size_t i = 5; i < lrs.size(); ++i) CHECK(lrs[i].second < lrs[i - 1].second);
  // stop at step 20 and resume: the same learning rates and bitwise the same weights
  RunControl first;
  first.stop_after = 20;
  Trainer a(train_data().config(split, extra), cpu(), {});
  a.run(first);
  RunControl second;
  second.resume = "auto";
  Trainer b(train_data().config(split, extra), cpu(), {});
  TrainOutcome out = b.run(second);
  CHECK(out.start_step == 20);
  CHECK(logged_lrs(split.path) == lrs);
  auto pw = params(t), pr = params(b);
  for (size_t i = 0; i < pw.size(); ++i) CHECK(torch::equal(pw[i], pr[i]));
  // a warmup longer than the epochs' steps is an error (config validation only sees max_steps)
  test::TempDir bad;
  CHECK_THROWS_WITH(
      Trainer(train_data().config(bad, {"train.epochs=0.2", "train.warmup_steps=50", "data.valid=[]"}), cpu(), {}),
      Catch::Matchers::Contains("train.warmup_steps = 50 is more than this run's 38 steps"));
}

TEST_CASE("world size 1 with dist.backend=mpi: the multi-rank path runs and equals the plain path bit for bit",
          "[train][dist]") {
  test::TempDir r1, r2;
  std::vector<std::string> extra = {"train.max_steps=6",  "train.warmup_steps=2", "log.every=2",
                                    "eval.every=3",       "checkpoint.every=3",   "dist.check_replicas_every=2",
                                    "dist.bucket_mb=0.05"};
  Trainer plain(train_data().config(r1, extra), cpu(), {});
  TrainOutcome plain_out = plain.run();

  std::vector<std::string> dp_extra = extra;
  dp_extra.push_back("dist.backend=mpi");
  dp_extra.push_back("dist.timeline=" + (r2.path / "timeline.json").string());
  ResolvedConfig rc = train_data().config(r2, dp_extra);
  DistributedTraining distributed(test::world(), cpu(), rc.config);
  REQUIRE(distributed.data_parallel());
  Trainer parallel(rc, cpu(), distributed.comms());
  TrainOutcome dp_out = parallel.run();

  // the same answer, bit for bit: weights, evaluation, tuned thresholds
  auto pa = params(plain), pb = params(parallel);
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
  CHECK(dp_out.final_eval.macro_roc_auc == plain_out.final_eval.macro_roc_auc);
  CHECK(dp_out.final_eval.loss == plain_out.final_eval.loss);
  CHECK(dp_out.thresholds == plain_out.thresholds);
  CHECK(test::read(r1.path / "model" / "model.safetensors") == test::read(r2.path / "model" / "model.safetensors"));

  // and every collective of a multi-rank job ran: data plane and control plane, read off the timeline
  auto count = [&](const std::string& what) {
    int n = 0;
    for (const auto& e : distributed.timeline().events()) n += e.lane == 1 && e.name.find(what) != std::string::npos;
    return n;
  };
  CHECK(count("broadcast of initial") == static_cast<int>(parallel.flat().buckets().size()));  // one per bucket
  CHECK(count("all_reduce of gradient bucket") >= 6 * 2);  // several buckets per step
  CHECK(count("sum of stop and save requests") == 6);      // the preemption flag, every step
  CHECK(count("sum of logged training values") == 3);
  CHECK(count("gather to rank 0 of evaluation scores") == 2 * 2);  // lengths + values, step 3 and the end
  CHECK(count("broadcast of evaluation figures") == 2);
  CHECK(count("sum of evaluation loss") == 2);
  CHECK(count("all_gather of replica check") == 2 * 3);                     // steps 2, 4, 6
  CHECK(count("all_gather of checkpoint written by every rank") == 2 * 2);  // lengths + outcomes: step 3, the end
  CHECK(count("all_gather of checkpoint committed by rank 0") == 2 * 2);
  CHECK(count("all_gather of parameter-shape check") == 2);
}

TEST_CASE("LocalReducer zeroes the flat gradient buffers in place, gradients stay bucket views", "[train][dist]") {
  torch::Tensor p = torch::ones({3}).requires_grad_();
  FlatParams flat({{"p", p}}, {});
  LocalReducer reducer(flat);
  const void* storage = flat.buckets()[0].grads.data_ptr();
  CHECK(p.grad().data_ptr() == storage);  // a view from the start
  reducer.prepare_backward(true);
  (p * 2).sum().backward();
  reducer.finalize();
  CHECK(p.grad().data_ptr() == storage);  // autograd accumulated into the view
  CHECK(flat.buckets()[0].grads.eq(2).all().item<bool>());
  reducer.zero_grad();
  CHECK(p.grad().data_ptr() == storage);
  CHECK(p.grad().eq(0).all().item<bool>());
}

TEST_CASE("train.zero=1 in one plain process is a no-op shard of everything: equal to zero 0 bit for bit",
          "[train][zero]") {
  test::TempDir r0, r1;
  std::vector<std::string> extra = {"train.max_steps=5", "train.warmup_steps=1", "data.valid=[]"};
  Trainer zero0(train_data().config(r0, extra), cpu(), {});
  zero0.run();
  extra.push_back("train.zero=1");
  Trainer zero1(train_data().config(r1, extra), cpu(), {});
  zero1.run();
  CHECK_FALSE(zero1.flat().sharded());  // no data plane: nothing to shard over
  auto pa = params(zero0), pb = params(zero1);
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
  CHECK(zero1.optimizer().state_bytes() == zero0.optimizer().state_bytes());
}

TEST_CASE("model.unpad: 20 training steps give the padded path's losses within 1e-5", "[train][unpad]") {
  test::TempDir r1, r2;
  const std::vector<std::string> base = {"train.max_steps=20", "train.warmup_steps=2", "data.valid=[]",
                                         "log.every=1",        "model.dropout=0",      "model.attention_dropout=0"};
  auto with = [&](const std::string& unpad) {
    std::vector<std::string> all = base;
    all.push_back("model.unpad=" + unpad);
    return all;
  };
  auto losses = [](const std::filesystem::path& run) {
    std::ifstream metrics(run / "metrics.jsonl");
    std::vector<double> out;
    for (std::string line; std::getline(metrics, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["event"] == "train") out.push_back(j["loss"].get<double>());
    }
    return out;
  };
  Trainer padded(train_data().config(r1, with("false")), cpu(), {});
  padded.run();
  Trainer unpadded(train_data().config(r2, with("true")), cpu(), {});
  unpadded.run();
  const std::vector<double> a = losses(r1.path), b = losses(r2.path);
  REQUIRE(a.size() == 20);
  REQUIRE(b.size() == 20);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 1 << ": padded " << a[i] << ", unpadded " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= 1e-5 * std::max(1.0, std::abs(a[i])));
  }
}

TEST_CASE("train.tokens_per_batch: a run stopped mid-epoch and resumed equals the uninterrupted run bit for bit",
          "[train][tokens]") {
  test::TempDir whole, split;
  const std::vector<std::string> extra = {"train.tokens_per_batch=400", "train.max_steps=12", "train.warmup_steps=2",
                                          "data.valid=[]", "log.every=1"};
  Trainer t(train_data().config(whole, extra), cpu(), {});
  t.run();
  RunControl first;
  first.stop_after = 5;  // the epoch has far more than 12 steps: a stop in the middle of it
  Trainer a(train_data().config(split, extra), cpu(), {});
  a.run(first);
  RunControl second;
  second.resume = "auto";
  Trainer b(train_data().config(split, extra), cpu(), {});
  CHECK(b.run(second).start_step == 5);
  auto pw = params(t), pr = params(b);
  for (size_t i = 0; i < pw.size(); ++i) CHECK(torch::equal(pw[i], pr[i]));
}

TEST_CASE("eval.calibrate: temperatures lower the NLL of an over-confident model, predict applies the saved ones",
          "[train][calibration]") {
  test::TempDir run;
  ResolvedConfig rc = train_data().config(
      run, {"train.max_steps=80", "train.lr=1e-3", "train.warmup_steps=10", "eval.every=0", "eval.calibrate=true"});
  Trainer trainer(rc, cpu(), {});
  TrainOutcome out = trainer.run();
  // the run's own calibration is saved with the model, in modtrain.json and config.json
  const nlohmann::json meta = nlohmann::json::parse(test::read(run.path / "model" / "modtrain.json"));
  REQUIRE(meta.at("temperatures").size() == 7);
  const nlohmann::json config = nlohmann::json::parse(test::read(run.path / "model" / "config.json"));
  CHECK(config.at("modtrain").at("temperatures").at("hate") == meta.at("temperatures").at(0));
  CHECK(config.at("modtrain").at("thresholds").at("spam") == meta.at("thresholds").at(5));
  REQUIRE(out.final_eval.labels.size() == 7);
  CHECK(out.final_eval.labels[0].calibrated);

  // Over-confident: the classifier's logits scaled by 6.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : trainer.model()->named_parameters())
      if (p.key().rfind("classifier", 0) == 0) p.value().mul_(6.0);
  }
  auto tokenizer = load_tokenizer(rc.config.tokenizer);
  PreparedDataset valid =
      PreparedDataset::open(rc.config.data.prepared_dir, "valid", DataExpectations::from_config(rc.config));
  EvalOptions o;
  o.labels = rc.config.data.labels;
  o.pad_id = tokenizer->special_ids().pad;
  o.unpad = true;
  o.policy = rc.config.eval.thresholds;
  o.calibrate = true;
  const EvalResult r = evaluate_model(*trainer.model(), valid, o);
  double before = 0, after = 0, ece_before = 0, ece_after = 0;
  for (const LabelReport& l : r.report.labels) {
    INFO(l.name << ": T " << l.temperature << ", NLL " << l.nll_uncalibrated << " -> " << l.nll_calibrated << ", ECE "
                << l.ece_uncalibrated << " -> " << l.ece);
    CHECK(l.calibrated);
    CHECK(l.temperature > 1.0);  // over-confident scores are softened
    CHECK(l.nll_calibrated <= l.nll_uncalibrated);
    before += l.nll_uncalibrated, after += l.nll_calibrated;
    ece_before += l.ece_uncalibrated, ece_after += l.ece;
  }
  CHECK(after < 0.8 * before);
  CHECK(ece_after < ece_before);
  // thresholds are tuned on the calibrated scores
  std::vector<float> binary(r.targets.size());
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = r.targets[i] >= 0.5f ? 1.0f : 0.0f;
  for (size_t l = 0; l < 7; ++l)
    CHECK(r.thresholds[l] ==
          tune_threshold(label_scores(r.probs, binary, r.mask, 7, l), o.policy.all, o.min_precision));

  // predict applies the saved temperatures: sigmoid(logit / T) of the uncalibrated score
  ModelMeta m = load_model_dir((run.path / "model").string(), torch::kCPU).meta;
  m.temperatures = r.temperatures;
  m.thresholds = r.thresholds;
  const std::string dir = (run.path / "calibrated").string();
  save_model_dir(dir, *trainer.model(), m, rc.config.tokenizer.vocab);
  LoadedModel loaded = load_model_dir(dir, torch::kCPU);
  REQUIRE(loaded.meta.temperatures == r.temperatures);
  const std::vector<std::string> texts = {"the Quendari are vermin", "free crypto giveaway http://bit.ly/x",
                                          "coffee first then everything else"};
  auto score = [&](LoadedModel& model) {
    std::vector<std::vector<float>> scores;
    Predictor p(model, 8, [&](const Prediction& pr) { scores.push_back(pr.scores); });
    for (size_t i = 0; i < texts.size(); ++i) p.add(std::to_string(i), i + 1, texts[i]);
    p.flush();
    return scores;
  };
  const auto calibrated = score(loaded);
  loaded.meta.temperatures.clear();
  const auto raw = score(loaded);
  for (size_t i = 0; i < texts.size(); ++i)
    for (size_t l = 0; l < 7; ++l) {
      const double z = std::log(raw[i][l]) - std::log1p(-static_cast<double>(raw[i][l]));
      CHECK(calibrated[i][l] == Approx(1 / (1 + std::exp(-z / r.temperatures[l]))).epsilon(1e-4));
    }
  // a damaged temperature is refused when the model is loaded
  nlohmann::json bad = nlohmann::json::parse(test::read(fs::path(dir) / "modtrain.json"));
  bad["temperatures"][2] = 0.0;
  std::ofstream(fs::path(dir) / "modtrain.json") << bad.dump();
  CHECK_THROWS_WITH(load_model_dir(dir, torch::kCPU), Catch::Matchers::Contains("the temperature of 'threat' is 0.0") &&
                                                          Catch::Matchers::Contains("[0.01, 100]"));
}
