#include "modtrain/modelio/model_dir.h"

#include <algorithm>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/io/files.h"
#include "modtrain/model/bert.h"
#include "modtrain/modelio/model_path.h"

namespace modtrain {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order

std::vector<io::TensorBytes> state_tensors(torch::nn::Module& model, std::vector<torch::Tensor>& keep) {
  std::vector<io::TensorBytes> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    torch::Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    keep.push_back(t);
    io::TensorBytes b;
    b.name = item.key();
    b.dtype = "F32";
    b.shape = t.sizes().vec();
    b.data = t.data_ptr();
    b.bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    out.push_back(b);
  }
  return out;
}

namespace {
torch::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F64") return torch::kFloat64;
  throw UserError("tensor dtype " + dtype + " cannot hold model weights (F32, F16, BF16 or F64)");
}
}  // namespace

void copy_tensor(torch::Tensor& param, const io::TensorBytes& t, const std::string& name, const std::string& source) {
  torch::NoGradGuard no_grad;
  if (t.shape != param.sizes().vec()) {
    std::string have, want;
    for (auto d : t.shape) have += (have.empty() ? "" : "x") + std::to_string(d);
    for (auto d : param.sizes()) want += (want.empty() ? "" : "x") + std::to_string(d);
    throw UserError(source + ": tensor '" + name + "' has shape [" + have + "], the model needs [" + want +
                    "] (model.hidden/layers/heads/intermediate/max_positions, vocab or labels differ)");
  }
  torch::Tensor src =
      torch::from_blob(const_cast<void*>(t.data), t.shape, torch::TensorOptions().dtype(scalar_type(t.dtype)));
  // Every weight finite, in one pass over what was just read: a NaN weight would serve NaN scores,
  // which flag nothing (a harmful post comes back unflagged).
  torch::Tensor finite = torch::isfinite(src);
  if (!finite.all().item<bool>())
    throw UserError(source + ": tensor '" + name + "' holds " +
                    std::to_string(finite.numel() - finite.sum().item<int64_t>()) +
                    " non-finite numbers (NaN or Inf); the weights are corrupt or training diverged: use an earlier "
                    "checkpoint");
  param.copy_(src.to(param.dtype()));  // copy_ also moves host -> device
}

void load_state(torch::nn::Module& model, const io::SafetensorsView& view, const std::string& source,
                const std::vector<std::string>& skip) {
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    const io::TensorBytes* t = view.find(name);
    if (!t)
      throw UserError(source + ": missing tensor '" + name + "' (is this a checkpoint of the same architecture?)");
    copy_tensor(item.value(), *t, name, source);
  }
}

void save_model_dir(const std::string& dir, torch::nn::Module& model, const ModelMeta& m,
                    const std::string& tokenizer_path) {
  std::vector<torch::Tensor> keep;
  save_model_dir(dir, state_tensors(model, keep), m, tokenizer_path);
}

