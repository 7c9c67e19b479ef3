// Flat storage for data-parallel training: the parameters and their gradients live in a few
// contiguous buffers ("buckets"), as in Apex's and DeepSpeed's flat buffers, llm.c's single
// parameter block and Marian's one-tensor optimiser. Each parameter's data is re-pointed
// (set_data) at a view of its bucket's parameter buffer and its gradient is a view of the bucket's
// gradient buffer, so the reducer communicates whole buckets and the optimiser updates whole
// buckets with a handful of operations instead of a few per tensor.
//
// Layout (identical on every rank, independent of the world size apart from the zero padding):
// parameters in reverse registration order (roughly the order backward produces gradients),
// split by weight decay (decaying parameters first, then biases and LayerNorm weights in their
// own buckets, so no name is tested per step), each stream cut at the bucket cap (the first
// bucket smaller, so communication starts early). Each bucket is padded with zeros to a multiple
// of `shards` so that ZeRO-1 can give every rank an equal slice ([rank * shard, (rank+1) * shard)).
#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace modtrain {

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

// A module's parameters in registration order (the order every rank's buckets follow).
inline NamedParameters named_parameters(const torch::nn::Module& module) {
  NamedParameters out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

struct FlatOptions {
  size_t bucket_cap_bytes = 25u << 20;
  size_t first_bucket_cap_bytes = 1u << 20;  // DDP's choice: a small first bucket starts communication early
  bool zero = false;  // ZeRO-1: each rank owns the slice `rank` of every bucket (also at one rank)
  int shards = 1;     // the world size under ZeRO-1 (buckets are padded to a multiple of it); else 1
  int rank = 0;       // this rank's slice
  // Parameters without weight decay, by name; the model declares them (model/model.h:
  // no_weight_decay), this layer does not guess them. Empty: every parameter decays.
  std::unordered_set<std::string> no_decay;
};

class FlatParams {
 public:
  struct Slot {
    std::string name;
    torch::Tensor param;  // the model's parameter (its data is a view of the bucket)
    size_t bucket;
    int64_t offset, numel;
  };
  struct Bucket {
    torch::Tensor params;      // [padded]: the parameters' storage
    torch::Tensor grads;       // [padded]: the gradients' storage (what the reducer communicates)
    int64_t numel = 0;         // real elements; the rest is zero padding
    int64_t shard = 0;         // padded / shards: the slice each rank owns under ZeRO-1
    int64_t offset = 0;        // of `params` in params_all() (and of `grads` in grads_all())
    int64_t space_offset = 0;  // of grad_shard (and the optimiser state) in the update space
    bool decay = true;         // weight decay applies to every parameter in it
    std::vector<size_t> slots;
    // What this rank updates: the whole bucket, or under ZeRO-1 its slice of the parameters and
    // the slice of grad_space() the reduce-scatter writes its slice of the gradient into.
    torch::Tensor param_shard, grad_shard;
  };

  // `params` in registration order (named_parameters()); every one must be a float32 tensor on the
  // same device. Copies the values into the buckets and re-points the parameters at them.
  FlatParams(const NamedParameters& params, FlatOptions options);
  FlatParams(const FlatParams&) = delete;
  FlatParams& operator=(const FlatParams&) = delete;

  std::vector<Bucket>& buckets() { return buckets_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }
  const std::vector<Slot>& slots() const { return slots_; }
  const std::vector<size_t>& registration_order() const { return registration_order_; }  // slot indices
  const FlatOptions& options() const { return options_; }
  bool sharded() const { return options_.zero; }

  // Contiguous storage: every bucket's parameters are slices of it (the gradients of grads_all_).
  const torch::Tensor& params_all() const { return params_all_; }
  // The update space: what this rank's optimiser state mirrors, element for element. Without
  // ZeRO-1 the whole model (grads_all(); parameters: params_all()); under ZeRO-1 this rank's slices
  // of all buckets back to back (the reduce-scatter's output; its parameter slices are not
  // contiguous in params_all(), so the update goes bucket by bucket). Decaying parameters first:
  // elements [0, decay_end()) take weight decay, the rest not.
  const torch::Tensor& grad_space() const { return grad_space_; }
  int64_t decay_end() const { return decay_end_; }

  // Every parameter's .grad() is its bucket view again (autograd or a caller may have replaced it,
  // in which case the values are copied into the view first).
  void attach_grads();
  void adopt_grad(size_t slot);  // the same for one parameter (from the reducer's autograd hook)
  void zero_grads();             // zeroes the gradient buffers (and the ZeRO-1 shard buffers)

 private:
  FlatOptions options_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<torch::Tensor> grad_views_;  // per slot, precomputed: no slicing operators per step
  std::vector<size_t> registration_order_;
  torch::Tensor params_all_, grads_all_, grad_space_;
  int64_t decay_end_ = 0;
};

}  // namespace modtrain
