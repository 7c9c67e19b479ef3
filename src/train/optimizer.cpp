#include "modtrain/train/optimizer.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <map>
#include <utility>

#include "adamw_kernels.h"
#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/train/sharded_state.h"

// LibTorch's fused multi-tensor AdamW (one CUDA kernel for a whole list of tensors), since 2.1.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define MODTRAIN_FUSED_ADAMW_KERNEL 1
#endif

namespace modtrain {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per task when a bucket is split over threads

class FlatAdamW : public Optimizer {
 public:
  FlatAdamW(FlatParams& flat, AdamWOptions options, Communicator* comm)
      : flat_(flat),
        options_(options),
        comm_(comm),
        state_(flat, {"exp_avg", "exp_avg_sq"}, comm, comm ? comm->rank() : 0, comm ? comm->size() : 1),
        exp_avg_(state_.tensor(0)),
        exp_avg_sq_(state_.tensor(1)) {
    const torch::Tensor& space = flat_.grad_space();
    for (size_t b = 0; b < flat_.buckets().size(); ++b) {
      exp_avg_parts_.push_back(state_.part(0, b));
      exp_avg_sq_parts_.push_back(state_.part(1, b));
    }
    cpu_ = space.device().is_cpu() && options_.fused;
#ifdef MODTRAIN_FUSED_ADAMW_KERNEL
    fused_kernel_ = space.is_cuda() && options_.fused;
#endif
    // 0-dim operands of the tensor-operation path (a Scalar operand costs LibTorch several
    // dispatched operators to wrap; a tensor one does not).
    const auto scalar = torch::TensorOptions().dtype(torch::kFloat32).device(space.device());
    beta2_ = torch::full({}, options_.beta2, scalar);
    grad_scale_ = torch::ones({}, scalar);
    eps_ = torch::zeros({}, scalar);
    step_tensor_ = torch::zeros({}, scalar);
    decay_ = torch::ones({}, scalar);
    sum_sq_host_ = torch::zeros({1}, torch::kFloat64);
    if (!flat_.sharded()) decaying_ = flat_.params_all().narrow(0, 0, flat_.decay_end());
  }

  std::string name() const override { return "adamw"; }

  UpdateResult step(double lr, double max_norm, double loss_scale) override {
    torch::NoGradGuard no_grad;
    // The last step's gather (NCCL): long complete, since this step's reduce-scatter came after it
    // on the same stream; polled here so that a stalled gather still meets the watchdog.
    if (gathered_) std::exchange(gathered_, nullptr)->wait();
    const torch::Tensor& g = flat_.grad_space();
    // 1. The global norm of the (still scaled) gradient: this rank's part, summed over ranks.
    double sum_sq = 0;
    if (cpu_) {
      sum_sq_host_.data_ptr<double>()[0] = sum_squares(g);
      if (flat_.sharded()) comm_->all_reduce(sum_sq_host_, ReduceOp::kSum, "squared gradient norm");
      sum_sq = sum_sq_host_.data_ptr<double>()[0];
    } else {
      torch::Tensor total = g.norm();
      total.mul_(total);
      if (flat_.sharded()) comm_->all_reduce(total, ReduceOp::kSum, "squared gradient norm");
      sum_sq = total.item<double>();  // the step's one read back: the norm is the non-finite flag
    }
    UpdateResult r;
    r.grad_norm = std::sqrt(sum_sq) / loss_scale;
    if (!std::isfinite(r.grad_norm)) return r;
    // 2. Clipping and unscaling fold into one factor on the raw gradient (torch's clip_grad_norm_).
    double coef = max_norm / (r.grad_norm + 1e-6);
    if (!(coef < 1.0)) coef = 1.0;
    const double grad_scale = coef / loss_scale;
    // 3. The update.
    ++step_;
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
    if (cpu_) cpu_update(lr, grad_scale, bias_correction1, bias_correction2);
    else if (fused_kernel_) fused_update(lr, grad_scale);
    else tensor_update(lr, grad_scale, bias_correction1, bias_correction2);
    // 4. ZeRO-1: every rank updated its slices; gather the parameters before returning, so that no
    //    reader can see a stale replica (one operation for every bucket: NCCL issues the gathers
    //    in one group, one launch). Ordered on the device: CUDA kernels queued after this wait
    //    for it, the host does not; MPI blocks the host here.
    if (flat_.sharded()) {
      std::vector<torch::Tensor> params;
      for (const auto& bucket : flat_.buckets()) params.push_back(bucket.params);
      gathered_ = comm_->all_gather_chunks_group_async(params, "updated parameters");
      const auto start = std::chrono::steady_clock::now();
      gathered_->wait_on_device();
      r.gather_wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    r.applied = true;
    return r;
  }

  // The state lives in state_ (train/sharded_state.h): sharding, sharded checkpoints and
  // resharding come from there; what follows is the unsharded form by parameter name.
  ShardedState& sharded_state() override { return state_; }
  int64_t updates() const override { return step_; }
  void set_updates(int64_t steps) override { step_ = steps; }

  OptimizerState state() override {
    OptimizerState out;
    out.optimizer = name();
    out.step = step_;
    out.tensors = state_.gather_full();
    return out;
  }

  void load_state(const OptimizerState& state, const std::string& source) override {
    check_kind(state.optimizer, source);
    if (state.tensors.empty() && state.step == 0) return;  // saved before any update: nothing to restore
    state_.load_full(state.tensors, source);
    step_ = state.step;
  }

  void check_kind(const std::string& optimizer, const std::string& source) const override {
    if (optimizer != name())
      throw UserError(source + ": optimiser state of " + optimizer + ", but train.optimizer is " + name() +
                      "; resume with train.optimizer=" + optimizer + ", or start a new run (model.init_from " +
                      "takes the weights without the optimiser state)");
  }

  size_t state_bytes() const override { return state_.bytes(); }

 private:
  static double sum_squares(const torch::Tensor& g) {
    // Fixed chunks, summed in order: the same result for any thread count.
    const float* x = g.data_ptr<float>();
    const int64_t n = g.numel(), chunks = (n + kGrain - 1) / kGrain;
    std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        partial[static_cast<size_t>(c)] = kernels::sum_squares_cpu(x + c * kGrain, std::min(kGrain, n - c * kGrain));
    });
    double total = 0;
    for (double p : partial) total += p;
    return total;
  }

