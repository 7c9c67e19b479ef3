// Resolved config -> YAML text (what `config show` prints and run directories keep) and its hash.
#include "modtrain/core/text.h"
#include "schema_impl.h"

namespace modtrain {

std::string ResolvedConfig::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const auto& field : config_impl::fields()) {
    if (field.info.section != section) {
      if (!section.empty()) out << YAML::EndMap;
      section = field.info.section;
      out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << field.info.key << YAML::Value;
    field.emit(config, out);
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

uint64_t ResolvedConfig::hash() const { return text::fnv1a64(to_yaml()); }

}  // namespace modtrain
