// Strict layered loading: defaults < extends chain < file < --set overrides.
#include "modtrain/config/loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/io/files.h"
#include "schema_impl.h"

namespace fs = std::filesystem;

namespace modtrain {

std::string Location::str() const {
  if (line <= 0) return source;
  return source + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace config_impl {

std::string at(const Location& where) { return where.str() + ": "; }

Location location_of(const YAML::Node& node, const std::string& source) {
  YAML::Mark mark = node.Mark();
  Location loc{source, mark.line + 1, mark.column + 1};
  if (mark.line < 0) loc.line = loc.column = 0;
  return loc;
}

namespace {

constexpr const char* kExtendsKey = "extends";

std::vector<std::string> all_dotted_keys() {
  std::vector<std::string> keys;
  for (const auto& f : fields()) keys.push_back(f.info.dotted());
  return keys;
}

// "unknown key 'train.lrr' (did you mean 'train.lr'?)"
[[noreturn]] void unknown_key(const Location& where, const std::string& section, const std::string& key) {
  std::string dotted = section + "." + key;
  std::string guess = text::nearest(dotted, all_dotted_keys());
  if (guess.empty()) {  // the right key in the wrong section: "train.dropout" -> "model.dropout"
    for (const auto& f : fields())
      if (f.info.key == key) guess = f.info.dotted();
  }
  std::string msg = at(where) + "unknown key '" + dotted + "'";
  msg += guess.empty() ? "" : " (did you mean '" + guess + "'?)";
  msg += "; `modtrain config doc` lists every key";
  throw ConfigError(msg);
}

[[noreturn]] void unknown_section(const Location& where, const std::string& section) {
  std::vector<std::string> names = config_sections();
  names.push_back(kExtendsKey);
  std::string guess = text::nearest(section, names);
  std::string msg = at(where) + "unknown section '" + section + "'";
  msg += guess.empty() ? "" : " (did you mean '" + guess + "'?)";
  msg += "; sections are: " + text::join(config_sections(), ", ");
  throw ConfigError(msg);
}

void check_sections_known(const std::string& section, const Location& where) {
  for (const auto& s : config_sections())
    if (s == section) return;
  unknown_section(where, section);
}

// Iterates a mapping, rejecting duplicate keys (yaml-cpp accepts them silently).
template <class Fn>
void for_each_entry(const YAML::Node& map, const std::string& source, const std::string& context, Fn fn) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    Location where = location_of(it->first, source);
    if (!it->first.IsScalar()) throw ConfigError(at(where) + context + ": keys must be plain names");
    const std::string& key = it->first.Scalar();
    if (!seen.insert(key).second)
      throw ConfigError(at(where) + "duplicate key '" + (context.empty() ? key : context + "." + key) +
                        "'; remove one of them");
    fn(key, it->second, where);
  }
}

struct Loader {
  ResolvedConfig& out;
  std::vector<std::string> stack;  // canonical paths being loaded, for cycle detection

  YAML::Node parse_file(const std::string& path, const std::string& referenced_from) {
    if (!fs::exists(path)) {
      throw ConfigError(referenced_from + "config file not found: " + path +
                        " (paths in `extends:` are relative to the file that contains them)");
    }
    if (fs::is_directory(path)) throw ConfigError(referenced_from + "config path is a directory, not a file: " + path);
    std::string text;
    try {  // a regular file of at most 16 MiB: /dev/zero or a FIFO must not read forever
      text = io::read_file(path, size_t{16} << 20, "config file");
    } catch (const UserError& e) {
      throw ConfigError(referenced_from + e.what());
    }
    return parse_text(text, path);
  }

  static YAML::Node parse_text(const std::string& text, const std::string& source) {
    try {
      std::vector<YAML::Node> documents = YAML::LoadAll(text);
      if (documents.size() > 1) {
        throw ConfigError(at(location_of(documents[1], source)) +
                          "a second YAML document (after '---') would be ignored; a config is one "
                          "document: remove the '---' line or split the file (use `extends:` to layer configs)");
      }
      return documents.empty() ? YAML::Node() : documents[0];
    } catch (const YAML::ParserException& e) {
      Location where{source, e.mark.line + 1, e.mark.column + 1};
      throw ConfigError(at(where) + "YAML syntax error: " + e.msg);
    }
  }

  void apply_file(const std::string& path, const std::string& referenced_from) {
    YAML::Node root = parse_file(path, referenced_from);
    std::string canonical = fs::weakly_canonical(fs::absolute(path)).string();
    stack.push_back(canonical);
    apply_root(root, path);
    stack.pop_back();
  }

  void apply_root(const YAML::Node& root, const std::string& source) {
    if (root.IsNull()) {  // an empty file is a valid (empty) config
      out.files.push_back(source);
      return;
    }
    if (!root.IsMap()) {
      throw ConfigError(at(location_of(root, source)) +
                        "a config file must be a mapping of sections (run:, data:, train: ...)");
    }
    // 1. The parent first, so that this file's values win.
    std::set<std::string> seen;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar() != kExtendsKey) continue;
      Location where = location_of(it->second, source);
      if (!it->second.IsScalar() || it->second.Scalar().empty())
        throw ConfigError(at(where) + "extends: expected a file name like `extends: base.yaml`");
      fs::path parent = fs::path(source).parent_path() / it->second.Scalar();
      std::string parent_path = parent.lexically_normal().string();
      std::string canonical = fs::weakly_canonical(fs::absolute(parent)).string();
      for (const auto& open : stack) {
        if (open == canonical) {
          std::vector<std::string> chain(stack.begin(), stack.end());
          chain.push_back(canonical);
          throw ConfigError(at(where) + "extends cycle: " + text::join(chain, " -> ") +
                            "; remove one of the `extends:` lines");
        }
      }
      apply_file(parent_path, at(where));
    }
    out.files.push_back(source);
    // 2. Then this file's sections.
    for_each_entry(root, source, "", [&](const std::string& section, const YAML::Node& body, const Location& where) {
      if (section == kExtendsKey) return;
      check_sections_known(section, where);
      if (body.IsNull()) return;  // `train:` with nothing under it
      if (!body.IsMap())
        throw ConfigError(at(location_of(body, source)) + "section '" + section +
                          "' must be a mapping of keys (like `" + section +
                          ":` followed by indented `key: value` lines)");
      for_each_entry(body, source, section,
                     [&](const std::string& key, const YAML::Node& value, const Location& key_where) {
                       const Field* field = find_field(section, key);
                       if (!field) unknown_key(key_where, section, key);
                       Location value_where = location_of(value, source);
                       if (value_where.line == 0) value_where = key_where;
                       field->assign(out.config, value, value_where);
                       out.origin[field->info.dotted()] = value_where;
                     });
    });
  }

