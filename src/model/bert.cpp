#include "modtrain/model/bert.h"

#include <ATen/Config.h>
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

#include "modtrain/core/build_info.h"
#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/model/packed_gemm.h"
#include "modtrain/model/varlen_attention.h"

namespace modtrain {

namespace nn = torch::nn;

bool sdpa_available() { return TORCH_VERSION_MAJOR >= 2; }

BertConfig BertConfig::from(const ModelConfig& m, int64_t vocab_size, int64_t num_labels, int64_t max_len,
                            int64_t pad_id) {
  BertConfig c;
  c.vocab_size = vocab_size;
  c.hidden = m.hidden;
  c.layers = m.layers;
  c.heads = m.heads;
  c.intermediate = m.intermediate;
  c.max_positions = m.max_positions;
  c.hidden_dropout = c.attention_dropout = m.dropout;
  c.num_labels = num_labels;
  c.pad_token_id = pad_id;
  c.arch = m.arch;
  c.position_embedding_type = m.position_embedding_type;
  if (c.roberta()) c.type_vocab_size = 1;  // RoBERTa has one token type
  c.validate();
  if (max_len + c.position_offset() > c.max_positions)
    throw UserError(
        "data.max_len = " + std::to_string(max_len) +
        (c.roberta() ? " + " + std::to_string(c.position_offset()) + " (RoBERTa numbers positions from the pad id + 1)"
                     : std::string()) +
        " exceeds model.max_positions = " + std::to_string(c.max_positions) +
        "; lower data.max_len or raise model.max_positions" +
        (c.roberta() ? " (RoBERTa checkpoints have 514 for max_len 512)" : ""));
  return c;
}

void BertConfig::validate() const {
  auto fail = [](const std::string& what) { throw UserError("model: " + what); };
  if (hidden % heads != 0)
    fail("hidden " + std::to_string(hidden) + " is not divisible by heads " + std::to_string(heads) +
         " (model.hidden, model.heads)");
  if (vocab_size < 5) fail("vocabulary of " + std::to_string(vocab_size) + " tokens is too small (tokenizer.vocab)");
  if (num_labels < 0) fail("a negative number of labels");
  if (pad_token_id < 0 || pad_token_id >= vocab_size) fail("[PAD] id outside the vocabulary");
  if (layers < 1 || intermediate < 1 || max_positions < 1)
    fail("layers, intermediate and max_positions must be positive");
}

// ---- linear layers ---------------------------------------------------------------------------
namespace {

// Weights frozen for inference (freeze_for_inference: a loaded model's), each with its laid-out
// copies (model/packed_gemm.h), made at first use, one per epilogue. Only frozen weights are laid
// out: a training run's weights change every step, partly through raw pointers that no version
// counter sees (the fused AdamW, all-gathers into flat buffers), so a copy of one could go stale
// unseen. An entry is still checked against its tensors on every call: it holds weak references to
// the weight and bias (neither address can be reused by a new tensor while the entry exists), their
// version counters (an in-place change through LibTorch moves them) and data pointers; a changed
// weight loses its entry (and is used as it is), a freed one's entry goes at the next freeze.
using WeakTensor = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;
struct PackEntry {
  WeakTensor weight{c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  WeakTensor bias{c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  const c10::TensorImpl* bias_impl = nullptr;  // identity only (the weak reference keeps the address)
  int64_t weight_version = 0, bias_version = 0;
  const void* weight_data = nullptr;
  const void* bias_data = nullptr;
  std::shared_ptr<const PackedLinear> packs[2];  // by Epilogue, made at first use
};
bool unchanged(const WeakTensor& weak, int64_t version, const void* data) {
  const auto t = weak.lock();
  return t && t->version_counter().current_version() == version && t->data() == data;
}
bool stale(const PackEntry& e) {
  return !unchanged(e.weight, e.weight_version, e.weight_data) ||
         (e.bias_impl && !unchanged(e.bias, e.bias_version, e.bias_data));
}
std::mutex pack_mutex;
std::unordered_map<const c10::TensorImpl*, PackEntry> frozen;

// The laid-out copy for a frozen weight (and this bias); null for any other.
std::shared_ptr<const PackedLinear> packed_for(const torch::Tensor& weight, const torch::Tensor& bias,
                                               PackedLinear::Epilogue epilogue) {
  std::lock_guard<std::mutex> lock(pack_mutex);
  static uint64_t lookups = 0;
  if (++lookups % 1024 == 0)  // now and then: the copies of freed weights (a reloaded server's old model) go
    for (auto e = frozen.begin(); e != frozen.end();) e = stale(e->second) ? frozen.erase(e) : std::next(e);
  auto it = frozen.find(weight.unsafeGetTensorImpl());
  if (it == frozen.end()) return nullptr;
  PackEntry& e = it->second;
  if (stale(e)) {
    frozen.erase(it);
    return nullptr;
  }
  if (e.bias_impl != (bias.defined() ? bias.unsafeGetTensorImpl() : nullptr)) return nullptr;
  auto& pack = e.packs[epilogue == PackedLinear::Epilogue::kGeluErf ? 1 : 0];
  if (!pack)
    pack = std::make_shared<const PackedLinear>(weight.data_ptr<float>(),
                                                bias.defined() ? bias.data_ptr<float>() : nullptr, weight.size(0),
                                                weight.size(1), epilogue);
  return pack;
}

}  // namespace

void freeze_for_inference(const torch::Tensor& weight, const torch::Tensor& bias) {
  if (!weight.defined() || weight.dim() != 2 || !weight.is_contiguous() || weight.scalar_type() != torch::kFloat32 ||
      !weight.device().is_cpu() || (bias.defined() && (!bias.is_contiguous() || bias.scalar_type() != torch::kFloat32)))
    return;  // not a weight linear() lays out
  std::lock_guard<std::mutex> lock(pack_mutex);
  for (auto e = frozen.begin(); e != frozen.end();) e = stale(e->second) ? frozen.erase(e) : std::next(e);
  PackEntry entry;
  entry.weight = WeakTensor(weight.getIntrusivePtr());
  entry.weight_version = weight._version();
  entry.weight_data = weight.data_ptr();
  if (bias.defined()) {
    entry.bias = WeakTensor(bias.getIntrusivePtr());
    entry.bias_impl = bias.unsafeGetTensorImpl();
    entry.bias_version = bias._version();
    entry.bias_data = bias.data_ptr();
  }
  frozen.insert_or_assign(weight.unsafeGetTensorImpl(), std::move(entry));
}

int freeze_for_inference(torch::nn::Module& model) {
  int n = 0;
  for (const auto& m : model.modules()) {
    if (auto* l = m->as<nn::LinearImpl>()) {
      freeze_for_inference(l->weight, l->bias);
      ++n;
    }
    if (auto* a = m->as<BertSelfAttentionImpl>()) {
      torch::NoGradGuard g;  // fused_qkv() answers with autograd off only
      if (auto [w, b] = a->fused_qkv(); w.defined()) {
        freeze_for_inference(w, b);
        ++n;
      }
    }
  }
  return n;
}

size_t packed_weights_held() {
  std::lock_guard<std::mutex> lock(pack_mutex);
  size_t n = 0;
  for (const auto& e : frozen) n += (e.second.packs[0] ? 1 : 0) + (e.second.packs[1] ? 1 : 0);
  return n;
}

// x W^T + b [+ residual] [GELU] through a laid-out weight (from one row up, read and written in
// place); undefined when this call is not for it (training, a GPU, another dtype, no oneDNN).
torch::Tensor packed_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            PackedLinear::Epilogue epilogue, const torch::Tensor& residual = {}) {
#if AT_MKLDNN_ENABLED()
  if (!packed_gemm_compiled() || !onednn_inference_gemm() || torch::GradMode::is_enabled() || !x.device().is_cpu() ||
      x.scalar_type() != torch::kFloat32 || weight.scalar_type() != torch::kFloat32 || !weight.is_contiguous() ||
      x.dim() < 2 || x.numel() == 0 || x.size(-1) != weight.size(1) ||
      (bias.defined() && (bias.scalar_type() != torch::kFloat32 || !bias.is_contiguous())))
    return {};
  const auto pack = packed_for(weight, bias, epilogue);
  if (!pack) return {};  // not frozen
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  torch::Tensor rows = x.reshape({-1, x.size(-1)}).contiguous();
  torch::Tensor add;
  if (residual.defined()) {
    if (residual.sizes() != torch::IntArrayRef(shape) || residual.scalar_type() != torch::kFloat32) return {};
    add = residual.reshape({rows.size(0), weight.size(0)}).contiguous();
  }
  torch::Tensor out = torch::empty({rows.size(0), weight.size(0)}, rows.options());
  pack->run(rows.data_ptr<float>(), rows.size(0), out.data_ptr<float>(),
            add.defined() ? add.data_ptr<float>() : nullptr);
  return out.view(shape);
#else
  return {};
#endif
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (torch::Tensor y = packed_linear(x, weight, bias, PackedLinear::Epilogue::kNone); y.defined()) return y;
#if AT_MKLDNN_ENABLED()
  static const bool onednn = onednn_inference_gemm();
  // LibTorch's mkldnn_linear (a build without oneDNN's headers) lays the weight out in oneDNN's
  // blocked format on every call, which a GEMM over few rows does not pay back: single-core,
  // OpenBLAS time over oneDNN time at the model's shapes was 0.6-1.2 at 16-32 rows, 1.0-1.4 at 64,
  // 1.3-1.6 at 128 and 1.6-1.9 at 512. Below 128 rows (one or two posts) OpenBLAS does it.
  if (onednn && !torch::GradMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
      weight.scalar_type() == torch::kFloat32 && x.dim() >= 2 && x.numel() / x.size(-1) >= 128) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    torch::Tensor rows = x.reshape({-1, x.size(-1)}).contiguous();
    const int64_t m = rows.size(0), padded = gemm_rows(m);  // oneDNN keeps one primitive per shape
    if (padded != m) rows = torch::constant_pad_nd(rows, {0, 0, 0, padded - m});
    return at::mkldnn_linear(rows.to_mkldnn(), weight.contiguous(), bias).to_dense().narrow(0, 0, m).view(shape);
  }
#endif
  return torch::linear(x, weight, bias);
}

torch::Tensor linear_gelu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (torch::Tensor y = packed_linear(x, weight, bias, PackedLinear::Epilogue::kGeluErf); y.defined()) return y;
  return torch::gelu(linear(x, weight, bias));
}