void save_model_dir(const std::string& dir, std::vector<io::TensorBytes> tensors, const ModelMeta& m,
                    const std::string& tokenizer_path) {
  fs::create_directories(dir);
  if (m.objective == Objective::kMlm) {
    // transformers' MLM decoder carries the output bias as decoder.bias, tied to the head's bias;
    // both names are written so that any version's loader finds the one it looks for.
    const std::string head = family_of(m.bert.arch).mlm_head;
    const auto bias =
        std::find_if(tensors.begin(), tensors.end(), [&](const auto& t) { return t.name == head + "bias"; });
    if (bias != tensors.end()) {
      io::TensorBytes alias = *bias;
      alias.name = head + "decoder.bias";
      tensors.push_back(alias);
    }
  }
  io::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  json id2label = json::object(), label2id = json::object();
  for (size_t i = 0; i < m.labels.size(); ++i) {
    id2label[std::to_string(i)] = m.labels[i];
    label2id[m.labels[i]] = i;
  }
  const BertConfig& c = m.bert;
  const bool mlm = m.objective == Objective::kMlm;
  const std::string architecture =
      std::string(family_of(c.arch).hf_class) + (mlm ? "ForMaskedLM" : "ForSequenceClassification");
  json config = {{"architectures", {architecture}},
                 {"model_type", to_string(c.arch)},
                 {"vocab_size", c.vocab_size},
                 {"hidden_size", c.hidden},
                 {"num_hidden_layers", c.layers},
                 {"num_attention_heads", c.heads},
                 {"intermediate_size", c.intermediate},
                 {"hidden_act", "gelu"},
                 {"hidden_dropout_prob", c.hidden_dropout},
                 {"attention_probs_dropout_prob", c.attention_dropout},
                 {"max_position_embeddings", c.max_positions},
                 {"type_vocab_size", c.type_vocab_size},
                 {"initializer_range", c.initializer_range},
                 {"layer_norm_eps", c.layer_norm_eps},
                 {"pad_token_id", c.pad_token_id},
                 {"position_embedding_type", to_string(c.position_embedding_type)},
                 {"classifier_dropout", nullptr},
                 {"use_cache", true},
                 {"torch_dtype", "float32"},
                 {"id2label", id2label},
                 {"label2id", label2id},
                 {"problem_type",
                  m.problem == Problem::kMultiLabel ? "multi_label_classification" : "single_label_classification"}};
  if (mlm) {  // AutoModelForMaskedLM: no labels; the decoder is tied to the word embedding
    for (const char* key : {"id2label", "label2id", "problem_type", "classifier_dropout"}) config.erase(key);
    config["tie_word_embeddings"] = true;
  } else {
    // For serving stacks that read only config.json (transformers keeps unknown keys as attributes):
    // per label the decision threshold and the temperature, score = sigmoid(logit / temperature).
    json thresholds = json::object(), temperatures = json::object();
    for (size_t i = 0; i < m.labels.size(); ++i) {
      if (i < m.thresholds.size()) thresholds[m.labels[i]] = m.thresholds[i];
      temperatures[m.labels[i]] = i < m.temperatures.size() ? m.temperatures[i] : 1.0;
    }
    config["modtrain"] = {
        {"thresholds", thresholds},
        {"temperatures", temperatures},
        {"score", m.problem == Problem::kMultiLabel ? "sigmoid(logit / temperature)" : "softmax(logits)"}};
  }
  io::write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
  json mt = {{"objective", to_string(m.objective)},
             {"labels", m.labels},
             {"problem", to_string(m.problem)},
             {"thresholds", m.thresholds},
             {"lowercase", m.lowercase},
             {"normalize_tweets", m.normalize_tweets},
             {"max_len", m.max_len}};
  if (m.normalize_tweets) mt["tweet_normalizer_version"] = kTweetNormalizerVersion;  // what tokenizer.json can express
  if (!m.temperatures.empty()) mt["temperatures"] = m.temperatures;
  if (!mlm) {
    mt["positive_at"] = m.positive_at;
    mt["soft_labels"] = m.soft_labels;
    mt["subgroups"] = m.subgroups;
    mt["slice_by"] = m.slice_by;
  }
  io::write_file_atomic((fs::path(dir) / "modtrain.json").string(), mt.dump(2) + "\n");
  copy_tokenizer_files(find_tokenizer_files(tokenizer_path), dir);
  if (!m.evaluation.empty()) io::write_file_atomic((fs::path(dir) / "eval.json").string(), m.evaluation + "\n");
}

