#include "modtrain/serve/hf_import.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/serve/model_dir.h"

namespace modtrain {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A checkpoint tensor name -> our parameter name ("" for tensors we do not use).
std::string our_name(std::string name) {
  if (name.rfind("bert.", 0) == 0) name = name.substr(5);
  if (name.rfind("classifier.", 0) == 0) return name;
  if (name.rfind("cls.", 0) == 0) return "";  // masked-LM / next-sentence heads of pre-training
  if (ends_with(name, "LayerNorm.gamma")) name = name.substr(0, name.size() - 5) + "weight";
  if (ends_with(name, "LayerNorm.beta")) name = name.substr(0, name.size() - 4) + "bias";
  return "bert." + name;
}

}  // namespace

std::string ImportReport::summary() const {
  std::string s = std::to_string(tensors) + " tensors loaded; classifier head " +
                  (head ? "from the checkpoint" : "fresh") + (pooler ? "" : "; pooler fresh (not in the checkpoint)");
  if (!ignored.empty())
    s += "; " + std::to_string(ignored.size()) + " checkpoint tensors unused (first: " + ignored.front() + ")";
  return s;
}

ImportReport import_huggingface_bert(const std::string& dir, BertForClassificationImpl& model, const Config& config,
                                     const Vocab& vocab) {
  const fs::path d(dir);
  const std::string where = "model.init_from: " + dir;
  if (!fs::is_directory(d))
    throw UserError(where + " is not a directory (a Hugging Face BERT: config.json, model.safetensors, vocab.txt)");
  for (const char* f : {"config.json", "vocab.txt"})
    if (!fs::exists(d / f))
      throw UserError(where + ": " + f +
                      " is missing (a Hugging Face BERT directory has config.json, model.safetensors, vocab.txt)");
  if (!fs::exists(d / "model.safetensors"))
    throw UserError(where + ": model.safetensors is missing" +
                    std::string(fs::exists(d / "pytorch_model.bin")
                                    ? " (only pytorch_model.bin is there: convert it with "
                                      "safetensors' convert script or save_pretrained(safe_serialization=True))"
                                    : ""));

  // ---- config.json against model.* ----
  const std::string config_path = (d / "config.json").string();
  json hf;
  try {
    hf = json::parse(io::read_file(config_path));
  } catch (const json::exception& e) {
    throw UserError(config_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (config.model.arch != ModelArch::kBert)
    throw UserError(where + ": model.arch " + to_string(config.model.arch) +
                    ": model.init_from imports BERT checkpoints only so far (the RoBERTa family's import, with its "
                    "tokenizer files, is not built yet); train this architecture from scratch or use model.arch bert");
  if (hf.contains("model_type") && hf["model_type"] != "bert")
    throw UserError(config_path + ": model_type is " + hf["model_type"].dump() +
                    "; model.init_from loads BERT checkpoints (model_type bert)");
  std::string mismatches;
  auto expect = [&](const char* hf_key, int64_t ours, const char* our_key) {
    if (!hf.contains(hf_key)) return;
    int64_t theirs = hf[hf_key].get<int64_t>();
    if (theirs != ours)
      mismatches += std::string(mismatches.empty() ? "" : ", ") + our_key + ": " + std::to_string(theirs) + " (is " +
                    std::to_string(ours) + ")";
  };
  try {
    expect("hidden_size", config.model.hidden, "model.hidden");
    expect("num_hidden_layers", config.model.layers, "model.layers");
    expect("num_attention_heads", config.model.heads, "model.heads");
    expect("intermediate_size", config.model.intermediate, "model.intermediate");
    expect("max_position_embeddings", config.model.max_positions, "model.max_positions");
    if (hf.contains("hidden_act") && hf["hidden_act"] != "gelu")
      throw UserError(config_path + ": hidden_act " + hf["hidden_act"].dump() +
                      " is not supported (modtrain's BERT uses exact gelu)");
    if (hf.contains("type_vocab_size") && hf["type_vocab_size"].get<int64_t>() != 2)
      throw UserError(config_path + ": type_vocab_size " + hf["type_vocab_size"].dump() +
                      " is not supported (BERT's 2)");
    const std::string positions = hf.value("position_embedding_type", std::string("absolute"));
    if (positions != to_string(config.model.position_embedding_type))
      throw UserError(config_path + ": position_embedding_type " + positions +
                      " differs from model.position_embedding_type " + to_string(config.model.position_embedding_type) +
                      "; set model.position_embedding_type: " + positions);
  } catch (const json::exception& e) {
    throw UserError(config_path + ": unexpected field type (" + std::string(e.what()) + ")");
  }
  if (!mismatches.empty())
    throw UserError(config_path + ": the pretrained model's shape differs from this config; set " + mismatches);
  if (Vocab::load((d / "vocab.txt").string()).tokens() != vocab.tokens())
    throw UserError(where + ": its vocab.txt differs from tokenizer.vocab (" + config.tokenizer.vocab +
                    "); set tokenizer.vocab: " + (d / "vocab.txt").string() +
                    " and run `modtrain data prepare` again (token ids must mean the same)");

  // ---- tensors ----
  const std::string weights_path = (d / "model.safetensors").string();
  io::SafetensorsFile file(weights_path);
  std::map<std::string, const io::TensorBytes*> by_ours;
  ImportReport report;
  for (const auto& [name, t] : file.view().tensors()) {
    std::string ours = our_name(name);
    if (ours.empty() || ends_with(name, "position_ids")) continue;
    if (by_ours.count(ours))
      throw UserError(weights_path + ": tensors '" + name + "' and another map to the same parameter '" + ours + "'");
    by_ours[ours] = &t;
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
    const bool is_head = name.rfind("classifier.", 0) == 0, is_pooler = name.rfind("bert.pooler.", 0) == 0;
    if (it == by_ours.end()) {
      if (is_head || is_pooler) continue;  // fresh
      throw UserError(weights_path + ": missing tensor '" + name +
                      "' (also looked for its bare and LayerNorm gamma/beta names); "
                      "is this a BERT checkpoint?");
    }
    if (is_head && !same_labels) {
      by_ours.erase(it);
      continue;
    }
    copy_tensor(item.value(), *it->second, it->second->name, weights_path);
    report.head |= is_head;
    report.pooler |= is_pooler;
    ++report.tensors;
    by_ours.erase(it);
  }
  for (const auto& [ours, t] : by_ours) report.ignored.push_back(t->name);
  return report;
}

}  // namespace modtrain
