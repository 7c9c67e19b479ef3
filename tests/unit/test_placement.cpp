// Where ranks run and what they agree on (README: launching on a cluster): the GPU choice, the placement agreement's
// verdicts, the bf16 capability check, nested autocast scopes and the timeline's device lanes.
// All pure or CPU-side, so they run on every machine.
#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "modtrain/core/error.h"
#include "modtrain/dist/device.h"
#include "modtrain/dist/timeline.h"
#include "modtrain/dist/transport.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/train/precision.h"
#include "test_util.h"

using namespace modtrain;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

TEST_CASE("choose_gpu: one rank per GPU, per-task binding, and too few GPUs", "[device][placement]") {
  // As many GPUs as ranks on the node (or more): GPU <local rank>.
  for (int r = 0; r < 8; ++r) CHECK(choose_gpu(r, 8, 8, Backend::kAuto).index == r);
  CHECK(choose_gpu(3, 4, 8, Backend::kNccl).index == 3);
  // One GPU visible per rank (Slurm --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per task): GPU 0, no error.
  for (int r = 0; r < 8; ++r) {
    GpuChoice c = choose_gpu(r, 8, 1, Backend::kNccl);
    CHECK(c.index == 0);
    CHECK(c.error.empty());
    CHECK(c.warning.empty());
  }
  // No GPU: the CPU.
  CHECK(choose_gpu(0, 2, 0, Backend::kAuto).index == -1);
  // 8 ranks, 4 GPUs: NCCL cannot put two ranks on one GPU -> an error that names the fix (auto = nccl).
  for (Backend b : {Backend::kNccl, Backend::kAuto}) {
    GpuChoice c = choose_gpu(5, 8, 4, b, "node-a");
    CHECK(c.index == -1);
    CHECK_THAT(c.error, Contains("8 ranks on node-a but each sees only 4 GPUs; NCCL needs one GPU per rank"));
    CHECK_THAT(c.error, Contains("--map-by ppr:4:node"));
  }
  // ... while MPI may share them round robin, with a warning.
  GpuChoice shared = choose_gpu(5, 8, 4, Backend::kMpi);
  CHECK(shared.index == 1);
  CHECK(shared.error.empty());
  CHECK_THAT(shared.warning, Contains("share GPUs"));
}

TEST_CASE("data_plane_backend: auto is nccl on GPUs, mpi on CPUs, none for one plain process", "[device]") {
  CHECK(data_plane_backend(Backend::kAuto, 1, true).empty());
  CHECK(data_plane_backend(Backend::kAuto, 1, false).empty());
  CHECK(data_plane_backend(Backend::kAuto, 4, true) == "nccl");
  CHECK(data_plane_backend(Backend::kAuto, 4, false) == "mpi");
  CHECK(data_plane_backend(Backend::kMpi, 1, false) == "mpi");
  CHECK(data_plane_backend(Backend::kNccl, 1, true) == "nccl");
}

namespace {
Placement gpu_rank(const std::string& host, const std::string& bus) {
  Placement p;
  p.cuda = true;
  p.cuda_index = 0;
  p.host = host;
  p.visible_gpus = 1;
  p.gpu_id = bus;
  p.backend = "nccl";
  return p;
}
}  // namespace

TEST_CASE("placement_conflicts: the odd ranks out, in one line", "[device][placement]") {
  std::vector<Placement> ranks;
  for (int r = 0; r < 8; ++r)
    ranks.push_back(gpu_rank(r < 4 ? "node-a" : "node-b", "0000:0" + std::to_string(r % 4) + ":00.0"));
  CHECK(placement_conflicts(ranks).empty());

  SECTION("a node that sees no GPU builds MPI while the others start NCCL") {
    ranks[6].cuda = false;
    ranks[6].visible_gpus = 0;
    ranks[6].gpu_id = "";
    ranks[6].backend = "mpi";
    const std::string line = placement_conflicts(ranks);
    CHECK_THAT(line,
               Contains("the ranks disagree on where they run: rank 6 on node-b (cpu, data plane mpi, sees 0 GPUs)"));
    CHECK_THAT(line, Contains("unlike the other 7 (cuda, data plane nccl)"));
    CHECK(line.find('\n') == std::string::npos);
  }
  SECTION("two NCCL ranks of one node on one GPU") {
    ranks[5].gpu_id = ranks[4].gpu_id;
    CHECK_THAT(placement_conflicts(ranks),
               Contains("ranks 4,5 on node-b share one GPU (0000:00:00.0); NCCL needs one GPU per rank"));
  }
  SECTION("the same GPU id on two hosts is two GPUs") {
    ranks[4].gpu_id = ranks[0].gpu_id;
    CHECK(placement_conflicts(ranks).empty());
  }
  SECTION("a rank's own problem, named once with its ranks") {
    ranks[2].problem = "dist.device = cuda, but LibTorch sees no usable GPU on node-a";
    ranks[3].problem = ranks[2].problem;
    CHECK(placement_conflicts(ranks) ==
          "dist.device = cuda, but LibTorch sees no usable GPU on node-a (ranks 2,3 on node-a)");
    for (auto& r : ranks) r.problem = ranks[2].problem;  // everywhere: said once, without a rank list
    CHECK(placement_conflicts(ranks) == ranks[2].problem);
  }
  SECTION("many odd ranks are listed up to 8 and counted") {
    std::vector<Placement> cpu(12, ranks[0]);
    for (auto& p : cpu) p.backend = "mpi", p.cuda = false, p.visible_gpus = 0;
    for (int r = 0; r < 3; ++r) cpu.push_back(ranks[0]);
    std::vector<Placement> mixed(cpu.rbegin(), cpu.rend());  // ranks 0-2 on GPUs, 3-14 on CPUs
    const std::string line = placement_conflicts(mixed);
    CHECK_THAT(line, Contains("ranks 0,1,2 on node-a (cuda, data plane nccl, sees 1 GPU), unlike the other 12 (cpu"));
  }
}

