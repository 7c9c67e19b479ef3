// The data-plane backend choice (dist.backend).
#include "modtrain/dist/communicator.h"

#include "modtrain/core/error.h"

namespace modtrain {
namespace {
// Several operations in flight as one: wait() waits for each, in the order they were started.
class WorkList : public Work {
 public:
  explicit WorkList(std::vector<std::unique_ptr<Work>> works) : works_(std::move(works)) {}
  void wait() override {
    for (auto& w : works_) w->wait();
    works_.clear();
  }
  void wait_on_device() override {
    for (auto& w : works_) w->wait_on_device();
  }

 private:
  std::vector<std::unique_ptr<Work>> works_;
};
}  // namespace

std::unique_ptr<Work> Communicator::all_gather_chunks_group_async(const std::vector<torch::Tensor>& tensors,
                                                                  const std::string& what) {
  std::vector<std::unique_ptr<Work>> works;
  works.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    works.push_back(all_gather_chunks_async(
        tensors[i], what + " (" + std::to_string(i + 1) + " of " + std::to_string(tensors.size()) + ")"));
  return std::make_unique<WorkList>(std::move(works));
}

std::unique_ptr<Communicator> make_communicator(Backend backend, const World& world, const Placement& placement,
                                                CommOptions options) {
  const bool nccl = backend == Backend::kNccl || (backend == Backend::kAuto && placement.cuda);
  if (!nccl) {
    if (placement.cuda)
      throw UserError(
          "dist.backend = mpi moves CPU tensors, but this rank trains on CUDA; use dist.backend=nccl or auto");
    return make_mpi_communicator(world, options);
  }
  if (!placement.cuda)
    throw UserError("dist.backend = nccl needs a GPU per rank, but rank " + std::to_string(world.rank()) + " on " +
                    world.hostname() +
                    " has none (no CUDA device visible, or a CPU-only LibTorch); use dist.backend=mpi or auto");
#ifdef MODTRAIN_HAVE_NCCL
  return make_nccl_communicator(world, placement, options);
#else
  throw UserError(
      "dist.backend = nccl, but this modtrain was built without NCCL (configure with -DMODTRAIN_WITH_NCCL=ON "
      "and CUDA_HOME/NCCL_HOME pointing at the CUDA toolkit and NCCL)");
#endif
}

}  // namespace modtrain
