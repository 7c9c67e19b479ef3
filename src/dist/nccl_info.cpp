// NCCL's run-time version for `modtrain --version`; a plain TU so that it builds without torch.
#include <string>

#ifdef MODTRAIN_HAVE_NCCL
#include <nccl.h>
#endif

namespace modtrain::detail {

std::string nccl_runtime_version() {
#ifdef MODTRAIN_HAVE_NCCL
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  // Since NCCL 2.9 the code is major*10000 + minor*100 + patch (before: major*1000 + minor*100 + patch).
  int major = code >= 20900 ? code / 10000 : code / 1000;
  int minor = code >= 20900 ? (code % 10000) / 100 : (code % 1000) / 100;
  int patch = code % 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
#else
  return "";
#endif
}

}  // namespace modtrain::detail
