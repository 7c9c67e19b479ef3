// The backend choice and the helpers every backend shares.
#include "modtrain/dist/communicator.h"

#include "modtrain/core/error.h"

namespace modtrain {

std::vector<float> Communicator::all_gather_varlen(const std::vector<float>& values, const std::string& what) {
  torch::Tensor length = torch::tensor({static_cast<int64_t>(values.size())}, torch::kInt64);
  torch::Tensor lengths = all_gather(length, what + " (lengths)").to(torch::kCPU);  // [size, 1]
  int64_t longest = lengths.max().item<int64_t>();
  torch::Tensor padded = torch::zeros({longest}, torch::kFloat32);
  if (!values.empty()) std::memcpy(padded.data_ptr<float>(), values.data(), values.size() * sizeof(float));
  torch::Tensor all = all_gather(padded, what).to(torch::kCPU).contiguous();  // [size, longest]
  std::vector<float> out;
  for (int r = 0; r < size(); ++r) {
    const float* row = all[r].data_ptr<float>();
    out.insert(out.end(), row, row + lengths[r][0].item<int64_t>());
  }
  return out;
}

void Communicator::sum_host(std::vector<double>& values, const std::string& what) {
  if (values.empty()) return;
  torch::Tensor t = torch::tensor(values, torch::kFloat64);
  all_reduce(t, ReduceOp::kSum, what);
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
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