torch::Tensor linear_add(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         const torch::Tensor& residual) {
  if (torch::Tensor y = packed_linear(x, weight, bias, PackedLinear::Epilogue::kNone, residual); y.defined()) return y;
  return linear(x, weight, bias) + residual;
}

// ---- the unpadded batch ---------------------------------------------------------------------
UnpaddedBatch UnpaddedBatch::to(const torch::Device& device, bool non_blocking) const {
  UnpaddedBatch u = *this;
  for (torch::Tensor* t : {&u.ids, &u.positions, &u.indices, &u.first, &u.mask, &u.cu_seqlens})
    *t = t->to(device, non_blocking);
  return u;
}

UnpaddedBatch unpad_batch(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, bool pinned) {
  MT_CHECK(input_ids.dim() == 2 && attention_mask.sizes() == input_ids.sizes() && !input_ids.is_cuda(),
           "unpad_batch wants CPU [B, T] ids and mask");
  const torch::Tensor mask = attention_mask.to(torch::kInt64).contiguous();
  const int64_t b = mask.size(0), width = mask.size(1);
  const int64_t* m = mask.data_ptr<int64_t>();
  UnpaddedBatch u;
  u.batch = b;
  std::vector<int64_t> lengths(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    int64_t n = 0;
    while (n < width && m[i * width + n] != 0) ++n;
    for (int64_t j = n; j < width; ++j)
      MT_CHECK(m[i * width + j] == 0, "record " << i << " of the batch is not right-padded");
    MT_CHECK(n > 0, "record " << i << " of the batch has no tokens");
    lengths[static_cast<size_t>(i)] = n;
    u.tokens += n;
    u.max_len = std::max(u.max_len, n);
  }
  const auto host = torch::TensorOptions().pinned_memory(pinned);
  const auto i64 = host.dtype(torch::kInt64);
  u.positions = torch::empty({u.tokens}, i64);
  u.indices = torch::empty({u.tokens}, i64);
  u.first = torch::empty({b}, i64);
  u.cu_seqlens = torch::empty({b + 1}, host.dtype(torch::kInt32));
  torch::Tensor source = torch::empty({u.tokens}, torch::kInt64);  // each token's index in the [B, T] input
  u.mask = torch::full({b, 1, 1, u.max_len}, std::numeric_limits<float>::lowest(), host.dtype(torch::kFloat32));
  int64_t *pos = u.positions.data_ptr<int64_t>(), *idx = u.indices.data_ptr<int64_t>(),
          *first = u.first.data_ptr<int64_t>(), *src = source.data_ptr<int64_t>();
  int32_t* cu = u.cu_seqlens.data_ptr<int32_t>();
  float* add = u.mask.data_ptr<float>();
  int64_t k = 0;
  for (int64_t i = 0; i < b; ++i) {
    first[i] = k;
    cu[i] = static_cast<int32_t>(k);
    for (int64_t t = 0; t < lengths[static_cast<size_t>(i)]; ++t, ++k) {
      pos[k] = t;
      idx[k] = i * u.max_len + t;
      src[k] = i * width + t;
      add[i * u.max_len + t] = 0.0f;
    }
  }
  cu[b] = static_cast<int32_t>(k);
  u.ids = torch::empty({u.tokens}, i64);
  torch::index_select_out(u.ids, input_ids.reshape({-1}).to(torch::kInt64), 0, source);
  return u;
}

