// Process-wide CPU settings, applied first thing in main, before any tensor exists. glibc malloc
// hands every block over 128 KiB back to the kernel when it is freed (mmap'd blocks, and the
// heap's top past the trim threshold), so each training step or batch faults its tensors' pages in
// again: on this project's CPU box the kernel's time was about a fifth of `predict`'s and of
// `train`'s (docs/performance.md, "CPU runtime"). modtrain keeps blocks up to 32 MiB (glibc's
// most) in the heap and does not trim it below 1 GiB of free space: the next step reuses the pages.
// This is glibc's mallopt, not a replacement allocator (jemalloc, mimalloc) linked in: the same
// effect for LibTorch's CPU tensors with nothing more to install. MODTRAIN_CPU_TUNING=off turns it
// off (the benchmark's baseline).
#pragma once

#include <string>

namespace modtrain {

void tune_cpu_runtime();

// One line for `--version` and the serve start line: the OpenBLAS kernels in use (OPENBLAS_CORETYPE
// when the environment forces them) and whether the malloc thresholds are set.
std::string cpu_runtime_summary();

}  // namespace modtrain
