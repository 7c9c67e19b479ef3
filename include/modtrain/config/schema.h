// The config schema as data: every key with its type, allowed range, default and meaning.
// Drives `modtrain config doc` (docs/config.md is generated from it) and "did you mean" hints.
#pragma once

#include <string>
#include <vector>

namespace modtrain {

struct FieldInfo {
  std::string section;        // "train"
  std::string key;            // "lr"
  std::string type;           // "float", "integer", "list of strings", "one of: a | b" ...
  std::string range;          // "> 0", "[0, 1)", "" when any value of the type is allowed
  std::string default_value;  // as YAML
  std::string doc;            // one or two sentences
  std::string dotted() const { return section + "." + key; }
};

// All keys, in the order `config show` prints them.
std::vector<FieldInfo> config_fields();

// The section names in order ("run", "data", ...).
std::vector<std::string> config_sections();

// Markdown reference of every key (the content of docs/config.md).
std::string config_markdown();

}  // namespace modtrain
