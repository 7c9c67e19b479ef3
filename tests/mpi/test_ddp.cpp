// Data parallelism under mpiexec: collectives against closed forms; EQUIVALENCE of W ranks x B
// with 1 rank x W*B (also with accumulation, and for awkward bucket layouts); replicas bitwise
// identical; overlap of bucket all-reduces with backward, read off the timeline; distributed
// evaluation equal to single-process evaluation.
#include "catch_torch.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/io/files.h"

#include "modtrain/config/loader.h"
#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/synth.h"
#include "modtrain/data/vocab_trainer.h"
#include "modtrain/dist/bucketed_reducer.h"
#include "modtrain/dist/replicas.h"
#include "modtrain/model/model.h"
#include "modtrain/train/distributed.h"
#include "modtrain/train/optimizer.h"
#include "modtrain/train/trainer.h"
#include "mpi_fixture.h"
#include "synth_fixture.h"

using namespace modtrain;
using modtrain::test::world;
namespace fs = std::filesystem;

namespace {
std::unique_ptr<Communicator> mpi_comm(Timeline* timeline = nullptr) {
  return make_mpi_communicator(world(), {30.0, timeline});
}
std::unique_ptr<Collectives> host() { return make_mpi_collectives(world(), 30.0); }

// Flat buckets and a bucketed reducer over them (the buckets outlive the reducer).
struct Reduced {
  Reduced(const NamedParameters& params, Communicator& comm, Collectives& collectives, FlatOptions options = {})
      : flat(params, options), reducer(flat, comm, collectives) {}
  FlatParams flat;
  BucketedReducer reducer;
};

// Prepared synthetic data in a directory shared by the ranks (rank 0 makes it once).
struct SharedData {
  std::string dir;
  std::vector<std::string> overrides;
  SharedData() {
    World& w = world();
    if (w.is_root()) {
      std::string pattern = (fs::temp_directory_path() / "modtrain-ddp-XXXXXX").string();
      dir = mkdtemp(pattern.data());
    }
    dir = w.all_gather(dir)[0];
    for (const char* o : {"data.max_len=32", "model.hidden=32", "model.heads=2", "model.intermediate=64",
                          "model.dropout=0", "model.attention_dropout=0", "log.level=warn", "dist.threads=1"})
      overrides.push_back(o);
    const auto paths = test::synth_overrides(dir + "/raw", dir + "/vocab.txt", dir + "/prep");
    overrides.insert(overrides.begin(), paths.begin(), paths.end());
    if (w.is_root()) {  // the files, once, on a filesystem every rank reads
      // The cues task: the data the float32 equivalence bounds below were set on (they measure the
      // distributed mechanics; the context task's posts give other, equally valid roundings).
      SynthOptions cues;
      cues.task = SynthTask::kCues;
      test::synth_with_vocab(dir + "/raw", dir + "/vocab.txt", dir + "/prep", 1200, 203, 3, cues);  // 203: odd per rank
      prepare_data(load_config("", overrides).config, {1, false});
    }
    w.barrier();
  }
  // Runs after main() returned (MPI finalized): every rank has passed mpi_main's final
  // collective by then, so rank 0 can remove the files without another synchronisation.
  ~SharedData() {
    if (root) io::remove_tree(dir);
  }
  bool root = world().is_root();
  // run.dir: one for all ranks of a distributed run (every rank writes its part of each checkpoint
  // there, and rank 0 refuses to commit one whose parts it cannot see); a run that every rank trains
  // alone (`alone`: TrainComms{}) gets one per rank.
  ResolvedConfig config(const std::string& run, std::vector<std::string> extra, bool alone = false) const {
    std::vector<std::string> all = overrides;
    all.push_back("run.dir=" + dir + "/" + run + (alone ? "-rank" + std::to_string(world().rank()) : ""));
    all.insert(all.end(), extra.begin(), extra.end());
    return load_config("", all);
  }
};
const SharedData& data() {
  static SharedData d;
  return d;
}

Placement cpu_placement() {
  Placement p;
  p.cpu_threads = 1;
  torch::set_num_threads(1);
  return p;
}

// The validation split of a run's config, and the options that score it in this one process as the
// run's own evaluation does (the unpadded path too: the other differs by rounding, enough to
// reorder ties).
PreparedDataset valid_split(const ResolvedConfig& rc) {
  return PreparedDataset::open(rc.config.data.prepared_dir, "valid", DataExpectations::from_config(rc.config));
}
EvalOptions single_process_eval(const ResolvedConfig& rc, int64_t batch) {
  EvalOptions o;
  o.labels = rc.config.data.labels;
  o.pad_id = load_tokenizer(rc.config.tokenizer)->special_ids().pad;
  o.batch = batch;
  o.policy = rc.config.eval.thresholds;
  o.min_precision = rc.config.eval.min_precision;
  o.unpad = rc.config.model.unpad;
  return o;
}

std::vector<std::pair<std::string, torch::Tensor>> params_of(Trainer& t) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : t.network().named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  return out;
}

// Largest relative difference between two parameter sets (attention key biases excluded: their
// true gradient is exactly 0, see tests/unit/test_train.cpp).
double max_relative_difference(const std::vector<std::pair<std::string, torch::Tensor>>& a,
                               const std::vector<std::pair<std::string, torch::Tensor>>& b, std::string& where) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first.find("attention.self.key.bias") != std::string::npos) continue;
    double d = ((a[i].second - b[i].second).abs().max() / (a[i].second.abs().max() + 1e-12)).item<double>();
    if (d > worst) worst = d, where = a[i].first;
  }
  return worst;
}

