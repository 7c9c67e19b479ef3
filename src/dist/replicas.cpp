#include "modtrain/dist/replicas.h"

#include <cstring>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

namespace modtrain {

namespace {
// The first parameter whose checksums differ from rank 0's, as (rank, index); (-1, -1) if none.
std::pair<int, size_t> first_difference(const NamedParameters& params, Collectives& collectives) {
  // Two sums per parameter (plain and weighted by position): equal on every replica bit for bit.
  std::vector<torch::Tensor> parts;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : params) {
      torch::Tensor p = param.detach().reshape({-1}).to(torch::kFloat64);
      torch::Tensor w = torch::arange(1, p.numel() + 1, p.options());
      parts.push_back(torch::stack({p.sum(), (p * w).sum()}));
    }
  }
  torch::Tensor sums = torch::stack(parts).to(torch::kCPU).contiguous();  // [P, 2]
  const std::vector<double> mine(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
  const std::vector<std::vector<double>> all = collectives.all_gather(mine, "replica check");
  for (size_t r = 1; r < all.size(); ++r)
    for (size_t i = 0; i < params.size(); ++i)  // compared as bits (a NaN checksum is a difference too)
      if (all[r].size() != mine.size() || std::memcmp(&all[r][2 * i], &all[0][2 * i], 2 * sizeof(double)) != 0)
        return {static_cast<int>(r), i};
  return {-1, 0};
}
}  // namespace

void check_replicas(const NamedParameters& params, Collectives& collectives, int64_t step) {
  const auto [rank, i] = first_difference(params, collectives);
  if (rank < 0) return;
  throw CollectiveError("replicas diverged at step " + std::to_string(step) + ": parameter " + params[i].first +
                            " differs between rank 0 and rank " + std::to_string(rank) +
                            " (non-deterministic kernels, or a rank skipped an update); stop and report it",
                        kExitRuntime, false);
}

void check_replicas_after_load(const NamedParameters& params, Collectives& collectives, const std::string& source) {
  const auto [rank, i] = first_difference(params, collectives);
  if (rank < 0) return;
  // Every rank reaches this line with the same verdict: rank 0 reports it once.
  if (collectives.rank() == 0)
    log::error("the ranks loaded different weights from " + source + ": parameter " + params[i].first +
               " differs between rank 0 and rank " + std::to_string(rank) +
               " (each rank read its own copy of that path: put run.dir and model.init_from on storage that every "
               "rank sees, or copy the same files to every node)");
  throw CollectiveError("replicas differ after loading " + source, kExitUsage, /*already_reported=*/true);
}

}  // namespace modtrain