UnpaddedBatch unpad_for(const torch::Device& device, const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) {
  return unpad_batch(input_ids, attention_mask, device.is_cuda()).to(device, true);
}

// ---- attention ------------------------------------------------------------------------------
BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : heads(c.heads),
      head_dim(c.hidden / c.heads),
      max_positions(c.max_positions),
      dropout(c.attention_dropout),
      use_sdpa(c.use_sdpa && sdpa_available()),
      relative(c.position_embedding_type) {
  query = register_module("query", nn::Linear(c.hidden, c.hidden));
  key = register_module("key", nn::Linear(c.hidden, c.hidden));
  value = register_module("value", nn::Linear(c.hidden, c.hidden));
  if (c.relative())
    distance_embedding = register_module("distance_embedding", nn::Embedding(2 * c.max_positions - 1, head_dim));
}

torch::Tensor BertSelfAttentionImpl::relative_scores(const torch::Tensor& q, const torch::Tensor& k) {
  // transformers' distance_embedding(l - r + max_positions - 1), E [T(l), T(r), hd]:
  //   relative_key:        S[b,h,l,r] = sum_d q[b,h,l,d] E[l,r,d]
  //   relative_key_query:  + sum_d k[b,h,r,d] E[l,r,d]
  // as batched GEMMs over l (and over r for the key term) instead of einsum.
  const int64_t b = q.size(0), t = q.size(2);
  const torch::Tensor pos = torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(q.device()));
  const torch::Tensor e = distance_embedding(pos.unsqueeze(1) - pos.unsqueeze(0) + (max_positions - 1)).to(q.dtype());
  torch::Tensor scores = torch::bmm(q.permute({2, 0, 1, 3}).reshape({t, b * heads, head_dim}), e.transpose(1, 2));
  if (relative == PositionEmbeddingType::kRelativeKeyQuery) {
    torch::Tensor by_key = torch::bmm(e.transpose(0, 1), k.permute({2, 3, 0, 1}).reshape({t, head_dim, b * heads}));
    scores = scores + by_key.permute({1, 2, 0});  // [r, l, BH] -> [l, BH, r]
  }
  return scores.view({t, b, heads, t}).permute({1, 2, 0, 3});  // [B, nh, T(l), T(r)]
}