// Trains `ranks x micro_batch x accum` on all ranks and `1 x (ranks*micro_batch) x accum` locally
// (with `tokens` > 0: token budgets, `tokens` per rank against `ranks x tokens` in one process);
// returns the largest relative difference of the final weights.
double equivalence(const std::string& name, int micro_batch, int accum, double bucket_mb, int steps = 5, int tokens = 0,
                   const std::vector<std::string>& extra = {}) {
  World& w = world();
  std::vector<std::string> common = {"train.max_steps=" + std::to_string(steps), "train.warmup_steps=1",
                                     "data.valid=[]", "train.accum_steps=" + std::to_string(accum),
                                     "dist.bucket_mb=" + std::to_string(bucket_mb)};
  common.insert(common.end(), extra.begin(), extra.end());
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), common.begin(), common.end());
    return more;
  };
  auto batch = [&](int ranks) -> std::vector<std::string> {
    if (tokens > 0) return {"train.tokens_per_batch=" + std::to_string(tokens * ranks)};
    return {"train.micro_batch=" + std::to_string(micro_batch * ranks)};
  };
  ResolvedConfig dp = data().config(name + "-dp", with(batch(1)));
  DistributedTraining distributed(w, cpu_placement(), dp.config);
  Trainer parallel(dp, cpu_placement(), distributed.comms());
  parallel.run();
  ResolvedConfig one = data().config(name + "-one", with(batch(w.size())), /*alone=*/true);
  Trainer single(one, cpu_placement(), TrainComms{});
  single.run();
  std::string where;
  double worst = max_relative_difference(params_of(parallel), params_of(single), where);
  UNSCOPED_INFO(name << ": largest relative difference " << worst << " in " << where);
  return worst;
}
}  // namespace

TEST_CASE("collectives against closed forms, sizes and dtypes", "[mpi][comm]") {
  World& w = world();
  auto comm = mpi_comm();
  const int64_t n = w.size(), r = w.rank();
  for (int64_t size : {1, 7, 1000, 65537}) {
    for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64, torch::kInt32}) {
      torch::Tensor t = torch::full({size}, static_cast<double>(r + 1), torch::TensorOptions().dtype(dtype));
      comm->all_reduce(t, ReduceOp::kSum, "test");
      CHECK(t.eq(static_cast<double>(n * (n + 1) / 2)).all().item<bool>());  // sum over ranks of (r+1)
    }
    torch::Tensor avg = torch::arange(size, torch::kFloat64) * static_cast<double>(r);
    comm->all_reduce(avg, ReduceOp::kAvg, "test");
    CHECK(torch::allclose(avg, torch::arange(size, torch::kFloat64) * (n - 1) / 2.0));
    torch::Tensor b = torch::full({size}, static_cast<double>(r == 1 ? 42 : -1), torch::kFloat32);
    comm->broadcast(b, 1, "test");
    CHECK(b.eq(42).all().item<bool>());
    torch::Tensor g = comm->all_gather(torch::full({2, size}, static_cast<double>(r), torch::kInt64), "test");
    REQUIRE(g.sizes() == torch::IntArrayRef{n, 2, size});
    for (int64_t k = 0; k < n; ++k) CHECK(g[k].eq(k).all().item<bool>());
    // ZeRO-1's pair: reduce-scatter (element i of the sum lands on rank i / size) and the in-place
    // all-gather of equal chunks.
    torch::Tensor input = torch::arange(n * size, torch::kFloat32) * static_cast<double>(r + 1);
    torch::Tensor chunk = torch::empty({size}, torch::kFloat32);
    comm->reduce_scatter_async(input, chunk, ReduceOp::kSum, "test")->wait();
    CHECK(torch::equal(chunk, torch::arange(r * size, (r + 1) * size, torch::kFloat32) * (n * (n + 1) / 2)));
    comm->reduce_scatter_async(input, chunk, ReduceOp::kAvg, "test")->wait();
    CHECK(torch::allclose(chunk, torch::arange(r * size, (r + 1) * size, torch::kFloat32) * ((n + 1) / 2.0)));
    torch::Tensor flat = torch::full({n * size}, -1.0, torch::kFloat64);
    flat.narrow(0, r * size, size).fill_(static_cast<double>(r));
    comm->all_gather_chunks_async(flat, "test")->wait();
    for (int64_t k = 0; k < n; ++k) CHECK(flat.narrow(0, k * size, size).eq(k).all().item<bool>());
  }
  comm->barrier("test");
}

