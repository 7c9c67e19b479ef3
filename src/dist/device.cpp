#include "modtrain/dist/device.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <thread>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"
#include "modtrain/dist/transport.h"

namespace modtrain {
namespace {

constexpr char kSep = '\x1f';  // between the fields of a placement on the wire

std::string encode(const Placement& p) {
  return std::string(p.cuda ? "cuda" : "cpu") + kSep + std::to_string(p.cuda_index) + kSep + p.host + kSep +
         std::to_string(p.visible_gpus) + kSep + p.gpu_id + kSep + p.backend + kSep + p.problem + kSep + p.transport;
}

Placement decode(const std::string& s) {
  std::vector<std::string> f;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == kSep) {
      f.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  MT_CHECK(f.size() == 8, "placement record with " << f.size() << " fields");
  Placement p;
  p.cuda = f[0] == "cuda";
  p.cuda_index = std::stoi(f[1]);
  p.host = f[2];
  p.visible_gpus = std::stoi(f[3]);
  p.gpu_id = f[4];
  p.backend = f[5];
  p.transport = f[7];
  p.problem = f[6];
  return p;
}

// The placements' form of ranks_on_hosts (dist/device.h).
std::string ranks_on_hosts(const std::vector<size_t>& ranks, const std::vector<Placement>& all) {
  std::vector<std::string> hosts;
  for (const auto& p : all) hosts.push_back(p.host);
  return modtrain::ranks_on_hosts(ranks, hosts);
}

std::string where_it_runs(const Placement& p) {
  return std::string(p.cuda ? "cuda" : "cpu") + ", data plane " + (p.backend.empty() ? "none" : p.backend) + ", sees " +
         std::to_string(p.visible_gpus) + " GPU" + (p.visible_gpus == 1 ? "" : "s");
}

}  // namespace

std::string Placement::describe() const {
  if (cuda) return "cuda:" + std::to_string(cuda_index);
  return "cpu (" + std::to_string(cpu_threads) + " thread" + (cpu_threads == 1 ? "" : "s") + ")";
}

GpuChoice choose_gpu(int local_rank, int local_size, int visible, Backend backend, const std::string& host) {
  GpuChoice c;
  if (visible <= 0) return c;
  const std::string on = host.empty() ? "" : " on " + host;
  if (visible >= local_size || visible == 1) {
    c.index = visible == 1 ? 0 : local_rank;
    return c;
  }
  const std::string counts =
      std::to_string(local_size) + " ranks" + on + " but each sees only " + std::to_string(visible) + " GPUs";
  if (backend == Backend::kMpi) {
    c.index = local_rank % visible;
    c.warning = counts + ": ranks share GPUs round robin (launch one rank per GPU)";
    return c;
  }
  c.error = counts + "; NCCL needs one GPU per rank: launch at most " + std::to_string(visible) +
            " ranks per node (mpirun --map-by ppr:" + std::to_string(visible) +
            ":node) or give each rank its own GPU (CUDA_VISIBLE_DEVICES, Slurm --gpus-per-task=1)";
  return c;
}

std::string data_plane_backend(Backend backend, int world_size, bool cuda) {
  switch (backend) {
    case Backend::kMpi: return "mpi";
    case Backend::kNccl: return "nccl";
    case Backend::kAuto: break;
  }
  if (world_size == 1) return "";
  return cuda ? "nccl" : "mpi";
}

Placement place_rank(const World& world, const DistConfig& dist, int visible_gpus) {
  Placement p;
  p.host = world.hostname();
  if (world.size() > 1) p.transport = world.transport();
  p.visible_gpus = visible_gpus >= 0
                       ? visible_gpus
                       : (torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0);
  if (dist.device == DeviceKind::kCuda && p.visible_gpus == 0)
    p.problem = "dist.device = cuda, but LibTorch sees no usable GPU on " + p.host +
                " (a CPU-only LibTorch build never does); use dist.device=cpu or auto, or run on a GPU node";
  p.cuda = p.visible_gpus > 0 && dist.device != DeviceKind::kCpu;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  p.cpu_threads =
      dist.threads > 0 ? dist.threads : std::max(1, static_cast<int>(cores) / std::max(1, world.local_size()));
  if (p.cuda) {
    const GpuChoice gpu = choose_gpu(world.local_rank(), world.local_size(), p.visible_gpus, dist.backend, p.host);
    if (!gpu.error.empty()) {
      p.problem = gpu.error;
      p.cuda = false;
    } else {
      p.cuda_index = gpu.index;
      p.gpu_id = cuda_bus_id(gpu.index);
      if (!gpu.warning.empty() && world.local_rank() == 0) log::warn(gpu.warning);
    }
  }
  p.backend = data_plane_backend(dist.backend, world.size(), p.cuda);
  torch::set_num_threads(p.cpu_threads);
  return p;
}

std::string ranks_on_hosts(const std::vector<size_t>& ranks, const std::vector<std::string>& hosts) {
  std::vector<std::string> names, on;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i < 8) names.push_back(std::to_string(ranks[i]));
    const std::string& h = ranks[i] < hosts.size() ? hosts[ranks[i]] : std::string("?");
    if (std::find(on.begin(), on.end(), h) == on.end()) on.push_back(h);
  }
  std::string out = (ranks.size() == 1 ? "rank " : "ranks ") + text::join(names, ",");
  if (ranks.size() > 8) out += ",... (" + std::to_string(ranks.size()) + " ranks)";
  const size_t shown = std::min<size_t>(on.size(), 4);
  out += " on " + text::join(std::vector<std::string>(on.begin(), on.begin() + shown), ", ");
  if (on.size() > shown) out += " and " + std::to_string(on.size() - shown) + " more hosts";
  return out;
}

