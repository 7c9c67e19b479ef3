// Process-wide CPU settings, applied first thing in main, before any tensor exists. glibc malloc
// hands every block over 128 KiB back to the kernel when it is freed (mmap'd blocks, and the
// heap's top past the trim threshold), so each training step or batch faults its tensors' pages in
// again: on this project's CPU box the kernel's time was about a fifth of `predict`'s and of
// `train`'s (docs/performance.md, "CPU runtime"). modtrain keeps blocks up to 32 MiB (glibc's
// most) in the heap and does not trim it below 1 GiB of free space: the next step reuses the pages.
// This is glibc's mallopt, not a replacement allocator (jemalloc, mimalloc) linked in: the same
// effect for LibTorch's CPU tensors with nothing more to install. MODTRAIN_CPU_TUNING=off turns it
// off (the benchmark's baseline).
//
// Inference GEMMs (MODTRAIN_CPU_GEMM): with autograd off, on CPU in fp32, modtrain's model sends
// its linear layers to oneDNN (LibTorch's mkldnn_linear) where LibTorch was built with it and a
// batch has 128 rows or more (model/bert.h `linear`): oneDNN picks its kernels for the CPU it runs
// on (AVX-512 here), while OpenBLAS is held to the kernels the environment names
// (OPENBLAS_CORETYPE). 1.3-1.9x the GEMM throughput at the model's shapes from 128 rows, `predict`
// 1.24-1.49x on the project's CPU box (docs/performance.md, "CPU runtime"). Training keeps
// OpenBLAS (autograd). MODTRAIN_CPU_GEMM=blas keeps OpenBLAS everywhere (the benchmark's baseline).
#pragma once

#include <string>

namespace modtrain {

// Reads MODTRAIN_CPU_TUNING (on|off) and MODTRAIN_CPU_GEMM (onednn|blas); anything else is one
// line and exit 2.
void tune_cpu_runtime();

// MODTRAIN_CPU_GEMM is not blas. Whether LibTorch has oneDNN is build_info.h's onednn_inference_gemm().
bool cpu_gemm_onednn_requested();

// One line for `--version` and the serve start line: the OpenBLAS kernels in use (OPENBLAS_CORETYPE
// when the environment forces them) and whether the malloc thresholds are set.
std::string cpu_runtime_summary();

}  // namespace modtrain
