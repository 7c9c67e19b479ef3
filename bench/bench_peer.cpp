// The modtrain side of the PyTorch peer comparison (bench/peer/pytorch_ddp.py does the same work in
// PyTorch eager + DDP over gloo; scripts/bench_peer.sh alternates the two and writes the ratio), and
// the optimiser benchmark (scripts/bench_optimizer.sh: per-tensor vs flat AdamW, zero 0 vs 1).
// The work: the tiny BERT (2 layers, hidden 128, 2 heads, intermediate 512, vocab 30,522, 7
// labels) or BERT-base (--preset base), no dropout, 32 records x 64 tokens per rank, every token
// real, masked BCE, backward, gradient average over ranks (modtrain's bucketed reducer over MPI at
// 2+ ranks), clip to norm 1, AdamW (lr 1e-4, weight decay 0.01); one thread per rank, OpenBLAS
// at one thread. --optimizer flat (modtrain's: flat buffers, one fused pass) or per_tensor
// (LibTorch's torch::optim::AdamW + clip_grad_norm_, what modtrain used before); --zero 1 shards it.
// Besides samples/s: the optimiser's time per step (clip + update, and the ZeRO-1 all-gather), the
// ATen operators it dispatches (counted on one extra, untimed step) and its state bytes per rank.
// Usage: mpiexec -np R modtrain_bench_peer [--steps N] [--preset tiny|base] [--optimizer flat|per_tensor]
//        [--zero 0|1] [--batch B] [--seq T] [--out FILE] [--profile TRACE.json]; rank 0 writes the JSON
//        (and with --profile, at one rank, a Chrome trace of five more steps). The malloc thresholds are
//        set as `modtrain` sets them (MODTRAIN_CPU_TUNING=off for glibc's defaults).
#include <torch/torch.h>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>

#include "bench_common.h"
#include "modtrain/core/cpu_runtime.h"
#include "modtrain/dist/bucketed_reducer.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/device.h"
#include "modtrain/model/bert.h"
#include "modtrain/model/model.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/optimizer.h"

using namespace modtrain;

namespace {
double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
std::atomic<int64_t> g_ops{0};
std::atomic<bool> g_counting{false};
}  // namespace

