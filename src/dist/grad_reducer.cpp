#include "modtrain/dist/grad_reducer.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/version.h>

#include <cstring>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/text.h"

namespace modtrain {

GradReducer::GradReducer(const NamedParameters& params, Communicator& comm, Collectives& collectives,
                         ReducerOptions options, Timeline* timeline)
    : comm_(comm), options_(options), timeline_(timeline) {
  // 1. Same parameters everywhere? Compare a hash of names and shapes (control plane; the two
  //    32-bit halves travel exactly as doubles).
  std::string signature;
  for (const auto& [name, p] : params) {
    signature += name + "[";
    for (auto d : p.sizes()) signature += std::to_string(d) + ",";
    signature += "] ";
  }
  const uint64_t hash = text::fnv1a64(signature);
  const std::vector<double> mine = {static_cast<double>(hash >> 32), static_cast<double>(hash & 0xffffffffu)};
  const std::vector<std::vector<double>> hashes = collectives.all_gather(mine, "parameter-shape check");
  for (const auto& h : hashes) {
    if (h == hashes[0]) continue;
    throw Error("the ranks built different models (parameter names or shapes differ from rank 0's; this rank has " +
                    std::to_string(params.size()) + " parameters, first " +
                    (params.empty() ? "none" : params.front().first) +
                    "); every rank must use the same config, vocab and labels",
                kExitUsage);
  }
  // 2. Buckets in reverse registration order (roughly the order backward produces gradients).
  size_t bucket_bytes = 0, bucket_elements = 0;
  for (size_t i = params.size(); i-- > 0;) {
    const torch::Tensor& p = params[i].second;
    if (!p.requires_grad()) continue;
    const size_t bytes = static_cast<size_t>(p.numel()) * p.element_size();
    bool start_new = buckets_.empty();
    if (!start_new) {
      const torch::Tensor& head = slots_[buckets_.back().slots.front()].param;
      const size_t cap = buckets_.size() == 1 ? options_.first_bucket_cap_bytes : options_.bucket_cap_bytes;
      start_new = bucket_bytes + bytes > cap || head.scalar_type() != p.scalar_type() || head.device() != p.device();
    }
    if (start_new) {
      buckets_.emplace_back();
      bucket_bytes = bucket_elements = 0;
    }
    slots_.push_back({params[i].first, p, buckets_.size() - 1, bucket_elements, static_cast<size_t>(p.numel())});
    buckets_.back().slots.push_back(slots_.size() - 1);
    bucket_bytes += bytes;
    bucket_elements += static_cast<size_t>(p.numel());
  }
  for (auto& b : buckets_) {
    size_t elements = 0;
    for (size_t s : b.slots) elements += slots_[s].numel;
    const torch::Tensor& first = slots_[b.slots.front()].param;
    b.flat = torch::zeros({static_cast<int64_t>(elements)}, first.options().requires_grad(false));
  }
  ready_.assign(slots_.size(), false);
  // 3. Identical starting weights: rank 0's (buffers too, when a model has them).
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, p] : params) {
      torch::Tensor t = p.detach();
      if (t.is_contiguous()) comm_.broadcast(t, 0, "initial " + name);
      else {
        torch::Tensor c = t.contiguous();
        comm_.broadcast(c, 0, "initial " + name);
        t.copy_(c);
      }
    }
  }
  attach_views();
  // 4. A hook after each parameter's gradient accumulation (what DDP's reducer registers).
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(slots_[i].param);
    MT_CHECK(accumulator, "no gradient accumulator for " << slots_[i].name);
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_grad_ready(i);
          return outputs;
        }));
    hooks_.push_back({accumulator, key});
  }
}

GradReducer::~GradReducer() {
  // As DDP's ~Reducer: a hook left behind would call into a destroyed reducer on the next backward.
  for (auto& hook : hooks_) hook.accumulator->del_post_hook(hook.key);
}

void GradReducer::attach_views() {
  for (auto& s : slots_) {
    torch::Tensor view = buckets_[s.bucket]
                             .flat.narrow(0, static_cast<int64_t>(s.offset), static_cast<int64_t>(s.numel))
                             .view(s.param.sizes());
    const torch::Tensor& grad = s.param.grad();
    if (grad.defined() && grad.data_ptr() == view.data_ptr()) continue;
    if (grad.defined()) view.copy_(grad);  // keep what was there (e.g. an accumulation)
    s.param.mutable_grad() = view;
  }
}

