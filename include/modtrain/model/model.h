// What training needs from a model beyond its forward pass, declared by the model's own modules
// rather than guessed from parameter names further up (dist/ knows no model). First part of the
// model seam: which parameters take weight decay.
#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_set>

namespace modtrain {

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