namespace {
json parse_json_file(const std::string& file) {
  try {
    return json::parse(io::read_file(file));
  } catch (const json::exception& e) {
    throw UserError(file + ": not valid JSON (" + std::string(e.what()) + "); the model directory is damaged");
  }
}

const char* json_kind(const json& v) {
  return v.is_number_integer() ? "an integer"
         : v.is_number()       ? "a number"
         : v.is_string()       ? "a string"
         : v.is_boolean()      ? "true/false"
         : v.is_array()        ? "a list"
         : v.is_object()       ? "an object"
                               : "null";
}

// A model file's keys, read with errors that name the file, the key and what it holds.
struct Fields {
  const json& j;
  std::string file;
  template <class T>
  T get(const char* key) const {
    if (!j.is_object() || !j.contains(key))
      throw UserError(file + ": no key \"" + key + "\"; the model directory is damaged");
    return convert<T>(key, j.at(key));
  }
  template <class T>
  T get_or(const char* key, T fallback) const {
    return j.is_object() && j.contains(key) ? convert<T>(key, j.at(key)) : fallback;
  }
  template <class T>
  T convert(const char* key, const json& v) const {
    try {
      return v.get<T>();
    } catch (const json::exception&) {
      throw UserError(file + ": key \"" + key + "\" is " + json_kind(v) + " (" + v.dump().substr(0, 60) +
                      "), not the type modtrain writes there; the model directory is damaged");
    }
  }
};

// modtrain.json holds the decision rule (thresholds, temperatures); config.json's `modtrain`
// section and an export's thresholds.json are copies for serving stacks that read only those. A
// copy edited by hand used to be ignored by predict while a server reading config.json used it:
// every loader now refuses a directory whose copies disagree with the source.
void check_copies(const ModelMeta& m, const json& config, const std::string& dir) {
  const std::string source = (fs::path(dir) / "modtrain.json").string();
  auto compare = [&](const json& copy, const std::string& file, const std::string& key,
                     const std::vector<double>& values, double fallback) {
    const std::string where = file + ": " + key;
    if (!copy.is_object())
      throw UserError(where + " is " + json_kind(copy) +
                      ", not an object of label -> value; the model directory is "
                      "damaged (" +
                      source + " is the source)");
    for (size_t i = 0; i < m.labels.size(); ++i) {
      const double want = i < values.size() ? values[i] : fallback;
      auto it = copy.find(m.labels[i]);
      if (it == copy.end() || !it->is_number() || it->get<double>() != want)
        throw UserError(where + m.labels[i] + " is " + (it == copy.end() ? "missing" : it->dump()) + " but " + source +
                        " (the source) says " + text::format_double(want) +
                        "; the copies must agree: put the same value in both (or undo the edit)");
    }
    if (copy.size() != m.labels.size())
      throw UserError(where + " has " + std::to_string(copy.size()) + " labels, the model has " +
                      std::to_string(m.labels.size()) + "; the model directory is damaged");
  };
  const std::string config_file = (fs::path(dir) / "config.json").string();
  if (config.contains("modtrain")) {
    const json& section = config.at("modtrain");
    if (!section.is_object())
      throw UserError(config_file + ": \"modtrain\" is not an object; the model directory is damaged");
    if (section.contains("thresholds"))
      compare(section.at("thresholds"), config_file, "modtrain.thresholds.", m.thresholds, 0.5);
    if (section.contains("temperatures"))
      compare(section.at("temperatures"), config_file, "modtrain.temperatures.", m.temperatures, 1.0);
  }
  const std::string thresholds_file = (fs::path(dir) / "thresholds.json").string();
  if (fs::exists(thresholds_file)) compare(parse_json_file(thresholds_file), thresholds_file, "", m.thresholds, 0.5);
}

void check_max_len(const ModelMeta& m, const std::string& file) {
  if (m.max_len < 2 || m.max_len + m.bert.position_offset() > m.bert.max_positions)
    throw UserError(file + ": max_len " + std::to_string(m.max_len) +
                    " is outside [2, max_position_embeddings = " + std::to_string(m.bert.max_positions) +
                    (m.bert.position_offset() ? " - pad id - 1" : "") + "]; the model directory is damaged");
}

// What a model directory says about its labels and thresholds, checked before anything is served
// with it (a threshold of 1.5 would flag nothing, ever; labels out of step with config.json would
// put scores under the wrong names).
void validate_meta(const ModelMeta& m, const std::string& problem, const json& config, const std::string& file) {
  auto bad = [&](const std::string& why) { return UserError(file + ": " + why + "; the model directory is damaged"); };
  if (m.labels.empty()) throw bad("no labels");
  for (size_t i = 0; i < m.labels.size(); ++i) {
    if (m.labels[i].empty()) throw bad("label " + std::to_string(i) + " is empty");
    for (size_t j = 0; j < i; ++j)
      if (m.labels[j] == m.labels[i]) throw bad("label '" + m.labels[i] + "' appears twice");
  }
  if (problem != "multi_label" && problem != "multi_class")
    throw bad("problem is '" + problem + "', not multi_label or multi_class");
  if (m.thresholds.size() != m.labels.size())
    throw bad(std::to_string(m.thresholds.size()) + " thresholds for " + std::to_string(m.labels.size()) + " labels");
  for (size_t i = 0; i < m.thresholds.size(); ++i) {
    const double t = m.thresholds[i];
    // (0, 1], or the tuner's "flag nothing" value just above 1 (a precision_at target no threshold reaches)
    if (!(t > 0 && t <= kNeverFlagThreshold))
      throw bad("the threshold of '" + m.labels[i] + "' is " + text::format_double(t) +
                "; thresholds are probabilities in (0, 1]");
  }
  if (!m.temperatures.empty() && m.temperatures.size() != m.labels.size())
    throw bad(std::to_string(m.temperatures.size()) + " temperatures for " + std::to_string(m.labels.size()) +
              " labels");
  for (size_t i = 0; i < m.temperatures.size(); ++i)
    if (!(m.temperatures[i] >= 0.01 && m.temperatures[i] <= 100.0))  // fit_temperature's range; NaN too
      throw bad("the temperature of '" + m.labels[i] + "' is " + text::format_double(m.temperatures[i]) +
                "; temperatures lie in [0.01, 100]");
  if (!m.temperatures.empty() && problem != "multi_label") throw bad("temperatures for a multi_class model");
  check_max_len(m, file);
  if (config.contains("id2label")) {
    const json& id2label = config.at("id2label");
    for (size_t i = 0; i < m.labels.size(); ++i) {
      const std::string key = std::to_string(i);
      if (!id2label.contains(key) || id2label.at(key).get<std::string>() != m.labels[i])
        throw bad("label " + key + " is '" + m.labels[i] + "' but config.json's id2label says " +
                  (id2label.contains(key) ? "'" + id2label.at(key).get<std::string>() + "'" : "nothing"));
    }
  }
}
}  // namespace

