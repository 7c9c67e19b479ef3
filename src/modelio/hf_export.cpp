#include "modtrain/modelio/hf_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/unigram.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/io/files.h"
#include "modtrain/modelio/model_path.h"

namespace modtrain {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order
using ordered = nlohmann::ordered_json;

namespace {
// One entry of a tokenizer.json's added_tokens (a special token, matched before anything else).
ordered added_token(const std::string& content, int32_t id, bool lstrip) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", lstrip},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}
}  // namespace

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

std::string tokenizer_json(const std::string& vocab_path, bool lowercase, int max_len) {
  Vocab vocab = Vocab::load(vocab_path);
  ordered vocab_map = ordered::object();
  for (size_t i = 0; i < vocab.size(); ++i) vocab_map[vocab.token(static_cast<int32_t>(i))] = i;
  ordered added = ordered::array();
  for (const char* special : kSpecialTokens) {
    int32_t id = vocab.id_of(special);
    if (id >= 0) added.push_back(added_token(special, id, false));
  }
  auto special = [&](const char* t) { return ordered{{"id", t}, {"ids", {vocab.id_of(t)}}, {"tokens", {t}}}; };
  ordered spec = {
      {"version", "1.0"},
      {"truncation", {{"direction", "Right"}, {"max_length", max_len}, {"strategy", "LongestFirst"}, {"stride", 0}}},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", true},
        {"strip_accents", nullptr},
        {"lowercase", lowercase}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"[CLS]", special("[CLS]")}, {"[SEP]", special("[SEP]")}}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab", vocab_map}}}};
  return spec.dump(2) + "\n";
}

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

}  // namespace

