// Private: the schema table with the yaml-cpp glue (parse/emit one field). Only src/config/
// includes this, so yaml-cpp stays out of the public headers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/config/loader.h"
#include "modtrain/config/schema.h"

namespace modtrain::config_impl {

struct Field {
  FieldInfo info;
  // Parses `value` (found at `where`) into the field of `config`; throws ConfigError.
  std::function<void(Config& config, const YAML::Node& value, const Location& where)> assign;
  // Writes the field's value (the value only, the key is written by the caller).
  std::function<void(const Config& config, YAML::Emitter& out)> emit;
};

const std::vector<Field>& fields();
const Field* find_field(const std::string& section, const std::string& key);

// "at <where>: " prefix used by every config error message.
std::string at(const Location& where);

// 1-based location of a yaml-cpp node in `source`.
Location location_of(const YAML::Node& node, const std::string& source);

// Cross-field checks (hidden divisible by heads, max_len <= max_positions, ...).
void validate(const ResolvedConfig& resolved);

}  // namespace modtrain::config_impl
