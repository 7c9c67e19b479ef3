// Inference GEMMs through oneDNN's own API, with each weight laid out once in the blocked format
// oneDNN's kernels read (as PyTorch's torch.jit.freeze + prepacking, IPEX or ONNX Runtime do), and
// activations read and written where they lie. LibTorch 1.13's only route to oneDNN,
// at::mkldnn_linear, re-lays the weight out on every call and copies the input into and the output
// out of oneDNN tensors with a reference reorder (a third of its time at the tiny model's shapes):
// below 128 rows it lost to OpenBLAS. Plain C++ (no LibTorch): model/bert.cpp decides when to use it.
// Built only with oneDNN's headers (Debian's libdnnl-dev, the library LibTorch itself links); without
// them packed_gemm_compiled() is false and bert.cpp keeps LibTorch's routes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace modtrain {

bool packed_gemm_compiled();

// The row counts oneDNN kernels are kept for. oneDNN builds one kernel per shape, and a batch's
// token count changes with every batch: kept counts are exact below 16, then multiples of a step of
// 1/16 to 1/32 of the count (16 up to 511, then 32, 64, ...), 111 counts from 1 to 8192 (with steps
// of 16 rows, 512: a 10-minute serve soak's RSS was still rising 8% after its first minute).
// gemm_rows(rows) is the kept count at or above `rows`: PackedAttention's callers pad to it;
// PackedLinear::run splits any count into kept ones instead (541 = 512 + 16 + 13).
int64_t gemm_rows(int64_t rows);

// y = x W^T + b for one weight W [out, in] (row-major, nn::Linear's layout) and bias b [out] (or
// none), W laid out once at construction (a copy: the weight's memory twice). `weight` must stay
// alive and unchanged while the object is used: a row count whose kernel does not take the laid-out
// weight reads it in place. Thread-safe: the primitive for each row count is built once, under a
// lock, and executed without one.
class PackedLinear {
 public:
  enum class Epilogue { kNone, kGeluErf };  // kGeluErf: y = GELU(x W^T + b), exact (erf) GELU
  PackedLinear(const float* weight, const float* bias, int64_t out, int64_t in, Epilogue epilogue = Epilogue::kNone);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  // x [rows, in] and y [rows, out], contiguous row-major, not overlapping; rows >= 1. `add` [rows,
  // out], when given, is added last (a residual: y = x W^T + b + add in one pass; not overlapping
  // y). Any row count: run in pieces whose counts gemm_rows keeps, read and written in place.
  // Throws std::runtime_error naming oneDNN's status if oneDNN fails.
  void run(const float* x, int64_t rows, float* y, const float* add = nullptr) const;
  int64_t out() const;
  int64_t in() const;
  size_t primitives() const;  // row counts built so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Scaled dot-product attention of a laid-out batch through oneDNN: softmax(Q K^T / sqrt(d) + bias) V
// as a batched matmul (the scale and the key bias fused into it), a softmax and a batched matmul,
// the kernels built once per (records, length) and kept. LibTorch 1.13's baddbmm/softmax/bmm on CPU
// is a loop of OpenBLAS calls on [length x head_dim] matrices, per record and head, and its
// reshapes copy Q, K and V: at the tiny model's shapes this is 2-3x the time.
class PackedAttention {
 public:
  PackedAttention(int64_t heads, int64_t head_dim);
  ~PackedAttention();
  PackedAttention(const PackedAttention&) = delete;
  PackedAttention& operator=(const PackedAttention&) = delete;

  // qkv [3, b, heads, t, head_dim] contiguous (Q, K, V); key_bias [b, t] added to every score row
  // of its record (0 attended, a large finite negative masked); out [b, t, heads, head_dim].
  // Shapes are the caller's: it rounds b and t (padding records and keys masked) so that the kernels
  // are few. Throws std::runtime_error naming oneDNN's status if oneDNN fails.
  void run(const float* qkv, const float* key_bias, int64_t b, int64_t t, float* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modtrain