void check_tokenizer_fits(const Tokenizer& tokenizer, const BertConfig& c, const std::string& tokenizer_where,
                          const std::string& config_where) {
  if (static_cast<int64_t>(tokenizer.vocab_size()) != c.vocab_size)
    throw UserError(config_where + ": vocab_size is " + std::to_string(c.vocab_size) + " but the " + tokenizer.type() +
                    " tokenizer in " + tokenizer_where + " has " + std::to_string(tokenizer.vocab_size()) +
                    " tokens; the word embedding must have one row per token (is it the model's own tokenizer?)");
  if (tokenizer.special_ids().pad != c.pad_token_id)
    throw UserError(config_where + ": pad_token_id is " + std::to_string(c.pad_token_id) + " but the tokenizer in " +
                    tokenizer_where + " pads with id " + std::to_string(tokenizer.special_ids().pad) + " (" +
                    tokenizer.token(tokenizer.special_ids().pad) + ")");
}

Objective model_dir_objective(const std::string& dir) {
  try {
    const json mt = json::parse(io::read_file((fs::path(dir) / "modtrain.json").string()));
    return mt.value("objective", std::string("classify")) == "mlm" ? Objective::kMlm : Objective::kClassify;
  } catch (const std::exception&) {
    return Objective::kClassify;  // unreadable: the caller's own checks say why
  }
}

