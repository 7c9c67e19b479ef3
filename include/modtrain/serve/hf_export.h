// Export of a trained model directory in the layout Hugging Face transformers
// (AutoModelForSequenceClassification + AutoTokenizer) and text-embeddings-inference load:
// config.json, model.safetensors, vocab.txt, tokenizer.json (BertNormalizer, BertPreTokenizer,
// WordPiece, [CLS] $A [SEP] template), tokenizer_config.json, special_tokens_map.json,
// thresholds.json and a README.md model card.
#pragma once

#include <string>

namespace modtrain {

// `model_dir` is a modtrain model directory (RUN/model); `out_dir` is created or overwritten.
void export_huggingface(const std::string& model_dir, const std::string& out_dir);

// The tokenizer.json for a vocabulary and tokenizer settings (exposed for tests).
std::string tokenizer_json(const std::string& vocab_path, bool lowercase, int max_len);

}  // namespace modtrain