TEST_CASE("placement: nodes with different rank counts are one line unless allowed - and the hosts summary",
          "[device][placement]") {
  std::vector<Placement> ranks;
  for (int r = 0; r < 7; ++r)
    ranks.push_back(gpu_rank(r < 4 ? "node-a" : "node-b", "0000:0" + std::to_string(r % 4) + ":00.0"));
  const std::string line = placement_conflicts(ranks);
  CHECK_THAT(line, Contains("the nodes run different numbers of ranks (3 on node-b; 4 on node-a); launch the same "
                            "number of ranks on every node"));
  CHECK_THAT(line, Contains("or set dist.allow_uneven_nodes=true"));
  CHECK(line.find('\n') == std::string::npos);
  CHECK(placement_conflicts(ranks, /*allow_uneven_nodes=*/true).empty());
  CHECK(hosts_summary(ranks) == "7 ranks on 2 hosts: node-a (ranks 0-3), node-b (ranks 4-6)");
  // Round-robin placement, many hosts: ranges per host, the first 8 hosts named, the rest counted.
  std::vector<Placement> many;
  for (int r = 0; r < 20; ++r) many.push_back(gpu_rank("n" + std::to_string(r % 10), "0000:00:00.0"));
  CHECK(hosts_summary(many) ==
        "20 ranks on 10 hosts: n0 (ranks 0,10), n1 (ranks 1,11), n2 (ranks 2,12), n3 (ranks 3,13), n4 (ranks 4,14), "
        "n5 (ranks 5,15), n6 (ranks 6,16), n7 (ranks 7,17), ... (2 more hosts)");
  CHECK(hosts_summary({gpu_rank("solo", "x")}) == "1 rank on 1 host: solo (rank 0)");
}

TEST_CASE("watchdog roll call: the ranks that did not answer, with their hosts, in one line", "[watchdog]") {
  const std::vector<std::string> hosts = {"nodea", "nodea", "nodeb", "nodeb"};
  CHECK(watchdog::roll_call_summary({true, true, false, false}, hosts) ==
        "ranks 2,3 on nodeb did not answer (dead, hung or cut off); ranks 0,1 on nodea did");
  CHECK_THAT(watchdog::roll_call_summary({true, true, true, true}, hosts), StartsWith("every rank answered"));
  std::vector<std::string> many;
  std::vector<bool> answered;
  for (int r = 0; r < 64; ++r) many.push_back("n" + std::to_string(r / 8)), answered.push_back(r < 8);
  CHECK(watchdog::roll_call_summary(answered, many) ==
        "ranks 8,9,10,11,12,13,14,15,... (56 ranks) on n1, n2, n3, n4 and 3 more hosts did not answer (dead, hung or "
        "cut off); ranks 0,1,2,3,4,5,6,7 on n0 did");
}

