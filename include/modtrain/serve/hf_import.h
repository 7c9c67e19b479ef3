// model.init_from: fine-tune a pretrained Hugging Face BERT. Reads DIR/config.json,
// DIR/model.safetensors and DIR/vocab.txt; accepts bare BertModel names ("encoder.layer.0...")
// and "bert."-prefixed ones (BertForPreTraining, BertForSequenceClassification), and the old
// LayerNorm gamma/beta names. The pre-training heads (cls.*) are ignored; the classifier head is
// loaded only when the checkpoint's labels are ours (id2label), otherwise it stays freshly
// initialised. Every mismatch (model.* vs config.json, vocab, a tensor's shape) is a UserError
// that names the field or tensor and says how to fix it.
#pragma once

#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/model/bert.h"

namespace modtrain {

struct ImportReport {
  size_t tensors = 0;                // parameters loaded from the checkpoint
  bool head = false;                 // the classifier head came from the checkpoint
  bool pooler = false;               // the pooler came from the checkpoint (BertModel without pooler: fresh)
  std::vector<std::string> ignored;  // checkpoint tensors not used (besides cls.* and position_ids)
  std::string summary() const;
};

ImportReport import_huggingface_bert(const std::string& dir, BertForClassificationImpl& model, const Config& config,
                                     const Vocab& vocab);

}  // namespace modtrain