int main(int argc, char** argv) {
  modtrain::tune_cpu_runtime();  // as `modtrain` does first (core/cpu_runtime.h); the peer gets GLIBC_TUNABLES
  World world;
  int64_t steps = 30, batch = 32, seq = 64;
  int zero = 0;
  bool sparse = true;
  std::string out, preset = "tiny", optimizer_kind = "flat", profile;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--steps") steps = std::stoll(v);
    else if (k == "--out") out = v;
    else if (k == "--preset") preset = v;
    else if (k == "--optimizer") optimizer_kind = v;
    else if (k == "--zero") zero = std::stoi(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--seq") seq = std::stoll(v);
    else if (k == "--profile") profile = v;
    else if (k == "--sparse-embedding") sparse = v == "1";
  }
  if (optimizer_kind != "flat" && optimizer_kind != "per_tensor") {
    std::fprintf(stderr, "--optimizer: flat or per_tensor\n");
    return 2;
  }
  BertConfig c;
  c.vocab_size = 30522;
  c.num_labels = 7;
  if (preset == "tiny") c.hidden = 128, c.layers = 2, c.heads = 2, c.intermediate = 512;
  c.hidden_dropout = c.attention_dropout = 0;
  c.sparse_embedding_grad = sparse;  // what the trainer does on CPU (--sparse-embedding 0: dense, as PyTorch)
  torch::set_num_threads(1);
  const int blas = set_blas_threads(1, static_cast<int>(c.hidden), 1);
  torch::manual_seed(0);  // the same initial weights everywhere (the reducer broadcasts rank 0's anyway)
  BertForClassification model(c);
  model->train();
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Collectives> collectives;
  if (world.size() > 1 || zero == 1) {
    comm = make_mpi_communicator(world, {120.0, nullptr});
    collectives = make_mpi_collectives(world, 120.0);
  }
  NamedParameters params = named_parameters(*model);
  FlatOptions flat_options;
  if (zero == 1) flat_options.zero = true, flat_options.shards = world.size(), flat_options.rank = world.rank();
  flat_options.no_decay = no_weight_decay(*model);
  FlatParams flat(params, flat_options);
  std::unique_ptr<GradientReducer> reducer;
  if (comm) reducer = std::make_unique<BucketedReducer>(flat, *comm, *collectives);
  else reducer = std::make_unique<LocalReducer>(flat);
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<torch::optim::AdamW> per_tensor;
  size_t state_bytes = 0;
  if (optimizer_kind == "flat") {
    optimizer = make_adamw(flat, AdamWOptions{}, comm.get());
  } else {
    if (zero == 1) {
      std::fprintf(stderr, "--zero 1 needs --optimizer flat\n");
      return 2;
    }
    per_tensor = make_per_tensor_adamw(params, 1e-4, 0.01, flat_options.no_decay);
  }
  double gather_s = 0;  // ZeRO-1: waiting for the parameter all-gather (communication, not update)
  auto update = [&] {
    if (optimizer) {
      // The all-gather is waited for inside step(): counted in the optimiser's time, and on its own as gather_ms.
      gather_s += optimizer->step(1e-4, 1.0, 1.0).gather_wait_s;
    } else {
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      per_tensor->step();
    }
  };
  torch::manual_seed(1 + world.rank());  // each rank its own records
  torch::Tensor ids = torch::randint(5, c.vocab_size, {batch, seq}, torch::kInt64);
  torch::Tensor mask = torch::ones({batch, seq}, torch::kInt64);
  torch::Tensor labels = (torch::rand({batch, c.num_labels}) < 0.1).to(torch::kFloat32);
  torch::Tensor label_mask = torch::ones({batch, c.num_labels});
  auto forward_backward = [&] {
    reducer->zero_grad();
    torch::Tensor loss = classification_loss(model->forward(ids, mask), labels, label_mask, {});
    reducer->prepare_backward(true);
    loss.backward();
    reducer->finalize();
  };
  double start = 0, optimizer_s = 0, main_cpu = 0, process_cpu = 0;
  for (int64_t step = -3; step < steps; ++step) {  // 3 warm-up steps
    if (step == 0) {
      world.barrier();
      start = bench::now_seconds();
      main_cpu = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
      process_cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    }
    forward_backward();
    const double t0 = bench::now_seconds();
    update();
    if (step >= 0) optimizer_s += bench::now_seconds() - t0;
    if (step == -1) gather_s = 0;  // the warm-up steps do not count
  }
  const double timed_gather_s = gather_s;
  // CPU time of the threads besides this one (MPI's communication thread, OpenBLAS's) per step: on
  // one core per rank it is taken from the compute thread.
  const double helper_cpu_ms =
      1e3 *
      ((cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - process_cpu) - (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - main_cpu)) /
      static_cast<double>(steps);
  world.barrier();
  const double seconds = bench::now_seconds() - start;
  if (!profile.empty() && world.is_root()) {  // five more steps under LibTorch's profiler (a Chrome trace)
    torch::autograd::profiler::RecordProfile guard(profile);
    for (int i = 0; i < 5; ++i) {
      forward_backward();
      update();
    }
  }
  // One more step, untimed, with every dispatched ATen operator of the update counted.
  forward_backward();
  auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction&) -> std::unique_ptr<at::ObserverContext> {
        if (g_counting) ++g_ops;
        return nullptr;
      }).scopes({at::RecordScope::FUNCTION}));
  g_counting = true;
  update();
  g_counting = false;
  at::removeCallback(handle);
  if (optimizer) state_bytes = optimizer->state_bytes();
  else
    for (const auto& p : params) state_bytes += 2 * static_cast<size_t>(p.second.numel()) * sizeof(float);
  const double samples_per_s = static_cast<double>(world.size() * batch * steps) / seconds;
  const double step_ms = 1e3 * seconds / static_cast<double>(steps);
  const double optimizer_ms = 1e3 * optimizer_s / static_cast<double>(steps);
  const double gather_ms = 1e3 * timed_gather_s / static_cast<double>(steps);
  if (world.is_root()) {
    std::printf(
        "modtrain %s %s zero %d: %d rank(s), %.1f samples/s (%.1f ms per step, optimiser %.2f ms = %.1f%%, %lld "
        "operators in %zu buffers, state %.2f MB per rank; other threads %.2f ms CPU per step)\n",
        preset.c_str(), optimizer_kind.c_str(), zero, world.size(), samples_per_s, step_ms, optimizer_ms,
        100 * optimizer_ms / step_ms, static_cast<long long>(g_ops.load()), flat.buckets().size(),
        static_cast<double>(state_bytes) / 1e6, helper_cpu_ms);
    if (!out.empty())
      bench::write_result(out, {{"benchmark", "peer_modtrain"},
                                {"machine", bench::machine()},
                                {"cpu", modtrain::cpu_runtime_summary()},
                                {"preset", preset},
                                {"optimizer", optimizer_kind},
                                {"zero", zero},
                                {"ranks", world.size()},
                                {"batch", batch},
                                {"seq", seq},
                                {"blas_threads", blas},
                                {"steps", steps},
                                {"samples_per_s", samples_per_s},
                                {"step_ms", step_ms},
                                {"optimizer_ms", optimizer_ms},
                                {"optimizer_share", optimizer_ms / step_ms},
                                {"gather_ms", gather_ms},
                                {"update_ms", optimizer_ms - gather_ms},
                                {"optimizer_ops", g_ops.load()},
                                {"flat_buffers", flat.buckets().size()},
                                {"tensors", params.size()},
                                {"optimizer_state_bytes_per_rank", state_bytes},
                                {"helper_threads_cpu_ms_per_step", helper_cpu_ms}});
  }
  return 0;
}
