#include "modtrain/dist/bucketed_reducer.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include <cstring>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"

namespace modtrain {

BucketedReducer::BucketedReducer(FlatParams& flat, Communicator& comm, Collectives& collectives, Timeline* timeline,
                                 torch::ScalarType wire)
    : flat_(flat), comm_(comm), timeline_(timeline), wire_(wire) {
  MT_CHECK(wire_ == torch::kFloat32 || wire_ == torch::kBFloat16, "gradients travel as fp32 or bf16, not " << wire_);
  MT_CHECK(!flat_.sharded() || flat_.options().shards == comm_.size(),
           "reduce-scatter over " << comm_.size() << " ranks needs buckets in as many shards, not "
                                  << flat_.options().shards);
  // 1. Same parameters everywhere? Compare a hash of names and shapes (control plane; the two
  //    32-bit halves travel exactly as doubles).
  const auto& slots = flat_.slots();
  std::string signature;
  for (const auto& s : slots) {
    signature += s.name + "[";
    for (auto d : s.param.sizes()) signature += std::to_string(d) + ",";
    signature += "] ";
  }
  const uint64_t hash = text::fnv1a64(signature);
  const std::vector<double> mine = {static_cast<double>(hash >> 32), static_cast<double>(hash & 0xffffffffu)};
  const std::vector<std::vector<double>> hashes = collectives.all_gather(mine, "parameter-shape check");
  for (const auto& h : hashes) {
    if (h == hashes[0]) continue;
    throw Error("the ranks built different models (parameter names or shapes differ from rank 0's; this rank has " +
                    std::to_string(slots.size()) + " parameters, first " + slots.front().name +
                    "); every rank must use the same config, vocab and labels",
                kExitUsage);
  }
  // 2. Identical starting weights: rank 0's, one broadcast per bucket.
  {
    torch::NoGradGuard no_grad;
    auto& buckets = flat_.buckets();
    for (size_t b = 0; b < buckets.size(); ++b)
      comm_.broadcast(buckets[b].params, 0, "initial parameters (bucket " + std::to_string(b) + ")");
  }
  pending_.assign(flat_.buckets().size(), 0);
  work_.resize(flat_.buckets().size());
  if (wire_ != torch::kFloat32)
    for (const auto& b : flat_.buckets()) {
      wire_in_.push_back(torch::empty(b.grads.sizes(), b.grads.options().dtype(wire_)));
      wire_out_.push_back(flat_.sharded() ? torch::empty(b.grad_shard.sizes(), b.grad_shard.options().dtype(wire_))
                                          : wire_in_.back());
    }
  ready_.assign(slots.size(), false);
  flat_.attach_grads();
  // 3. A hook after each parameter's gradient accumulation (what DDP's reducer registers).
  for (size_t i = 0; i < slots.size(); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(slots[i].param);
    MT_CHECK(accumulator, "no gradient accumulator for " << slots[i].name);
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_grad_ready(i);
          return outputs;
        }));
    hooks_.push_back({accumulator, key});
  }
}

BucketedReducer::~BucketedReducer() {
  // As DDP's ~Reducer: a hook left behind would call into a destroyed reducer on the next backward.
  for (auto& hook : hooks_) hook.accumulator->del_post_hook(hook.key);
}

void BucketedReducer::zero_grad() { flat_.zero_grads(); }

void BucketedReducer::prepare_backward(bool last) {
  flat_.attach_grads();  // an optimiser that reset gradients must not break the views
  armed_ = last;
  if (!last) return;
  std::fill(ready_.begin(), ready_.end(), false);
  const auto& buckets = flat_.buckets();
  for (size_t b = 0; b < buckets.size(); ++b) {
    pending_[b] = buckets[b].slots.size();
    work_[b].reset();
  }
  next_launch_ = 0;
}

void BucketedReducer::on_grad_ready(size_t slot) {
  if (!armed_) return;  // an accumulation micro-step: nothing to communicate
  const auto& s = flat_.slots()[slot];
  if (ready_[slot])
    throw Error("gradient reducer: parameter " + s.name +
                    " was marked ready twice in one step (a second backward pass without prepare_backward(), or "
                    "reentrant autograd); announce every backward pass with prepare_backward()",
                kExitRuntime);
  ready_[slot] = true;
  flat_.adopt_grad(slot);  // autograd may have replaced the gradient instead of accumulating into the view
  if (--pending_[s.bucket] == 0) launch_ready_buckets();
}

void BucketedReducer::launch_ready_buckets() {
  // In index order on every rank, so that the collectives of all ranks match one to one.
  auto& buckets = flat_.buckets();
  while (next_launch_ < buckets.size() && pending_[next_launch_] == 0) {
    FlatParams::Bucket& b = buckets[next_launch_];
    const std::string what =
        "gradient bucket " + std::to_string(next_launch_) + " (" + std::to_string(b.slots.size()) + " tensors)";
    if (wire_ == torch::kFloat32) {
      work_[next_launch_] = flat_.sharded() ? comm_.reduce_scatter_async(b.grads, b.grad_shard, ReduceOp::kAvg, what)
                                            : comm_.all_reduce_async(b.grad_shard, ReduceOp::kAvg, what);
    } else {  // rounded to bf16, summed on the wire; divided in fp32 in finalize()
      torch::NoGradGuard no_grad;
      torch::Tensor& in = wire_in_[next_launch_];
      in.copy_(b.grads);
      work_[next_launch_] = flat_.sharded()
                                ? comm_.reduce_scatter_async(in, wire_out_[next_launch_], ReduceOp::kSum, what)
                                : comm_.all_reduce_async(in, ReduceOp::kSum, what);
    }
    ++next_launch_;
  }
}

void BucketedReducer::finalize() {
  if (!armed_) return;
  // Parameters that got no gradient this step contribute zeros (their views were zeroed).
  std::fill(pending_.begin(), pending_.end(), 0);
  launch_ready_buckets();
  const double start = Timeline::now_us();
  for (size_t b = 0; b < work_.size(); ++b) {
    if (!work_[b]) continue;
    work_[b]->wait();
    work_[b].reset();
    if (wire_ != torch::kFloat32) {
      torch::NoGradGuard no_grad;
      flat_.buckets()[b].grad_shard.copy_(wire_out_[b]).div_(static_cast<double>(comm_.size()));
    }
  }
  if (timeline_) timeline_->span("wait for gradients", start, Timeline::now_us());
  armed_ = false;
}

}  // namespace modtrain