TEST_CASE("control plane: host sums and gathers of any length per rank, closed forms", "[mpi][collectives]") {
  World& w = world();
  auto collectives = host();
  const int64_t n = w.size(), r = w.rank();
  REQUIRE(collectives->size() == n);
  REQUIRE(collectives->rank() == r);
  std::vector<double> sums = {1.0, static_cast<double>(r), 0.5};
  collectives->sum(sums, "test");
  CHECK(sums == std::vector<double>{static_cast<double>(n), static_cast<double>(n * (n - 1) / 2), 0.5 * n});
  std::vector<float> mine(static_cast<size_t>(r) * 3, static_cast<float>(r));  // lengths 0, 3, 6 ...: rank 0 sends none
  std::vector<std::vector<float>> all = collectives->all_gather(mine, "test");
  REQUIRE(all.size() == static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    CHECK(all[static_cast<size_t>(k)] == std::vector<float>(static_cast<size_t>(k) * 3, k));
  std::vector<std::vector<double>> d = collectives->all_gather(std::vector<double>{r + 0.25}, "test");
  for (int64_t k = 0; k < n; ++k) CHECK(d[static_cast<size_t>(k)] == std::vector<double>{k + 0.25});
  std::vector<double> none;
  collectives->sum(none, "empty");  // no values: no collective, no hang
  collectives->barrier("test");
  // Text of any length per rank, empty and binary bytes included (rank 0's decisions, errors).
  std::string text =
      r == 0 ? std::string("D/runs/a/checkpoints/step-0000020\0x", 35) : std::string(static_cast<size_t>(r), 'e');
  std::vector<std::string> texts = collectives->all_gather_text(text, "test");
  REQUIRE(texts.size() == static_cast<size_t>(n));
  CHECK(texts[0] == std::string("D/runs/a/checkpoints/step-0000020\0x", 35));
  for (int64_t k = 1; k < n; ++k) CHECK(texts[static_cast<size_t>(k)] == std::string(static_cast<size_t>(k), 'e'));
}

TEST_CASE("bucket layouts: reverse order, a small first bucket, big parameters alone, no-decay apart",
          "[mpi][reducer]") {
  auto comm = mpi_comm();
  std::vector<std::pair<std::string, torch::Tensor>> params = {
      {"a", torch::randn({1000}).requires_grad_()},    // 4 KB
      {"b", torch::randn({300000}).requires_grad_()},  // 1.2 MB: larger than a 1 MB bucket
      {"c", torch::randn({10}).requires_grad_()},
      {"x.bias", torch::randn({7}).requires_grad_()},  // no weight decay: a bucket of their own, last
      {"LayerNorm.weight", torch::randn({5}).requires_grad_()},
      {"d", torch::randn({20}).requires_grad_()}};
  const torch::Tensor b_before = params[1].second.detach().clone();
  FlatOptions options;
  options.bucket_cap_bytes = options.first_bucket_cap_bytes = 1u << 20;
  options.no_decay = {"x.bias", "LayerNorm.weight"};  // what a model declares (model/model.h)
  auto collectives = host();
  Reduced r(params, *comm, *collectives, options);
  const auto& buckets = r.flat.buckets();
  REQUIRE(buckets.size() == 4);  // [d, c] then [b] alone then [a], then [LayerNorm.weight, x.bias]
  CHECK(buckets[0].slots.size() == 2);
  CHECK(buckets[1].slots.size() == 1);
  CHECK(buckets[1].numel == 300000);
  CHECK(buckets[2].slots.size() == 1);
  CHECK((buckets[0].decay && buckets[1].decay && buckets[2].decay && !buckets[3].decay));
  CHECK(r.flat.slots()[buckets[3].slots[0]].name == "LayerNorm.weight");
  // the parameters live in the buckets, values kept (rank 0's after construction)
  CHECK(params[1].second.data_ptr() == buckets[1].params.data_ptr());
  if (world().rank() == 0) CHECK(torch::equal(params[1].second, b_before));
  torch::Tensor first = comm->all_gather(params[0].second.detach(), "check");
  CHECK(torch::equal(first[0], first[world().size() - 1]));
  // gradients are views into the buckets
  CHECK(params[1].second.grad().defined());
  CHECK(params[1].second.grad().data_ptr() == buckets[1].grads.data_ptr());
}

TEST_CASE("W ranks x B equals 1 rank x W*B (and with accumulation)", "[mpi][equivalence]") {
  CHECK(equivalence("plain", 8, 1, 25) < 1e-5);
  CHECK(equivalence("accum", 4, 2, 25) < 1e-5);
}

TEST_CASE("token budgets: W ranks x T tokens equal 1 rank x W*T tokens (loss over the global label count)",
          "[mpi][equivalence][tokens]") {
  // Each rank's share of records differs from step to step; the loss is normalised by the step's
  // annotated labels over all ranks, so the sum of the ranks' gradients is one batch's gradient.
  CHECK(equivalence("tokens", 0, 1, 25, 5, 160) < 1e-5);
  CHECK(equivalence("tokens-accum", 0, 2, 25, 4, 100) < 1e-5);
}

TEST_CASE("masked LM: W ranks x B equals 1 rank x W*B (the loss over the step's chosen tokens on all ranks)",
          "[mpi][equivalence][mlm]") {
  // The masks are a function of (seed, batch ordinal, record), so both runs choose the same tokens.
  const std::vector<std::string> mlm = {"train.objective=mlm"};
  CHECK(equivalence("mlm", 8, 1, 25, 5, 0, mlm) < 1e-5);
  CHECK(equivalence("mlm-accum", 4, 2, 25, 5, 0, mlm) < 1e-5);
  CHECK(equivalence("mlm-padded-wwm", 8, 1, 25, 4, 0,
                    {"train.objective=mlm", "model.unpad=false", "mlm.whole_word=true"}) < 1e-5);
  CHECK(equivalence("mlm-tokens", 0, 1, 25, 4, 160, mlm) < 1e-5);
  CHECK(equivalence("mlm-zero1", 8, 1, 25, 5, 0, {"train.objective=mlm", "train.zero=1"}) < 1e-5);
}

TEST_CASE("masked LM: distributed evaluation equals single-process evaluation", "[mpi][eval][mlm]") {
  World& w = world();
  const std::vector<std::string> common = {"train.objective=mlm", "train.max_steps=3", "train.warmup_steps=1",
                                           "eval.every=0", "checkpoint.every=0"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), common.begin(), common.end());
    return more;
  };
  ResolvedConfig dp = data().config("mlm-eval-dp", with({"train.micro_batch=8"}));
  DistributedTraining distributed(w, cpu_placement(), dp.config);
  Trainer parallel(dp, cpu_placement(), distributed.comms());
  const TrainOutcome p = parallel.run();
  ResolvedConfig one =
      data().config("mlm-eval-one", with({"train.micro_batch=" + std::to_string(8 * w.size())}), /*alone=*/true);
  Trainer single(one, cpu_placement(), TrainComms{});
  const TrainOutcome s = single.run();
  REQUIRE(p.final_mlm_eval.tokens > 100);
  CHECK(p.final_mlm_eval.tokens == s.final_mlm_eval.tokens);    // the same chosen tokens, split over the ranks
  CHECK(p.final_mlm_eval.records == s.final_mlm_eval.records);  // repeated records dropped
  CHECK(std::abs(p.final_mlm_eval.loss - s.final_mlm_eval.loss) < 1e-4);
  // an argmax may flip on a near tie (weights equal within 1e-5): at most one token apart
  CHECK(std::abs(p.final_mlm_eval.accuracy - s.final_mlm_eval.accuracy) *
            static_cast<double>(s.final_mlm_eval.tokens) <=
        1.0 + 1e-9);
  CHECK(p.final_eval.records == 0);  // no classification metrics under mlm
}

TEST_CASE("bucket edge cases train identically: many tiny buckets, one bucket per huge cap", "[mpi][equivalence]") {
  CHECK(equivalence("tiny-buckets", 8, 1, 0.001, 3) <
        1e-5);  // ~1 KB buckets: a parameter larger than a bucket, many buckets
  CHECK(equivalence("one-bucket", 8, 1, 4000, 3) < 1e-5);  // everything in one bucket (after the 1 MB first one)
}