torch::Tensor BertSelfAttentionImpl::project_qkv(const torch::Tensor& x) {
  // One GEMM for Q, K and V; the parameters keep Hugging Face's names and shapes. Training
  // concatenates the three weights each step (3 x H x H floats, against a [tokens, H] x [H, 3H]
  // product, and autograd splits the gradient); a fused inference model uses its one tensor.
  auto [weight, bias] = fused_qkv();
  if (weight.defined()) return linear(x, weight, bias);
  return linear(x, torch::cat({query->weight, key->weight, value->weight}),
                torch::cat({query->bias, key->bias, value->bias}));
}

void BertSelfAttentionImpl::fuse_qkv() {
  torch::NoGradGuard no_grad;
  const torch::Tensor weight = torch::cat({query->weight, key->weight, value->weight});  // [3H, H]
  const torch::Tensor bias = torch::cat({query->bias, key->bias, value->bias});          // [3H]
  const int64_t h = query->weight.size(0);
  fused_weight = weight, fused_bias = bias;
  int64_t i = 0;
  for (nn::Linear* l : {&query, &key, &value}) {
    (*l)->weight.set_data(weight.narrow(0, i * h, h));
    (*l)->bias.set_data(bias.narrow(0, i * h, h));
    ++i;
  }
}

std::pair<torch::Tensor, torch::Tensor> BertSelfAttentionImpl::fused_qkv() const {
  if (torch::GradMode::is_enabled()) return {};  // autograd must see the three parameters
  const torch::Tensor &qw = query->weight, &kw = key->weight, &vw = value->weight;
  const torch::Tensor &qb = query->bias, &kb = key->bias, &vb = value->bias;
  // The layout fuse_qkv made: rows of one contiguous storage, in order. Anything that replaced a
  // parameter since (to(device), a copy into new storage) breaks it and the concatenation returns.
  auto adjacent = [](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
    return a.is_contiguous() && b.is_contiguous() && c.is_contiguous() && a.is_alias_of(b) && a.is_alias_of(c) &&
           a.dtype() == b.dtype() && a.dtype() == c.dtype() && b.storage_offset() == a.storage_offset() + a.numel() &&
           c.storage_offset() == b.storage_offset() + b.numel();
  };
  if (!adjacent(qw, kw, vw) || !adjacent(qb, kb, vb)) return {};
  if (fused_weight.defined() && qw.is_alias_of(fused_weight) && qw.storage_offset() == fused_weight.storage_offset() &&
      qb.is_alias_of(fused_bias) && qb.storage_offset() == fused_bias.storage_offset())
    return {fused_weight, fused_bias};  // the same tensor objects every call
  return {qw.as_strided({3 * qw.size(0), qw.size(1)}, {qw.size(1), 1}, qw.storage_offset()),
          qb.as_strided({3 * qb.size(0)}, {1}, qb.storage_offset())};
}

int fuse_qkv_for_inference(torch::nn::Module& model) {
  int fused = 0;
  for (const auto& m : model.modules())
    if (auto* attention = m->as<BertSelfAttentionImpl>()) {
      attention->fuse_qkv();
      ++fused;
    }
  return fused;
}

