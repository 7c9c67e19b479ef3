// The tokenizer parity data (tests/data/tokenizer): the shared cases and each family's golden ids.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace modtrain::test {

inline const std::string kTokenizerData = MODTRAIN_TEST_DATA "/tokenizer/";

// One JSON value per line of a .jsonl file under tests/data/tokenizer.
template <class T>
std::vector<T> read_jsonl(const std::string& name) {
  std::ifstream in(kTokenizerData + name);
  std::vector<T> rows;
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line).get<T>());
  return rows;
}

}  // namespace modtrain::test
