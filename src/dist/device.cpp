#include "modtrain/dist/device.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

namespace modtrain {

std::string Placement::describe() const {
  if (cuda) return "cuda:" + std::to_string(cuda_index);
  return "cpu (" + std::to_string(cpu_threads) + " thread" + (cpu_threads == 1 ? "" : "s") + ")";
}

Placement place_rank(const World& world, const DistConfig& dist) {
  Placement p;
  const bool cuda_available = torch::cuda::is_available();
  if (dist.device == DeviceKind::kCuda && !cuda_available) {
    throw UserError("dist.device = cuda, but LibTorch sees no usable GPU on " + world.hostname() +
                    " (a CPU-only LibTorch build never does); use dist.device=cpu or auto, or run on a GPU node");
  }
  p.cuda = cuda_available && dist.device != DeviceKind::kCpu;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  p.cpu_threads =
      dist.threads > 0 ? dist.threads : std::max(1, static_cast<int>(cores) / std::max(1, world.local_size()));
  if (p.cuda) {
    int count = static_cast<int>(torch::cuda::device_count());
    p.cuda_index = world.local_rank() % count;
    if (world.local_size() > count)
      log::warn(std::to_string(world.local_size()) + " ranks on " + world.hostname() + " share " +
                std::to_string(count) + " GPU(s); launch one rank per GPU");
  }
  torch::set_num_threads(p.cpu_threads);
  return p;
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