TEST_CASE("MPI transport: read from the components Open MPI loaded - and the banner line", "[device][transport]") {
  const std::string openmpi = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022";
  const std::string dir =
      "7f2a1c000000-7f2a1c010000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/";
  auto maps = [&](std::vector<std::string> components) {
    std::string m = "55d0c0000000-55d0c0100000 r-xp 00000000 08:01 1 /work/build/modtrain\n";
    for (const auto& c : components) m += dir + "mca_" + c + ".so\n" + dir + "mca_" + c + ".so\n";  // mapped twice
    return m;
  };
  std::vector<std::pair<std::string, std::string>> cases = {
      // what `mpirun -np 2` loads here (recorded on this machine): shared memory and TCP
      {maps({"pml_ob1", "btl_sm", "btl_self", "btl_vader", "btl_tcp"}),
       "Open MPI v4.1.4: pml ob1, within a node sm+vader, between nodes tcp"},
      // --mca btl self,tcp
      {maps({"pml_ob1", "btl_self", "btl_tcp"}), "Open MPI v4.1.4: pml ob1, within a node (none), between nodes tcp"},
      // InfiniBand through the verbs BTL beside TCP
      {maps({"pml_ob1", "btl_self", "btl_vader", "btl_openib", "btl_tcp"}),
       "Open MPI v4.1.4: pml ob1, within a node vader, between nodes openib+tcp"},
      {maps({"pml_ucx", "btl_self"}),
       "Open MPI v4.1.4: pml ucx (UCX picks the devices; UCX_LOG_LEVEL=info shows which, UCX_TLS restricts them)"},
      {maps({"pml_cm", "mtl_psm2"}), "Open MPI v4.1.4: pml cm, mtl psm2"},
      {maps({"pml_monitoring", "pml_ob1", "btl_self", "btl_tcp"}),
       "Open MPI v4.1.4: pml ob1, within a node (none), between nodes tcp"},
  };
  for (const auto& [m, want] : cases) CHECK(describe_mpi_transport(openmpi, m) == want);
  CHECK(describe_mpi_transport("MPICH Version:\t4.0.2\nMPICH Release date: ...", maps({})) ==
        "MPICH Version:\t4.0.2 (its transport is not shown to the process; see the library's own logging)");
  // the banner: one line when the ranks agree; each transport with its ranks and hosts when not
  const std::vector<std::string> hosts = {"a", "a", "b", "b"};
  bool differs = true;
  CHECK(transport_summary("MPI", {"t", "t", "t", "t"}, hosts, &differs) == "MPI transport: t (every rank)");
  CHECK_FALSE(differs);
  CHECK(transport_summary("NCCL", {"ucx", "ucx", "tcp", "tcp"}, hosts, &differs) ==
        "NCCL transport differs between ranks: ucx (ranks 0,1 on a); tcp (ranks 2,3 on b)");
  CHECK(differs);
}

TEST_CASE("NCCL transport: the network, its devices and the channel paths from NCCL's start-up log",
          "[device][transport]") {
  // lines in the form NCCL 2.x writes them (INIT and NET subsystems), two nodes of 8 GPUs over InfiniBand
  const std::string ib =
      "gpu1:4321:4321 [0] NCCL INFO Bootstrap : Using ib0:10.1.0.1<0>\n"
      "gpu1:4321:4321 [0] NCCL INFO NET/Plugin : No plugin found (libnccl-net.so), using internal implementation\n"
      "gpu1:4321:4400 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB ; OOB ib0:10.1.0.1<0>\n"
      "gpu1:4321:4400 [0] NCCL INFO Using network IB\n"
      "gpu1:4321:4400 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC/read\n"
      "gpu1:4321:4400 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[1] via P2P/IPC/read\n"
      "gpu1:4321:4400 [0] NCCL INFO Channel 00/0 : 15[7] -> 0[0] [receive] via NET/IB/0/GDRDMA\n"
      "gpu1:4321:4400 [0] NCCL INFO Channel 01/0 : 15[7] -> 0[0] [receive] via NET/IB/1/GDRDMA\n";
  CHECK(describe_nccl_transport(ib) ==
        "network IB (mlx5_0:1/IB, mlx5_1:1/IB), channels via P2P/IPC/read, NET/IB/GDRDMA");
  // the silent fallback: no InfiniBand device, sockets over Ethernet
  const std::string socket =
      "gpu2:99:99 [3] NCCL INFO NET/IB : No device found.\n"
      "gpu2:99:99 [3] NCCL INFO NET/Socket : Using [0]eth0:192.168.1.7<0>\n"
      "gpu2:99:99 [3] NCCL INFO Using network Socket\n"
      "gpu2:99:120 [3] NCCL INFO Channel 00/0 : 2[3] -> 3[0] [send] via NET/Socket/0\n";
  CHECK(describe_nccl_transport(socket) == "network Socket (eth0:192.168.1.7), channels via NET/Socket");
  CHECK(describe_nccl_transport("") == "");
  CHECK(describe_nccl_transport("gpu1:1:1 [0] NCCL INFO cudaDriverVersion 12040\n") == "");
}

TEST_CASE("precision: bf16 needs compute capability 8.0, fp16 and bf16 need CUDA", "[precision]") {
  CHECK(precision_problem(Precision::kFp32, false, -1).empty());
  CHECK_THAT(precision_problem(Precision::kBf16, false, -1), Contains("needs a CUDA device"));
  CHECK_THAT(precision_problem(Precision::kBf16, true, 70),
             Contains("bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; this one is 7.0"));
  CHECK(precision_problem(Precision::kBf16, true, 80).empty());
  CHECK(precision_problem(Precision::kBf16, true, 90).empty());
  CHECK(precision_problem(Precision::kBf16, true, -1).empty());  // unknown: LibTorch decides
  CHECK(precision_problem(Precision::kFp16, true, 70).empty());
  CHECK_THROWS_AS(check_precision(Precision::kFp16, torch::kCPU), UserError);
}

