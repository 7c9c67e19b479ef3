// Long-word benchmark: seconds to encode one word without spaces of 1 KB to 4 MB with
// each tokenizer family (byte-level BPE, Unigram, WordPiece), on one thread. A post of a megabyte
// with no spaces is one pre-token, so a merge loop that rescans the word per merge is quadratic:
// it took 26 s at 80 KB. Linear-ish means the time per byte stays flat as the word grows; the
// JSON records it per size and the ratio of the largest size's time per byte to the smallest's.
// Usage: modtrain_bench_long_words [--out FILE] [--max-bytes N]   (run from the repository root)
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "bench_common.h"
#include "modtrain/data/sampler.h"
#include "modtrain/data/tokenizer.h"

using namespace modtrain;

namespace {
// English-like letters (frequencies of English text), so that the BPE and Unigram vocabularies,
// trained on fortunes, find their common pieces; a word made of one repeated byte is too easy.
std::string english_letters(size_t n, uint64_t seed) {
  static const char kLetters[] = "etaoinshrdlcumwfgypbvkjxqz";
  static const int kPerMille[] = {127, 91, 82, 75, 70, 67, 63, 61, 60, 43, 40, 28, 28,
                                  24,  24, 22, 20, 20, 19, 15, 10, 8,  2,  2,  1,  1};
  SplitMix64 rng(seed);
  std::string out(n, 'e');
  for (auto& c : out) {
    int u = static_cast<int>(rng.below(1002));
    for (int k = 0; k < 26; u -= kPerMille[k++])
      if (u < kPerMille[k]) {
        c = kLetters[k];
        break;
      }
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  std::string out = "bench/results/long-words.json";
  size_t max_bytes = 4u << 20;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    if (!std::strcmp(argv[i], "--max-bytes")) max_bytes = std::stoul(argv[i + 1]);
  }
  const std::string data = "tests/data/tokenizer/";
  const std::pair<const char*, std::string> families[] = {{"bpe", data + "bpe/tokenizer.json"},
                                                          {"unigram", data + "unigram/tokenizer.json"},
                                                          {"wordpiece", data + "wordpiece/tokenizer.json"}};
  nlohmann::json results = nlohmann::json::object();
  for (const auto& [family, path] : families) {
    std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(path);
    nlohmann::json rows = nlohmann::json::array();
    double first_per_byte = 0, last_per_byte = 0;
    for (size_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
      const std::string word = english_letters(bytes, bytes);
      std::vector<int32_t> ids;
      const double seconds =
          bench::time_per_call([&] { tokenizer->encode(word, ids); }, bytes >= (1u << 20) ? 0.0 : 0.3);
      const double per_byte = seconds / static_cast<double>(bytes);
      if (rows.empty()) first_per_byte = per_byte;
      last_per_byte = per_byte;
      rows.push_back({{"bytes", bytes}, {"seconds", seconds}, {"ids", ids.size()}, {"ns_per_byte", per_byte * 1e9}});
      std::printf("%-9s %8zu bytes: %9.4f s  %7.1f ns/byte  %zu ids\n", family, bytes, seconds, per_byte * 1e9,
                  ids.size());
    }
    results[family] = {
        {"tokenizer", path}, {"sizes", rows}, {"largest_over_smallest_per_byte", last_per_byte / first_per_byte}};
  }
  nlohmann::json result = {{"benchmark", "long_words"},
                           {"machine", bench::machine()},
                           {"threads", 1},
                           {"word", "English-frequency letters, no spaces (one pre-token)"},
                           {"families", results},
                           {"before", "the rescanning merge loop: BPE 80 KB in 25.9 s, 20 KB in 0.9 s (this machine)"}};
  bench::write_result(out, result);
  std::printf("-> %s\n", out.c_str());
  return 0;
}