TEST_CASE("replicas stay bitwise identical, the overlap shows in the timeline", "[mpi][overlap]") {
  World& w = world();
  ResolvedConfig rc =
      data().config("overlap", {"train.max_steps=4", "train.warmup_steps=1", "data.valid=[]", "dist.bucket_mb=0.01",
                                "dist.timeline=" + data().dir + "/timeline.json", "dist.check_replicas_every=2"});
  DistributedTraining distributed(w, cpu_placement(), rc.config);
  Trainer trainer(rc, cpu_placement(), distributed.comms());
  trainer.run();
  auto params = params_of(trainer);
  auto comm = mpi_comm();
  for (const auto& [name, p] : params) {
    torch::Tensor all = comm->all_gather(p, name);
    CHECK(torch::equal(all[0], all[w.size() - 1]));
  }
  // Some bucket's all-reduce started before its backward pass ended.
  auto events = distributed.timeline().events();
  int overlapped = 0, reductions = 0, backwards = 0;
  for (const auto& b : events) {
    if (b.name != "backward") continue;
    ++backwards;
    for (const auto& e : events)
      if (e.lane == 1 && e.name.find("gradient bucket") != std::string::npos && e.start_us >= b.start_us &&
          e.start_us < b.end_us)
        ++overlapped;
  }
  for (const auto& e : events) reductions += e.lane == 1 && e.name.find("gradient bucket") != std::string::npos;
  INFO(reductions << " bucket all-reduces, " << overlapped << " started during a backward pass, " << backwards
                  << " backward passes");
  CHECK(backwards == 4);
  CHECK(reductions >= 8);
  CHECK(overlapped > 0);
  CHECK(fs::exists(distributed.write_timeline()));
}

TEST_CASE("distributed evaluation equals single-process evaluation", "[mpi][eval]") {
  World& w = world();
  ResolvedConfig rc = data().config("eval", {"train.max_steps=3", "train.warmup_steps=1", "eval.every=0"});
  DistributedTraining distributed(w, cpu_placement(), rc.config);
  Trainer trainer(rc, cpu_placement(), distributed.comms());
  TrainOutcome dist_out = trainer.run();
  // the same weights scored by one process: every rank evaluates the whole split alone
  PreparedDataset valid = valid_split(rc);
  EvalOptions o = single_process_eval(rc, 64);
  EvalResult single = evaluate_model(*trainer.model(), valid, o);
  CHECK(dist_out.final_eval.records == 203);
  CHECK(single.report.records == 203);
  CHECK(dist_out.final_eval.macro_roc_auc == Approx(single.report.macro_roc_auc).epsilon(1e-6));
  CHECK(dist_out.final_eval.macro_pr_auc == Approx(single.report.macro_pr_auc).epsilon(1e-6));
  CHECK(dist_out.final_eval.loss == Approx(single.report.loss).epsilon(1e-5));
  // calibration: the gathered scores give the same bins, ECE and Brier score
  CHECK(dist_out.final_eval.macro_ece == Approx(single.report.macro_ece).epsilon(1e-6));
  CHECK(dist_out.final_eval.macro_brier == Approx(single.report.macro_brier).epsilon(1e-6));
  // every rank acts on the same thresholds (rank 0 tuned them and sent them)
  REQUIRE(dist_out.thresholds.size() == single.thresholds.size());
  REQUIRE(single.thresholds.size() == 7);
  for (size_t l = 0; l < single.thresholds.size(); ++l) CHECK(dist_out.thresholds[l] == Approx(single.thresholds[l]));
  // the per-label tables exist on rank 0 only: the scores went there and nowhere else
  if (w.is_root()) {
    REQUIRE(dist_out.final_eval.labels.size() == single.report.labels.size());
    for (size_t l = 0; l < single.report.labels.size(); ++l)
      CHECK(dist_out.final_eval.labels[l].bin_counts == single.report.labels[l].bin_counts);
  } else {
    CHECK(dist_out.final_eval.labels.empty());
  }
}

TEST_CASE("evaluation scores reach rank 0 only and the rest get the figures", "[mpi][eval]") {
  World& w = world();
  ResolvedConfig rc = data().config("eval_root", {"train.max_steps=2", "train.warmup_steps=1", "eval.every=0"});
  DistributedTraining distributed(w, cpu_placement(), rc.config);
  Trainer trainer(rc, cpu_placement(), distributed.comms());
  trainer.run();
  PreparedDataset valid = valid_split(rc);
  EvalOptions o = single_process_eval(rc, 16);
  auto collectives = host();
  o.collectives = collectives.get();
  const EvalResult d = evaluate_model(*trainer.model(), valid, o);
  o.collectives = nullptr;
  const EvalResult s = evaluate_model(*trainer.model(), valid, o);
  REQUIRE(s.probs.size() == 203 * 7);
  if (w.is_root()) {
    // rank 0 holds every record's scores, in the split's order, as one process computes them
    REQUIRE(d.probs.size() == s.probs.size());
    size_t compared = 0;
    for (size_t i = 0; i < s.probs.size(); ++i, ++compared) CHECK(d.probs[i] == Approx(s.probs[i]).margin(1e-6));
    CHECK(d.targets == s.targets);
    CHECK(d.mask == s.mask);
    CHECK(compared == 203 * 7);
  } else {
    CHECK(d.probs.empty());
    CHECK(d.targets.empty());
  }
  CHECK(d.report.records == 203);
  CHECK(d.report.macro_pr_auc == Approx(s.report.macro_pr_auc).epsilon(1e-6));
  CHECK(d.report.micro_f1 == Approx(s.report.micro_f1).epsilon(1e-6));
  REQUIRE(d.temperatures.size() == 7);
}

