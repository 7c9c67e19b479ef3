// BERT encoder + sequence-classification head with Hugging Face BertForSequenceClassification
// semantics and parameter names (bert.embeddings.word_embeddings.weight, ...,
// bert.encoder.layer.N.attention.self.query.weight, ..., bert.pooler.dense.weight,
// classifier.weight), so export/import is a plain name map. Post-LayerNorm, exact (erf) GELU,
// additive padding mask, pooler = tanh(dense(h[CLS])), dropout where BERT has it, init N(0, 0.02).
// model.arch roberta / xlm-roberta gives RobertaForSequenceClassification instead (roberta.*
// names, positions from pad id + 1, no pooler, classifier.dense / classifier.out_proj on <s>), and
// position_embedding_type relative_key(_query) the per-layer distance embedding TwHIN-BERT uses.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>

#include "modtrain/config/config.h"
#include "modtrain/model/family.h"
#include "modtrain/model/model.h"

namespace modtrain {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden = 768;
  int64_t layers = 12;
  int64_t heads = 12;
  int64_t intermediate = 3072;
  int64_t max_positions = 512;
  int64_t type_vocab_size = 2;
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  bool use_sdpa = true;  // fused scaled_dot_product_attention where LibTorch >= 2.0; else the plain path
  // The word-embedding gradient as sparse rows (the tokens of the batch) instead of a dense
  // [vocab, hidden] tensor: on CPU the dense one costs a zero-fill and an add of the whole table
  // every backward (~10% of the tiny step). Same values; the trainer sets it on CPU.
  bool sparse_embedding_grad = false;
  ModelArch arch = ModelArch::kBert;
  PositionEmbeddingType position_embedding_type = PositionEmbeddingType::kAbsolute;

  bool roberta() const { return arch != ModelArch::kBert; }
  bool relative() const { return position_embedding_type != PositionEmbeddingType::kAbsolute; }
  // The first real token's position: RoBERTa numbers positions from padding_idx + 1.
  int64_t position_offset() const { return roberta() ? pad_token_id + 1 : 0; }
  const char* prefix() const { return family_of(arch).prefix; }  // the encoder's parameter prefix

  // From the experiment config; throws ConfigError-style UserError for inconsistent shapes.
  static BertConfig from(const ModelConfig& model, int64_t vocab_size, int64_t num_labels, int64_t max_len,
                         int64_t pad_id);
  void validate() const;
};

// True when this LibTorch has the fused attention (2.0 and later).
bool sdpa_available();

// A padded batch's real tokens only, concatenated record after record (model.unpad: MosaicBERT's
// and FasterTransformer's "remove padding"). Embeddings, every linear layer, GELU, dropout and
// LayerNorm run on [tokens, H]; attention alone sees the records laid out at `max_len` (the
// longest real record, not the batch's padded width), with an additive mask, and the result is
// gathered back, so no GEMM, activation or normalisation runs on a padding position. On CUDA in
// fp16/bf16, attention runs on the concatenated tokens too (varlen_attention.h: flash attention
// with cumulative offsets), once that path has passed its check on the device.
struct UnpaddedBatch {
  torch::Tensor ids;         // [N] int64, the real tokens
  torch::Tensor positions;   // [N] int64, each token's position in its record
  torch::Tensor indices;     // [N] int64, each token's row in the [B x max_len] attention layout
  torch::Tensor first;       // [B] int64, each record's first token ([CLS]) in [N]
  torch::Tensor mask;        // [B, 1, 1, max_len] float32, additive: 0 attended, lowest() padding
  torch::Tensor cu_seqlens;  // [B + 1] int32, record i is tokens cu_seqlens[i] .. cu_seqlens[i + 1]
  int64_t batch = 0, max_len = 0, tokens = 0;
  UnpaddedBatch to(const torch::Device& device, bool non_blocking = false) const;
};

// From a right-padded batch (CPU tensors: ids and 1/0 mask, [B, T]). Throws InternalError for a
// mask that is not a prefix of ones per row or a record without tokens. `pinned`: the six tensors
// are allocated in page-locked memory (LibTorch's caching host allocator; CUDA LibTorch only), so
// that their copy to the GPU with non_blocking is asynchronous: from pageable memory each copy
// waited on the host. unpad_for(device) picks it for the device the batch goes to.
UnpaddedBatch unpad_batch(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, bool pinned = false);
// unpad_batch(...).to(device, non_blocking = true), pinned when `device` is CUDA.
UnpaddedBatch unpad_for(const torch::Device& device, const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask);

