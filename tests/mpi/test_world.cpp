// The MPI world under mpiexec: ranks, local ranks, host collectives against closed forms, the
// collective config agreement (errors and hash mismatches end every rank, no hang), placement.
#include "catch_torch.h"

#include <numeric>
#include <thread>

#include "modtrain/core/error.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/startup.h"
#include "modtrain/dist/world_mpi.h"
#include "mpi_fixture.h"

using namespace modtrain;
using modtrain::test::world;

TEST_CASE("rank, size and local rank", "[mpi]") {
  World& w = world();
  REQUIRE(w.size() >= 2);
  std::vector<uint64_t> ranks = w.all_gather(static_cast<uint64_t>(w.rank()));
  std::vector<uint64_t> local = w.all_gather(static_cast<uint64_t>(w.local_rank()));
  std::vector<uint64_t> local_sizes = w.all_gather(static_cast<uint64_t>(w.local_size()));
  std::vector<std::string> hosts = w.all_gather(w.hostname());
  uint64_t n = static_cast<uint64_t>(w.size());
  for (uint64_t r = 0; r < n; ++r) CHECK(ranks[r] == r);
  CHECK(std::accumulate(ranks.begin(), ranks.end(), uint64_t{0}) == n * (n - 1) / 2);
  // one node: local rank = rank, local size = size (a test launched on one host)
  for (uint64_t r = 0; r < n; ++r) {
    CHECK(hosts[r] == hosts[0]);
    CHECK(local[r] == r);
    CHECK(local_sizes[r] == n);
  }
  CHECK(w.is_root() == (w.rank() == 0));
  CHECK(w.thread_level() >= MPI_THREAD_SERIALIZED);
}

TEST_CASE("all_gather of strings of different lengths", "[mpi]") {
  World& w = world();
  std::string mine(static_cast<size_t>(w.rank()) * 3, static_cast<char>('a' + w.rank()));  // rank 0 sends ""
  std::vector<std::string> all = w.all_gather(mine);
  REQUIRE(all.size() == static_cast<size_t>(w.size()));
  for (int r = 0; r < w.size(); ++r)
    CHECK(all[static_cast<size_t>(r)] == std::string(static_cast<size_t>(r) * 3, static_cast<char>('a' + r)));
}

TEST_CASE("gather to rank 0 in pieces: every value in rank order and nothing on the others", "[mpi]") {
  World& w = world();
  // pieces of 7 values: rank r sends 10 r + 3 values (rank 0: 3, one short piece; rank 2: 23, four
  // pieces, the last short), and the watchdog's bound spans all the pieces
  auto collectives = make_mpi_collectives(w, 30.0, nullptr, 7);
  std::vector<float> mine(static_cast<size_t>(10 * w.rank() + 3));
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<float>(1000 * w.rank() + static_cast<int>(i));
  const std::vector<std::vector<float>> all = collectives->gather_to_root(mine, "test values");
  std::vector<double> figures = {w.is_root() ? 42.5 : 0.0, w.is_root() ? -1.0 : 0.0};
  collectives->broadcast(figures, "test figures");
  CHECK(figures == std::vector<double>{42.5, -1.0});
  if (!w.is_root()) {
    CHECK(all.empty());
    return;
  }
  REQUIRE(all.size() == static_cast<size_t>(w.size()));
  size_t compared = 0;
  for (int r = 0; r < w.size(); ++r) {
    REQUIRE(all[static_cast<size_t>(r)].size() == static_cast<size_t>(10 * r + 3));
    for (size_t i = 0; i < all[static_cast<size_t>(r)].size(); ++i, ++compared)
      CHECK(all[static_cast<size_t>(r)][i] == static_cast<float>(1000 * r + static_cast<int>(i)));
  }
  CHECK(compared == static_cast<size_t>(3 * w.size() + 5 * w.size() * (w.size() - 1)));
}