void GradReducer::zero_grad() {
  for (auto& b : buckets_) b.flat.zero_();
  attach_views();
}

void GradReducer::prepare_backward(bool last) {
  attach_views();  // an optimiser that reset gradients must not break the views
  armed_ = last;
  if (!last) return;
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) {
    b.pending = b.slots.size();
    b.work.reset();
  }
  next_launch_ = 0;
}

void GradReducer::on_grad_ready(size_t slot) {
  if (!armed_) return;  // an accumulation micro-step: nothing to communicate
  Slot& s = slots_[slot];
  if (ready_[slot])
    throw Error("gradient reducer: parameter " + s.name +
                    " was marked ready twice in one step (a second backward pass without prepare_backward(), or "
                    "reentrant autograd); announce every backward pass with prepare_backward()",
                kExitRuntime);
  ready_[slot] = true;
  // Autograd may have replaced the gradient instead of accumulating into the view: copy it back.
  torch::Tensor view = buckets_[s.bucket].flat.narrow(0, static_cast<int64_t>(s.offset), static_cast<int64_t>(s.numel));
  if (s.param.grad().data_ptr() != view.data_ptr()) {
    view.copy_(s.param.grad().reshape({-1}));
    s.param.mutable_grad() = view.view(s.param.sizes());
  }
  if (--buckets_[s.bucket].pending == 0) launch_ready_buckets();
}

void GradReducer::launch_ready_buckets() {
  // In index order on every rank, so that the collectives of all ranks match one to one.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_];
    b.work = comm_.all_reduce_async(
        b.flat, ReduceOp::kAvg,
        "gradient bucket " + std::to_string(next_launch_) + " (" + std::to_string(b.slots.size()) + " tensors)");
    ++next_launch_;
  }
}

void GradReducer::finalize() {
  if (!armed_) return;
  // Parameters that got no gradient this step contribute zeros (their views were zeroed).
  for (auto& b : buckets_) b.pending = 0;
  launch_ready_buckets();
  const double start = Timeline::now_us();
  for (auto& b : buckets_) {
    if (b.work) b.work->wait();
    b.work.reset();
  }
  if (timeline_) timeline_->span("wait for gradients", start, Timeline::now_us());
  armed_ = false;
}

void LocalReducer::zero_grad() {
  for (auto& p : params_) {
    torch::Tensor& grad = p.mutable_grad();
    if (!grad.defined()) continue;
    grad.detach_();
    grad.zero_();
  }
}

void check_replicas(const NamedParameters& params, Collectives& collectives, int64_t step) {
  // Two sums per parameter (plain and weighted by position): equal on every replica bit for bit.
  std::vector<torch::Tensor> parts;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : params) {
      torch::Tensor p = param.detach().reshape({-1}).to(torch::kFloat64);
      torch::Tensor w = torch::arange(1, p.numel() + 1, p.options());
      parts.push_back(torch::stack({p.sum(), (p * w).sum()}));
    }
  }
  torch::Tensor sums = torch::stack(parts).to(torch::kCPU).contiguous();  // [P, 2]
  const std::vector<double> mine(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
  const std::vector<std::vector<double>> all = collectives.all_gather(mine, "replica check");
  for (size_t r = 1; r < all.size(); ++r) {
    for (size_t i = 0; i < params.size(); ++i) {
      // Compared as bits (a NaN checksum is a difference too).
      if (std::memcmp(&all[r][2 * i], &all[0][2 * i], 2 * sizeof(double)) == 0) continue;
      throw CollectiveError("replicas diverged at step " + std::to_string(step) + ": parameter " + params[i].first +
                                " differs between rank 0 and rank " + std::to_string(r) +
                                " (non-deterministic kernels, or a rank skipped an update); stop and report it",
                            kExitRuntime, false);
    }
  }
}

std::vector<GradReducer::BucketInfo> GradReducer::buckets() const {
  std::vector<BucketInfo> out;
  for (const auto& b : buckets_)
    out.push_back({b.slots.size(), static_cast<size_t>(b.flat.numel()) * b.flat.element_size()});
  return out;
}

}  // namespace modtrain