TEST_CASE("distributed evaluation equals single-process evaluation: soft labels, bias, slices, temperatures",
          "[mpi][eval][bias]") {
  World& w = world();
  const std::string dir = data().dir + "/moderation";
  std::vector<std::string> overrides = {
      "data.max_len=32", "model.hidden=32", "model.heads=2", "model.intermediate=64", "log.level=warn",
      "dist.threads=1", "data.soft_labels=true", "eval.calibrate=true", "eval.min_subgroup_records=3",
      "eval.min_subgroup_class=1", "train.max_steps=40", "train.lr=2e-3", "train.warmup_steps=4", "eval.every=0",
      // one record per forward pass on every rank and in the single process: bitwise equal logits,
      // so that near-tied scores of near-identical posts break alike (batches of other records
      // shift logits by rounding, enough to reorder such ties)
      "eval.micro_batch=1", "eval.slice_by=[lang]", "data.subgroups=[" + text::join(synth_subgroups(), ",") + "]"};
  const auto paths = test::synth_overrides(dir + "/raw", dir + "/vocab.txt", dir + "/prep");
  overrides.insert(overrides.end(), paths.begin(), paths.end());
  overrides.push_back("run.dir=" + dir + "/run");  // one for every rank (checkpoints: every rank writes)
  if (w.is_root()) {
    SynthOptions synth;
    synth.identities = true;
    synth.annotators = 5;
    synth.languages = {"en", "en", "es"};  // "lang" on every record; identity mentions on the English ones
    test::synth_with_vocab(dir + "/raw", dir + "/vocab.txt", dir + "/prep", 600, 301, 2, synth);
    prepare_data(load_config("", overrides).config, {1, false});
  }
  w.barrier();
  ResolvedConfig rc = load_config("", overrides);
  DistributedTraining distributed(w, cpu_placement(), rc.config);
  Trainer trainer(rc, cpu_placement(), distributed.comms());
  const TrainOutcome dist_out = trainer.run();
  PreparedDataset valid = valid_split(rc);
  EvalOptions o = single_process_eval(rc, 1);
  o.calibrate = true;
  o.min_subgroup_records = 3;
  o.min_subgroup_class = 1;
  const EvalResult single = evaluate_model(*trainer.model(), valid, o);
  const EvalReport& d = dist_out.final_eval;
  const EvalReport& s = single.report;
  REQUIRE(d.records == 301);
  REQUIRE(s.records == 301);
  CHECK(d.loss == Approx(s.loss).epsilon(1e-5));  // soft-target BCE
  CHECK(d.macro_pr_auc == Approx(s.macro_pr_auc).epsilon(1e-6));
  CHECK(d.worst_subgroup_auc == Approx(s.worst_subgroup_auc).epsilon(1e-6));
  // the thresholds tuned after the temperatures: every rank acts on them
  REQUIRE(dist_out.thresholds.size() == single.thresholds.size());
  for (size_t l = 0; l < single.thresholds.size(); ++l)
    CHECK(dist_out.thresholds[l] == Approx(single.thresholds[l]).epsilon(1e-6));
  if (!w.is_root()) return;  // the per-label tables are rank 0's (no collective follows)
  // temperatures (fitted on the gathered logits)
  for (size_t l = 0; l < s.labels.size(); ++l) {
    INFO(s.labels[l].name);
    CHECK(d.labels[l].temperature == Approx(s.labels[l].temperature).epsilon(1e-5));
    CHECK(d.labels[l].nll_calibrated == Approx(s.labels[l].nll_calibrated).epsilon(1e-5));
    CHECK(d.labels[l].ece == Approx(s.labels[l].ece).margin(1e-6));
    CHECK(dist_out.thresholds[l] == Approx(single.thresholds[l]).epsilon(1e-6));
  }
  // the bias tables: every subgroup's size, positives and three AUCs, the bias score
  REQUIRE(d.bias.size() == s.bias.size());
  REQUIRE(s.bias.size() == 7);
  size_t reported = 0;
  for (size_t l = 0; l < s.bias.size(); ++l) {
    INFO("label " << l << " overall " << d.bias[l].overall_auc << " vs " << s.bias[l].overall_auc << ", means "
                  << d.bias[l].power_means[0] << "/" << d.bias[l].power_means[1] << "/" << d.bias[l].power_means[2]
                  << " vs " << s.bias[l].power_means[0] << "/" << s.bias[l].power_means[1] << "/"
                  << s.bias[l].power_means[2] << ", macro roc " << d.macro_roc_auc << " vs " << s.macro_roc_auc);
    CHECK(std::isnan(d.bias[l].bias_score) == std::isnan(s.bias[l].bias_score));  // NaN: no subgroup reported
    if (!std::isnan(s.bias[l].bias_score)) CHECK(d.bias[l].bias_score == Approx(s.bias[l].bias_score).epsilon(1e-6));
    for (size_t g = 0; g < s.bias[l].subgroups.size(); ++g) {
      const SubgroupAuc &a = d.bias[l].subgroups[g], &b = s.bias[l].subgroups[g];
      CHECK(a.size == b.size);
      CHECK(a.positives == b.positives);
      CHECK(a.why == b.why);
      if (!b.reported) continue;
      ++reported;
      CHECK(a.subgroup_auc == Approx(b.subgroup_auc).epsilon(1e-6));
      CHECK(a.bpsn_auc == Approx(b.bpsn_auc).epsilon(1e-6));
      CHECK(a.bnsp_auc == Approx(b.bnsp_auc).epsilon(1e-6));
    }
  }
  CHECK(reported > 0);
  CHECK(d.worst_subgroup_auc == Approx(s.worst_subgroup_auc).epsilon(1e-6));
  // the slice tables: the same values with the same counts and figures
  REQUIRE(d.slices.size() == 1);
  REQUIRE(s.slices.size() == 1);
  REQUIRE(d.slices[0].rows.size() == 2);
  for (size_t k = 0; k < s.slices[0].rows.size(); ++k) {
    CHECK(d.slices[0].rows[k].value == s.slices[0].rows[k].value);
    CHECK(d.slices[0].rows[k].records == s.slices[0].rows[k].records);
    CHECK(d.slices[0].rows[k].macro_roc_auc == Approx(s.slices[0].rows[k].macro_roc_auc).epsilon(1e-6));
  }
}