namespace {

// RoBERTa's tokenizer.json from its slow files (as transformers' RobertaConverter writes it).
std::string bpe_tokenizer_json(const std::string& vocab_json, const std::string& merges_txt, const Tokenizer& t) {
  ordered vocab;
  try {
    vocab = ordered::parse(io::read_file(vocab_json));
  } catch (const ordered::exception& e) {
    throw UserError(vocab_json + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  ordered merges = ordered::array();
  std::istringstream in(io::read_file(merges_txt));
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(line);
  }
  const SpecialIds& s = t.special_ids();
  ordered added = ordered::array();
  for (int32_t id : {s.cls, s.pad, s.sep, s.unk})
    if (id >= 0) added.push_back(added_token(t.token(id), id, false));
  if (s.mask >= 0) added.push_back(added_token(t.token(s.mask), s.mask, true));  // <mask> takes the space before it
  ordered byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ordered spec = {{"version", "1.0"},
                  {"truncation", nullptr},
                  {"padding", nullptr},
                  {"added_tokens", added},
                  {"normalizer", nullptr},
                  {"pre_tokenizer", byte_level},
                  {"post_processor",
                   {{"type", "RobertaProcessing"},
                    {"sep", {t.token(s.sep), s.sep}},
                    {"cls", {t.token(s.cls), s.cls}},
                    {"trim_offsets", true},
                    {"add_prefix_space", false}}},
                  {"decoder", byte_level},
                  {"model",
                   {{"type", "BPE"},
                    {"dropout", nullptr},
                    {"unk_token", nullptr},
                    {"continuing_subword_prefix", ""},
                    {"end_of_word_suffix", ""},
                    {"fuse_unk", false},
                    {"byte_fallback", false},
                    {"vocab", vocab},
                    {"merges", merges}}}};
  return spec.dump(2) + "\n";
}

// RoBERTa's slow files (vocab.json, merges.txt) from a BPE tokenizer.json's model.
std::pair<std::string, std::string> bpe_slow_files(const std::string& tokenizer_json) {
  const ordered j = ordered::parse(io::read_file(tokenizer_json));
  const ordered& model = j.at("model");
  std::string merges = "#version: 0.2\n";
  for (const auto& m : model.at("merges"))
    merges +=
        (m.is_array() ? m.at(0).get<std::string>() + " " + m.at(1).get<std::string>() : m.get<std::string>()) + "\n";
  return {model.at("vocab").dump() + "\n", merges};
}

}  // namespace

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
  const std::string defining = tokenizer_files.defining.front().first;
  if (defining == "vocab.txt") {
    io::write_file_atomic(out("tokenizer.json"), tokenizer_json(in("vocab.txt"), lowercase, max_len));
  } else if (defining == "vocab.json") {
    io::write_file_atomic(out("tokenizer.json"), bpe_tokenizer_json(in("vocab.json"), in("merges.txt"), *tokenizer));
  } else if (defining == "sentencepiece.bpe.model") {
    io::write_file_atomic(out("tokenizer.json"),
                          UnigramTokenizer::sentencepiece_to_tokenizer_json(in("sentencepiece.bpe.model")));
  } else if (tokenizer->type() == "bpe" && !fs::exists(in("merges.txt"))) {
    try {
      const auto [vocab, merges] = bpe_slow_files(in("tokenizer.json"));
      io::write_file_atomic(out("vocab.json"), vocab);
      io::write_file_atomic(out("merges.txt"), merges);
    } catch (const ordered::exception& e) {
      throw UserError(in("tokenizer.json") + ": malformed BPE model (" + std::string(e.what()) + ")");
    }
  }
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
  const SpecialIds& ids = tokenizer->special_ids();
  auto name_of = [&](int32_t id) { return id >= 0 ? ordered(tokenizer->token(id)) : ordered(nullptr); };
  ordered special_map = ordered::object();
  if (tokenizer->type() != "wordpiece")
    special_map["bos_token"] = name_of(ids.cls), special_map["eos_token"] = name_of(ids.sep);
  special_map["unk_token"] = name_of(ids.unk);
  special_map["sep_token"] = name_of(ids.sep);
  special_map["pad_token"] = name_of(ids.pad);
  special_map["cls_token"] = name_of(ids.cls);
  special_map["mask_token"] = name_of(ids.mask);
  ordered tokenizer_config = ordered::object();
  if (tokenizer->type() == "wordpiece") {
    tokenizer_config = {{"tokenizer_class", "BertTokenizer"},
                        {"do_lower_case", lowercase},
                        {"strip_accents", nullptr},
                        {"tokenize_chinese_chars", true}};
  } else if (tokenizer->type() == "bpe") {
    tokenizer_config = {{"tokenizer_class", "RobertaTokenizer"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"errors", "replace"}};
  } else {
    tokenizer_config = {{"tokenizer_class", "XLMRobertaTokenizer"}};
  }
  tokenizer_config["model_max_length"] = max_len;
  for (const auto& [key, value] : special_map.items()) tokenizer_config[key] = value;
  io::write_file_atomic(out("tokenizer_config.json"), tokenizer_config.dump(2) + "\n");
  io::write_file_atomic(out("special_tokens_map.json"), special_map.dump(2) + "\n");
  std::string family = "bert";
  try {
    family = json::parse(io::read_file(in("config.json"))).value("model_type", family);
  } catch (const json::exception& e) {
    throw UserError(in("config.json") + ": malformed (" + std::string(e.what()) + ")");
  }
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
    io::write_file_atomic(out("README.md"), card);
    if (fs::exists(in("eval.json"))) io::write_file_atomic(out("eval_results.json"), io::read_file(in("eval.json")));
    return;
  }
  auto g = [](double v) {  // %g: 1e-300 and 1e308 as such, not "0.000000" or 309 digits
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return std::string(text);
  };
  ordered thresholds = ordered::object();  // in label order
  const auto labels = meta.at("labels").get<std::vector<std::string>>();
  const auto values = meta.at("thresholds").get<std::vector<double>>();
  for (size_t i = 0; i < labels.size(); ++i) thresholds[labels[i]] = values.at(i);
  io::write_file_atomic(out("thresholds.json"), thresholds.dump(2) + "\n");
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
  io::write_file_atomic(out("README.md"), card);
  if (fs::exists(in("eval.json"))) io::write_file_atomic(out("eval_results.json"), io::read_file(in("eval.json")));
}

}  // namespace modtrain
