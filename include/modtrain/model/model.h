// The model seam: what the trainer, evaluator, predictor, checkpoints and the Hugging Face import
// see of a model. Two heads over an encoder, whatever the family:
//  - Classifier: logits [B, labels] for a right-padded batch, through the padded or the
//    padding-free path;
//  - MaskedLM: logits [M, vocabulary] for the chosen tokens of a batch;
// both with their encoder's config (the Hugging Face config in and out: modelio/), their parameters
// by Hugging Face name (torch's named_parameters), and which parameters take no weight decay, which
// the model's own modules declare (dist/ knows no model). make_classifier / make_masked_lm build
// the family's modules (model/family.h lists the families): the one place that picks a class.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

struct BertConfig;  // model/bert.h: the encoder's sizes and family (every family's today)

struct ClassifierImpl : torch::nn::Module {
  // A right-padded batch [B, T] (CPU tensors) through the path `unpad` picks, on `device` -> [B, L].
  virtual torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, bool unpad,
                               const torch::Device& device) = 0;
  virtual const BertConfig& config() const = 0;
};

struct MaskedLMImpl : torch::nn::Module {
  // A right-padded batch [B, T] (CPU tensors); the chosen tokens as flat indices into B x T
  // (`positions`) and into the real tokens (`packed`) -> [M, V] float32 logits on `device`.
  virtual torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& positions, const torch::Tensor& packed, bool unpad,
                               const torch::Device& device) = 0;
  virtual const BertConfig& config() const = 0;
};

// The family's classifier or masked-LM model for `config` (freshly initialised).
std::shared_ptr<ClassifierImpl> make_classifier(const BertConfig& config);
std::shared_ptr<MaskedLMImpl> make_masked_lm(const BertConfig& config);

// A classifier's scores from its logits [B, L]: sigmoid (multi_label) or softmax (multi_class),
// float32. temperatures (multi_label, one per label, empty = none): sigmoid(logit / T). What
// evaluation, `predict` and a server all apply, so that they agree.
torch::Tensor probabilities(const torch::Tensor& logits, Problem problem, const std::vector<double>& temperatures = {});

// The full names of the parameters that take no weight decay: every bias, and every parameter of a
// LayerNorm module whatever the module is called (Hugging Face Trainer's rule: LayerNorm modules by
// type, plus "bias"). A name-based rule ("LayerNorm" in the name) gave RoBERTa's masked-LM head
// norm, registered as lm_head.layer_norm, weight decay that BERT's head norm and Hugging Face do
// not give it.
inline std::unordered_set<std::string> no_weight_decay(const torch::nn::Module& model) {
  std::unordered_set<std::string> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const std::string& prefix = item.key();
    const bool layer_norm = item.value()->as<torch::nn::LayerNorm>() != nullptr;
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      const std::string& leaf = p.key();
      if (layer_norm || leaf == "bias") out.insert(prefix.empty() ? leaf : prefix + "." + leaf);
    }
  }
  return out;
}

}  // namespace modtrain
