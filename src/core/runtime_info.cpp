// RuntimeInfo and the `--version` text. Includes torch (for its version and CUDA state).
#include <mpi.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "modtrain/core/build_info.h"
#include "modtrain/core/cpu_runtime.h"

namespace modtrain {
namespace detail {
std::string nccl_runtime_version();
}

namespace {
// Which BLAS this process loaded. Debian's LibTorch goes through libblas.so.3, which is the slow
// reference BLAS unless libopenblas0-pthread provides it (about 13x slower training).
std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path.find("libblas.so") != std::string::npos || path.find("libopenblas") != std::string::npos ||
        path.find("libmkl") != std::string::npos)
      return path;
  }
  return "";
}
}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.torch_version = TORCH_VERSION;
  info.cuda_available = torch::cuda::is_available();
  info.cuda_device_count = info.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
#ifdef MODTRAIN_HAVE_NCCL
  info.nccl_compiled = true;
#endif
  info.nccl_version = detail::nccl_runtime_version();
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int length = 0;
  if (MPI_Get_library_version(mpi, &length) == MPI_SUCCESS) {
    std::string text(mpi, static_cast<size_t>(length));
    info.mpi_library = text.substr(0, text.find_first_of(",\n"));
  }
  return info;
}

bool onednn_inference_gemm() {
  static const bool on = cpu_gemm_onednn_requested() && at::hasMKLDNN();
  return on;
}

std::string cpu_line() {
  std::string s = cpu_runtime_summary() + "; inference GEMMs: ";
  if (onednn_inference_gemm()) return s + "oneDNN";
  return s +
         (cpu_gemm_onednn_requested() ? "OpenBLAS (this LibTorch has no oneDNN)" : "OpenBLAS (MODTRAIN_CPU_GEMM=blas)");
}

std::string version_text() {
  RuntimeInfo info = runtime_info();
  std::ostringstream os;
  os << "modtrain " << build_version() << " (commit " << build_commit() << ")\n";
  os << "LibTorch: " << info.torch_version << "\n";
  os << "CUDA:     ";
  if (info.cuda_available) os << "available, " << info.cuda_device_count << " device(s)\n";
  else os << "not available (no GPU visible, or a CPU-only LibTorch)\n";
  os << "NCCL:     ";
  if (info.nccl_compiled) os << "backend compiled in, NCCL " << info.nccl_version << "\n";
  else os << "backend not compiled in (built without nccl.h / the CUDA runtime)\n";
  os << "MPI:      " << info.mpi_library << "\n";
  std::string blas = loaded_blas();
  os << "BLAS:     " << (blas.empty() ? std::string("none loaded yet") : blas);
  if (!blas.empty() && blas.find("openblas") == std::string::npos && blas.find("mkl") == std::string::npos)
    os << "  (reference BLAS: install libopenblas0-pthread, training is ~13x slower without it)";
  os << "\nCPU:      " << cpu_line();
  return os.str();
}

}  // namespace modtrain