TEST_CASE("identical configs resolve on every rank", "[mpi][config]") {
  World& w = world();
  ResolvedConfig r = resolve_config_on_all_ranks(w, MODTRAIN_SOURCE_DIR "/configs/tiny.yaml", {"train.lr=0.001"});
  std::vector<uint64_t> hashes = w.all_gather(r.hash());
  for (uint64_t h : hashes) CHECK(h == hashes[0]);
  CHECK(r.config.train.lr == 0.001);
}

TEST_CASE("different overrides per rank: every rank gets the mismatch error", "[mpi][config]") {
  World& w = world();
  std::string lr = "train.lr=0.00" + std::to_string(w.rank() + 1);
  bool threw = false;
  try {
    resolve_config_on_all_ranks(w, "", {lr});
  } catch (const CollectiveError& e) {
    threw = true;
    CHECK(e.exit_code() == kExitUsage);
    CHECK(e.already_reported());
  }
  CHECK(threw);
}

TEST_CASE("a config error on one rank only stops every rank", "[mpi][config]") {
  World& w = world();
  std::vector<std::string> sets = {w.rank() == 1 ? "train.lrr=1" : "train.lr=1"};
  bool threw = false;
  try {
    resolve_config_on_all_ranks(w, "", sets);
  } catch (const CollectiveError& e) {
    threw = true;
    CHECK(e.exit_code() == kExitUsage);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("unknown key 'train.lrr'"));
  }
  CHECK(threw);
}

TEST_CASE("placement: CPU threads = cores / local ranks unless configured", "[mpi][device]") {
  World& w = world();
  DistConfig dist;
  dist.device = DeviceKind::kCpu;
  Placement p = place_rank(w, dist);
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CHECK_FALSE(p.cuda);
  CHECK(p.cpu_threads == std::max(1, cores / w.local_size()));
  CHECK(torch::get_num_threads() == p.cpu_threads);
  dist.threads = 3;
  CHECK(place_rank(w, dist).cpu_threads == 3);
  CHECK(torch::get_num_threads() == 3);
  CHECK(place_rank(w, dist).describe() == "cpu (3 threads)");
  if (!torch::cuda::is_available()) {
    dist.device = DeviceKind::kCuda;
    CHECK_THAT(place_rank(w, dist).problem,
               Catch::Matchers::Contains("dist.device = cuda, but LibTorch sees no usable GPU"));
    CHECK_THROWS_AS(agree_on_placement(w, place_rank(w, dist)), CollectiveError);
    dist.device = DeviceKind::kAuto;
    CHECK_FALSE(place_rank(w, dist).cuda);
  }
}

TEST_CASE("placement agreement: an injected odd rank stops every rank with one line", "[mpi][device]") {
  World& w = world();
  DistConfig dist;
  dist.device = DeviceKind::kCpu;
  dist.threads = 1;
  Placement p = place_rank(w, dist);
  CHECK(p.backend == "mpi");  // auto, more than one rank, CPU
  CHECK(p.host == w.hostname());
  agree_on_placement(w, p);  // all alike: no error
  // The last rank pretends to be a GPU rank that starts NCCL (a node that sees GPUs when the
  // others see none): every rank gets the same verdict before any data-plane call.
  Placement odd = p;
  if (w.rank() == w.size() - 1) {
    odd.cuda = true;
    odd.cuda_index = 0;
    odd.visible_gpus = 1;
    odd.gpu_id = "0000:3b:00.0";
    odd.backend = "nccl";
  }
  try {
    agree_on_placement(w, odd);
    FAIL("no error");
  } catch (const CollectiveError& e) {
    CHECK(e.exit_code() == kExitUsage);
    CHECK(e.already_reported());
    const std::string last = std::to_string(w.size() - 1);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("the ranks disagree on where they run: rank " + last + " on " +
                                                   w.hostname() + " (cuda, data plane nccl, sees 1 GPU)"));
  }
  // A problem on one rank only (dist.device=cuda without a GPU there) stops all of them.
  Placement broken = p;
  if (w.rank() == 0) broken.problem = "dist.device = cuda, but LibTorch sees no usable GPU on " + w.hostname();
  CHECK_THROWS_AS(agree_on_placement(w, broken), CollectiveError);
}