torch::Tensor BertSelfAttentionImpl::attend(const torch::Tensor& qkv, const torch::Tensor& mask) {
  const int64_t b = qkv.size(0), t = qkv.size(1);
  auto split = [&](const torch::Tensor& y) {
    return y.view({b, t, heads, head_dim}).transpose(1, 2);
  };  // [B, nh, T, hd]
  std::vector<torch::Tensor> parts = qkv.chunk(3, -1);
  torch::Tensor q = split(parts[0]), k = split(parts[1]), v = split(parts[2]);
  // The additive bias on the scaled scores: the padding mask [B, 1, 1, T], plus with relative_*
  // positions their scores [B, nh, T, T] (transformers adds them before the 1/sqrt(hd) scale).
  torch::Tensor bias = mask.to(q.dtype());
  if (relative != PositionEmbeddingType::kAbsolute)
    bias = relative_scores(q, k) * (1.0 / std::sqrt(static_cast<double>(head_dim))) + bias;
  torch::Tensor context;  // [B, nh, T, hd]
#if TORCH_VERSION_MAJOR >= 2
  if (use_sdpa) {
    context = at::scaled_dot_product_attention(q, k, v, bias, is_training() ? dropout : 0.0, false);
  } else
#endif
  {
    // bias + (Q K^T) / sqrt(hd) as one batched GEMM (scale as alpha, the bias as the beta = 1
    // input): no separate passes for the division and the addition over [B, nh, T, T].
    const int64_t bh = b * heads;
    torch::Tensor input = bias.size(2) == 1 ? bias.expand({b, heads, 1, t}).reshape({bh, 1, t})
                                            : bias.expand({b, heads, t, t}).reshape({bh, t, t});
    torch::Tensor scores =
        torch::baddbmm(input, q.reshape({bh, t, head_dim}), k.reshape({bh, t, head_dim}).transpose(1, 2), 1.0,
                       1.0 / std::sqrt(static_cast<double>(head_dim)));  // [B nh, T, T]
    torch::Tensor probs = torch::dropout(torch::softmax(scores, -1), dropout, is_training());
    context = torch::bmm(probs, v.reshape({bh, t, head_dim})).view({b, heads, t, head_dim});
  }
  return context.transpose(1, 2).reshape({b, t, heads * head_dim});  // [B, T, H]
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  return attend(project_qkv(x), mask);
}

bool BertSelfAttentionImpl::packed_attention_applies(const torch::Tensor& qkv) const {
  return packed_gemm_compiled() && onednn_inference_gemm() && !is_training() && !torch::GradMode::is_enabled() &&
         qkv.device().is_cpu() && qkv.scalar_type() == torch::kFloat32 && relative == PositionEmbeddingType::kAbsolute;
}

// Records and length as PackedAttention's kernels are kept: exact to 16, then rounded up to a step
// of 1/16 to 1/32 (17 -> 18, 33 -> 36, 100 -> 104): at most 1/8 more work, 56 values up to 512.
namespace {
int64_t attention_extent(int64_t n) {
  int64_t step = 1;
  while (step * 16 < n) step *= 2;
  return (n + step - 1) / step * step;
}
}  // namespace

// Attention through oneDNN (model/packed_gemm.h) on the tokens laid out per record: records and
// length rounded up (attention_extent), so that a server's ever-changing batches reuse a few
// hundred kernel sets; padding keys are masked, padding records and rows never gathered.
torch::Tensor BertSelfAttentionImpl::packed_attention(const torch::Tensor& qkv, const UnpaddedBatch& u) const {
  static std::mutex mutex;
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<PackedAttention>> kernels;  // by (heads, head_dim)
  const PackedAttention* attention;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = kernels[{heads, head_dim}];
    if (!slot) slot = std::make_unique<PackedAttention>(heads, head_dim);
    attention = slot.get();
  }
  const int64_t b = u.batch, t = u.max_len, n = u.tokens, hidden = heads * head_dim;
  const int64_t rb = attention_extent(b), rt = attention_extent(t);
  const bool dense = n == b * t && rb == b && rt == t;  // every slot of the layout holds a token
  const torch::Tensor source = qkv.contiguous(), slots = u.indices.to(torch::kInt64).contiguous();
  MT_CHECK(source.size(0) == n && source.size(1) == 3 * hidden && slots.numel() == n,
           "packed attention: " << source.sizes() << " projections for " << n << " tokens");
  // Q, K and V as [3, records, heads, length, head_dim], written token by token from [N, 3H] in one
  // pass (LibTorch's way was three: zeros, index_copy, a permuted copy). Padding rows are zeros:
  // finite keys and values (a masked key's probability is 0, and 0 x NaN would not be).
  torch::Tensor parts = dense ? torch::empty({3, rb, heads, rt, head_dim}, qkv.options())
                              : torch::zeros({3, rb, heads, rt, head_dim}, qkv.options());
  const int64_t* slot = slots.data_ptr<int64_t>();
  const float* from = source.data_ptr<float>();
  float* to = parts.data_ptr<float>();
  const int64_t part_stride = rb * heads * rt * head_dim, record_stride = heads * rt * head_dim;
  const size_t bytes = static_cast<size_t>(head_dim) * sizeof(float);
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* token = to + slot[i] / t * record_stride + slot[i] % t * head_dim;
      const float* row = from + i * 3 * hidden;
      for (int64_t p = 0; p < 3; ++p)
        for (int64_t h = 0; h < heads; ++h)
          std::memcpy(token + p * part_stride + h * rt * head_dim, row + p * hidden + h * head_dim, bytes);
    }
  });
  torch::Tensor bias = u.mask.view({b, t});
  if (!dense) {
    bias = torch::full({rb, rt}, std::numeric_limits<float>::lowest(), qkv.options());
    bias.narrow(0, 0, b).narrow(1, 0, t).copy_(u.mask.view({b, t}));
  }
  bias = bias.contiguous();
  torch::Tensor context = torch::empty({rb * rt, hidden}, qkv.options());  // [records, length, H]
  attention->run(to, bias.data_ptr<float>(), rb, rt, context.data_ptr<float>());
  if (dense) return context;
  torch::Tensor out = torch::empty({n, hidden}, qkv.options());  // each token's row, in token order
  const float* ctx = context.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      std::memcpy(dst + i * hidden, ctx + (slot[i] / t * rt + slot[i] % t) * hidden,
                  static_cast<size_t>(hidden) * sizeof(float));
  });
  return out;
}