TEST_CASE("a parameter without a gradient: no hang, zero contribution", "[mpi][reducer]") {
  World& w = world();
  auto comm = mpi_comm();
  torch::Tensor used = torch::ones({4}).requires_grad_(), unused = torch::ones({3}).requires_grad_();
  auto collectives = host();
  Reduced r({{"used", used}, {"unused", unused}}, *comm, *collectives);
  BucketedReducer& reducer = r.reducer;
  for (int step = 0; step < 2; ++step) {
    reducer.zero_grad();
    reducer.prepare_backward(true);
    // only rank 0 touches `unused`; every rank touches `used`, scaled by (rank + 1)
    torch::Tensor loss = (used * static_cast<double>(w.rank() + 1)).sum();
    if (w.rank() == 0) loss = loss + unused.sum();
    loss.backward();
    reducer.finalize();  // must not wait for `unused` on the other ranks
    const double n = w.size();
    CHECK(torch::allclose(used.grad(), torch::full({4}, (n + 1) / 2)));  // mean of 1..n
    CHECK(torch::allclose(unused.grad(), torch::full({3}, 1.0 / n)));    // 1 on rank 0, 0 elsewhere
  }
}

TEST_CASE("different models on different ranks: a clear error, not a hang", "[mpi][reducer]") {
  World& w = world();
  auto comm = mpi_comm();
  torch::Tensor p = torch::ones({w.rank() == 0 ? 4 : 5}).requires_grad_();
  auto collectives = host();
  CHECK_THROWS_WITH(Reduced({{"classifier.weight", p}}, *comm, *collectives),
                    Catch::Matchers::Contains("the ranks built different models"));
}

TEST_CASE("replica divergence names the first differing parameter", "[mpi][reducer]") {
  World& w = world();
  auto comm = mpi_comm();
  torch::Tensor a = torch::ones({4}).requires_grad_(), b = torch::ones({6}).requires_grad_();
  auto collectives = host();
  NamedParameters params = {{"bert.pooler.dense.weight", a}, {"classifier.bias", b}};
  Reduced r(params, *comm, *collectives);
  check_replicas(params, *collectives, 1);  // identical after the start-up broadcast
  if (w.rank() == w.size() - 1) {
    torch::NoGradGuard g;
    b[2] = 1.5;
  }
  CHECK_THROWS_WITH(check_replicas(params, *collectives, 7),
                    Catch::Matchers::Contains("replicas diverged at step 7: parameter classifier.bias differs"));
  // After loading: every rank stops (CollectiveError, exit 2), rank 0 names the source.
  try {
    check_replicas_after_load(params, *collectives, "runs/a/checkpoints/step-0000020");
    FAIL("no error");
  } catch (const CollectiveError& e) {
    CHECK(e.exit_code() == kExitUsage);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("replicas differ after loading runs/a/checkpoints/step-0000020"));
  }
}

TEST_CASE("a parameter marked ready twice in one step is an error naming it", "[mpi][reducer]") {
  auto comm = mpi_comm();
  auto collectives = host();
  torch::Tensor weight = torch::ones({4}).requires_grad_(), bias = torch::ones({2}).requires_grad_();
  // one bucket (both decay): the bucket waits for `bias`
  Reduced r({{"encoder.weight", weight}, {"encoder.scale", bias}}, *comm, *collectives);
  BucketedReducer& reducer = r.reducer;
  reducer.zero_grad();
  reducer.prepare_backward(true);
  (weight.sum() * 2).backward();  // `bias` gets no gradient: its bucket waits, nothing is launched yet
  // A second backward over `weight` in the same step, without prepare_backward(): every rank throws
  // before anything is communicated, so no collective is left half-matched.
  CHECK_THROWS_WITH((weight.sum() * 3).backward(),
                    Catch::Matchers::Contains("parameter encoder.weight was marked ready twice in one step"));
  reducer.finalize();  // and the step still completes on every rank (no hang)
  CHECK(torch::allclose(bias.grad(), torch::zeros({2})));
}

TEST_CASE("destroying the reducer removes its autograd hooks", "[mpi][reducer]") {
  auto comm = mpi_comm();
  auto collectives = host();
  torch::Tensor p = torch::ones({3}).requires_grad_();
  auto accumulator = torch::autograd::impl::grad_accumulator(p);
  const size_t before = accumulator->post_hooks().size();
  {
    Reduced r({{"p", p}}, *comm, *collectives);
    CHECK(accumulator->post_hooks().size() == before + 1);
  }
  CHECK(accumulator->post_hooks().size() == before);
  // a backward after the reducer is gone runs no hook of it (before: a call into freed memory)
  p.sum().backward();
  CHECK(torch::allclose(p.grad(), torch::ones({3})));
}

namespace {
// A one-layer BERT classifier without dropout, for the reducer and optimiser tests.
BertConfig small_bert(int64_t vocab, int64_t hidden, int64_t heads, int64_t intermediate) {
  BertConfig c;
  c.vocab_size = vocab, c.hidden = hidden, c.layers = 1, c.heads = heads, c.intermediate = intermediate;
  c.num_labels = 3, c.max_positions = 16, c.hidden_dropout = c.attention_dropout = 0;
  return c;
}
}  // namespace

