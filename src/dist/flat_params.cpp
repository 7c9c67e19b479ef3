#include "modtrain/dist/flat_params.h"

#include <algorithm>
#include <map>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"

namespace modtrain {

FlatParams::FlatParams(const NamedParameters& params, FlatOptions options) : options_(options) {
  MT_CHECK(options_.shards >= 1 && options_.rank >= 0 && options_.rank < options_.shards,
           "flat parameters: rank " << options_.rank << " of " << options_.shards << " shards");
  MT_CHECK(!params.empty(), "flat parameters: the model has no parameters");
  const torch::TensorOptions first = params.front().second.options();
  // 1. Two streams in reverse registration order, each cut at the cap; decaying buckets first.
  std::vector<std::vector<size_t>> groups[2];  // [decay, no decay] -> buckets of parameter indices
  size_t bytes[2] = {0, 0};
  for (size_t i = params.size(); i-- > 0;) {
    const auto& [name, p] = params[i];
    if (!p.requires_grad()) continue;
    if (p.scalar_type() != torch::kFloat32 || p.device() != first.device())
      throw InternalError("flat parameters: " + name + " is " + std::string(c10::toString(p.scalar_type())) + " on " +
                          p.device().str() + "; all parameters must be float32 on one device");
    const int g = options_.no_decay.count(name) ? 1 : 0;
    const size_t size = static_cast<size_t>(p.numel()) * sizeof(float);
    const size_t cap = g == 0 && groups[0].size() == 1 ? options_.first_bucket_cap_bytes : options_.bucket_cap_bytes;
    if (groups[g].empty() || bytes[g] + size > cap) {
      groups[g].emplace_back();
      bytes[g] = 0;
    }
    groups[g].back().push_back(i);
    bytes[g] += size;
  }
  // 2. One allocation for all parameters and one for all gradients (llm.c's single block: an
  //    update over the whole model is then a handful of operations); each bucket is a slice,
  //    padded to a multiple of the shard count; the values move in.
  torch::NoGradGuard no_grad;
  int64_t total = 0, shard_total = 0;
  for (int g = 0; g < 2; ++g) {
    for (const auto& members : groups[g]) {
      Bucket b;
      b.decay = g == 0;
      for (size_t i : members) b.numel += params[i].second.numel();
      b.shard = (b.numel + options_.shards - 1) / options_.shards;
      b.offset = total;
      b.space_offset = options_.zero ? shard_total : total;
      total += b.shard * options_.shards;
      shard_total += b.shard;
      if (b.decay) decay_end_ = options_.zero ? shard_total : total;
      for (size_t i : members) b.slots.push_back(i);  // parameter indices for now
      buckets_.push_back(std::move(b));
    }
  }
  params_all_ = torch::zeros({total}, first.requires_grad(false));
  grads_all_ = torch::zeros({total}, first.requires_grad(false));
  grad_space_ = options_.zero ? torch::zeros({shard_total}, first.requires_grad(false)) : grads_all_;
  for (size_t k = 0; k < buckets_.size(); ++k) {
    Bucket& b = buckets_[k];
    const int64_t padded = b.shard * options_.shards;
    b.params = params_all_.narrow(0, b.offset, padded);
    b.grads = grads_all_.narrow(0, b.offset, padded);
    std::vector<size_t> members = std::move(b.slots);
    b.slots.clear();
    int64_t offset = 0;
    for (size_t i : members) {
      const auto& [name, p] = params[i];
      Slot s{name, p, k, offset, p.numel()};
      torch::Tensor data = b.params.narrow(0, offset, s.numel).view(p.sizes());
      data.copy_(p.detach());
      s.param.set_data(data);  // the parameter now lives in the bucket (autograd identity unchanged)
      offset += s.numel;
      b.slots.push_back(slots_.size());
      grad_views_.push_back(b.grads.narrow(0, s.offset, s.numel).view(p.sizes()));
      slots_.push_back(std::move(s));
    }
    if (options_.zero) {
      b.param_shard = b.params.narrow(0, static_cast<int64_t>(options_.rank) * b.shard, b.shard);
      b.grad_shard = grad_space_.narrow(0, b.space_offset, b.shard);
    } else {
      b.param_shard = b.params;
      b.grad_shard = b.grads;
    }
  }
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < params.size(); ++i) position[params[i].first] = i;
  registration_order_.resize(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) registration_order_[i] = i;
  std::sort(registration_order_.begin(), registration_order_.end(),
            [&](size_t a, size_t b) { return position[slots_[a].name] < position[slots_[b].name]; });
  attach_grads();
}

void FlatParams::adopt_grad(size_t slot) {
  Slot& s = slots_[slot];
  const torch::Tensor& view = grad_views_[slot];
  const torch::Tensor& grad = s.param.grad();
  if (grad.defined() && grad.data_ptr() == view.data_ptr()) return;
  if (grad.defined()) {
    torch::NoGradGuard no_grad;
    view.copy_(grad);  // keep what was there (an accumulation autograd did outside the view)
  }
  s.param.mutable_grad() = view;
}

void FlatParams::attach_grads() {
  for (size_t i = 0; i < slots_.size(); ++i) adopt_grad(i);
}

void FlatParams::zero_grads() {
  grads_all_.zero_();  // one operation; the ZeRO-1 slices are overwritten by the reduce-scatter
  attach_grads();
}

}  // namespace modtrain
