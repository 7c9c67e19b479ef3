#include "modtrain/modelio/hf_import.h"

#include "modtrain/model/family.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/modelio/model_dir.h"

namespace modtrain {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A checkpoint tensor name -> our parameter name ("" for tensors we do not use). `prefix` is the
// encoder's ("bert" or "roberta"); `mlm`: the target is BertForMaskedLM, whose head keeps
// transformers' names (cls.predictions.*, lm_head.*), else the pre-training heads are unused.
std::string our_name(std::string name, const std::string& prefix, bool mlm) {
  if (name.rfind(prefix + ".", 0) == 0) name = name.substr(prefix.size() + 1);
  if (ends_with(name, "LayerNorm.gamma")) name = name.substr(0, name.size() - 5) + "weight";
  if (ends_with(name, "LayerNorm.beta")) name = name.substr(0, name.size() - 4) + "bias";
  if (name.rfind("classifier.", 0) == 0) return name;
  bool mlm_head = false;  // any family's masked-LM head (model/family.h)
  for (const Family& f : families()) mlm_head = mlm_head || name.rfind(f.mlm_head, 0) == 0;
  if (mlm_head) {
    if (!mlm || ends_with(name, "decoder.weight")) return "";  // the decoder is tied to the word embedding
    if (ends_with(name, "decoder.bias")) return name.substr(0, name.size() - 12) + "bias";  // tied to the head's bias
    return name;
  }
  if (name.rfind("cls.", 0) == 0) return "";  // next-sentence prediction (...ForPreTraining)
  return prefix + "." + name;
}

// DIR's tokenizer has the tokens of tokenizer.vocab's, id for id; else why not.
std::string same_tokens(const std::string& dir, const Tokenizer& ours, const std::string& ours_path) {
  if (find_tokenizer_files(dir).fingerprint() == find_tokenizer_files(ours_path).fingerprint()) return "";
  const std::unique_ptr<Tokenizer> theirs = load_tokenizer(dir, true);
  if (theirs->type() != ours.type())
    return "it has a " + theirs->type() + " tokenizer, tokenizer.vocab a " + ours.type();
  if (theirs->vocab_size() != ours.vocab_size())
    return "its tokenizer has " + std::to_string(theirs->vocab_size()) + " tokens, tokenizer.vocab's " +
           std::to_string(ours.vocab_size());
  for (size_t i = 0; i < ours.vocab_size(); ++i)
    if (theirs->token(static_cast<int32_t>(i)) != ours.token(static_cast<int32_t>(i)))
      return "token " + std::to_string(i) + " is '" + theirs->token(static_cast<int32_t>(i)) + "' there, '" +
             ours.token(static_cast<int32_t>(i)) + "' in tokenizer.vocab";
  return "";
}

}  // namespace

std::string ImportReport::summary() const {
  std::string s = family + ", " + std::to_string(tensors) + " tensors loaded; " +
                  (mlm ? "masked-LM head " : "classifier head ") + (head ? "from the checkpoint" : "fresh") +
                  (family == "bert" && !pooler ? "; pooler fresh (not in the checkpoint)" : "");
  if (!ignored.empty())
    s += "; " + std::to_string(ignored.size()) + " checkpoint tensors unused (first: " + ignored.front() + ")";
  for (const auto& note : notes) s += "; " + note;
  return s;
}

