#pragma once
// Variable-length attention for the unpadded path (model.unpad) on CUDA: LibTorch's own
// FlashAttention-2 kernels (aten::_flash_attention_forward / _backward, LibTorch >= 2.1) called
// with cumulative sequence offsets, so attention too runs on the concatenated real tokens with no
// padding at all (MosaicBERT's and HF's padding-free flash path). These ops are internal: their
// argument lists changed between releases (scale in 2.1, window sizes in 2.5, philox_* renamed
// rng_state/unused). They are therefore called through the dispatcher by argument name, checked
// against the schema the running LibTorch registers, which keeps one source building against 1.13
// (where the op does not exist) and every 2.x. And because this path cannot run on the CPU-only
// machines that build modtrain, it verifies itself once per device, dtype and head size against
// the exact per-record reference before it is used; a LibTorch whose kernels are missing, refuse
// the arguments or disagree is reported in one warning, and attention falls back to the padded
// layout (correct, slower).
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modtrain {

// An ATen operator called by argument name: each schema argument takes the value named in `args`
// or else its schema default; a required argument missing from `args` throws InternalError naming
// it. Names in `args` that the schema does not have are ignored (aliases across versions). Returns
// the outputs, or nullopt when this LibTorch has no operator of that name.
std::optional<std::vector<c10::IValue>> call_op_by_name(const std::string& name, const std::string& overload,
                                                        const std::map<std::string, c10::IValue>& args);

// True when this LibTorch registers the variable-length flash attention operators.
bool varlen_flash_registered();

// q, k, v [N, heads, head_dim] (the records concatenated), cu_seqlens int32 [B + 1] on the same
// device (record i is rows cu[i] .. cu[i+1]), max_len the longest record -> [N, heads, head_dim].
// Differentiable (a custom autograd function over the forward and backward kernels).
torch::Tensor varlen_flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& cu_seqlens, int64_t max_len, double dropout_p);

// The exact reference the check compares against: softmax(q k^T / sqrt(d)) v per record, in fp32.
torch::Tensor varlen_reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& cu_seqlens);

// Whether the unpadded path may use varlen_flash_attention for a [N, heads, head_dim] input like
// `q`: CUDA, fp16 or bf16, a head size the kernels take, the operators registered, and the one-time
// check on this device, dtype and head size passed (its outcome logged once; thread-safe).
bool use_varlen_flash(const torch::Tensor& q);

}  // namespace modtrain
