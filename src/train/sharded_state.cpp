#include "modtrain/train/sharded_state.h"

#include <algorithm>
#include <map>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"

namespace modtrain {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t d = 0; d < shape.size(); ++d) out += (d ? ", " : "") + std::to_string(shape[d]);
  return out + "]";
}

}  // namespace

ShardedState::ShardedState(FlatParams& flat, std::vector<std::string> names, Communicator* comm, int rank, int world)
    : flat_(flat), names_(std::move(names)), comm_(comm) {
  MT_CHECK(!flat_.sharded() || (comm_ && comm_->size() == flat_.options().shards),
           "ZeRO-1 over " << flat_.options().shards << " shards needs a communicator of as many ranks");
  MT_CHECK(world >= 1 && rank >= 0 && rank < world, "sharded state: rank " << rank << " of " << world);
  for (size_t i = 0; i < names_.size(); ++i) {
    tensors_.push_back(torch::zeros_like(flat_.grad_space()));
    std::vector<torch::Tensor> parts;
    for (const auto& b : flat_.buckets())
      parts.push_back(tensors_.back().narrow(0, b.space_offset, b.grad_shard.numel()));
    parts_.push_back(std::move(parts));
  }
  // What this rank holds: per bucket the slice it owns (all of it without ZeRO-1), cut at the
  // parameters it spans; padding belongs to no parameter and is never written.
  const auto& slots = flat_.slots();
  for (const auto& b : flat_.buckets()) {
    const int64_t lo = flat_.sharded() ? flat_.options().rank * b.shard : 0;
    const int64_t hi = std::min(lo + b.grad_shard.numel(), b.numel);
    std::vector<size_t> in_bucket = b.slots;
    std::sort(in_bucket.begin(), in_bucket.end(),
              [&](size_t x, size_t y) { return slots[x].offset < slots[y].offset; });
    for (size_t k : in_bucket) {
      const auto& s = slots[k];
      const int64_t a = std::max(lo, s.offset), e = std::min(hi, s.offset + s.numel);
      if (a < e) held_.push_back({k, a - s.offset, e - s.offset, b.space_offset + (a - lo)});
    }
  }
  std::sort(held_.begin(), held_.end(), [](const StatePiece& x, const StatePiece& y) { return x.space < y.space; });
  if (flat_.sharded()) {
    to_write_ = held_;
    return;
  }
  // Replicated: rank r writes elements [r * total / W, (r + 1) * total / W) of the held pieces in
  // order, so that every rank writes about 1/W of the state.
  int64_t total = 0;
  for (const auto& p : held_) total += p.numel();
  const int64_t from = total * rank / world, to = total * (rank + 1) / world;
  int64_t at = 0;
  for (const auto& p : held_) {
    const int64_t a = std::max(at, from), e = std::min(at + p.numel(), to);
    if (a < e) to_write_.push_back({p.slot, p.begin + (a - at), p.begin + (e - at), p.space + (a - at)});
    at += p.numel();
  }
}

size_t ShardedState::bytes() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += static_cast<size_t>(t.numel()) * t.element_size();
  return n;
}

std::vector<std::pair<std::string, torch::Tensor>> ShardedState::gather_full() {
  const auto& buckets = flat_.buckets();
  std::vector<std::vector<torch::Tensor>> full(names_.size());  // [name][bucket] -> [numel]
  for (size_t i = 0; i < names_.size(); ++i)
    for (size_t b = 0; b < buckets.size(); ++b) {
      if (!flat_.sharded()) {
        full[i].push_back(parts_[i][b]);
        continue;
      }
      torch::Tensor whole = torch::zeros({buckets[b].params.numel()}, tensors_[i].options());
      whole.narrow(0, flat_.options().rank * buckets[b].shard, buckets[b].shard).copy_(parts_[i][b]);
      comm_->all_gather_chunks_async(whole, names_[i])->wait();
      full[i].push_back(whole.narrow(0, 0, buckets[b].numel));
    }
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t k : flat_.registration_order()) {
    const auto& s = flat_.slots()[k];
    for (size_t i = 0; i < names_.size(); ++i)
      out.emplace_back(names_[i] + "." + s.name,
                       full[i][s.bucket].narrow(0, s.offset, s.numel).view(s.param.sizes()).to(torch::kCPU).clone());
  }
  return out;
}

void ShardedState::check_shapes(const std::map<std::string, std::vector<int64_t>>& shapes,
                                const std::string& source) const {
  const auto& slots = flat_.slots();
  for (size_t k : flat_.registration_order())
    for (const auto& name : names_) {
      const std::string key = name + "." + slots[k].name;
      auto it = shapes.find(key);
      if (it == shapes.end())
        throw UserError(source + ": no optimiser state " + key + " for the model's parameter " + slots[k].name +
                        " (the checkpoint is of another model); resume from a checkpoint of this model");
      if (it->second != slots[k].param.sizes().vec())
        throw UserError(source + ": optimiser state " + key + " has shape " + shape_text(it->second) +
                        ", the parameter " + shape_text(slots[k].param.sizes().vec()) +
                        " (the checkpoint is of another model size)");
    }
  if (shapes.size() == slots.size() * names_.size()) return;
  for (const auto& [key, shape] : shapes) {
    bool known = false;
    for (const auto& name : names_)
      for (const auto& s : slots) known = known || key == name + "." + s.name;
    if (!known)
      throw UserError(source + ": optimiser state " + key +
                      " names no parameter of this model (the checkpoint is of another architecture)");
  }
}

void ShardedState::load_full(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                             const std::string& source) {
  std::map<std::string, const torch::Tensor*> by_name;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [key, t] : state) {
    by_name[key] = &t;
    shapes[key] = t.sizes().vec();
  }
  check_shapes(shapes, source);
  load_pieces([&](const std::string& name, const FlatParams::Slot& slot, int64_t begin, int64_t end, float* out) {
    const torch::Tensor flat = by_name.at(name + "." + slot.name)->reshape({-1}).to(torch::kFloat32).contiguous();
    std::copy(flat.data_ptr<float>() + begin, flat.data_ptr<float>() + end, out);
  });
}

void ShardedState::load_pieces(const PieceReader& read) {
  torch::NoGradGuard no_grad;
  const auto& slots = flat_.slots();
  std::vector<float> buffer;
  for (size_t i = 0; i < names_.size(); ++i) {
    tensors_[i].zero_();  // padding stays zero
    for (const auto& p : held_) {
      buffer.assign(static_cast<size_t>(p.numel()), 0.0f);
      read(names_[i], slots[p.slot], p.begin, p.end, buffer.data());
      tensors_[i].narrow(0, p.space, p.numel()).copy_(torch::from_blob(buffer.data(), {p.numel()}, torch::kFloat32));
    }
  }
}

}  // namespace modtrain
