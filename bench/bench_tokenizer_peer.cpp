// Tokenizer speed against Hugging Face tokenizers on the same work: one tokenizer.json, the same
// texts (a JSONL file of strings), one thread each, special tokens added, no truncation. This is
// modtrain's side; bench/peer/hf_tokenizers.js is the peer's; scripts/bench_tokenizer_peer.sh runs
// them alternately and writes bench/results/tokenizer-peer.json. Both print tokens/s and a
// checksum of the ids, which must agree (same work, same answer).
// Usage: modtrain_bench_tokenizer_peer TOKENIZER_JSON TEXTS_JSONL [ROUNDS]
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "modtrain/data/bpe.h"
#include "modtrain/data/unigram.h"

using namespace modtrain;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: modtrain_bench_tokenizer_peer TOKENIZER_JSON TEXTS_JSONL [ROUNDS]\n");
    return 2;
  }
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  std::unique_ptr<Tokenizer> tokenizer;
  const auto spec = nlohmann::json::parse(std::ifstream(argv[1]));
  const std::string type = spec.at("model").at("type");
  if (type == "BPE")
    tokenizer = std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_tokenizer_json(argv[1]));
  else if (type == "Unigram")
    tokenizer = std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_tokenizer_json(argv[1]));
  else {
    std::fprintf(stderr, "model type %s: not benchmarked yet\n", type.c_str());
    return 2;
  }
  std::vector<std::string> texts;
  std::ifstream in(argv[2]);
  for (std::string line; std::getline(in, line);) texts.push_back(nlohmann::json::parse(line).get<std::string>());
  std::vector<int32_t> ids;
  double best = 1e30;
  uint64_t tokens = 0, checksum = 0;
  for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up
    tokens = 0, checksum = 0;
    const double t0 = bench::now_seconds();
    for (const std::string& text : texts) {
      tokenizer->encode(text, ids);
      tokens += ids.size();
      for (int32_t id : ids) checksum = checksum * 1000003u + static_cast<uint32_t>(id);
    }
    const double s = bench::now_seconds() - t0;
    if (r > 0) best = std::min(best, s);
  }
  std::printf(
      "{\"tokenizer\": \"%s\", \"texts\": %zu, \"tokens\": %llu, \"seconds\": %.6f, \"tokens_per_s\": %.0f, "
      "\"checksum\": \"%016llx\"}\n",
      tokenizer->type().c_str(), texts.size(), static_cast<unsigned long long>(tokens), best, tokens / best,
      static_cast<unsigned long long>(checksum));
  return 0;
}