  void apply_override(const std::string& assignment) {
    Location where{"--set " + assignment, 0, 0};
    size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(at(where) + "expected section.key=value, e.g. --set train.lr=1e-4");
    std::string dotted = assignment.substr(0, eq);
    std::string value_text = assignment.substr(eq + 1);
    size_t dot = dotted.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == dotted.size())
      throw ConfigError(at(where) + "'" + dotted + "' is not section.key (e.g. --set train.lr=1e-4)");
    std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
    check_sections_known(section, where);
    const Field* field = find_field(section, key);
    if (!field) unknown_key(where, section, key);
    YAML::Node value;
    try {
      value = YAML::Load(value_text);
    } catch (const YAML::ParserException& e) {
      throw ConfigError(at(where) + "the value is not valid YAML (" + e.msg + "); quote it or write lists as [a,b]");
    }
    field->assign(out.config, value, where);
    out.origin[field->info.dotted()] = where;
  }
};

}  // namespace

// Cross-field rules: each error names where the offending values were set.
void validate(const ResolvedConfig& r) {
  const Config& c = r.config;
  auto where = [&](const std::string& key) {
    auto it = r.origin.find(key);
    return it == r.origin.end() ? Location{"default"} : it->second;
  };
  if (c.model.hidden % c.model.heads != 0) {
    throw ConfigError(at(where("model.hidden")) + "model.hidden = " + std::to_string(c.model.hidden) +
                      " is not divisible by model.heads = " + std::to_string(c.model.heads) + " (set at " +
                      where("model.heads").str() + "); pick heads that divide hidden, e.g. hidden 768 with 12 heads");
  }
  if (c.data.max_len > c.model.max_positions) {
    throw ConfigError(at(where("data.max_len")) + "data.max_len = " + std::to_string(c.data.max_len) +
                      " exceeds model.max_positions = " + std::to_string(c.model.max_positions) + " (set at " +
                      where("model.max_positions").str() + "); lower data.max_len or raise model.max_positions");
  }
  std::set<std::string> seen;
  for (const auto& label : c.data.labels) {
    if (!seen.insert(label).second)
      throw ConfigError(at(where("data.labels")) + "data.labels lists '" + label + "' twice; each label once");
  }
  const bool mlm = c.train.objective == Objective::kMlm;
  if (c.data.labels.empty() && !mlm) {
    throw ConfigError(at(where("data.labels")) +
                      "data.labels is empty: a classifier needs its labels (e.g. [hate, spam]); for pretraining on "
                      "unlabelled posts set train.objective: mlm");
  }
  if (mlm) {
    if (c.mlm.mask_fraction + c.mlm.random_fraction > 1.0 + 1e-12)
      throw ConfigError(at(where("mlm.random_fraction")) + "mlm.mask_fraction + mlm.random_fraction = " +
                        std::to_string(c.mlm.mask_fraction + c.mlm.random_fraction) +
                        " exceeds 1 (they are shares of the chosen tokens; BERT: 0.8 and 0.1)");
    const BestMetric best = c.checkpoint.best_metric;
    if (best != BestMetric::kAuto && best != BestMetric::kNone && best != BestMetric::kLoss)
      throw ConfigError(at(where("checkpoint.best_metric")) + "checkpoint.best_metric = " + to_string(best) +
                        " is a classification metric, but train.objective is mlm (set at " +
                        where("train.objective").str() + "); use loss (the masked-token loss), auto or none");
    if (c.train.pos_weight.kind != PosWeight::Kind::kNone)
      throw ConfigError(at(where("train.pos_weight")) +
                        "train.pos_weight weighs classification labels; train.objective is mlm (set at " +
                        where("train.objective").str() + "): remove train.pos_weight");
  }
  if (c.data.soft_labels && c.data.problem == Problem::kMultiClass)
    throw ConfigError(at(where("data.soft_labels")) + "data.soft_labels needs data.problem: multi_label (set at " +
                      where("data.problem").str() + "); multi_class records have exactly one 0/1 label");
  if (c.eval.calibrate && c.data.valid.empty())
    throw ConfigError(at(where("eval.calibrate")) +
                      "eval.calibrate fits the temperatures on data.valid, which is empty (set at " +
                      where("data.valid").str() + "): give data.valid or set eval.calibrate: false");
  if (c.eval.calibrate && c.data.problem == Problem::kMultiClass)
    throw ConfigError(at(where("eval.calibrate")) +
                      "eval.calibrate fits one temperature per sigmoid label; data.problem is multi_class (set at " +
                      where("data.problem").str() + "): set eval.calibrate: false");
  {
    std::set<std::string> names(c.data.labels.begin(), c.data.labels.end());
    const std::set<std::string> reserved = {"id", "text", "labels"};
    for (const auto& [key, list] : {std::make_pair(std::string("data.subgroups"), c.data.subgroups),
                                    std::make_pair(std::string("eval.slice_by"), c.eval.slice_by)}) {
      for (const auto& name : list) {
        if (reserved.count(name) || !names.insert(name).second)
          throw ConfigError(at(where(key)) + key + " names '" + name +
                            "', which is already a label, subgroup or slice field or one of id/text/labels; each "
                            "field has one role");
      }
    }
  }
  for (const auto& [label, policy] : c.eval.thresholds.labels) {
    if (std::find(c.data.labels.begin(), c.data.labels.end(), label) == c.data.labels.end())
      throw ConfigError(at(where("eval.thresholds")) + "eval.thresholds names '" + label +
                        "', which is not in data.labels (" + text::join(c.data.labels, ", ") +
                        "); use a label's name or default");
  }
  if (c.data.problem == Problem::kMultiClass && c.data.labels.size() < 2 && !mlm) {
    throw ConfigError(
        at(where("data.problem")) +
        "data.problem = multi_class needs at least 2 labels in data.labels; use multi_label for one label");
  }
  if (c.train.pos_weight.kind == PosWeight::Kind::kExplicit &&
      c.train.pos_weight.values.size() != c.data.labels.size()) {
    throw ConfigError(at(where("train.pos_weight")) + "train.pos_weight has " +
                      std::to_string(c.train.pos_weight.values.size()) + " values for " +
                      std::to_string(c.data.labels.size()) + " labels in data.labels; give one per label");
  }
  if (c.train.tokens_per_batch > 0 && c.train.tokens_per_batch < c.data.max_len) {
    throw ConfigError(
        at(where("train.tokens_per_batch")) + "train.tokens_per_batch = " + std::to_string(c.train.tokens_per_batch) +
        " is less than data.max_len = " + std::to_string(c.data.max_len) + " (set at " + where("data.max_len").str() +
        "): a record of max_len tokens would not fit; raise train.tokens_per_batch or lower data.max_len");
  }
  if (c.train.tokens_per_batch > 0 && c.data.group_by_length) {
    throw ConfigError(at(where("data.group_by_length")) + "data.group_by_length and train.tokens_per_batch (set at " +
                      where("train.tokens_per_batch").str() +
                      ") are alternatives: token budgets already avoid most padding; set one of them");
  }
  if (c.train.epochs == 0 && c.train.warmup_steps > c.train.max_steps) {
    throw ConfigError(at(where("train.warmup_steps")) + "train.warmup_steps = " + std::to_string(c.train.warmup_steps) +
                      " is more than train.max_steps = " + std::to_string(c.train.max_steps) +
                      "; the learning rate would never reach train.lr");
  }
}

}  // namespace config_impl

ResolvedConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  ResolvedConfig resolved;
  config_impl::Loader loader{resolved, {}};
  if (!path.empty()) loader.apply_file(path, "--config: ");
  for (const auto& assignment : overrides) loader.apply_override(assignment);
  config_impl::validate(resolved);
  return resolved;
}

ResolvedConfig load_config_text(const std::string& yaml_text, const std::string& source_name,
                                const std::vector<std::string>& overrides) {
  ResolvedConfig resolved;
  config_impl::Loader loader{resolved, {}};
  YAML::Node root = config_impl::Loader::parse_text(yaml_text, source_name);
  loader.stack.push_back(source_name);
  loader.apply_root(root, source_name);
  for (const auto& assignment : overrides) loader.apply_override(assignment);
  config_impl::validate(resolved);
  return resolved;
}

}  // namespace modtrain