// x W^T + b. With autograd off, on CPU in fp32, where LibTorch has oneDNN and MODTRAIN_CPU_GEMM
// allows it (core/cpu_runtime.h): oneDNN's GEMM, through its own API with the weight laid out once
// and kept (model/packed_gemm.h; built with libdnnl-dev), else LibTorch's mkldnn_linear from 128
// rows (tokens); otherwise torch::linear (OpenBLAS on CPU, cuBLAS on a GPU). Training is unchanged.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
inline torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return linear(x, layer->weight, layer->bias);
}
// GELU(linear(x, W, b)) (exact, erf) and linear(x, W, b) + residual: on linear()'s oneDNN route with
// the weight laid out, one pass (the GELU or the addition fused into the GEMM); otherwise as written.
torch::Tensor linear_gelu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
torch::Tensor linear_add(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         const torch::Tensor& residual);
// Marks weights as frozen for inference: linear() (and linear_gelu, linear_add) may then keep a
// laid-out copy of each for oneDNN (model/packed_gemm.h), made at first use. For a loaded model
// (load_model_dir does it for every nn::Linear and fused QKV; returns how many): never for weights
// that train, whose updates partly bypass LibTorch's version counters. A frozen weight changed in
// place through LibTorch, or freed, loses its copy; anything not frozen takes LibTorch's route.
int freeze_for_inference(torch::nn::Module& model);
void freeze_for_inference(const torch::Tensor& weight, const torch::Tensor& bias);
size_t packed_weights_held();  // laid-out copies held now

struct BertSelfAttentionImpl : torch::nn::Module {
  explicit BertSelfAttentionImpl(const BertConfig& c);
  // x [B, T, H], mask [B, 1, 1, T] additive (0 or a large negative) -> [B, T, H]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  // x [N, H] (real tokens) -> [N, H]: Q, K, V projected on the N tokens, attention per record.
  torch::Tensor forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u);
  torch::Tensor project_qkv(const torch::Tensor& x);  // [..., H] -> [..., 3H]
  // Makes query, key and value's weights (and biases) adjacent rows of one tensor, so that a
  // forward without autograd projects with it as it is instead of concatenating the three each
  // call (13.7 ms of a BERT-base batch-1 forward on CPU). For loaded, inference-only models
  // (load_model_dir); training keeps three separate parameters and concatenates.
  void fuse_qkv();
  // The [3H, H] weight and [3H] bias as one view when fuse_qkv's layout still holds and autograd
  // is off; undefined tensors otherwise.
  std::pair<torch::Tensor, torch::Tensor> fused_qkv() const;
  torch::Tensor attend(const torch::Tensor& qkv, const torch::Tensor& mask);  // [B, T, 3H] -> [B, T, H]
  // forward_unpadded's attention through oneDNN (model/packed_gemm.h): inference on CPU in fp32 with
  // absolute positions, where linear() uses oneDNN; [N, 3H] -> [N, H].
  bool packed_attention_applies(const torch::Tensor& qkv) const;
  torch::Tensor packed_attention(const torch::Tensor& qkv, const UnpaddedBatch& u) const;
  // relative_key(_query): q (and k) [B, nh, T, hd] against the distance embedding -> [B, nh, T, T]
  torch::Tensor relative_scores(const torch::Tensor& q, const torch::Tensor& k);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  // fuse_qkv's [3H, H] and [3H] tensors, whose rows query, key and value view: one tensor object
  // each, so that freeze_for_inference's laid-out copy is found by it.
  torch::Tensor fused_weight, fused_bias;
  torch::nn::Embedding distance_embedding{nullptr};  // relative_* only: [2 max_positions - 1, hd]
  int64_t heads, head_dim, max_positions;
  double dropout;
  bool use_sdpa;
  PositionEmbeddingType relative;
};
TORCH_MODULE(BertSelfAttention);

// fuse_qkv on every self-attention in `model`; returns how many it fused.
int fuse_qkv_for_inference(torch::nn::Module& model);

// dense -> dropout -> LayerNorm(x + residual); BERT's SelfOutput and Output
struct BertResidualImpl : torch::nn::Module {
  BertResidualImpl(int64_t in, int64_t out, const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidual);

struct BertAttentionImpl : torch::nn::Module {
  explicit BertAttentionImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  torch::Tensor forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u);
  BertSelfAttention self{nullptr};
  BertResidual output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  explicit BertIntermediateImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x) { return linear_gelu(x, dense->weight, dense->bias); }  // erf GELU
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

struct BertLayerImpl : torch::nn::Module {
  explicit BertLayerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  torch::Tensor forward_unpadded(const torch::Tensor& x, const UnpaddedBatch& u);
  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidual output{nullptr};
};
TORCH_MODULE(BertLayer);

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& input_ids);   // [B, T] -> [B, T, H]
  torch::Tensor forward_unpadded(const UnpaddedBatch& u);  // -> [N, H]
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t position_offset = 0;  // RoBERTa: pad id + 1
  bool absolute = true;         // false with relative_key(_query): position_embeddings exist but are not added
};
TORCH_MODULE(BertEmbeddings);

