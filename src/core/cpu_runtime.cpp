// Process-wide CPU settings (core/cpu_runtime.h). No torch here: it runs before anything else.
#include "modtrain/core/cpu_runtime.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace modtrain {
namespace {

bool malloc_tuned = false;
bool gemm_onednn = true;

// OpenBLAS's public introspection, looked up at run time: the BLAS behind libblas.so.3 may be
// another one (reference BLAS, BLIS), which has no such function.
const char* openblas_corename() {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn ? fn() : nullptr;
}

}  // namespace

void tune_cpu_runtime() {
  if (const char* g = std::getenv("MODTRAIN_CPU_GEMM"); g && *g) {
    if (std::strcmp(g, "blas") != 0 && std::strcmp(g, "onednn") != 0) {
      std::fprintf(stderr, "error: MODTRAIN_CPU_GEMM=%s: use onednn or blas (unset means onednn)\n", g);
      std::exit(2);
    }
    gemm_onednn = std::strcmp(g, "onednn") == 0;
  }
  const char* v = std::getenv("MODTRAIN_CPU_TUNING");
  if (v && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0)) return;
  if (v && *v && std::strcmp(v, "on") != 0 && std::strcmp(v, "1") != 0) {  // before anything else runs: no logger yet
    std::fprintf(stderr, "error: MODTRAIN_CPU_TUNING=%s: use on or off (unset means on)\n", v);
    std::exit(2);
  }
  malloc_tuned = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
}

bool cpu_gemm_onednn_requested() { return gemm_onednn; }

std::string cpu_runtime_summary() {
  std::string s;
  if (const char* core = openblas_corename()) {
    s = std::string("OpenBLAS ") + core + " kernels";
    if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) s += std::string(" (OPENBLAS_CORETYPE=") + forced + ")";
  } else {
    s = "BLAS kernels: not OpenBLAS's";
  }
  s += malloc_tuned ? "; malloc keeps freed blocks up to 32 MiB" : "; malloc defaults (MODTRAIN_CPU_TUNING=off)";
  return s;
}

}  // namespace modtrain
