// Export of a trained model directory in the layout Hugging Face transformers
// (AutoModelForSequenceClassification + AutoTokenizer) and text-embeddings-inference load, for
// each family: config.json (model_type, architectures), model.safetensors, the tokenizer's own
// files and what its Hugging Face layout adds (Tokenizer::hugging_face: tokenizer.json when the
// model has none, RoBERTa's slow vocab.json + merges.txt, tokenizer_config.json's class and
// special_tokens_map.json), thresholds.json and a README.md model card (modelio/model_card.h).
#pragma once

#include <string>

namespace modtrain {

// `model_dir` is a modtrain model directory (RUN/model); `out_dir` is created or overwritten.
// A model trained with tokenizer.normalize_tweets gets the tweet normalisation in tokenizer.json's
// normalizer, so that every Hugging Face tokenizers user feeds it the ids training saw. A model
// whose normalisation tokenizer.json cannot express exactly (one trained with the version-1
// normaliser) is refused unless allow_skew, which says the difference in bold in the model card.
void export_huggingface(const std::string& model_dir, const std::string& out_dir, bool allow_skew = false);

// A tokenizer.json (its text) with the tweet normalisation in front of its normalizer, as an
// export of a model trained with tokenizer.normalize_tweets writes it; unchanged when it has it.
std::string with_tweet_normalizer(const std::string& tokenizer_json_text);

}  // namespace modtrain