namespace {
// The CUDA autocast state (a thread-local flag and dtype: settable without a GPU).
std::pair<bool, at::ScalarType> cuda_autocast() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return {at::autocast::is_autocast_enabled(at::kCUDA), at::autocast::get_autocast_dtype(at::kCUDA)};
#else
  return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
#endif
}
}  // namespace

TEST_CASE("AutocastScope restores the state it found: scopes nest", "[precision]") {
  const torch::Device gpu(torch::kCUDA, 0);  // a device name only: nothing runs on it
  const auto before = cuda_autocast();
  REQUIRE_FALSE(before.first);
  {
    AutocastScope outer(Precision::kBf16, gpu);
    CHECK(cuda_autocast() == std::make_pair(true, at::kBFloat16));
    {
      AutocastScope inner(Precision::kFp16, gpu);
      CHECK(cuda_autocast() == std::make_pair(true, at::kHalf));
      {
        AutocastScope off(Precision::kFp32, gpu);  // fp32 inside: autocast off for its extent
        CHECK_FALSE(cuda_autocast().first);
      }
      CHECK(cuda_autocast() == std::make_pair(true, at::kHalf));
    }
    CHECK(cuda_autocast() == std::make_pair(true, at::kBFloat16));  // not cleared by the inner scope
    { AutocastScope cpu(Precision::kBf16, torch::kCPU); }           // CPU scopes touch nothing
    CHECK(cuda_autocast() == std::make_pair(true, at::kBFloat16));
  }
  CHECK(cuda_autocast() == before);
}

namespace {
// A device clock whose markers complete when the test says so.
class FakeClock : public DeviceClock {
 public:
  std::map<uint64_t, double> done;  // marker -> time, once "passed"
  uint64_t next = 0;
  size_t live = 0;
  uint64_t mark(void*) override {
    ++live;
    return ++next;
  }
  bool time_us(uint64_t m, bool wait, double& us) override {
    if (!done.count(m)) {
      if (!wait) return false;
      done[m] = 1000.0 * static_cast<double>(m);
    }
    us = done[m];
    return true;
  }
  void release(uint64_t) override { --live; }
};
}  // namespace

TEST_CASE("timeline: device spans on their own lanes, resolved as the device passes them", "[timeline]") {
  test::TempDir dir;
  Timeline t(true, 3);
  auto owned = std::make_unique<FakeClock>();
  FakeClock* clock = owned.get();
  t.set_device_clock(std::move(owned));
  { Timeline::Scope forward(&t, "forward"); }  // host span + markers 1, 2 on the compute stream
  auto span = [&](const std::string& name) {   // two markers, in order (arguments have no order)
    const uint64_t start = clock->mark(nullptr);
    t.device_span(name, start, clock->mark(nullptr), Timeline::kDeviceComm);
  };
  span("all_reduce of bucket 0");
  CHECK(t.events().size() == 1);  // only the host span so far
  for (int i = 0; i < 300; ++i) span("x");
  CHECK(t.events().size() == 1);  // the device has passed nothing: nothing resolved, nothing lost
  clock->done[1] = 10, clock->done[2] = 25, clock->done[3] = 30, clock->done[4] = 32;
  span("y");  // past 256 pending: resolves what the device has passed (the first two spans)
  auto events = t.events();
  REQUIRE(events.size() == 3);
  CHECK(events[1].name == "forward");
  CHECK(events[1].lane == Timeline::kDeviceCompute);
  CHECK(events[1].start_us == 10);
  CHECK(events[1].end_us == 25);
  CHECK(events[2].lane == Timeline::kDeviceComm);
  CHECK(events[2].end_us - events[2].start_us == 2);
  t.write((dir.path / "t.json").string());  // waits for the rest
  CHECK(clock->live == 0);
  std::ifstream in(dir.path / "t.json");
  nlohmann::json trace = nlohmann::json::parse(in);
  std::map<int, std::string> lanes;
  size_t spans = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["name"] == "thread_name") lanes[e["tid"].get<int>()] = e["args"]["name"];
    if (e["ph"] == "X") ++spans;
  }
  CHECK(spans == 1 + 1 + 1 + 300 + 1);
  CHECK(lanes[0] == "host: compute");
  CHECK(lanes[2] == "GPU: compute stream (CUDA events)");
  CHECK(lanes[3] == "GPU: NCCL stream (CUDA events)");
}