std::string hosts_summary(const std::vector<Placement>& ranks) {
  std::vector<std::string> order;                                      // hosts by their first rank
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> runs;  // host -> rank ranges
  for (size_t r = 0; r < ranks.size(); ++r) {
    auto& ranges = runs[ranks[r].host];
    if (ranges.empty()) order.push_back(ranks[r].host);
    if (!ranges.empty() && ranges.back().second + 1 == r) ranges.back().second = r;
    else ranges.emplace_back(r, r);
  }
  std::vector<std::string> shown;
  for (size_t h = 0; h < order.size() && h < 8; ++h) {
    std::vector<std::string> spans;
    size_t count = 0;
    for (const auto& [a, b] : runs[order[h]]) {
      spans.push_back(a == b ? std::to_string(a) : std::to_string(a) + "-" + std::to_string(b));
      count += b - a + 1;
    }
    if (spans.size() > 4) spans.resize(4), spans.push_back("...");
    shown.push_back(order[h] + " (rank" + (count == 1 ? " " : "s ") + text::join(spans, ",") + ")");
  }
  std::string out = std::to_string(ranks.size()) + " rank" + (ranks.size() == 1 ? "" : "s") + " on " +
                    std::to_string(order.size()) + " host" + (order.size() == 1 ? "" : "s") + ": " +
                    text::join(shown, ", ");
  if (order.size() > 8) out += ", ... (" + std::to_string(order.size() - 8) + " more hosts)";
  return out;
}

