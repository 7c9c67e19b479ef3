// What this binary is: version, git commit, and the runtime it was built against (LibTorch,
// CUDA, NCCL, MPI). Printed by `modtrain --version` and written into run directories.
#pragma once

#include <string>

namespace modtrain {

const char* build_version();  // project version, e.g. "0.1.0"
const char* build_commit();   // git commit (12 hex digits, "-dirty" when modified) or "unknown"

struct RuntimeInfo {
  std::string torch_version;    // LibTorch version the binary was compiled against
  bool cuda_available = false;  // LibTorch built with CUDA and a GPU visible
  int cuda_device_count = 0;
  bool nccl_compiled = false;  // the NCCL backend is compiled in
  std::string nccl_version;    // NCCL library version at run time ("" when not compiled)
  std::string mpi_library;     // first line of MPI_Get_library_version
};

RuntimeInfo runtime_info();

// Inference GEMMs go to oneDNN: MODTRAIN_CPU_GEMM allows it and this LibTorch has oneDNN (MKLDNN).
bool onednn_inference_gemm();
// The CPU line of `--version` and of serve's start: cpu_runtime_summary() and the inference GEMMs.
std::string cpu_line();

// Multi-line human-readable text for `--version`.
std::string version_text();

}  // namespace modtrain
