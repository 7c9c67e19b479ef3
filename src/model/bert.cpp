#include "modtrain/model/bert.h"

#include <torch/version.h>

#include <cmath>

#include "modtrain/core/error.h"

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
  c.validate();
  if (max_len > c.max_positions)
    throw UserError("data.max_len = " + std::to_string(max_len) + " exceeds model.max_positions = " +
                    std::to_string(c.max_positions) + "; lower data.max_len or raise model.max_positions");
  return c;
}

void BertConfig::validate() const {
  auto fail = [](const std::string& what) { throw UserError("model: " + what); };
  if (hidden % heads != 0)
    fail("hidden " + std::to_string(hidden) + " is not divisible by heads " + std::to_string(heads) +
         " (model.hidden, model.heads)");
  if (vocab_size < 5) fail("vocabulary of " + std::to_string(vocab_size) + " tokens is too small (tokenizer.vocab)");
  if (num_labels < 1) fail("no labels (data.labels)");
  if (pad_token_id < 0 || pad_token_id >= vocab_size) fail("[PAD] id outside the vocabulary");
  if (layers < 1 || intermediate < 1 || max_positions < 1)
    fail("layers, intermediate and max_positions must be positive");
}

// ---- attention ------------------------------------------------------------------------------
BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : heads(c.heads),
      head_dim(c.hidden / c.heads),
      dropout(c.attention_dropout),
      use_sdpa(c.use_sdpa && sdpa_available()) {
  query = register_module("query", nn::Linear(c.hidden, c.hidden));
  key = register_module("key", nn::Linear(c.hidden, c.hidden));
  value = register_module("value", nn::Linear(c.hidden, c.hidden));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t b = x.size(0), t = x.size(1);
  auto split = [&](const torch::Tensor& y) {
    return y.view({b, t, heads, head_dim}).transpose(1, 2);
  };  // [B, nh, T, hd]
  // One GEMM for Q, K and V (the three weights concatenated each step: 3 x H x H floats, against a
  // [B x T, H] x [H, 3H] product); the parameters keep Hugging Face's names and shapes.
  torch::Tensor qkv = torch::linear(x, torch::cat({query->weight, key->weight, value->weight}),
                                    torch::cat({query->bias, key->bias, value->bias}));  // [B, T, 3H]
  std::vector<torch::Tensor> parts = qkv.chunk(3, -1);
  torch::Tensor q = split(parts[0]), k = split(parts[1]), v = split(parts[2]);
  torch::Tensor context;  // [B, nh, T, hd]
#if TORCH_VERSION_MAJOR >= 2
  if (use_sdpa) {
    context = at::scaled_dot_product_attention(q, k, v, mask.to(q.dtype()), is_training() ? dropout : 0.0, false);
  } else
#endif
  {
    // mask + (Q K^T) / sqrt(hd) as one batched GEMM (scale as alpha, the mask as the beta = 1
    // input): no separate passes for the division and the addition over [B, nh, T, T].
    const int64_t bh = b * heads;
    torch::Tensor scores = torch::baddbmm(mask.to(q.dtype()).expand({b, heads, 1, t}).reshape({bh, 1, t}),
                                          q.reshape({bh, t, head_dim}), k.reshape({bh, t, head_dim}).transpose(1, 2),
                                          1.0, 1.0 / std::sqrt(static_cast<double>(head_dim)));  // [B nh, T, T]
    torch::Tensor probs = torch::dropout(torch::softmax(scores, -1), dropout, is_training());
    context = torch::bmm(probs, v.reshape({bh, t, head_dim})).view({b, heads, t, head_dim});
  }
  return context.transpose(1, 2).reshape({b, t, heads * head_dim});  // [B, T, H]
}

BertResidualImpl::BertResidualImpl(int64_t in, int64_t out, const BertConfig& c) {
  dense = register_module("dense", nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
}

torch::Tensor BertResidualImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidual(c.hidden, c.hidden, c));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  return output(self(x, mask), x);
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

// ---- embeddings, encoder, pooler ------------------------------------------------------------
BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module(
      "word_embeddings",
      nn::Embedding(
          nn::EmbeddingOptions(c.vocab_size, c.hidden).padding_idx(c.pad_token_id).sparse(c.sparse_embedding_grad)));
  position_embeddings = register_module("position_embeddings", nn::Embedding(c.max_positions, c.hidden));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden));
  LayerNorm = register_module("LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  const int64_t t = input_ids.size(1);
  torch::Tensor positions = torch::arange(t, input_ids.options()).unsqueeze(0);  // [1, T]
  // Single-segment inputs: token type 0 everywhere, as BertForSequenceClassification gets them.
  torch::Tensor x = word_embeddings(input_ids) + position_embeddings(positions) + token_type_embeddings->weight[0];
  return dropout(LayerNorm(x));
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) layer->push_back(BertLayer(c));
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (const auto& module : *layer) x = module->as<BertLayerImpl>()->forward(x, mask);
  return x;
}

BertPoolerImpl::BertPoolerImpl(const BertConfig& c) {
  dense = register_module("dense", nn::Linear(c.hidden, c.hidden));
}

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  pooler = register_module("pooler", BertPooler(c));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  // [B, T] 1/0 -> additive [B, 1, 1, T]: 0 where attended, the dtype's lowest value where padded
  torch::Tensor keep = attention_mask.to(torch::kFloat32).unsqueeze(1).unsqueeze(2);
  torch::Tensor mask = (1.0 - keep) * std::numeric_limits<float>::lowest();
  torch::Tensor h = encoder(embeddings(input_ids), mask);  // [B, T, H]
  return pooler(h);
}

BertForClassificationImpl::BertForClassificationImpl(const BertConfig& c) : config_(c) {
  bert = register_module("bert", BertModel(c));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout));
  classifier = register_module("classifier", nn::Linear(c.hidden, c.num_labels));
  init_bert_weights(*this, c);
}

torch::Tensor BertForClassificationImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  torch::Tensor pooled = dropout(bert(input_ids, attention_mask)).to(torch::kFloat32);  // [B, H]
  // The head in fp32 even under bf16/fp16 autocast: early in training the logits of different
  // inputs differ by less than bf16 resolves around the bias, and rounding them to equal values
  // turns every ranking metric into a coin flip (seen on the GPU: ROC-AUC 0.50 in bf16, 0.73 in
  // fp32). Multiply-and-sum is not an autocast op, so it stays fp32; the cost is B x L x H.
  torch::Tensor w = classifier->weight.to(torch::kFloat32), b = classifier->bias.to(torch::kFloat32);
  return (pooled.unsqueeze(1) * w.unsqueeze(0)).sum(-1) + b;  // [B, L]
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

}  // namespace modtrain
