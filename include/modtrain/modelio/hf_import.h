// model.init_from: fine-tune a pretrained Hugging Face encoder of the BERT or RoBERTa family
// (BERT, TwHIN-BERT's relative_key BERT, RoBERTa / twitter-roberta, XLM-R / XLM-T). Reads
// DIR/config.json, DIR/model.safetensors and DIR's tokenizer (tokenizer.json, vocab.json +
// merges.txt, sentencepiece.bpe.model or vocab.txt). Accepts bare encoder names
// ("encoder.layer.0...") and "bert." / "roberta."-prefixed ones (…ForMaskedLM, …ForPreTraining,
// …ForSequenceClassification), and the old LayerNorm gamma/beta names. The pre-training heads
// (cls.*, lm_head.*) are ignored by a classifier (a masked-LM model loads them); the classifier head is loaded only
// when the checkpoint's labels are ours (id2label), otherwise it stays freshly initialised. Every mismatch (model.* vs
// config.json, the tokenizer, a tensor's shape) is a UserError that names the field or tensor and
// says how to fix it.
#pragma once

#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/model/bert.h"

namespace modtrain {

struct ImportReport {
  std::string family;                // config.json's model_type
  size_t tensors = 0;                // parameters loaded from the checkpoint
  bool mlm = false;                  // imported into a masked-LM model (train.objective mlm)
  bool head = false;                 // the classifier (mlm: masked-LM) head came from the checkpoint
  bool pooler = false;               // BERT's pooler came from the checkpoint (BertModel without pooler: fresh)
  std::vector<std::string> ignored;  // checkpoint tensors not used (besides cls.*, lm_head.* and position_ids)
  std::vector<std::string> notes;    // differences that were resolved, said once in the log
  std::string summary() const;
};

// `tokenizer` is tokenizer.vocab's: DIR's tokenizer must have the same tokens (ids mean the same).
ImportReport import_huggingface(const std::string& dir, ClassifierImpl& model, const Config& config,
                                const Tokenizer& tokenizer);
// train.objective mlm: the encoder, and the masked-LM head when the directory has one (BERT
// cls.predictions.*, RoBERTa lm_head.*, the bias also under decoder.bias; the decoder matrix is
// the tied word embedding); without one the head stays freshly initialised.
ImportReport import_huggingface(const std::string& dir, MaskedLMImpl& model, const Config& config,
                                const Tokenizer& tokenizer);

}  // namespace modtrain
