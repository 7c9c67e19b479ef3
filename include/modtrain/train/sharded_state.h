// An optimiser's state, sharded or not, in one place (the idea of Marian's scatterState /
// gatherState): named tensors that mirror the update space of dist/flat_params.h element for
// element (AdamW: "exp_avg" and "exp_avg_sq"; a second-moment-free optimiser would name one).
// Whoever declares its state here gets, with no code of its own:
//  - ZeRO-1 sharding: under train.zero 1 the tensors hold this rank's slices only;
//  - sharded checkpoints: which pieces of which parameters this rank writes (its own slices under
//    ZeRO-1; an even 1/N split of the replicated state without it), so that N ranks write 1/N each
//    and no rank gathers state it does not own;
//  - resharding load: each rank fills the pieces it holds from whatever pieces a checkpoint of any
//    world size or ZeRO setting has (train/checkpoint.h reads only the slices it needs);
//  - the unsharded form by parameter name (gather_full / load_full): old single-file checkpoints
//    and exports.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "modtrain/dist/communicator.h"
#include "modtrain/dist/flat_params.h"

namespace modtrain {

// Elements [begin, end) of a parameter, flattened row-major, stored at `space` in the update space.
struct StatePiece {
  size_t slot = 0;  // FlatParams::slots() index
  int64_t begin = 0, end = 0;
  int64_t space = 0;
  int64_t numel() const { return end - begin; }
};

class ShardedState {
 public:
  // Zero-filled tensors shaped like flat.grad_space(), one per name. `comm` is the data plane
  // (gather_full under ZeRO-1); `rank`/`world` say which 1/N of replicated state this rank writes.
  ShardedState(FlatParams& flat, std::vector<std::string> names, Communicator* comm, int rank, int world);

  const std::vector<std::string>& names() const { return names_; }
  torch::Tensor& tensor(size_t i) { return tensors_[i]; }
  const torch::Tensor& tensor(size_t i) const { return tensors_[i]; }
  // Tensor i's slice for bucket b (the bucket's grad_shard range).
  const torch::Tensor& part(size_t i, size_t bucket) const { return parts_[i][bucket]; }
  const FlatParams& flat() const { return flat_; }
  size_t bytes() const;

  // Every piece this rank holds (the whole model without ZeRO-1), in update-space order.
  const std::vector<StatePiece>& held() const { return held_; }
  // What this rank writes in a checkpoint: held() under ZeRO-1; without it the rank's even share
  // (by element count, cut at any element) of the replicated state. Over all ranks: every element
  // of every parameter exactly once.
  const std::vector<StatePiece>& to_write() const { return to_write_; }

  // The unsharded state: "<name>.<parameter>" -> CPU float32 of the parameter's shape, in
  // registration order. Collective under ZeRO-1 (an all-gather of every slice: exports only).
  std::vector<std::pair<std::string, torch::Tensor>> gather_full();
  // Takes this rank's pieces of an unsharded state. Throws UserError naming `source` and the first
  // parameter whose state is missing, of another shape or unknown.
  void load_full(const std::vector<std::pair<std::string, torch::Tensor>>& state, const std::string& source);
  // Checks a stored state against the model: `shapes` maps "<name>.<parameter>" to its stored
  // shape. Throws UserError naming `source` and the first parameter (registration order) whose
  // state is missing or of another shape, or a stored tensor that names no parameter.
  void check_shapes(const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& source) const;
  // Fills every held piece: `read(name, slot, begin, end, out)` must write the elements [begin, end)
  // of "<name>.<parameter>" into `out` (CPU float32, end - begin elements).
  using PieceReader = std::function<void(const std::string& name, const FlatParams::Slot& slot, int64_t begin,
                                         int64_t end, float* out)>;
  void load_pieces(const PieceReader& read);

 private:
  FlatParams& flat_;
  std::vector<std::string> names_;
  Communicator* comm_;
  std::vector<torch::Tensor> tensors_;
  std::vector<std::vector<torch::Tensor>> parts_;
  std::vector<StatePiece> held_, to_write_;
};

}  // namespace modtrain