  // The CPU pass: the whole update space at once without ZeRO-1 (decaying prefix, then the rest),
  // bucket by bucket under it (the parameter slices are not contiguous).
  void cpu_update(double lr, double grad_scale, double bias_correction1, double bias_correction2) {
    auto make = [&](bool decay) {
      const double wd = decay ? options_.weight_decay : 0.0;
      kernels::AdamWStep s{};
      s.decay = static_cast<float>(1.0 - lr * wd);
      s.decays = wd != 0.0;
      s.beta1 = static_cast<float>(options_.beta1);
      s.one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
      s.beta2 = static_cast<float>(options_.beta2);
      s.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
      s.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
      s.eps = static_cast<float>(options_.eps);
      s.neg_step_size = static_cast<float>(-lr / bias_correction1);
      s.grad_scale = static_cast<float>(grad_scale);
      return s;
    };
    const kernels::AdamWStep with_decay = make(true), without = make(false);
    float* m = exp_avg_.data_ptr<float>();
    float* v = exp_avg_sq_.data_ptr<float>();
    const float* g = flat_.grad_space().data_ptr<float>();
    auto run = [&](float* p, int64_t at, int64_t n, const kernels::AdamWStep& s) {
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        kernels::adamw_cpu(p + begin, g + at + begin, m + at + begin, v + at + begin, end - begin, s);
      });
    };
    if (!flat_.sharded()) {
      float* p = flat_.params_all().data_ptr<float>();
      const int64_t split = flat_.decay_end(), n = flat_.params_all().numel();
      run(p, 0, split, with_decay);
      run(p + split, split, n - split, without);
      return;
    }
    for (auto& b : flat_.buckets())
      run(b.param_shard.data_ptr<float>(), b.space_offset, b.param_shard.numel(), b.decay ? with_decay : without);
  }

  // Tensor operations (CUDA without the fused kernel; tests run it on CPU): about a dozen for the
  // whole model without ZeRO-1. Bias correction 2 folds into eps and the step size (the Adam paper's
  // efficient form; equal to torch's within float rounding).
  void tensor_update(double lr, double grad_scale, double bias_correction1, double bias_correction2) {
    const torch::Tensor& g = flat_.grad_space();
    const double bc2_sqrt = std::sqrt(bias_correction2);
    const double step_size = lr * bc2_sqrt / bias_correction1;
    if (grad_scale != 1.0) {
      grad_scale_.fill_(grad_scale);
      g.mul_(grad_scale_);
    }
    exp_avg_.lerp_(g, 1.0 - options_.beta1);
    exp_avg_sq_.mul_(beta2_).addcmul_(g, g, 1.0 - options_.beta2);
    eps_.fill_(options_.eps * bc2_sqrt);
    torch::Tensor denom = exp_avg_sq_.sqrt().add_(eps_);
    // Decoupled decay as torch rounds it: p * float(1 - lr * weight_decay).
    const bool decays = options_.weight_decay != 0.0;
    if (decays) decay_.fill_(1.0 - lr * options_.weight_decay);
    if (!flat_.sharded()) {
      if (decays && decaying_.numel() > 0) decaying_.mul_(decay_);
      flat_.params_all().addcdiv_(exp_avg_, denom, -step_size);
      return;
    }
    auto& buckets = flat_.buckets();
    for (size_t i = 0; i < buckets.size(); ++i) {
      torch::Tensor& p = buckets[i].param_shard;
      if (decays && buckets[i].decay) p.mul_(decay_);
      p.addcdiv_(exp_avg_parts_[i], denom.narrow(0, buckets[i].space_offset, p.numel()), -step_size);
    }
  }

  // LibTorch's fused AdamW kernel (CUDA, LibTorch >= 2.1): one launch per decay class.
  void fused_update(double lr, double grad_scale) {
#ifdef MODTRAIN_FUSED_ADAMW_KERNEL
    step_tensor_.fill_(static_cast<double>(step_));
    grad_scale_.fill_(1.0 / grad_scale);  // the kernel divides the gradient by it
    auto& buckets = flat_.buckets();
    for (bool decay : {true, false}) {
      std::vector<torch::Tensor> p, g, m, v, steps;
      for (size_t i = 0; i < buckets.size(); ++i) {
        if (buckets[i].decay != decay) continue;
        p.push_back(buckets[i].param_shard);
        g.push_back(buckets[i].grad_shard);
        m.push_back(exp_avg_parts_[i]);
        v.push_back(exp_avg_sq_parts_[i]);
        steps.push_back(step_tensor_);
      }
      if (p.empty()) continue;
      at::_fused_adamw_(p, g, m, v, {}, steps, lr, options_.beta1, options_.beta2, decay ? options_.weight_decay : 0.0,
                        options_.eps, /*amsgrad=*/false, /*maximize=*/false, grad_scale_, {});
    }
#else
    (void)lr;
    (void)grad_scale;
    throw InternalError("the fused AdamW kernel needs LibTorch >= 2.1");
#endif
  }

  FlatParams& flat_;
  AdamWOptions options_;
  Communicator* comm_;
  ShardedState state_;                    // exp_avg and exp_avg_sq: this rank's slices (all without ZeRO-1)
  torch::Tensor &exp_avg_, &exp_avg_sq_;  // state_'s tensors
  std::vector<torch::Tensor> exp_avg_parts_, exp_avg_sq_parts_;  // per bucket, views of them
  int64_t step_ = 0;
  bool cpu_ = false, fused_kernel_ = false;
  torch::Tensor beta2_, grad_scale_, eps_, step_tensor_, decay_;  // 0-dim operands on the device
  torch::Tensor decaying_;          // without ZeRO-1: the parameters that take weight decay (a prefix)
  torch::Tensor sum_sq_host_;       // the CPU pass's squared norm, for the ZeRO-1 sum over ranks
  std::unique_ptr<Work> gathered_;  // ZeRO-1: the last step's parameter gather, ordered on the device
};

}  // namespace

std::unique_ptr<Optimizer> make_adamw(FlatParams& flat, AdamWOptions options, Communicator* comm) {
  return std::make_unique<FlatAdamW>(flat, options, comm);
}

std::unique_ptr<Optimizer> make_optimizer(const TrainConfig& train, FlatParams& flat, Communicator* comm) {
  switch (train.optimizer) {
    case OptimizerKind::kAdamW: {
      AdamWOptions o;
      o.beta1 = train.adam_beta1;
      o.beta2 = train.adam_beta2;
      o.eps = train.adam_eps;
      o.weight_decay = train.weight_decay;
      return make_adamw(flat, o, comm);
    }
  }
  throw InternalError("unknown train.optimizer");
}

std::unique_ptr<torch::optim::AdamW> make_per_tensor_adamw(const NamedParameters& params, double lr,
                                                           double weight_decay,
                                                           const std::unordered_set<std::string>& without_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) (without_decay.count(name) ? no_decay : decay).push_back(p);
  auto with = torch::optim::AdamWOptions(lr).weight_decay(weight_decay);
  auto without = with;
  without.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(with));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(without));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), with);
}

}  // namespace modtrain