// ---- bf16 gradient reduction (dist.grad_reduce_dtype: bf16) -------------------------------------
TEST_CASE("bf16 gradient reduction: half the bytes and the fp32 average within bf16 rounding", "[mpi][bf16]") {
  World& w = world();
  auto collectives = host();
  const BertConfig c = small_bert(300, 32, 2, 64);
  // 1. The collective itself: small integers sum exactly in bf16 (user-defined MPI sum).
  {
    auto comm = mpi_comm();
    torch::Tensor t = (torch::arange(1, 21, torch::kFloat32) * (w.rank() + 1)).to(torch::kBFloat16);
    comm->all_reduce_async(t, ReduceOp::kSum, "bf16 integers")->wait();
    const torch::Tensor expected = torch::arange(1, 21, torch::kFloat32) * (w.size() * (w.size() + 1) / 2);
    CHECK(t.scalar_type() == torch::kBFloat16);
    CHECK(torch::equal(t.to(torch::kFloat32), expected));
  }
  // 2. Through the reducer, every rank its own gradients, both layouts: against the fp32 average.
  for (bool zero : {false, true}) {
    INFO((zero ? "ZeRO-1 (reduce-scatter)" : "all-reduce") << " on " << w.size() << " ranks");
    double bytes[2] = {0, 0}, worst = 0, largest_gap = 0;
    int64_t compared = 0;
    std::vector<torch::Tensor> averaged[2];
    for (int k = 0; k < 2; ++k) {
      Timeline timeline(true, w.rank());
      auto comm = mpi_comm(&timeline);
      torch::manual_seed(3);
      BertForClassification m(c);
      FlatOptions o;
      o.bucket_cap_bytes = 20000;
      o.first_bucket_cap_bytes = 4000;
      if (zero) o.zero = true, o.shards = w.size(), o.rank = w.rank();
      FlatParams flat(named_parameters(*m), o);
      BucketedReducer reducer(flat, *comm, *collectives, nullptr, k == 0 ? torch::kFloat32 : torch::kBFloat16);
      reducer.zero_grad();
      reducer.prepare_backward(true);
      torch::manual_seed(70 + w.rank());
      torch::Tensor ids = torch::randint(5, c.vocab_size, {4, 12}, torch::kLong);
      m->forward(ids, torch::ones_like(ids)).pow(2).sum().backward();
      reducer.finalize();
      for (const auto& b : flat.buckets()) averaged[k].push_back(b.grad_shard.clone());
      for (const auto& e : timeline.events())
        if (e.name.rfind(zero ? "reduce_scatter of gradient bucket" : "all_reduce of gradient bucket", 0) == 0)
          bytes[k] += nlohmann::json::parse(e.args_json).at("bytes").get<double>();
    }
    REQUIRE(averaged[0].size() == averaged[1].size());
    for (size_t b = 0; b < averaged[0].size(); ++b) {
      const torch::Tensor &exact = averaged[0][b], &rounded = averaged[1][b];
      CHECK(rounded.scalar_type() == torch::kFloat32);  // the optimiser keeps fp32 gradients
      // Each rank's value and each partial sum rounded once (relative 2^-9 each): a few ulps.
      const torch::Tensor scale = exact.abs().max().clamp_min(1e-30);
      const double gap = ((rounded - exact).abs().max() / scale).item<double>();
      worst = std::max(worst, gap);
      largest_gap = std::max(largest_gap, (rounded - exact).abs().max().item<double>());
      compared += exact.numel();
    }
    CHECK(worst < 1.0 / 64);
    CHECK(largest_gap > 0);  // it was rounded: bf16 really travelled
    CHECK(compared > 3000);  // every element of this rank's gradients (its slices under ZeRO-1)
    CHECK(bytes[0] > 0);
    CHECK(bytes[1] == bytes[0] / 2);  // half the bytes handed to the collectives
  }
}

// ---- ZeRO-1 ------------------------------------------------------------------------------------
namespace {
std::vector<std::string> zero_run(int steps) {
  return {"train.max_steps=" + std::to_string(steps),
          "train.warmup_steps=2",
          "data.valid=[]",
          "dist.bucket_mb=0.02",
          "train.lr=0.002",
          "train.clip_grad_norm=0.5"};
}
std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
}  // namespace

TEST_CASE("ZeRO-1 equals zero 0 within 1e-6 after 50 steps, optimiser state per rank is 1/N", "[mpi][zero]") {
  World& w = world();
  ResolvedConfig z0 = data().config("zero0", with(zero_run(50), {"train.zero=0"}));
  DistributedTraining d0(w, cpu_placement(), z0.config);
  Trainer t0(z0, cpu_placement(), d0.comms());
  t0.run();
  ResolvedConfig z1 = data().config("zero1", with(zero_run(50), {"train.zero=1", "dist.check_replicas_every=10"}));
  DistributedTraining d1(w, cpu_placement(), z1.config);
  Trainer t1(z1, cpu_placement(), d1.comms());
  t1.run();  // the replica check every 10 steps: the all-gathered parameters are identical everywhere
  std::string where;
  const double worst = max_relative_difference(params_of(t1), params_of(t0), where);
  INFO(w.size() << " ranks: largest relative difference " << worst << " in " << where);
  CHECK(worst < 1e-6);
  CHECK(t1.flat().sharded());
  // Every rank holds its slice of the moments: 1/N of zero 0's, up to the padding of each bucket.
  const double full = static_cast<double>(t0.optimizer().state_bytes());
  const double mine = static_cast<double>(t1.optimizer().state_bytes());
  const double padding = 2.0 * sizeof(float) * static_cast<double>(t1.flat().buckets().size());
  CHECK(mine <= full / w.size() + padding);
  CHECK(mine >= full / w.size());
  // The full state gathered from the slices equals zero 0's within the same tolerance.
  const OptimizerState s0 = t0.optimizer().state(), s1 = t1.optimizer().state();
  REQUIRE(s0.tensors.size() == s1.tensors.size());
  CHECK(s0.step == s1.step);
  for (size_t i = 0; i < s0.tensors.size(); ++i) {
    REQUIRE(s0.tensors[i].first == s1.tensors[i].first);
    const torch::Tensor &a = s0.tensors[i].second, &b = s1.tensors[i].second;
    CHECK(((a - b).abs().max() / (a.abs().max() + 1e-12)).item<double>() < 1e-5);
  }
}

TEST_CASE("ZeRO-1: stop and resume on the same world size is bitwise exact", "[mpi][zero]") {
  World& w = world();
  ResolvedConfig whole = data().config("zero-whole", with(zero_run(8), {"train.zero=1"}));
  DistributedTraining dw(w, cpu_placement(), whole.config);
  Trainer tw(whole, cpu_placement(), dw.comms());
  tw.run();
  // One run directory for all ranks (rank 0 writes the checkpoint every rank resumes from).
  ResolvedConfig parts =
      data().config("zero-parts", with(zero_run(8), {"train.zero=1", "run.dir=" + data().dir + "/zero-parts"}));
  {
    DistributedTraining d(w, cpu_placement(), parts.config);
    Trainer first(parts, cpu_placement(), d.comms());
    RunControl stop;
    stop.stop_after = 4;
    REQUIRE(first.run(stop).stopped_early);
  }
  DistributedTraining d(w, cpu_placement(), parts.config);
  Trainer second(parts, cpu_placement(), d.comms());
  RunControl resume;
  resume.resume = "auto";
  TrainOutcome out = second.run(resume);
  CHECK(out.start_step == 4);
  auto a = params_of(tw), b = params_of(second);
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
}