struct BertEncoderImpl : torch::nn::Module {
  explicit BertEncoderImpl(const BertConfig& c);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask);
  torch::Tensor forward_unpadded(torch::Tensor x, const UnpaddedBatch& u);
  torch::nn::ModuleList layer;
};
TORCH_MODULE(BertEncoder);

struct BertPoolerImpl : torch::nn::Module {
  explicit BertPoolerImpl(const BertConfig& c);
  // h [B, T, H] -> tanh(dense(h[:, 0])) [B, H]
  torch::Tensor forward(const torch::Tensor& h) { return torch::tanh(linear(dense, h.select(1, 0))); }
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertPooler);

struct BertModelImpl : torch::nn::Module {
  // add_pooler false: no pooler (BERT's masked-LM model has none: add_pooling_layer=False)
  explicit BertModelImpl(const BertConfig& c, bool add_pooler = true);
  // input_ids, attention_mask [B, T] -> pooled [B, H]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  torch::Tensor forward_unpadded(const UnpaddedBatch& u);  // -> pooled [B, H] from each record's first token
  torch::Tensor sequence(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);  // -> [B, T, H]
  torch::Tensor sequence_unpadded(const UnpaddedBatch& u);                                      // -> [N, H]
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};  // BERT only; RoBERTa's forward returns the first token's hidden state
  bool roberta = false;
};

// RobertaClassificationHead's parameters: classifier.dense and classifier.out_proj.
struct RobertaHeadImpl : torch::nn::Module {
  RobertaHeadImpl(torch::nn::Linear dense, torch::nn::Linear out_proj);
  torch::nn::Linear dense, out_proj;
};
TORCH_MODULE(RobertaHead);
TORCH_MODULE(BertModel);

struct BertForClassificationImpl : ClassifierImpl {
  explicit BertForClassificationImpl(const BertConfig& c);
  // -> logits [B, num_labels]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  torch::Tensor forward_unpadded(const UnpaddedBatch& u);  // the same logits, computed on the real tokens only
  // A right-padded batch [B, T] (CPU tensors) through the path `unpad` picks, on `device`.
  torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, bool unpad,
                       const torch::Device& device) override;
  torch::Tensor classify(const torch::Tensor& features);  // the head on [B, H] (pooled or <s>) -> [B, L]
  const BertConfig& config() const override { return config_; }
  BertModel bert{nullptr};  // registered as "bert", or "roberta" for the RoBERTa family
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};  // BERT: classifier; RoBERTa: classifier.out_proj
  torch::nn::Linear head_dense{nullptr};  // RoBERTa: classifier.dense (before tanh); BERT: none

 private:
  BertConfig config_;
};
TORCH_MODULE(BertForClassification);

// BertForMaskedLM / RobertaForMaskedLM: the encoder without pooler and the masked-LM head with
// transformers' names and semantics, transform dense -> GELU -> LayerNorm -> decoder tied to the
// word embedding + bias: BERT cls.predictions.{transform.dense, transform.LayerNorm, bias},
// RoBERTa lm_head.{dense, layer_norm, bias}. The decoder has no matrix of its own (it is the
// [V, H] word embedding), and the head runs on the chosen positions only: the vocabulary
// projection is the costliest layer (30k-250k outputs per token), so it never sees the others.
struct BertForMaskedLMImpl : MaskedLMImpl {
  explicit BertForMaskedLMImpl(const BertConfig& c);
  // Padded [B, T] inputs; `chosen` [M] int64 flat indices into B x T -> logits [M, V] (float32)
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& chosen);
  // The real tokens; `chosen` [M] int64 indices into the N tokens -> logits [M, V] (float32)
  torch::Tensor forward_unpadded(const UnpaddedBatch& u, const torch::Tensor& chosen);
  torch::Tensor predict(const torch::Tensor& hidden);  // the head on [M, H] -> [M, V]
  // A right-padded batch [B, T] (CPU tensors) through the path `unpad` picks, on `device`: the
  // chosen tokens as flat indices into B x T (`positions`) and into the real tokens (`packed`).
  torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const torch::Tensor& positions, const torch::Tensor& packed, bool unpad,
                       const torch::Device& device) override;
  const BertConfig& config() const override { return config_; }
  BertModel bert{nullptr};  // "bert" or "roberta"
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::Tensor bias;  // [V]

 private:
  BertConfig config_;
};
TORCH_MODULE(BertForMaskedLM);

// HF's _init_weights: Linear and Embedding weights ~ N(0, initializer_range), biases 0, the
// padding embedding row 0, LayerNorm weight 1 and bias 0. Uses torch's global generator.
void init_bert_weights(torch::nn::Module& module, const BertConfig& c);

// Matrix-multiply FLOPs of one forward pass of `batch` sequences of length `seq` (for MFU).
double bert_forward_flops(const BertConfig& c, int64_t batch, int64_t seq);

}  // namespace modtrain
