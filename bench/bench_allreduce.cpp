// All-reduce bandwidth of the communicator over message sizes, with the nccl-tests definitions:
// algbw = bytes / time, busbw = algbw x 2(n-1)/n (what each link carries in a ring all-reduce).
// Also the launch latency of a 4-byte all-reduce (what one collective launch costs the
// backward pass): launch = all_reduce_async() until it returns, round trip = launch to wait() done,
// medians and 99th percentiles over 2,000 calls.
// Run under mpiexec: mpiexec -np 2 modtrain_bench_allreduce [--backend mpi|nccl] [--out FILE]
#include <algorithm>
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
  agree_on_placement(world, placement);
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
  // Launch latency: 4 bytes, so the time is the launch path (threads, polling), not the wire.
  auto options = torch::TensorOptions().dtype(torch::kFloat32);
  if (placement.cuda) options = options.device(torch::kCUDA, placement.cuda_index);
  torch::Tensor one = torch::ones({1}, options);
  std::vector<double> launch_us, round_us;
  for (int i = 0; i < 2200; ++i) {
    const double t0 = bench::now_seconds();
    auto work = comm->all_reduce_async(one, ReduceOp::kSum, "latency");
    const double t1 = bench::now_seconds();
    work->wait();
    const double t2 = bench::now_seconds();
    if (i < 200) continue;  // warm-up
    launch_us.push_back((t1 - t0) * 1e6);
    round_us.push_back((t2 - t0) * 1e6);
  }
  auto quantile = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
  };
  const nlohmann::json latency = {{"bytes", 4},
                                  {"calls", launch_us.size()},
                                  {"launch_us_median", quantile(launch_us, 0.5)},
                                  {"launch_us_p99", quantile(launch_us, 0.99)},
                                  {"round_trip_us_median", quantile(round_us, 0.5)},
                                  {"round_trip_us_p99", quantile(round_us, 0.99)}};
  if (world.is_root())
    std::printf("4-byte all_reduce: launch %.1f us (p99 %.1f), launch to completion %.1f us (p99 %.1f)\n",
                quantile(launch_us, 0.5), quantile(launch_us, 0.99), quantile(round_us, 0.5), quantile(round_us, 0.99));
  if (world.is_root())
    bench::write_result(out, {{"benchmark", "allreduce"},
                              {"latency", latency},
                              {"machine", bench::machine()},
                              {"backend", comm->backend()},
                              {"ranks", world.size()},
                              {"sizes", rows}});
  return 0;
}