namespace {

// Into a classifier or (mlm) a masked-LM model with the encoder of `ours`.
ImportReport import_into(const std::string& dir, torch::nn::Module& model, const BertConfig& ours, bool mlm,
                         const Config& config, const Tokenizer& tokenizer) {
  const fs::path d(dir);
  const std::string where = "model.init_from: " + dir;
  const std::string layout =
      " (a Hugging Face model directory: config.json, model.safetensors and tokenizer.json, vocab.json + merges.txt, "
      "sentencepiece.bpe.model or vocab.txt)";
  if (!fs::is_directory(d)) throw UserError(where + " is not a directory" + layout);
  if (!fs::exists(d / "config.json")) throw UserError(where + ": config.json is missing" + layout);
  if (!fs::exists(d / "model.safetensors"))
    throw UserError(where + ": model.safetensors is missing" +
                    std::string(fs::exists(d / "pytorch_model.bin")
                                    ? " (only pytorch_model.bin is there: convert it with "
                                      "safetensors' convert script or save_pretrained(safe_serialization=True))"
                                    : ""));
  try {
    find_tokenizer_files(dir);
  } catch (const UserError& e) {
    throw UserError(where + ": " + e.what() + "; copy the model's tokenizer files there too");
  }

  // ---- config.json against model.* and the tokenizer ----
  const std::string config_path = (d / "config.json").string();
  json hf;
  try {
    hf = json::parse(io::read_file(config_path));
  } catch (const json::exception& e) {
    throw UserError(config_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!hf.is_object()) throw UserError(config_path + ": not a JSON object (a transformers config.json)");
  const std::string family = hf.value("model_type", std::string("bert"));
  if (!find_family(family))
    throw UserError(config_path + ": model_type " + family + " is not a family modtrain has: " + family_list());
  if (family != to_string(config.model.arch))
    throw UserError(config_path + ": model_type is " + family + " but model.arch is " + to_string(config.model.arch) +
                    "; set model.arch: " + family);
  ImportReport report;
  report.mlm = mlm;
  report.family = family;
  std::string mismatches;
  // Advice must name a value that works: a value no setting accepts is said to be unsupported.
  auto expect = [&](const char* hf_key, int64_t mine, const char* our_key) {
    if (!hf.contains(hf_key)) return;
    int64_t theirs = hf[hf_key].get<int64_t>();
    if (theirs < 1)
      throw UserError(config_path + ": " + hf_key + " is " + std::to_string(theirs) +
                      ", which no model can have; the checkpoint's config.json is damaged");
    if (theirs != mine)
      mismatches += std::string(mismatches.empty() ? "" : ", ") + our_key + ": " + std::to_string(theirs) + " (is " +
                    std::to_string(mine) + ")";
  };
  try {
    expect("hidden_size", config.model.hidden, "model.hidden");
    expect("num_hidden_layers", config.model.layers, "model.layers");
    expect("num_attention_heads", config.model.heads, "model.heads");
    expect("intermediate_size", config.model.intermediate, "model.intermediate");
    expect("max_position_embeddings", config.model.max_positions, "model.max_positions");
    if (hf.contains("layer_norm_eps") &&
        !(hf["layer_norm_eps"].get<double>() > 0 && hf["layer_norm_eps"].get<double>() <= 0.1))
      throw UserError(config_path + ": layer_norm_eps " + hf["layer_norm_eps"].dump() +
                      " is outside (0, 0.1], the range modtrain supports (model.layer_norm_eps); no setting loads this "
                      "model");
    if (hf.contains("layer_norm_eps") && hf["layer_norm_eps"].get<double>() != config.model.layer_norm_eps) {
      char eps[64];
      std::snprintf(eps, sizeof eps, "%g (is %g)", hf["layer_norm_eps"].get<double>(), config.model.layer_norm_eps);
      mismatches += std::string(mismatches.empty() ? "" : ", ") + "model.layer_norm_eps: " + eps;
    }
    if (hf.contains("hidden_act") && hf["hidden_act"] != "gelu")
      throw UserError(config_path + ": hidden_act " + hf["hidden_act"].dump() +
                      " is not supported (modtrain's encoders use exact gelu)");
    if (hf.contains("type_vocab_size") && hf["type_vocab_size"].get<int64_t>() != ours.type_vocab_size)
      throw UserError(config_path + ": type_vocab_size " + hf["type_vocab_size"].dump() + " is not supported (" +
                      family + " has " + std::to_string(ours.type_vocab_size) + ")");
    const std::string positions = hf.value("position_embedding_type", std::string("absolute"));
    PositionEmbeddingType known;
    if (!from_string(positions, known))
      throw UserError(config_path + ": position_embedding_type " + positions + " is not supported (modtrain has " +
                      enum_names<PositionEmbeddingType>() + "); no setting loads this model");
    if (positions != to_string(config.model.position_embedding_type))
      throw UserError(config_path + ": position_embedding_type " + positions +
                      " differs from model.position_embedding_type " + to_string(config.model.position_embedding_type) +
                      "; set model.position_embedding_type: " + positions);
    if (hf.contains("vocab_size") && hf["vocab_size"].get<int64_t>() != ours.vocab_size)
      throw UserError(config_path + ": vocab_size is " + hf["vocab_size"].dump() + " but tokenizer.vocab (" +
                      config.tokenizer.vocab + ") has " + std::to_string(ours.vocab_size) +
                      " tokens; the word embedding needs one row per token: set tokenizer.vocab to the model's "
                      "own tokenizer (" +
                      dir + ")");
    // RoBERTa numbers positions from pad_token_id + 1: it must be the tokenizer's pad. BERT uses it
    // only as the embedding row that takes no gradient, and TwHIN-BERT's config.json says 0 (<s>)
    // while its XLM-R tokenizer pads with 1: the tokenizer's id is used, and said.
    if (hf.contains("pad_token_id") && !hf["pad_token_id"].is_null() &&
        hf["pad_token_id"].get<int64_t>() != ours.pad_token_id) {
      if (ours.position_offset() != 0)  // positions are numbered from the pad id
        throw UserError(config_path + ": pad_token_id is " + hf["pad_token_id"].dump() + " but tokenizer.vocab (" +
                        config.tokenizer.vocab + ") pads with id " + std::to_string(ours.pad_token_id) +
                        " (RoBERTa's positions start after it); set tokenizer.vocab to the model's own tokenizer (" +
                        dir + ")");
      report.notes.push_back("config.json's pad_token_id " + hf["pad_token_id"].dump() +
                             " is not the tokenizer's pad id " + std::to_string(ours.pad_token_id) +
                             "; the tokenizer's is used (for BERT it only marks the "
                             "embedding row that takes no gradient)");
    }
  } catch (const json::exception& e) {
    throw UserError(config_path + ": unexpected field type (" + std::string(e.what()) + ")");
  }
  if (!mismatches.empty())
    throw UserError(config_path + ": the pretrained model's shape differs from this config; set " + mismatches);
  if (const std::string why = same_tokens(dir, tokenizer, config.tokenizer.vocab); !why.empty())
    throw UserError(where + ": its tokenizer differs from tokenizer.vocab (" + config.tokenizer.vocab + "): " + why +
                    "; set tokenizer.vocab: " + dir +
                    " and run `modtrain data prepare` again (token ids must mean "
                    "the same)");

  // ---- tensors ----
  const std::string weights_path = (d / "model.safetensors").string();
  io::SafetensorsFile file(weights_path);
  std::map<std::string, const io::TensorBytes*> by_ours;
  const std::string prefix = ours.prefix();
  for (const auto& [name, t] : file.view().tensors()) {
    std::string mine = our_name(name, prefix, mlm);
    if (mine.empty() || ends_with(name, "position_ids")) continue;
    if (auto it = by_ours.find(mine); it != by_ours.end()) {
      // The head's bias under its own and its tied decoder.bias name: the own name wins.
      if (ends_with(name, "decoder.bias")) continue;
      if (!ends_with(it->second->name, "decoder.bias"))
        throw UserError(weights_path + ": tensors '" + name + "' and '" + it->second->name +
                        "' map to the same parameter '" + mine + "'");
    }
    by_ours[mine] = &t;
  }
  // The head only when the labels are ours, in our order.
  bool same_labels = false;
  if (hf.contains("id2label") && hf["id2label"].is_object() && hf["id2label"].size() == config.data.labels.size()) {
    same_labels = true;
    for (size_t i = 0; i < config.data.labels.size(); ++i) {
      auto it = hf["id2label"].find(std::to_string(i));
      same_labels = same_labels && it != hf["id2label"].end() && *it == config.data.labels[i];
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    auto it = by_ours.find(name);
    const bool is_head = name.rfind(mlm ? family_of(ours.arch).mlm_head : "classifier.", 0) == 0,
               is_pooler = name.rfind(prefix + ".pooler.", 0) == 0;
    if (it == by_ours.end()) {
      if (is_head || is_pooler) continue;  // fresh
      throw UserError(weights_path + ": missing tensor '" + name +
                      "' (also looked for its bare and LayerNorm gamma/beta names); is this a " + family +
                      " checkpoint of this shape?");
    }
    if (is_head && !mlm && !same_labels) {
      by_ours.erase(it);
      continue;
    }
    copy_tensor(item.value(), *it->second, it->second->name, weights_path);
    report.head |= is_head;
    report.pooler |= is_pooler;
    ++report.tensors;
    by_ours.erase(it);
  }
  for (const auto& [mine, t] : by_ours) report.ignored.push_back(t->name);
  return report;
}

}  // namespace

ImportReport import_huggingface(const std::string& dir, ClassifierImpl& model, const Config& config,
                                const Tokenizer& tokenizer) {
  return import_into(dir, model, model.config(), false, config, tokenizer);
}

ImportReport import_huggingface(const std::string& dir, MaskedLMImpl& model, const Config& config,
                                const Tokenizer& tokenizer) {
  return import_into(dir, model, model.config(), true, config, tokenizer);
}

}  // namespace modtrain
