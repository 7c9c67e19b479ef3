// What the CUDA runtime says about a device (its PCI bus id, its compute capability), for the
// placement agreement and the precision check. A plain TU on cudart, so it needs no CUDA-enabled
// LibTorch and is compiled (and linked) wherever the NCCL communicator is.
#include <string>

#include "modtrain/dist/device.h"

#ifdef MODTRAIN_HAVE_NCCL
#include <cuda_runtime.h>
#endif

namespace modtrain {

std::string cuda_bus_id(int device) {
#ifdef MODTRAIN_HAVE_NCCL
  char id[32] = {0};
  if (cudaDeviceGetPCIBusId(id, sizeof id, device) == cudaSuccess) return id;
  cudaGetLastError();  // do not leave the error for the next CUDA call to report
#else
  (void)device;
#endif
  return "";
}

int cuda_compute_capability(int device) {
#ifdef MODTRAIN_HAVE_NCCL
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess)
    return major * 10 + minor;
  cudaGetLastError();
#else
  (void)device;
#endif
  return -1;
}

}  // namespace modtrain