torch::Tensor BertSelfAttentionImpl::forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u) {
  torch::Tensor qkv = project_qkv(x);  // [N, 3H]
  if (qkv.is_cuda() && relative == PositionEmbeddingType::kAbsolute) {
    std::vector<torch::Tensor> parts = qkv.view({u.tokens, 3, heads, head_dim}).unbind(1);  // [N, nh, hd] each
    if (use_varlen_flash(parts[0]))
      return varlen_flash_attention(parts[0], parts[1], parts[2], u.cu_seqlens, u.max_len,
                                    is_training() ? dropout : 0.0)
          .view({u.tokens, heads * head_dim});
  }
  // Otherwise (CPU, fp32, or no verified flash kernel) attention per record: the projected tokens
  // laid out at the longest record (rows of other records' padding are zeros, masked as keys;
  // their outputs are never gathered). Scores and
  // context are the only work done on padding: 2 x T x H multiply-adds per token and layer, a few
  // percent of the linear layers' 2 x (4H + 2I) x H.
  if (packed_attention_applies(qkv)) return packed_attention(qkv, u);
  if (u.tokens == u.batch * u.max_len)  // no record is shorter than the longest: the tokens are the layout
    return attend(qkv.view({u.batch, u.max_len, qkv.size(1)}), u.mask).reshape({u.tokens, -1});
  torch::Tensor laid_out =
      torch::zeros({u.batch * u.max_len, qkv.size(1)}, qkv.options()).index_copy(0, u.indices, qkv);
  torch::Tensor context = attend(laid_out.view({u.batch, u.max_len, qkv.size(1)}), u.mask);  // [B, T, H]
  return context.reshape({u.batch * u.max_len, -1}).index_select(0, u.indices);              // [N, H]
}

BertResidualImpl::BertResidualImpl(int64_t in, int64_t out, const BertConfig& c) {
  dense = register_module("dense", nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
}

torch::Tensor BertResidualImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  if (!is_training()) return LayerNorm(linear_add(x, dense->weight, dense->bias, residual));  // dropout: identity
  return LayerNorm(dropout(linear(dense, x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidual(c.hidden, c.hidden, c));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  return output(self(x, mask), x);
}

torch::Tensor BertAttentionImpl::forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u) {
  return output(self->forward_unpadded(x, u), x);
}

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden, c.intermediate));
}

BertLayerImpl::BertLayerImpl(const BertConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidual(c.intermediate, c.hidden, c));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  torch::Tensor a = attention(x, mask);
  return output(intermediate(a), a);
}

torch::Tensor BertLayerImpl::forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u) {
  torch::Tensor a = attention->forward_unpadded(x, u);
  return output(intermediate(a), a);
}

// ---- embeddings, encoder, pooler ------------------------------------------------------------
BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module(
      "word_embeddings",
      nn::Embedding(
          nn::EmbeddingOptions(c.vocab_size, c.hidden).padding_idx(c.pad_token_id).sparse(c.sparse_embedding_grad)));
  nn::EmbeddingOptions positions(c.max_positions, c.hidden);
  if (c.roberta()) positions.padding_idx(c.pad_token_id);  // RoBERTa's padding position row
  position_embeddings = register_module("position_embeddings", nn::Embedding(positions));
  position_offset = c.position_offset();
  absolute = !c.relative();
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  const int64_t t = input_ids.size(1);
  // Single-segment inputs: token type 0 everywhere, as BertForSequenceClassification gets them.
  // RoBERTa: the real tokens' positions start at pad id + 1 (padding rows are masked as keys and
  // never read, so their positions do not matter).
  if (!absolute) return dropout(LayerNorm(word_embeddings(input_ids) + token_type_embeddings->weight[0]));
  torch::Tensor positions = torch::arange(position_offset, position_offset + t, input_ids.options()).unsqueeze(0);
  torch::Tensor x = word_embeddings(input_ids) + position_embeddings(positions) + token_type_embeddings->weight[0];
  return dropout(LayerNorm(x));
}

