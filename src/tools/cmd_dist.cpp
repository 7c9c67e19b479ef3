// `modtrain dist selftest`: what a user runs on first access to a multi-GPU node or a cluster, to
// know that the install is sound before a long job (README: launching on a cluster). Launched like training
// (mpirun -np N modtrain dist selftest, or srun), over the backend and devices the config picks:
//  1. correctness of every collective the training uses (all-reduce sum and average, broadcast,
//     all-gather, reduce-scatter, the in-place chunk all-gather of ZeRO-1 and its grouped form,
//     barrier) against closed forms that depend on the world size, for every dtype the backend
//     carries and for sizes that are not multiples of anything (1, 1000, 2^20 + 3 elements);
//  2. all-reduce bus bandwidth per message size (nccl-tests' definitions: algbw = bytes / time,
//     busbw = algbw x 2(n-1)/n), compared with a nominal figure when one is given;
//  3. a few data-parallel training steps of a small BERT through the real reducer and flat AdamW
//     (ZeRO-1 when train.zero = 1), whose weights must equal one process training the same global
//     batch alone;
//  4. one summary line (PASS or FAIL and the figures), and exit 0 only on PASS.
// It runs at world size 1 too (inside the GPU check, and in CI at 1, 2 and 3 ranks over MPI).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/dist/bucketed_reducer.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/flat_params.h"
#include "modtrain/dist/guard.h"
#include "modtrain/dist/startup.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/io/files.h"
#include "modtrain/model/bert.h"
#include "modtrain/model/model.h"
#include "modtrain/train/optimizer.h"

