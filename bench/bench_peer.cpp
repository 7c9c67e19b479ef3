// The modtrain side of the PyTorch peer comparison (bench/peer/pytorch_ddp.py does the same work in
// PyTorch eager + DDP over gloo; scripts/bench_peer.sh alternates the two and writes the ratio).
// The work: the tiny BERT (2 layers, hidden 128, 2 heads, intermediate 512, vocab 30,522, 7
// labels), no dropout, 32 records x 64 tokens per rank, every token real, masked BCE, backward,
// gradient average over ranks (modtrain's bucketed reducer over MPI at 2+ ranks), clip to norm 1,
// AdamW (lr 1e-4, weight decay 0.01); one thread per rank, OpenBLAS at one thread.
// Usage: mpiexec -np R modtrain_bench_peer [--steps N] [--out FILE]; rank 0 writes the JSON.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "bench_common.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/grad_reducer.h"
#include "modtrain/model/bert.h"
#include "modtrain/train/loss.h"

using namespace modtrain;

int main(int argc, char** argv) {
  World world;
  int64_t steps = 30;
  std::string out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--steps") steps = std::stoll(v);
    else if (k == "--out") out = v;
  }
  const int64_t batch = 32, seq = 64;
  BertConfig c;
  c.vocab_size = 30522;
  c.num_labels = 7;
  c.hidden = 128, c.layers = 2, c.heads = 2, c.intermediate = 512;
  c.hidden_dropout = c.attention_dropout = 0;
  torch::set_num_threads(1);
  const int blas = set_blas_threads(1, static_cast<int>(c.hidden), 1);
  torch::manual_seed(0);  // the same initial weights everywhere (the reducer broadcasts rank 0's anyway)
  BertForClassification model(c);
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Collectives> collectives;
  std::unique_ptr<GradientReducer> reducer;
  if (world.size() > 1) {
    comm = make_mpi_communicator(world, {120.0, nullptr});
    collectives = make_mpi_collectives(world, 120.0);
    NamedParameters params;
    for (const auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
    reducer = std::make_unique<GradReducer>(params, *comm, *collectives, ReducerOptions{});
  } else {
    reducer = std::make_unique<LocalReducer>(model->parameters());
  }
  torch::manual_seed(1 + world.rank());  // each rank its own records
  torch::Tensor ids = torch::randint(5, c.vocab_size, {batch, seq}, torch::kInt64);
  torch::Tensor mask = torch::ones({batch, seq}, torch::kInt64);
  torch::Tensor labels = (torch::rand({batch, c.num_labels}) < 0.1).to(torch::kFloat32);
  torch::Tensor label_mask = torch::ones({batch, c.num_labels});
  double start = 0;
  for (int64_t step = -3; step < steps; ++step) {  // 3 warm-up steps
    if (step == 0) {
      world.barrier();
      start = bench::now_seconds();
    }
    reducer->zero_grad();
    torch::Tensor loss = classification_loss(model->forward(ids, mask), labels, label_mask, {});
    reducer->prepare_backward(true);
    loss.backward();
    reducer->finalize();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
  }
  world.barrier();
  const double seconds = bench::now_seconds() - start;
  const double samples_per_s = static_cast<double>(world.size() * batch * steps) / seconds;
  if (world.is_root()) {
    std::printf("modtrain: %d rank(s), %.1f samples/s (%.1f ms per step)\n", world.size(), samples_per_s,
                1e3 * seconds / static_cast<double>(steps));
    if (!out.empty())
      bench::write_result(out, {{"benchmark", "peer_modtrain"},
                                {"machine", bench::machine()},
                                {"ranks", world.size()},
                                {"blas_threads", blas},
                                {"steps", steps},
                                {"samples_per_s", samples_per_s}});
  }
  return 0;
}
