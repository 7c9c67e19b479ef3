#include "modtrain/modelio/hf_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/io/files.h"
#include "modtrain/modelio/model_card.h"
#include "modtrain/modelio/model_path.h"

namespace modtrain {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order
using ordered = nlohmann::ordered_json;

std::string with_tweet_normalizer(const std::string& text) {
  ordered spec = ordered::parse(text);
  const ordered steps = ordered::parse(tweet_normalizer_hf_steps());
  const ordered current = spec.value("normalizer", ordered());
  if (current.is_object() && current.value("type", "") == "Sequence" &&
      current.at("normalizers").size() >= steps.size() &&
      ordered(current.at("normalizers").begin(),
              current.at("normalizers").begin() + static_cast<std::ptrdiff_t>(steps.size())) == steps)
    return text;  // a re-export: the steps are there already
  ordered normalizers = steps;
  if (!current.is_null()) normalizers.push_back(current);
  spec["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
  return spec.dump(2) + "\n";
}

void export_huggingface(const std::string& given, const std::string& out_dir, bool allow_skew) {
  const std::string model_dir = resolve_model_path(given);
  auto in = [&](const char* name) { return (fs::path(model_dir) / name).string(); };
  auto out = [&](const char* name) { return (fs::path(out_dir) / name).string(); };
  for (const char* required : {"config.json", "modtrain.json", "model.safetensors"})
    if (!fs::exists(in(required)))
      throw UserError(model_dir + ": not a modtrain model directory (" + required +
                      " is missing); pass a run's model/ directory");
  const TokenizerFiles tokenizer_files = find_tokenizer_files(model_dir);
  json meta;
  try {
    meta = json::parse(io::read_file(in("modtrain.json")));
  } catch (const json::exception& e) {
    throw UserError(in("modtrain.json") + ": malformed (" + std::string(e.what()) + ")");
  }
  if (io::same_file(out_dir, model_dir))
    throw UserError("--out " + out_dir + " is the model directory being exported; choose another directory");
  const bool lowercase = meta.at("lowercase").get<bool>();
  const int max_len = meta.at("max_len").get<int>();
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(model_dir, lowercase);
  fs::create_directories(out_dir);
  // modtrain.json too: the export is then also a modtrain model directory (`predict --model EXPORT`).
  for (const char* name : {"config.json", "model.safetensors", "modtrain.json"})
    io::write_file_atomic(out(name), io::read_file(in(name)));
  // The tokenizer: its files as trained with, plus what the family's Hugging Face layout has
  // besides: tokenizer.json (the fast tokenizer, what AutoTokenizer and TEI load) and, for
  // RoBERTa, vocab.json + merges.txt (the slow one).
  copy_tokenizer_files(tokenizer_files, out_dir);
  const HfTokenizerLayout layout = tokenizer->hugging_face(tokenizer_files, max_len);
  for (const auto& [name, contents] : layout.files) io::write_file_atomic(out(name.c_str()), contents);
  // The tweet normalisation, in front of the family's normalizer (once: a re-export keeps one copy).
  std::string skew;
  if (meta.at("normalize_tweets").get<bool>()) {
    const int version = meta.value("tweet_normalizer_version", 1);
    if (version != kTweetNormalizerVersion) {
      skew = "this model was trained with modtrain's tweet normaliser version " + std::to_string(version) +
             ", which decoded every numeric character reference (&#128512; became the emoji); tokenizer.json can "
             "express only a bounded set of them (version " +
             std::to_string(kTweetNormalizerVersion) +
             "), so served posts with other numeric references get other ids than training gave them";
      if (!allow_skew)
        throw UserError(model_dir + ": " + skew +
                        ". Retrain with this modtrain, or pass --allow-skew to export anyway (the model card then "
                        "says so in bold)");
    }
    try {
      io::write_file_atomic(out("tokenizer.json"), with_tweet_normalizer(io::read_file(out("tokenizer.json"))));
    } catch (const ordered::exception& e) {
      throw UserError(out("tokenizer.json") + ": malformed (" + std::string(e.what()) + ")");
    }
  }
  ordered special_map = ordered::object();
  for (const auto& [role, id] : layout.special_tokens)
    special_map[role] = id >= 0 ? ordered(tokenizer->token(id)) : ordered(nullptr);
  ordered tokenizer_config = ordered::parse(layout.config_json);
  tokenizer_config["model_max_length"] = max_len;
  for (const auto& [key, value] : special_map.items()) tokenizer_config[key] = value;
  io::write_file_atomic(out("tokenizer_config.json"), tokenizer_config.dump(2) + "\n");
  io::write_file_atomic(out("special_tokens_map.json"), special_map.dump(2) + "\n");
  if (meta.value("objective", std::string("classify")) != "mlm") {
    ordered thresholds = ordered::object();  // in label order
    const auto labels = meta.at("labels").get<std::vector<std::string>>();
    const auto values = meta.at("thresholds").get<std::vector<double>>();
    for (size_t i = 0; i < labels.size(); ++i) thresholds[labels[i]] = values.at(i);
    io::write_file_atomic(out("thresholds.json"), thresholds.dump(2) + "\n");
  }
  io::write_file_atomic(out("README.md"), model_card(model_dir, skew));
  if (fs::exists(in("eval.json"))) io::write_file_atomic(out("eval_results.json"), io::read_file(in("eval.json")));
}

}  // namespace modtrain