torch::Tensor BertEmbeddingsImpl::forward_unpadded(const UnpaddedBatch& u) {
  if (!absolute) return dropout(LayerNorm(word_embeddings(u.ids) + token_type_embeddings->weight[0]));
  torch::Tensor positions = position_offset ? u.positions + position_offset : u.positions;
  torch::Tensor x = word_embeddings(u.ids) + position_embeddings(positions) + token_type_embeddings->weight[0];
  return dropout(LayerNorm(x));  // [N, H]
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) layer->push_back(BertLayer(c));
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (const auto& module : *layer) x = module->as<BertLayerImpl>()->forward(x, mask);
  return x;
}

torch::Tensor BertEncoderImpl::forward_unpadded(torch::Tensor x, const UnpaddedBatch& u) {
  for (const auto& module : *layer) x = module->as<BertLayerImpl>()->forward_unpadded(x, u);
  return x;
}

BertPoolerImpl::BertPoolerImpl(const BertConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden, c.hidden));
}

BertModelImpl::BertModelImpl(const BertConfig& c, bool add_pooler) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  roberta = c.roberta();
  if (!roberta && add_pooler) pooler = register_module("pooler", BertPooler(c));
}

torch::Tensor BertModelImpl::sequence(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  // [B, T] 1/0 -> additive [B, 1, 1, T]: 0 where attended, the dtype's lowest value where padded
  torch::Tensor keep = attention_mask.to(torch::kFloat32).unsqueeze(1).unsqueeze(2);
  torch::Tensor mask = (1.0 - keep) * std::numeric_limits<float>::lowest();
  return encoder(embeddings(input_ids), mask);  // [B, T, H]
}

torch::Tensor BertModelImpl::sequence_unpadded(const UnpaddedBatch& u) {
  return encoder->forward_unpadded(embeddings->forward_unpadded(u), u);  // [N, H]
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  torch::Tensor h = sequence(input_ids, attention_mask);
  return roberta ? h.select(1, 0) : pooler(h);
}

torch::Tensor BertModelImpl::forward_unpadded(const UnpaddedBatch& u) {
  torch::Tensor h = sequence_unpadded(u);
  if (roberta) return h.index_select(0, u.first);          // each record's <s> row
  return pooler(h.index_select(0, u.first).unsqueeze(1));  // each record's [CLS] row as a [B, 1, H] batch
}

BertForMaskedLMImpl::BertForMaskedLMImpl(const BertConfig& given) : config_(given) {
  // The word embedding is also the decoder, whose gradient is dense: no sparse embedding gradient.
  config_.sparse_embedding_grad = false;
  const BertConfig& c = config_;
  bert = register_module(c.prefix(), BertModel(c, /*add_pooler=*/false));
  dense = nn::Linear(c.hidden, c.hidden);
  norm = nn::LayerNorm(nn::LayerNormOptions({c.hidden}).eps(c.layer_norm_eps));
  bias = torch::zeros({c.vocab_size});
  if (c.roberta()) {  // lm_head.{dense, layer_norm, bias}
    auto head = register_module("lm_head", std::make_shared<torch::nn::Module>());
    head->register_module("dense", dense);
    head->register_module("layer_norm", norm);
    bias = head->register_parameter("bias", bias);
  } else {  // cls.predictions.{transform.{dense, LayerNorm}, bias}
    auto predictions = register_module("cls", std::make_shared<torch::nn::Module>())
                           ->register_module("predictions", std::make_shared<torch::nn::Module>());
    auto transform = predictions->register_module("transform", std::make_shared<torch::nn::Module>());
    transform->register_module("dense", dense);
    transform->register_module("LayerNorm", norm);
    bias = predictions->register_parameter("bias", bias);
  }
  init_bert_weights(*this, c);
}

torch::Tensor BertForMaskedLMImpl::predict(const torch::Tensor& hidden) {
  torch::Tensor h = norm(torch::gelu(dense(hidden)));
  // The decoder is the word embedding (tied); the logits go on in float32 to the softmax.
  return torch::nn::functional::linear(h, bert->embeddings->word_embeddings->weight, bias).to(torch::kFloat32);
}

torch::Tensor BertForMaskedLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                           const torch::Tensor& chosen) {
  torch::Tensor h = bert->sequence(input_ids, attention_mask);
  return predict(h.reshape({-1, h.size(-1)}).index_select(0, chosen));
}

torch::Tensor BertForMaskedLMImpl::forward_unpadded(const UnpaddedBatch& u, const torch::Tensor& chosen) {
  return predict(bert->sequence_unpadded(u).index_select(0, chosen));
}

