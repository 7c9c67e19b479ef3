#include "modtrain/model/varlen_attention.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/version.h>

#include <cmath>
#include <mutex>
#include <sstream>
#include <tuple>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"

namespace modtrain {

std::optional<std::vector<c10::IValue>> call_op_by_name(const std::string& name, const std::string& overload,
                                                        const std::map<std::string, c10::IValue>& args) {
  auto handle = c10::Dispatcher::singleton().findSchema(c10::OperatorName(name, overload));
  if (!handle) return std::nullopt;
  std::vector<c10::IValue> stack;
  for (const c10::Argument& a : handle->schema().arguments()) {
    auto it = args.find(a.name());
    if (it != args.end()) {
      stack.push_back(it->second);
    } else {
      MT_CHECK(a.default_value().has_value(), name << " in LibTorch " << TORCH_VERSION << " wants argument '"
                                                   << a.name()
                                                   << "', which modtrain does not know: " << handle->schema());
      stack.push_back(*a.default_value());
    }
  }
  handle->callBoxed(&stack);
  return stack;
}

namespace {
constexpr const char* kForward = "aten::_flash_attention_forward";
constexpr const char* kBackward = "aten::_flash_attention_backward";

// Arguments common to the forward and the backward, under every name they had since 2.1.
std::map<std::string, c10::IValue> shared_args(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                               const torch::Tensor& cu, int64_t max_len, double dropout_p) {
  return {{"query", q},         {"key", k},
          {"value", v},         {"cum_seq_q", cu},
          {"cum_seq_k", cu},    {"max_q", max_len},
          {"max_k", max_len},   {"dropout_p", dropout_p},
          {"is_causal", false}, {"return_debug_mask", false}};
}

struct FlashVarlen : torch::autograd::Function<FlashVarlen> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& cu, int64_t max_len, double dropout_p) {
    auto out = call_op_by_name(kForward, "", shared_args(q, k, v, cu, max_len, dropout_p));
    MT_CHECK(out && out->size() >= 4,
             kForward << " is not registered or returned " << (out ? out->size() : 0) << " outputs");
    // (output, softmax_logsumexp, philox seed / rng_state, philox offset / unused, debug mask)
    const torch::Tensor o = (*out)[0].toTensor(), lse = (*out)[1].toTensor();
    const torch::Tensor seed = (*out)[2].isTensor() ? (*out)[2].toTensor() : torch::Tensor();
    const torch::Tensor offset = (*out)[3].isTensor() ? (*out)[3].toTensor() : torch::Tensor();
    ctx->save_for_backward({q, k, v, o, lse, seed, offset, cu});
    ctx->saved_data["max_len"] = max_len;
    ctx->saved_data["dropout_p"] = dropout_p;
    return o;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto s = ctx->get_saved_variables();
    auto args = shared_args(s[0], s[1], s[2], s[7], ctx->saved_data["max_len"].toInt(),
                            ctx->saved_data["dropout_p"].toDouble());
    args["grad_out"] = grads[0].contiguous();
    args["out"] = s[3];
    args["logsumexp"] = s[4];
    args["philox_seed"] = args["rng_state"] = s[5];
    args["philox_offset"] = args["unused"] = s[6];
    auto g = call_op_by_name(kBackward, "", args);
    MT_CHECK(g && g->size() >= 3, kBackward << " is not registered or returned too few outputs");
    return {(*g)[0].toTensor(), (*g)[1].toTensor(), (*g)[2].toTensor(),
            torch::Tensor(),    torch::Tensor(),    torch::Tensor()};
  }
};

// Deterministic inputs for the check (no random generator is touched: a resumed run's dropout
// stream must not depend on whether the check ran before or after the restore).
torch::Tensor pattern(int64_t n, int64_t heads, int64_t d, double freq) {
  return torch::arange(n * heads * d, torch::kFloat32).mul(freq).sin().view({n, heads, d});
}