TEST_CASE("ZeRO-1: the parameters are complete when step() returns with nothing else called", "[mpi][zero]") {
  // Before: step() left the all-gather in flight and every reader (the next forward, evaluation,
  // checkpoints, replica checks) had to remember a sync_params() call. Read right after step():
  // a gather still in flight shows the previous values, lr-sized away from zero 0's.
  World& w = world();
  auto comm = mpi_comm();
  auto collectives = host();
  const BertConfig c = small_bert(30000, 64, 4, 64);
  struct Replica {
    BertForClassification model;
    std::unique_ptr<FlatParams> flat;
    std::unique_ptr<BucketedReducer> reducer;
    std::unique_ptr<Optimizer> optimizer;
  };
  auto build = [&](bool zero) {
    torch::manual_seed(11);
    Replica r{BertForClassification(c), nullptr, nullptr, nullptr};
    FlatOptions o;
    o.bucket_cap_bytes = 1 << 20;
    o.first_bucket_cap_bytes = 1 << 18;
    if (zero) o.zero = true, o.shards = w.size(), o.rank = w.rank();
    o.no_decay = no_weight_decay(*r.model);
    r.flat = std::make_unique<FlatParams>(named_parameters(*r.model), o);
    r.reducer = std::make_unique<BucketedReducer>(*r.flat, *comm, *collectives);
    r.optimizer = make_adamw(*r.flat, AdamWOptions{}, comm.get());
    return r;
  };
  Replica plain = build(false), sharded = build(true);
  REQUIRE(sharded.flat->sharded());
  auto train = [&](Replica& r, int step) {
    r.reducer->zero_grad();
    r.reducer->prepare_backward(true);
    torch::manual_seed(50 + step + 10 * w.rank());
    torch::Tensor ids = torch::randint(5, c.vocab_size, {4, 12}, torch::kLong);
    r.model->forward(ids, torch::ones_like(ids)).pow(2).sum().backward();
    r.reducer->finalize();
    // No clipping: both take the same update from the same averaged gradient.
    REQUIRE(r.optimizer->step(1e-2, std::numeric_limits<double>::infinity(), 1.0).applied);
  };
  int64_t compared = 0, expected = 0;
  for (int step = 0; step < 4; ++step) {
    train(plain, step);
    train(sharded, step);  // ... and read at once
    const NamedParameters a = named_parameters(*sharded.model), b = named_parameters(*plain.model);
    REQUIRE(a.size() == b.size());
    std::string where;
    const double worst = max_relative_difference(a, b, where);
    for (size_t i = 0; i < a.size(); ++i) compared += a[i].second.numel(), expected += b[i].second.numel();
    INFO("step " << step + 1 << ", " << w.size() << " ranks: largest relative difference " << worst << " in " << where);
    CHECK(worst < 1e-6);
  }
  CHECK(compared == expected);
  CHECK(compared > 4 * 30000 * 64);  // every parameter of four steps, the word embeddings included
}

TEST_CASE("ZeRO-1 state moves between shardings: gathered, loaded into 1 rank or N ranks, unchanged", "[mpi][zero]") {
  World& w = world();
  auto comm = mpi_comm();
  auto collectives = host();
  const BertConfig c = small_bert(50, 16, 2, 32);
  auto build = [&](BertForClassification& m, bool zero) {
    NamedParameters params = named_parameters(*m);
    FlatOptions o;
    o.bucket_cap_bytes = 3000;  // several buckets, most not a multiple of the world size
    o.first_bucket_cap_bytes = 1000;
    if (zero) o.zero = true, o.shards = w.size(), o.rank = w.rank();
    o.no_decay = no_weight_decay(*m);
    return std::make_unique<FlatParams>(params, o);
  };
  torch::manual_seed(11);
  BertForClassification sharded_model(c);
  auto sharded_flat = build(sharded_model, true);
  BucketedReducer reducer(*sharded_flat, *comm, *collectives);
  auto sharded = make_adamw(*sharded_flat, AdamWOptions{}, comm.get());
  for (int step = 0; step < 3; ++step) {
    reducer.zero_grad();
    reducer.prepare_backward(true);
    torch::manual_seed(50 + step + 10 * w.rank());
    torch::Tensor ids = torch::randint(5, 50, {2, 8}, torch::kLong);
    sharded_model->forward(ids, torch::ones_like(ids)).pow(2).sum().backward();
    reducer.finalize();
    REQUIRE(sharded->step(1e-2, 1.0, 1.0).applied);
  }
  const OptimizerState gathered = sharded->state();  // collective
  CHECK(gathered.step == 3);
  // Into one plain process (zero 0): its state reads back bit for bit.
  BertForClassification single_model(c);
  auto single_flat = build(single_model, false);
  auto single = make_adamw(*single_flat, AdamWOptions{}, nullptr);
  single->load_state(gathered, "gathered");
  const OptimizerState back = single->state();
  REQUIRE(back.tensors.size() == gathered.tensors.size());
  for (size_t i = 0; i < back.tensors.size(); ++i)
    CHECK(torch::equal(back.tensors[i].second, gathered.tensors[i].second));
  // ... and from zero 0 back into N slices: the same again.
  BertForClassification again_model(c);
  auto again_flat = build(again_model, true);
  auto again = make_adamw(*again_flat, AdamWOptions{}, comm.get());
  again->load_state(back, "back");
  const OptimizerState round = again->state();
  for (size_t i = 0; i < round.tensors.size(); ++i)
    CHECK(torch::equal(round.tensors[i].second, gathered.tensors[i].second));
  CHECK(round.step == 3);
}
