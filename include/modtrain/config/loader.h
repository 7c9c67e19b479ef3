// Loading a configuration: built-in defaults < `extends:` chain < the file < `--set` overrides.
// Strict: unknown keys, wrong types, out-of-range values, bad YAML, missing files and extends
// cycles are ConfigErrors naming file:line:col and how to fix it (exit code 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "modtrain/config/config.h"

namespace modtrain {

// Where a value came from: "configs/tiny.yaml:12:7", "--set train.lr=0.1" or "default".
struct Location {
  std::string source;  // file path, "--set ..." or "default"
  int line = 0;        // 1-based; 0 when not from a file
  int column = 0;      // 1-based
  std::string str() const;
};

struct ResolvedConfig {
  Config config;
  std::vector<std::string> files;          // the files read, the deepest `extends` first
  std::map<std::string, Location> origin;  // "train.lr" -> where its value was set

  std::string to_yaml() const;  // the fully resolved config; loads back to the same Config
  uint64_t hash() const;        // FNV-1a of to_yaml(): equal on ranks that resolved the same config
};

// Loads `path` ("" = built-in defaults only) and applies `overrides` ("section.key=value",
// value in YAML syntax, lists as [a,b]). Throws ConfigError.
ResolvedConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same, from YAML text already in memory; `source_name` is used in error messages.
ResolvedConfig load_config_text(const std::string& yaml_text, const std::string& source_name,
                                const std::vector<std::string>& overrides = {});

}  // namespace modtrain
