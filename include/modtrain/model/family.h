// The encoder families modtrain has: the one table that knows them. Reading and writing Hugging
// Face config.json (model_type, the class names), the encoder's parameter prefix and the masked-LM
// head's come from here; the model code (model/bert.cpp) builds each family's modules.
// TwHIN-BERT is bert with position_embedding_type relative_key, not a family of its own.
// Adding a family: docs/architecture.md lists the files.
#pragma once

#include <string>
#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

struct Family {
  ModelArch arch;
  const char* model_type;  // config.json "model_type", and model.arch's name in YAML
  const char* hf_class;    // transformers' class prefix: <hf_class>ForSequenceClassification / ForMaskedLM
  const char* prefix;      // the encoder's parameter-name prefix (bert.embeddings...., roberta.encoder....)
  const char* mlm_head;    // the masked-LM head's parameter prefix (with its trailing dot)
  const char* examples;    // public checkpoints of the family, for messages
};

inline const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {ModelArch::kBert, "bert", "Bert", "bert", "cls.predictions.", "BERT, TwHIN-BERT"},
      {ModelArch::kRoberta, "roberta", "Roberta", "roberta", "lm_head.", "RoBERTa, twitter-roberta"},
      {ModelArch::kXlmRoberta, "xlm-roberta", "XLMRoberta", "roberta", "lm_head.", "XLM-R, XLM-T"},
  };
  return table;
}

// nullptr when `model_type` is none of them.
inline const Family* find_family(const std::string& model_type) {
  for (const Family& f : families())
    if (model_type == f.model_type) return &f;
  return nullptr;
}

inline const Family& family_of(ModelArch arch) {
  for (const Family& f : families())
    if (f.arch == arch) return f;
  return families().front();  // unreachable: every ModelArch has a row (tested)
}

// "bert, roberta, xlm-roberta (BERT, TwHIN-BERT, RoBERTa, ...)" for messages.
inline std::string family_list() {
  std::string names, examples;
  for (const Family& f : families()) {
    names += (names.empty() ? "" : ", ") + std::string(f.model_type);
    examples += (examples.empty() ? "" : ", ") + std::string(f.examples);
  }
  return names + " (" + examples + ")";
}

}  // namespace modtrain