// The check: forward and input gradients of a mix of lengths (1, odd, longer than a kernel tile)
// against the fp32 reference computed from the same rounded inputs.
std::string check_varlen(const torch::Tensor& like) {
  const std::vector<int32_t> lengths = {1, 5, 17, 130, 64};
  std::vector<int32_t> offsets = {0};
  for (int32_t n : lengths) offsets.push_back(offsets.back() + n);
  const int64_t n = offsets.back(), heads = 2, d = like.size(2);
  const torch::Tensor cu = torch::tensor(offsets, torch::kInt32).to(like.device());
  auto input = [&](double freq) {
    return pattern(n, heads, d, freq).to(like.device(), like.scalar_type()).requires_grad_(true);
  };
  torch::Tensor q = input(0.37), k = input(0.71), v = input(1.13);
  const torch::Tensor w = pattern(n, heads, d, 0.29).to(like.device());
  torch::Tensor out = varlen_flash_attention(q, k, v, cu, 130, 0.0);
  (out.to(torch::kFloat32) * w).sum().backward();
  torch::Tensor qr = q.detach().to(torch::kFloat32).requires_grad_(true),
                kr = k.detach().to(torch::kFloat32).requires_grad_(true),
                vr = v.detach().to(torch::kFloat32).requires_grad_(true);
  torch::Tensor ref = varlen_reference_attention(qr, kr, vr, cu);
  (ref * w).sum().backward();
  const double tol = like.scalar_type() == torch::kBFloat16 ? 4e-2 : 1e-2;
  std::ostringstream problems;
  auto compare = [&](const char* what, const torch::Tensor& got, const torch::Tensor& want) {
    const double err = (got.to(torch::kFloat32) - want).abs().max().item<double>();
    const double scale = std::max(1.0, want.abs().max().item<double>());
    if (!(err <= tol * scale)) problems << (problems.tellp() > 0 ? ", " : "") << what << " off by " << err;
  };
  compare("output", out.detach(), ref.detach());
  compare("dq", q.grad(), qr.grad());
  compare("dk", k.grad(), kr.grad());
  compare("dv", v.grad(), vr.grad());
  return problems.str();
}
}  // namespace

bool varlen_flash_registered() {
  auto& d = c10::Dispatcher::singleton();
  return d.findSchema(c10::OperatorName(kForward, "")).has_value() &&
         d.findSchema(c10::OperatorName(kBackward, "")).has_value();
}

torch::Tensor varlen_flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& cu_seqlens, int64_t max_len, double dropout_p) {
  return FlashVarlen::apply(q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens, max_len, dropout_p);
}

torch::Tensor varlen_reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& cu_seqlens) {
  const torch::Tensor cu = cu_seqlens.to(torch::kCPU, torch::kInt64);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(2)));
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i + 1 < cu.size(0); ++i) {
    const int64_t s = cu[i].item<int64_t>(), n = cu[i + 1].item<int64_t>() - s;
    auto rec = [&](const torch::Tensor& x) { return x.narrow(0, s, n).to(torch::kFloat32).transpose(0, 1); };
    torch::Tensor probs = torch::softmax(torch::matmul(rec(q), rec(k).transpose(1, 2)) * scale, -1);
    parts.push_back(torch::matmul(probs, rec(v)).transpose(0, 1));  // [n, heads, d]
  }
  return torch::cat(parts);
}

bool use_varlen_flash(const torch::Tensor& q) {
  const auto dtype = q.scalar_type();
  if (!q.is_cuda() || (dtype != torch::kBFloat16 && dtype != torch::kHalf) || q.dim() != 3) return false;
  const int64_t d = q.size(2);
  if (d % 8 != 0 || d > 256) return false;
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int64_t>, bool> verdicts;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(static_cast<int>(q.device().index()), static_cast<int>(dtype), d);
  auto it = verdicts.find(key);
  if (it != verdicts.end()) return it->second;
  std::ostringstream where;
  where << "LibTorch " << TORCH_VERSION << " on " << q.device() << " for " << dtype << ", head size " << d;
  std::string problem;
  if (!varlen_flash_registered()) {
    problem = "has no " + std::string(kForward);
  } else {
    try {
      // The check builds its own graph in fp32 where it says so: grad mode on, and the caller's
      // autocast (the training step's bf16 scope) kept out.
      torch::AutoGradMode grad_on(true);
      c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
      const std::string mismatch = check_varlen(q);
      if (!mismatch.empty()) problem = "disagrees with the exact reference (" + mismatch + ")";
    } catch (const std::exception& e) {
      std::string what = e.what();
      problem = "failed: " + what.substr(0, what.find('\n'));
    }
  }
  const bool ok = problem.empty();
  if (ok)
    log::info("model.unpad: variable-length flash attention verified (" + where.str() +
              "): attention runs on the real tokens only");
  else
    log::warn("model.unpad: the variable-length flash attention of " + where.str() + " " + problem +
              "; attention runs on the records padded to the longest one instead (the same result, slower)");
  verdicts.emplace(key, ok);
  return ok;
}

}  // namespace modtrain