namespace modtrain::tools {
namespace {

struct SelftestFlags {
  ConfigFlags config;
  double max_mb = 64;
  double nominal_busbw = 0;  // GB/s; 0 = no nominal figure to compare with
  double min_fraction = 0.5;
  int steps = 3;
  std::string json;
};

// ---- 1. correctness -------------------------------------------------------------------------------

// Counts comparisons and the ones that failed, with the first few failures described.
struct Tally {
  int64_t checks = 0, failed = 0;
  std::vector<std::string> first_failures;
  void expect(bool ok, const std::string& what) {
    ++checks;
    if (ok) return;
    ++failed;
    if (first_failures.size() < 5) first_failures.push_back(what);
  }
};

bool close_to(const torch::Tensor& got, const torch::Tensor& want, double rel) {
  const torch::Tensor g = got.to(torch::kCPU).to(torch::kFloat64), w = want.to(torch::kCPU).to(torch::kFloat64);
  if (g.sizes() != w.sizes()) return false;
  if (rel == 0) return torch::equal(g, w);
  return ((g - w).abs() <= rel * w.abs().clamp_min(1.0)).all().item<bool>();
}

std::string dtype_name(torch::ScalarType t) { return c10::toString(t); }

Tally check_collectives(Communicator& comm, const torch::TensorOptions& on) {
  Tally tally;
  const int64_t n = comm.size(), r = comm.rank();
  const double triangle = static_cast<double>(n * (n + 1) / 2);
  std::vector<torch::ScalarType> dtypes = {torch::kFloat32, torch::kFloat64, torch::kInt64};
  // bf16: what dist.grad_reduce_dtype sends (MPI: the user-defined sum); fp16: NCCL only.
  dtypes.push_back(torch::kBFloat16);
  if (comm.backend() == "nccl") dtypes.push_back(torch::kFloat16);
  for (auto dtype : dtypes) {
    const bool half = dtype == torch::kBFloat16 || dtype == torch::kFloat16;
    const bool integral = dtype == torch::kInt64;
    // fp32 sums of integers are exact below 2^24; past that (thousands of ranks), within rounding.
    const double rel = half ? 1e-2 : (dtype == torch::kFloat32 ? 1e-6 : 0);
    for (int64_t size : {int64_t{1}, int64_t{1000}, (int64_t{1} << 20) + 3}) {
      if (half && size > 1000) continue;
      const std::string tag = dtype_name(dtype) + " x " + std::to_string(size);
      const torch::Tensor i = torch::arange(size, torch::kFloat64);
      const torch::Tensor pattern = i.remainder(half ? 2 : 5) + (half ? 0 : 1);  // half: 0/1, exact sums
      // all-reduce sum: rank q contributes (q + 1) x pattern (half: pattern) -> closed form
      torch::Tensor t = (half ? pattern : pattern * static_cast<double>(r + 1)).to(on.dtype(dtype));
      comm.all_reduce(t, ReduceOp::kSum, "selftest all_reduce");
      const torch::Tensor sum = half ? pattern * static_cast<double>(n) : pattern * triangle;
      tally.expect(close_to(t, sum, rel), "all_reduce sum " + tag);
      // average: every rank contributes the same values -> themselves (integers: truncated mean)
      torch::Tensor a = pattern.to(on.dtype(dtype));
      comm.all_reduce(a, ReduceOp::kAvg, "selftest all_reduce avg");
      tally.expect(close_to(a, pattern, integral ? 0 : rel), "all_reduce avg " + tag);
      // broadcast from the last rank
      torch::Tensor b = (pattern * static_cast<double>(r == n - 1 ? 1 : 0)).to(on.dtype(dtype));
      comm.broadcast(b, static_cast<int>(n - 1), "selftest broadcast");
      tally.expect(close_to(b, pattern, 0), "broadcast " + tag);
    }
  }
  const auto f32 = on.dtype(torch::kFloat32);
  // all-gather: rank q sends [q, 2q, 3q]
  torch::Tensor g = comm.all_gather(torch::tensor({1.0, 2.0, 3.0}, torch::kFloat64).mul(static_cast<double>(r)).to(f32),
                                    "selftest all_gather");
  const torch::Tensor ranks = torch::arange(n, torch::kFloat64).unsqueeze(1);
  tally.expect(close_to(g, ranks * torch::tensor({1.0, 2.0, 3.0}, torch::kFloat64), 0), "all_gather");
  for (int64_t k : {int64_t{1}, int64_t{777}}) {
    // reduce-scatter: element e of the [n k] input is (q + 1) + e % 3 on rank q; rank r receives
    // elements [r k, (r + 1) k) of the sum: n(n+1)/2 + n (e % 3)
    const torch::Tensor e = torch::arange(n * k, torch::kFloat64);
    torch::Tensor input = (e.remainder(3) + static_cast<double>(r + 1)).to(f32), output = torch::zeros({k}, f32);
    comm.reduce_scatter_async(input, output, ReduceOp::kSum, "selftest reduce_scatter")->wait();
    const torch::Tensor mine = e.narrow(0, r * k, k);
    tally.expect(close_to(output, mine.remainder(3) * static_cast<double>(n) + triangle, 1e-6),
                 "reduce_scatter k=" + std::to_string(k));
    // ZeRO-1's in-place gather: rank q fills its chunk with q + 1, and every chunk arrives
    auto filled = [&] {
      torch::Tensor c = torch::zeros({n * k}, f32);
      c.narrow(0, r * k, k).fill_(static_cast<double>(r + 1));
      return c;
    };
    const torch::Tensor expected = (torch::arange(n, torch::kFloat64) + 1).repeat_interleave(k);
    torch::Tensor c = filled();
    comm.all_gather_chunks_async(c, "selftest all_gather_chunks")->wait();
    tally.expect(close_to(c, expected, 0), "all_gather_chunks k=" + std::to_string(k));
    std::vector<torch::Tensor> group = {filled(), filled()};
    comm.all_gather_chunks_group_async(group, "selftest grouped all_gather_chunks")->wait();
    for (const auto& t : group)
      tally.expect(close_to(t, expected, 0), "grouped all_gather_chunks k=" + std::to_string(k));
  }
  comm.barrier("selftest barrier");
  tally.expect(true, "barrier");
  return tally;
}

// ---- 2. bandwidth ---------------------------------------------------------------------------------

struct BandwidthRow {
  size_t bytes;
  double time_us, algbw, busbw;
};

std::vector<BandwidthRow> measure_bandwidth(Communicator& comm, Collectives& collectives,
                                            const torch::TensorOptions& on, double max_mb) {
  std::vector<BandwidthRow> rows;
  const double n = comm.size();
  const size_t max_bytes = static_cast<size_t>(max_mb * 1024 * 1024);
  for (size_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
    torch::Tensor t = torch::ones({static_cast<int64_t>(bytes / 4)}, on.dtype(torch::kFloat32));
    const int iterations = bytes < (1u << 20) ? 20 : 5;  // the same count on every rank
    comm.all_reduce(t, ReduceOp::kSum, "selftest warm-up");
    comm.barrier("selftest bandwidth");
    const double start = Timeline::now_us();
    for (int i = 0; i < iterations; ++i) comm.all_reduce(t, ReduceOp::kSum, "selftest bandwidth");
    std::vector<double> seconds = {(Timeline::now_us() - start) / 1e6 / iterations};
    std::vector<std::vector<double>> all = collectives.all_gather(seconds, "selftest timing");
    double slowest = 0;
    for (const auto& v : all) slowest = std::max(slowest, v[0]);  // a collective ends with its slowest rank
    const double algbw = static_cast<double>(bytes) / slowest / 1e9;
    rows.push_back({bytes, slowest * 1e6, algbw, algbw * 2 * (n - 1) / n});
  }
  return rows;
}

// ---- 3. training steps against one process --------------------------------------------------------

struct TrainCheck {
  int steps = 0;
  int64_t compared = 0;  // parameter elements compared
  double max_diff = 0, max_abs = 0;
  // Adam (and clipping) are blind to the gradient's scale: a sum where the mean belongs would train
  // the same weights. The global gradient norms before clipping are compared too.
  double worst_norm_ratio = 0;
  bool ok = false;
};

TrainCheck check_training(Communicator& comm, Collectives& collectives, const torch::Device& device, bool zero,
                          int steps) {
  BertConfig c;
  c.vocab_size = 120;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 2;
  c.intermediate = 64;
  c.max_positions = 32;
  c.num_labels = 3;
  c.hidden_dropout = c.attention_dropout = 0;
  c.use_sdpa = false;  // the plain attention: the same kernels on every device
  const int64_t n = comm.size(), r = comm.rank(), per_rank = 4, length = 12;
  auto make_model = [&] {
    torch::manual_seed(31);
    BertForClassification m(c);
    m->to(device);
    return m;
  };
  BertForClassification mine = make_model(), alone = make_model();
  FlatOptions fo;
  fo.zero = zero;
  fo.shards = zero ? static_cast<int>(n) : 1;
  fo.rank = zero ? static_cast<int>(r) : 0;
  fo.bucket_cap_bytes = 16u << 10;  // several buckets even for this small model
  fo.first_bucket_cap_bytes = 4u << 10;
  fo.no_decay = no_weight_decay(*mine);
  FlatOptions alone_options;
  alone_options.no_decay = fo.no_decay;
  FlatParams flat(named_parameters(*mine), fo), flat_alone(named_parameters(*alone), alone_options);
  BucketedReducer reducer(flat, comm, collectives);
  LocalReducer reducer_alone(flat_alone);
  AdamWOptions ao;
  auto optimizer = make_adamw(flat, ao, &comm);
  auto optimizer_alone = make_adamw(flat_alone, ao, nullptr);
  TrainCheck out;
  for (int step = 0; step < steps; ++step) {
    // The global batch, the same on every rank (a seeded generator), n x per_rank records.
    torch::manual_seed(1000 + step);
    torch::Tensor ids = torch::randint(5, c.vocab_size, {n * per_rank, length}, torch::kInt64);
    torch::Tensor lengths = torch::randint(3, length + 1, {n * per_rank, 1}, torch::kInt64);
    torch::Tensor mask = torch::arange(length, torch::kInt64).unsqueeze(0).lt(lengths).to(torch::kInt64);
    ids = ids * mask;
    torch::Tensor labels = torch::randint(0, 2, {n * per_rank, c.num_labels}, torch::kFloat32);
    auto loss_of = [&](BertForClassification& m, int64_t from, int64_t count) {
      torch::Tensor logits = m->forward(ids.narrow(0, from, count).to(device), mask.narrow(0, from, count).to(device));
      return torch::binary_cross_entropy_with_logits(logits, labels.narrow(0, from, count).to(device));
    };
    reducer.zero_grad();
    reducer.prepare_backward(true);
    loss_of(mine, r * per_rank, per_rank).backward();  // the reducer averages over ranks: the global mean
    reducer.finalize();
    const double norm = optimizer->step(1e-3, 1.0, 1.0).grad_norm;
    reducer_alone.zero_grad();
    reducer_alone.prepare_backward(true);
    loss_of(alone, 0, n * per_rank).backward();
    reducer_alone.finalize();
    const double norm_alone = optimizer_alone->step(1e-3, 1.0, 1.0).grad_norm;
    out.worst_norm_ratio = std::max(out.worst_norm_ratio, std::abs(norm / norm_alone - 1.0));
    ++out.steps;
  }
  auto a = named_parameters(*mine), b = named_parameters(*alone);
  for (size_t i = 0; i < a.size(); ++i) {
    const torch::Tensor x = a[i].second.detach().to(torch::kCPU), y = b[i].second.detach().to(torch::kCPU);
    out.max_diff = std::max(out.max_diff, (x - y).abs().max().item<double>());
    out.max_abs = std::max(out.max_abs, y.abs().max().item<double>());
    out.compared += y.numel();
  }
  // The worst rank decides: every rank checked its own replica.
  std::vector<std::vector<double>> all =
      collectives.all_gather(std::vector<double>{out.max_diff, out.worst_norm_ratio}, "selftest weights");
  for (const auto& v : all) {
    out.max_diff = std::max(out.max_diff, v[0]);
    out.worst_norm_ratio = std::max(out.worst_norm_ratio, v[1]);
  }
  // Sums in another order (rank-partial means, then their mean) differ in the last bits: 1e-5 of
  // the weights' scale after a few steps; a wrong reduction (a sum for a mean, a rank left out, a
  // stale ZeRO slice) is off by the learning rate, 1e-3, and more.
  out.ok = out.compared > 0 && out.max_diff <= 1e-5 * std::max(1.0, out.max_abs) && out.worst_norm_ratio <= 1e-5;
  return out;
}

std::string format_bytes(size_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

int selftest(const SelftestFlags& flags) {
  World world;
  return run_guarded(world, [&] {
    ResolvedConfig resolved = resolve_config_on_all_ranks(world, flags.config.path, flags.config.overrides);
    const Config& config = resolved.config;
    Placement placement = place_rank(world, config.dist);
    watchdog::arm(world, agree_on_placement(world, placement, config.dist.allow_uneven_nodes), "");
    auto comm = make_communicator(config.dist.backend, world, placement, {config.dist.timeout_s, nullptr});
    auto collectives = make_mpi_collectives(world, config.dist.timeout_s);
    const torch::Device device = placement.cuda
                                     ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(placement.cuda_index))
                                     : torch::Device(torch::kCPU);
    const auto on = torch::TensorOptions().device(device);
    const std::vector<std::string> hosts = world.all_gather(world.hostname());
    const size_t nodes = std::set<std::string>(hosts.begin(), hosts.end()).size();
    if (world.is_root())
      log::info("dist selftest: " + std::to_string(world.size()) + " rank(s) on " + std::to_string(nodes) +
                " node(s), data plane " + comm->backend() + ", rank 0 on " + placement.describe());

    // 1. correctness, summed over ranks
    Tally tally = check_collectives(*comm, on);
    std::vector<double> counts = {static_cast<double>(tally.checks), static_cast<double>(tally.failed)};
    collectives->sum(counts, "selftest counts");
    const auto checks = static_cast<int64_t>(counts[0]), failed = static_cast<int64_t>(counts[1]);
    for (const auto& f : tally.first_failures)
      log::error("selftest: rank " + std::to_string(world.rank()) + " on " + world.hostname() + ": " + f +
                 " differs from its closed form");
    // 2. bandwidth
    std::vector<BandwidthRow> rows = measure_bandwidth(*comm, *collectives, on, flags.max_mb);
    // 3. training
    TrainCheck train = check_training(*comm, *collectives, device, config.train.zero == 1, flags.steps);

    const BandwidthRow& top = rows.back();
    bool bandwidth_ok = true;
    std::ostringstream bw;
    if (world.size() == 1) {
      bw << "bus bandwidth n/a at one rank (no link; algbw " << std::fixed;
      bw.precision(1);
      bw << top.algbw << " GB/s at " << format_bytes(top.bytes) << ")";
    } else {
      bw << std::fixed;
      bw.precision(1);
      bw << "busbw " << top.busbw << " GB/s at " << format_bytes(top.bytes);
      if (flags.nominal_busbw > 0) {
        const double fraction = top.busbw / flags.nominal_busbw;
        bandwidth_ok = fraction >= flags.min_fraction;
        bw << " = " << static_cast<int>(std::lround(100 * fraction)) << "% of nominal " << flags.nominal_busbw
           << " GB/s" << (bandwidth_ok ? "" : " (below --min-fraction)");
      } else {
        bw << " (no --nominal-busbw given to compare with)";
      }
    }
    const bool collectives_ok = failed == 0 && checks > 0;
    const bool pass = collectives_ok && bandwidth_ok && train.ok;
    if (world.is_root()) {
      std::printf("%12s %12s %12s %12s\n", "bytes", "time (us)", "algbw GB/s", "busbw GB/s");
      for (const auto& row : rows)
        std::printf("%12zu %12.1f %12.3f %12.3f\n", row.bytes, row.time_us, row.algbw, row.busbw);
      std::printf(
          "selftest: %s: %s, %d rank(s) on %zu node(s): collectives %lld/%lld equal to their closed forms; %s; "
          "%d training steps%s %s one process (max |dw| %.1e over %lld weights, gradient norms within %.1e)\n",
          pass ? "PASS" : "FAIL", comm->backend().c_str(), world.size(), nodes, static_cast<long long>(checks - failed),
          static_cast<long long>(checks), bw.str().c_str(), train.steps, config.train.zero == 1 ? " (ZeRO-1)" : "",
          train.ok ? "equal to" : "DIFFER from", train.max_diff, static_cast<long long>(train.compared),
          train.worst_norm_ratio);
      std::fflush(stdout);
      if (!flags.json.empty()) {
        nlohmann::json j = {{"pass", pass},
                            {"backend", comm->backend()},
                            {"ranks", world.size()},
                            {"nodes", nodes},
                            {"collective_checks", checks},
                            {"collective_failures", failed},
                            {"train_steps", train.steps},
                            {"train_max_abs_diff", train.max_diff},
                            {"train_weights_compared", train.compared},
                            {"train_grad_norm_max_rel_diff", train.worst_norm_ratio},
                            {"nominal_busbw_GBps", flags.nominal_busbw},
                            {"bandwidth", nlohmann::json::array()}};
        for (const auto& row : rows)
          j["bandwidth"].push_back(
              {{"bytes", row.bytes}, {"time_us", row.time_us}, {"algbw_GBps", row.algbw}, {"busbw_GBps", row.busbw}});
        io::write_file_atomic(flags.json, j.dump(2) + "\n");
      }
    }
    comm->close();
    return pass ? kExitOk : kExitRuntime;
  });
}

}  // namespace

void add_dist_commands(CLI::App& app, Action& action) {
  CLI::App* dist = app.add_subcommand("dist", "Check the distributed set-up");
  auto flags = std::make_shared<SelftestFlags>();
  CLI::App* s = dist->add_subcommand(
      "selftest",
      "Collectives against closed forms, bus bandwidth, and training steps against one process, on the backend "
      "and devices the config picks (launch like training: mpirun -np N / srun)");
  add_config_flags(*s, flags->config);
  s->add_option("--max-mb", flags->max_mb, "Largest all-reduce message measured, in MiB")
      ->check(CLI::Range(0.001, 4096.0));
  s->add_option("--nominal-busbw", flags->nominal_busbw,
                "The interconnect's nominal all-reduce bus bandwidth in GB/s (nccl-tests' busbw), to compare with")
      ->check(CLI::NonNegativeNumber);
  s->add_option("--min-fraction", flags->min_fraction, "Fail when busbw is below this fraction of --nominal-busbw")
      ->check(CLI::Range(0.0, 1.0));
  s->add_option("--steps", flags->steps, "Training steps compared with one process")->check(CLI::Range(1, 100));
  s->add_option("--json", flags->json, "Also write the figures as JSON (rank 0)")->type_name("FILE");
  s->callback([&action, flags] { action = [flags] { return selftest(*flags); }; });
}

}  // namespace modtrain::tools