LoadedModel load_model_dir(const std::string& given, const torch::Device& device, bool allow_mlm) {
  const std::string dir = resolve_model_path(given);
  auto path = [&](const char* name) { return (fs::path(dir) / name).string(); };
  for (const char* required : {"config.json", "modtrain.json", "model.safetensors"})
    if (!fs::exists(path(required)))
      throw UserError(dir + ": not a modtrain model directory (" + required +
                      " is missing); pass a run's model/ directory");
  const bool mlm = model_dir_objective(dir) == Objective::kMlm;
  if (mlm && !allow_mlm)
    throw UserError(dir +
                    " is a masked-language model (train.objective: mlm): it predicts tokens, not labels. Fine-tune "
                    "a classifier from it (model.init_from: " +
                    dir + ") and use that model");
  LoadedModel out;
  const json config = parse_json_file(path("config.json"));
  const json mt = parse_json_file(path("modtrain.json"));
  const Fields cf{config, path("config.json")}, mf{mt, path("modtrain.json")};
  ModelMeta& m = out.meta;
  m.objective = mlm ? Objective::kMlm : Objective::kClassify;
  m.labels = mf.get<std::vector<std::string>>("labels");
  const std::string problem = mf.get<std::string>("problem");
  m.problem = problem == "multi_class" ? Problem::kMultiClass : Problem::kMultiLabel;
  m.thresholds = mf.get<std::vector<double>>("thresholds");
  m.lowercase = mf.get<bool>("lowercase");
  m.normalize_tweets = mf.get<bool>("normalize_tweets");
  m.max_len = mf.get<int64_t>("max_len");
  m.temperatures = mf.get_or("temperatures", std::vector<double>{});
  m.positive_at = mf.get_or("positive_at", 0.5);
  m.soft_labels = mf.get_or("soft_labels", false);
  m.subgroups = mf.get_or("subgroups", std::vector<std::string>{});
  m.slice_by = mf.get_or("slice_by", std::vector<std::string>{});
  BertConfig& c = m.bert;
  c.vocab_size = cf.get<int64_t>("vocab_size");
  c.hidden = cf.get<int64_t>("hidden_size");
  c.layers = cf.get<int64_t>("num_hidden_layers");
  c.heads = cf.get<int64_t>("num_attention_heads");
  c.intermediate = cf.get<int64_t>("intermediate_size");
  c.max_positions = cf.get<int64_t>("max_position_embeddings");
  c.type_vocab_size = cf.get_or("type_vocab_size", int64_t{2});
  c.layer_norm_eps = cf.get_or("layer_norm_eps", 1e-12);
  c.pad_token_id = cf.get_or("pad_token_id", int64_t{0});
  c.hidden_dropout = cf.get_or("hidden_dropout_prob", 0.1);
  c.attention_dropout = cf.get_or("attention_probs_dropout_prob", 0.1);
  if (!(c.layer_norm_eps > 0 && c.layer_norm_eps <= 0.1))
    throw UserError(path("config.json") + ": layer_norm_eps " + text::format_double(c.layer_norm_eps) +
                    " is outside (0, 0.1]; the model directory is damaged");
  const std::string type = cf.get_or("model_type", std::string("bert"));
  const Family* family = find_family(type);
  if (!family) throw UserError(path("config.json") + ": model_type " + type + " is not one of " + family_list());
  c.arch = family->arch;
  const std::string positions = cf.get_or("position_embedding_type", std::string("absolute"));
  if (!from_string(positions, c.position_embedding_type))
    throw UserError(path("config.json") + ": position_embedding_type " + positions + " is not one of " +
                    enum_names<PositionEmbeddingType>());
  c.num_labels = static_cast<int64_t>(m.labels.size());
  c.validate();
  if (mlm) check_max_len(m, path("modtrain.json"));
  else {
    validate_meta(m, problem, config, path("modtrain.json"));
    check_copies(m, config, dir);  // config.json's and thresholds.json's copies of the decision rule
  }
  TokenizerConfig tokenizer;
  tokenizer.vocab = dir;
  tokenizer.lowercase = out.meta.lowercase;
  out.tokenizer = load_tokenizer(tokenizer);
  check_tokenizer_fits(*out.tokenizer, out.meta.bert, dir, path("config.json"));
  torch::nn::Module* model = nullptr;
  if (mlm) {
    out.mlm_model = make_masked_lm(out.meta.bert);
    model = out.mlm_model.get();
  } else {
    out.model = make_classifier(out.meta.bert);
    model = out.model.get();
  }
  io::SafetensorsFile weights(path("model.safetensors"));
  load_state(*model, weights.view(), path("model.safetensors"));
  model->to(device);
  model->eval();
  fuse_qkv_for_inference(*model);  // a loaded model only infers: Q, K, V as one tensor (after to(device))
  freeze_for_inference(*model);    // and its weights may be laid out for oneDNN (on CPU)
  out.device = device;
  return out;
}

}  // namespace modtrain
