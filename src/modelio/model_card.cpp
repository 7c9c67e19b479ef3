#include "modtrain/modelio/model_card.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/io/files.h"

namespace modtrain {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order

namespace {

constexpr const char* kTweetNormalisationCard =
    "yes (mentions -> @user, links -> http, character references decoded from a bounded set: the common named "
    "ones and the numeric forms of punctuation, so &amp; and &#39; are decoded and &#128545; stays as written; "
    "whitespace collapsed), in tokenizer.json's normalizer: AutoTokenizer and every Hugging Face tokenizers "
    "binding apply it, so raw posts go in as they are";

// The model card's evaluation section from eval.json (written by `train` with the final model).
std::string evaluation_card(const std::string& path) {
  try {
    json e = json::parse(io::read_file(path));
    const json& m = e.at("metrics");
    auto num = [](const json& x) {
      if (x.is_null()) return std::string("n/a");
      char b[32];
      std::snprintf(b, sizeof b, "%.3f", x.get<double>());
      return std::string(b);
    };
    if (m.contains("mlm_loss"))  // train.objective mlm
      return "\n## Evaluation\n\nOn " + std::to_string(m.at("records").get<uint64_t>()) + " validation records (" +
             e.at("data").at("valid").dump() + ") after step " + std::to_string(e.at("step").get<int64_t>()) + ", " +
             std::to_string(m.at("masked_tokens").get<uint64_t>()) + " masked tokens: loss " + num(m.at("mlm_loss")) +
             ", accuracy " + num(m.at("mlm_accuracy")) + ", perplexity " + num(m.at("perplexity")) + ".\n";
    std::string card = "\n## Evaluation\n\nOn " + std::to_string(m.at("records").get<uint64_t>()) +
                       " validation records (" + e.at("data").at("valid").dump() + ") after step " +
                       std::to_string(e.at("step").get<int64_t>()) + " of training on " +
                       std::to_string(e.at("train_records").get<uint64_t>()) + " records (" +
                       e.at("data").at("train").dump() +
                       "); the thresholds were tuned on the same validation set.\n\n"
                       "| label | threshold | precision | recall | F1 | ROC-AUC | PR-AUC | ECE | Brier | support "
                       "|\n|---|---|---|---|---|---|---|---|---|---|\n";
    const json absent;  // evaluations written before calibration was measured: n/a
    auto field = [&](const json& r, const char* key) -> const json& { return r.contains(key) ? r.at(key) : absent; };
    for (const auto& [label, r] : m.at("labels").items())
      card += "| " + label + " | " + num(r.at("threshold")) + " | " + num(r.at("precision")) + " | " +
              num(r.at("recall")) + " | " + num(r.at("f1")) + " | " + num(r.at("roc_auc")) + " | " +
              num(r.at("pr_auc")) + " | " + num(field(r, "ece")) + " | " + num(field(r, "brier")) + " | " +
              std::to_string(r.at("support").get<uint64_t>()) + " |\n";
    const json& macro = m.at("macro");
    card += "| **macro** | | " + num(macro.at("precision")) + " | " + num(macro.at("recall")) + " | " +
            num(macro.at("f1")) + " | " + num(macro.at("roc_auc")) + " | " + num(macro.at("pr_auc")) + " | " +
            num(field(macro, "ece")) + " | " + num(field(macro, "brier")) + " | |\n";
    card += "| **micro** | | " + num(m.at("micro").at("precision")) + " | " + num(m.at("micro").at("recall")) + " | " +
            num(m.at("micro").at("f1")) + " | | | | | |\n";
    card +=
        "\nECE: expected calibration error of the scores over 15 equal-width bins (0 = a score of p is right p of "
        "the time); Brier: mean squared error of the scores. Both on the same validation records.\n";
    // Calibration: one line per label whose scores were temperature-scaled (eval.calibrate).
    std::string calibration;
    for (const auto& [label, r] : m.at("labels").items()) {
      if (!r.contains("calibration")) continue;
      const json& c = r.at("calibration");
      if (c.contains("skipped")) {
        calibration += "- " + label + ": not calibrated (T = 1): " + c.at("skipped").get<std::string>() + "\n";
        continue;
      }
      calibration += "- " + label + ": T = " + num(c.at("temperature")) +
                     (c.value("at_bound", false) ? " (at the bound)" : "") + "; cross-entropy " +
                     num(c.at("nll_before")) + " -> " + num(c.at("nll_after")) + ", ECE " + num(c.at("ece_before")) +
                     " -> " + num(r.at("ece")) + "\n";
    }
    if (!calibration.empty())
      card +=
          "\n### Calibration\n\nTemperature scaling fitted per label on the validation set (score = "
          "sigmoid(logit / T)); the thresholds and the figures above are for the calibrated scores.\n\n" +
          calibration;
    // Bias (data.subgroups): per label the Jigsaw bias score and every subgroup's three AUCs.
    if (m.contains("bias")) {
      const json& bias = m.at("bias");
      card +=
          "\n### Unintended bias (identity subgroups)\n\nPer label: the subgroup AUC (within posts that "
          "mention the group), BPSN AUC (background positives vs. subgroup negatives: low when benign mentions "
          "are flagged) and BNSP AUC (background negatives vs. subgroup positives: low when abuse aimed at the "
          "group is missed); the bias score is the Jigsaw Unintended Bias combination (overall AUC and the "
          "power means, p = -5). Worst subgroup AUC: " +
          num(bias.at("worst_subgroup_auc")) +
          ".\n\n| label | subgroup | records | positives | subgroup AUC | BPSN AUC | BNSP AUC |\n"
          "|---|---|---|---|---|---|---|\n";
      for (const auto& [label, b] : bias.at("labels").items()) {
        card += "| **" + label + "** | bias score " + num(b.at("bias_score")) + " (overall AUC " +
                num(b.at("overall_auc")) + ") | | | | | |\n";
        for (const auto& [group, g] : b.at("subgroups").items())
          card += "| | " + group + " | " + std::to_string(g.at("records").get<uint64_t>()) + " | " +
                  std::to_string(g.at("positives").get<uint64_t>()) + " | " +
                  (g.at("reported").get<bool>()
                       ? num(g.at("subgroup_auc")) + " | " + num(g.at("bpsn_auc")) + " | " + num(g.at("bnsp_auc"))
                       : "not reported: " + g.at("why").get<std::string>() + " | | ") +
                  " |\n";
      }
    }
    return card;
  } catch (const json::exception& ex) {
    throw UserError(path + ": malformed evaluation record (" + std::string(ex.what()) + ")");
  }
}

json parse_json_file(const std::string& path) {
  try {
    return json::parse(io::read_file(path));
  } catch (const json::exception& e) {
    throw UserError(path + ": malformed (" + std::string(e.what()) + ")");
  }
}

}  // namespace

std::string model_card(const std::string& model_dir, const std::string& skew) {
  auto in = [&](const char* name) { return (fs::path(model_dir) / name).string(); };
  const json meta = parse_json_file(in("modtrain.json"));
  try {
    return model_card(meta, parse_json_file(in("config.json")).value("model_type", std::string("bert")), model_dir,
                      skew);
  } catch (const json::exception& e) {
    throw UserError(in("modtrain.json") + ": malformed (" + std::string(e.what()) + ")");
  }
}

std::string model_card(const nlohmann::ordered_json& meta, const std::string& family, const std::string& model_dir,
                       const std::string& skew) {
  auto in = [&](const char* name) { return (fs::path(model_dir) / name).string(); };
  const int max_len = meta.at("max_len").get<int>();
  if (meta.value("objective", std::string("classify")) == "mlm") {
    std::string card = "# Masked-language model (" + family +
                       ", domain-adapted on posts)\n\nPretrained with modtrain " + std::string(build_version()) + " (" +
                       build_commit() +
                       ") with the masked-language-model objective.\n\n- tweet normalisation before tokenization: " +
                       (meta.at("normalize_tweets").get<bool>() ? kTweetNormalisationCard : "no") +
                       "\n- max length: " + std::to_string(max_len) + " tokens\n";
    if (!skew.empty()) card += "\n**Train/serve skew (exported with --allow-skew): " + skew + ".**\n";
    if (fs::exists(in("eval.json"))) card += evaluation_card(in("eval.json"));
    card +=
        "\nLoad with `AutoModelForMaskedLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` (the "
        "decoder is tied to the word embedding). To fine-tune a classifier from it with modtrain, set "
        "`model.init_from` to this directory (and `tokenizer.vocab` to it).\n";
    return card;
  }
  auto g = [](double v) {  // %g: 1e-300 and 1e308 as such, not "0.000000" or 309 digits
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return std::string(text);
  };
  const auto labels = meta.at("labels").get<std::vector<std::string>>();
  const auto values = meta.at("thresholds").get<std::vector<double>>();
  std::string card =
      "# Content-moderation classifier (" + family + ")\n\nTrained with modtrain " + std::string(build_version()) +
      " (" + build_commit() + ").\n\n- problem: " + meta.at("problem").get<std::string>() +
      "\n- tweet normalisation before tokenization: " +
      (meta.at("normalize_tweets").get<bool>() ? kTweetNormalisationCard : "no") +
      "\n- max length: " + std::to_string(max_len) + " tokens\n" +
      (skew.empty() ? std::string() : "\n**Train/serve skew (exported with --allow-skew): " + skew + ".**\n") +
      "\n| label | decision threshold |\n|---|---|\n";
  const auto temperatures = meta.value("temperatures", std::vector<double>{});
  if (!temperatures.empty()) {
    card = card.substr(0, card.rfind("| label | decision threshold |")) +
           "| label | decision threshold | temperature |\n|---|---|---|\n";
    for (size_t i = 0; i < labels.size(); ++i)
      card += "| " + labels[i] + " | " + g(values[i]) + " | " + g(temperatures.at(i)) + " |\n";
  } else {
    for (size_t i = 0; i < labels.size(); ++i) card += "| " + labels[i] + " | " + g(values[i]) + " |\n";
  }
  if (fs::exists(in("eval.json"))) card += evaluation_card(in("eval.json"));
  if (meta.at("problem").get<std::string>() != "multi_label") {
    card +=
        "\nLoad with `AutoModelForSequenceClassification.from_pretrained(dir)` and "
        "`AutoTokenizer.from_pretrained(dir)`; "
        "apply a sigmoid (multi_label) or softmax (multi_class) to the logits and flag a label when its probability "
        "reaches the threshold in thresholds.json (also in config.json under `modtrain.thresholds`).\n";
  } else {
    card += std::string("\n## Usage (reproduces `modtrain predict`)\n\n") +
            (temperatures.empty() ? ""
                                  : "The scores are calibrated: each label's logit is divided by its temperature "
                                    "before the sigmoid. ") +
            "Raw posts go in as they are (tokenizer.json normalises them as training did). Per label name, config.json "
            "holds the decision threshold and the temperature under `modtrain`, which transformers keeps as "
            "`model.config.modtrain`:\n\n```python\nimport torch\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            "model = AutoModelForSequenceClassification.from_pretrained(DIR).eval()\n"
            "tokenizer = AutoTokenizer.from_pretrained(DIR)\n"
            "names = [model.config.id2label[i] for i in range(model.config.num_labels)]\n"
            "T = torch.tensor([model.config.modtrain[\"temperatures\"][n] for n in names])\n"
            "thresholds = torch.tensor([model.config.modtrain[\"thresholds\"][n] for n in names])\n"
            "with torch.no_grad():\n"
            "    logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=" +
            std::to_string(max_len) +
            ", return_tensors=\"pt\")).logits\n"
            "scores = torch.sigmoid(logits / T)\nflagged = scores >= thresholds\n```\n\n" +
            std::string(temperatures.empty() ? ""
                                             : "Without the division the scores are the uncalibrated ones and the "
                                               "thresholds do not fit them.\n");
  }
  return card;
}

}  // namespace modtrain
