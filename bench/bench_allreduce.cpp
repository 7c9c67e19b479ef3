// All-reduce bandwidth of the communicator over message sizes, with the nccl-tests definitions:
// algbw = bytes / time, busbw = algbw x 2(n-1)/n (what each link carries in a ring all-reduce).
// Run under mpiexec: mpiexec -np 2 modtrain_bench_allreduce [--backend mpi|nccl] [--out FILE]
#include <cstdio>
#include <cstring>

#include "bench_common.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/device.h"

using namespace modtrain;

int main(int argc, char** argv) {
  std::string out = "bench/results/allreduce.json", backend = "mpi";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    if (!std::strcmp(argv[i], "--backend")) backend = argv[i + 1];
  }
  World world;
  DistConfig dist;
  dist.device = backend == "nccl" ? DeviceKind::kCuda : DeviceKind::kCpu;
  Placement placement = place_rank(world, dist);
  auto comm = make_communicator(backend == "nccl" ? Backend::kNccl : Backend::kMpi, world, placement, {60.0, nullptr});
  auto collectives = make_mpi_collectives(world, 60.0);  // host timings: the control plane
  const double n = world.size();
  nlohmann::json rows = nlohmann::json::array();
  for (size_t bytes = 1024; bytes <= (64u << 20); bytes *= 4) {
    auto options = torch::TensorOptions().dtype(torch::kFloat32);
    if (placement.cuda) options = options.device(torch::kCUDA, placement.cuda_index);
    torch::Tensor t = torch::ones({static_cast<int64_t>(bytes / 4)}, options);
    int iterations = bytes < (1u << 20) ? 50 : 10;
    comm->all_reduce(t, ReduceOp::kSum, "warm-up");
    comm->barrier("bench");
    double start = bench::now_seconds();
    for (int i = 0; i < iterations; ++i) comm->all_reduce(t, ReduceOp::kSum, "bench");
    double seconds = (bench::now_seconds() - start) / iterations;
    std::vector<double> worst = {seconds};
    collectives->sum(worst, "timing");  // mean over ranks
    seconds = worst[0] / n;
    double algbw = bytes / seconds / 1e9, busbw = algbw * 2 * (n - 1) / n;
    rows.push_back({{"bytes", bytes}, {"time_us", seconds * 1e6}, {"algbw_GBps", algbw}, {"busbw_GBps", busbw}});
    if (world.is_root())
      std::printf("%10zu bytes  %9.1f us  algbw %7.3f GB/s  busbw %7.3f GB/s\n", bytes, seconds * 1e6, algbw, busbw);
  }
  if (world.is_root())
    bench::write_result(out, {{"benchmark", "allreduce"},
                              {"machine", bench::machine()},
                              {"backend", comm->backend()},
                              {"ranks", world.size()},
                              {"sizes", rows}});
  return 0;
}