torch::Tensor BertForMaskedLMImpl::logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                          const torch::Tensor& positions, const torch::Tensor& packed, bool unpad,
                                          const torch::Device& device) {
  if (unpad) return forward_unpadded(unpad_for(device, input_ids, attention_mask), packed.to(device, true));
  return forward(input_ids.to(device, true), attention_mask.to(device, true), positions.to(device, true));
}

RobertaHeadImpl::RobertaHeadImpl(torch::nn::Linear d, torch::nn::Linear o) : dense(d), out_proj(o) {
  register_module("dense", dense);
  register_module("out_proj", out_proj);
}

BertForClassificationImpl::BertForClassificationImpl(const BertConfig& c) : config_(c) {
  if (c.num_labels < 1) throw UserError("model: a classifier needs labels (data.labels)");
  bert = register_module(c.prefix(), BertModel(c));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
  if (c.roberta()) {
    head_dense = nn::Linear(c.hidden, c.hidden);
    classifier = nn::Linear(c.hidden, c.num_labels);
    register_module("classifier", RobertaHead(head_dense, classifier));
  } else {
    classifier = register_module("classifier", nn::Linear(c.hidden, c.num_labels));
  }
  init_bert_weights(*this, c);
}

namespace {
// The head in fp32 even under bf16/fp16 autocast: early in training the logits of different
// inputs differ by less than bf16 resolves around the bias, and rounding them to equal values
// turns every ranking metric into a coin flip (seen on the GPU: ROC-AUC 0.50 in bf16, 0.73 in
// fp32). Multiply-and-sum is not an autocast op, so it stays fp32; the cost is B x L x H.
torch::Tensor head(const torch::Tensor& pooled, torch::nn::Linear& classifier) {
  torch::Tensor w = classifier->weight.to(torch::kFloat32), b = classifier->bias.to(torch::kFloat32);
  return (pooled.unsqueeze(1) * w.unsqueeze(0)).sum(-1) + b;  // [B, L]
}
}  // namespace

torch::Tensor BertForClassificationImpl::classify(const torch::Tensor& features) {
  torch::Tensor x = features;  // RobertaClassificationHead: dropout, dense, tanh, dropout, out_proj
  if (head_dense) x = torch::tanh(linear(head_dense, dropout(x)));
  return head(dropout(x).to(torch::kFloat32), classifier);
}

torch::Tensor BertForClassificationImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return classify(bert(input_ids, attention_mask));
}

torch::Tensor BertForClassificationImpl::forward_unpadded(const UnpaddedBatch& u) {
  return classify(bert->forward_unpadded(u));
}

torch::Tensor BertForClassificationImpl::logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                bool unpad, const torch::Device& device) {
  if (unpad) return forward_unpadded(unpad_for(device, input_ids, attention_mask));
  return forward(input_ids.to(device, true), attention_mask.to(device, true));
}

void init_bert_weights(torch::nn::Module& root, const BertConfig& c) {
  torch::NoGradGuard no_grad;
  for (auto& module : root.modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::LinearImpl>()) {
      linear->weight.normal_(0.0, c.initializer_range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = module->as<nn::EmbeddingImpl>()) {
      embedding->weight.normal_(0.0, c.initializer_range);
      if (embedding->options.padding_idx()) embedding->weight[*embedding->options.padding_idx()].zero_();
    } else if (auto* norm = module->as<nn::LayerNormImpl>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

double bert_forward_flops(const BertConfig& c, int64_t batch, int64_t seq) {
  const double b = static_cast<double>(batch), t = static_cast<double>(seq), h = static_cast<double>(c.hidden);
  const double per_layer = 2 * b * t * (4 * h * h + 2 * h * static_cast<double>(c.intermediate))  // QKV, out, FFN
                           + 2 * 2 * b * t * t * h;                                               // scores, context
  return static_cast<double>(c.layers) * per_layer + 2 * b * h * h + 2 * b * h * static_cast<double>(c.num_labels);
}

// ---- the factories (model/model.h): every family in model/family.h is a BERT or RoBERTa layout
torch::Tensor probabilities(const torch::Tensor& logits, Problem problem, const std::vector<double>& temperatures) {
  torch::Tensor x = logits.to(torch::kFloat32);
  if (problem == Problem::kMultiLabel && !temperatures.empty()) {
    MT_CHECK(static_cast<int64_t>(temperatures.size()) == x.size(-1),
             temperatures.size() << " temperatures for " << x.size(-1) << " labels");
    x = x / torch::tensor(temperatures, torch::kFloat64).to(x.device(), torch::kFloat32);
  }
  return problem == Problem::kMultiLabel ? torch::sigmoid(x) : torch::softmax(x, 1);
}

std::shared_ptr<ClassifierImpl> make_classifier(const BertConfig& config) {
  return std::make_shared<BertForClassificationImpl>(config);
}

std::shared_ptr<MaskedLMImpl> make_masked_lm(const BertConfig& config) {
  return std::make_shared<BertForMaskedLMImpl>(config);
}

}  // namespace modtrain