std::string placement_conflicts(const std::vector<Placement>& ranks, bool allow_uneven_nodes) {
  // 1. Ranks that cannot run as configured: each distinct problem once, with its ranks.
  std::map<std::string, std::vector<size_t>> problems;
  for (size_t r = 0; r < ranks.size(); ++r)
    if (!ranks[r].problem.empty()) problems[ranks[r].problem].push_back(r);
  if (!problems.empty()) {
    std::vector<std::string> lines;
    for (const auto& [problem, which] : problems)
      lines.push_back(which.size() == ranks.size() ? problem : problem + " (" + ranks_on_hosts(which, ranks) + ")");
    return text::join(lines, "; ");
  }
  // 2. Device kind and backend: the largest group (rank 0's on a tie) is the norm.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t r = 0; r < ranks.size(); ++r)
    groups[std::string(ranks[r].cuda ? "cuda" : "cpu") + "/" + ranks[r].backend].push_back(r);
  if (groups.size() > 1) {
    const std::vector<size_t>* norm = nullptr;
    for (const auto& [key, which] : groups)
      if (!norm || which.size() > norm->size() || (which.size() == norm->size() && which[0] == 0)) norm = &which;
    std::vector<std::string> odd;
    for (const auto& [key, which] : groups)
      if (&which != norm) odd.push_back(ranks_on_hosts(which, ranks) + " (" + where_it_runs(ranks[which[0]]) + ")");
    const Placement& n = ranks[(*norm)[0]];
    return "the ranks disagree on where they run: " + text::join(odd, "; ") + ", unlike the other " +
           std::to_string(norm->size()) + " (" + (n.cuda ? "cuda" : "cpu") + ", data plane " + n.backend +
           "); every node must see its GPUs (check the driver and CUDA_VISIBLE_DEVICES there) or set dist.device "
           "and dist.backend explicitly for all ranks";
  }
  // 3. NCCL ranks of one node on one GPU.
  std::map<std::string, std::vector<size_t>> gpus;
  for (size_t r = 0; r < ranks.size(); ++r)
    if (ranks[r].backend == "nccl" && !ranks[r].gpu_id.empty())
      gpus[ranks[r].host + " GPU " + ranks[r].gpu_id].push_back(r);
  for (const auto& [gpu, which] : gpus)
    if (which.size() > 1)
      return ranks_on_hosts(which, ranks) + " share one GPU (" + ranks[which[0]].gpu_id +
             "); NCCL needs one GPU per rank: launch at most as many ranks per node as it has GPUs, or give each "
             "rank its own GPU (CUDA_VISIBLE_DEVICES, Slurm --gpus-per-task=1)";
  // 4. Nodes running different numbers of ranks (one rank per GPU: different GPU counts): usually a
  //    node with a GPU missing, or a launch without a fixed number of tasks per node.
  if (!allow_uneven_nodes) {
    std::map<std::string, size_t> per_host;
    for (const auto& p : ranks) ++per_host[p.host];
    std::map<size_t, std::vector<std::string>> by_count;
    for (const auto& [host, n] : per_host) by_count[n].push_back(host);
    if (by_count.size() > 1) {
      std::vector<std::string> counts;
      for (const auto& [n, hosts] : by_count) {
        std::vector<std::string> names(hosts.begin(), hosts.begin() + std::min<size_t>(hosts.size(), 4));
        if (hosts.size() > 4) names.push_back("... (" + std::to_string(hosts.size()) + " hosts)");
        counts.push_back(std::to_string(n) + " on " + text::join(names, ", "));
      }
      return "the nodes run different numbers of ranks (" + text::join(counts, "; ") +
             "); launch the same number of ranks on every node, one per GPU (mpirun --map-by ppr:G:node, Slurm "
             "--ntasks-per-node=G --gpus-per-task=1), check that every node sees all its GPUs, or set "
             "dist.allow_uneven_nodes=true";
    }
  }
  return "";
}

std::vector<std::string> agree_on_placement(const World& world, const Placement& mine, bool allow_uneven_nodes) {
  std::vector<Placement> all;
  if (world.size() > 1) {
    for (const std::string& s : world.all_gather(encode(mine))) all.push_back(decode(s));
  } else {
    all.push_back(mine);
  }
  const std::string conflict = placement_conflicts(all, allow_uneven_nodes);
  if (conflict.empty()) {
    std::vector<std::string> hosts, transports;
    for (const auto& p : all) hosts.push_back(p.host), transports.push_back(p.transport);
    if (world.is_root() && world.size() > 1) {
      log::info("ranks: " + hosts_summary(all));
      bool differs = false;
      const std::string line = transport_summary("MPI", transports, hosts, &differs);
      if (differs) log::warn(line + "; a node whose InfiniBand or UCX stack failed to load falls back to TCP");
      else log::info(line);
    }
    return hosts;
  }
  if (world.is_root()) std::fprintf(stderr, "error: %s\n", conflict.c_str());
  std::fflush(stderr);
  throw CollectiveError(conflict, kExitUsage, /*already_reported=*/true);
}

int set_blas_threads(int requested, int hidden, int cpu_threads) {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set) return 0;
  int n = requested > 0 ? requested : (hidden <= 256 ? 1 : std::max(1, cpu_threads));
  set(n);
  return n;
}

}  // namespace modtrain
