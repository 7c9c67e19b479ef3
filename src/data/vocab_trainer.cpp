#include "modtrain/data/vocab_trainer.h"

#include <algorithm>
#include <map>
#include <queue>
#include <thread>
#include <unordered_set>

#include "bert_words.h"
#include "modtrain/core/parallel.h"
#include "modtrain/data/tweet_normalizer.h"

namespace modtrain {
namespace {

int thread_count(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Splits a word into its UTF-8 characters.
std::vector<std::string> characters(const std::string& word) {
  std::vector<std::string> chars;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = 0;
    unicode::decode(word, i, len);
    chars.push_back(word.substr(i, len));
    i += len;
  }
  return chars;
}

}  // namespace

void VocabTrainer::add_texts(const std::vector<std::string>& texts) {
  const int threads = thread_count(options_.threads);
  std::vector<std::unordered_map<std::string, uint64_t>> partial(static_cast<size_t>(threads));
  std::vector<uint64_t> partial_words(static_cast<size_t>(threads), 0);
  auto work = [&](int t) {
    auto& counts = partial[static_cast<size_t>(t)];
    std::string normalized, scratch;
    for (size_t i = static_cast<size_t>(t); i < texts.size(); i += static_cast<size_t>(threads)) {
      std::string_view text = texts[i];
      if (options_.normalize_tweets) {
        normalize_tweet(text, normalized);
        text = normalized;
      }
      bert::for_each_word(
          text, options_.lowercase, nullptr, scratch,
          [&](std::string_view w) {
            ++counts[std::string(w)];
            ++partial_words[static_cast<size_t>(t)];
            return true;
          },
          [](int32_t) { return true; });
    }
  };
  run_parallel(threads, work);  // an exception in a worker reaches this thread
  for (size_t t = 0; t < partial.size(); ++t) {
    for (auto& [word, count] : partial[t]) word_counts_[word] += count;
    words_ += partial_words[t];
  }
  texts_ += texts.size();
}

std::vector<std::string> VocabTrainer::train(VocabTrainerReport* report) const {
  // Words in a fixed order so that ids, and so ties, never depend on hash-map order.
  std::vector<std::pair<std::string, uint64_t>> words(word_counts_.begin(), word_counts_.end());
  std::sort(words.begin(), words.end());

  // 1. The alphabet: the most frequent characters (ties by text), limited.
  std::map<std::string, uint64_t> char_counts;
  for (const auto& [word, count] : words)
    for (const auto& c : characters(word)) char_counts[c] += count;
  std::vector<std::pair<std::string, uint64_t>> alphabet(char_counts.begin(), char_counts.end());
  std::stable_sort(alphabet.begin(), alphabet.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (alphabet.size() > options_.limit_alphabet) alphabet.resize(options_.limit_alphabet);
  std::unordered_set<std::string> kept_chars;
  for (const auto& a : alphabet) kept_chars.insert(a.first);

  std::vector<std::string> tokens(std::begin(kSpecialTokens), std::end(kSpecialTokens));
  std::unordered_map<std::string, int32_t> token_id;
  for (size_t i = 0; i < tokens.size(); ++i) token_id[tokens[i]] = static_cast<int32_t>(i);
  auto intern = [&](const std::string& token) {
    auto [it, inserted] = token_id.emplace(token, static_cast<int32_t>(tokens.size()));
    if (inserted) tokens.push_back(token);
    return it->second;
  };
  std::vector<std::string> sorted_chars(kept_chars.begin(), kept_chars.end());
  std::sort(sorted_chars.begin(), sorted_chars.end());
  for (const auto& c : sorted_chars) intern(c);

  // 2. Words as symbol sequences ("##" on every non-initial symbol). Words with a dropped
  //    character cannot be built from the vocabulary and take no part in merges.
  std::vector<std::vector<int32_t>> symbols(words.size());
  for (size_t w = 0; w < words.size(); ++w) {
    auto chars = characters(words[w].first);
    bool ok = std::all_of(chars.begin(), chars.end(), [&](const std::string& c) { return kept_chars.count(c) > 0; });
    if (!ok) continue;
    for (size_t k = 0; k < chars.size(); ++k) symbols[w].push_back(intern(k == 0 ? chars[k] : "##" + chars[k]));
  }

  // 3. Pair counts, the words each pair occurs in, and a max-heap with lazy invalidation.
  auto key = [](int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  };
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = symbols[w];
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      uint64_t p = key(s[k], s[k + 1]);
      pair_count[p] += static_cast<int64_t>(words[w].second);
      auto& list = pair_words[p];
      if (list.empty() || list.back() != w) list.push_back(static_cast<uint32_t>(w));
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }  // ties: smaller ids first
  };
  std::priority_queue<Entry> heap;
  for (const auto& [p, c] : pair_count) heap.push({c, p});

  uint64_t merges = 0;
  while (tokens.size() < options_.vocab_size && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.pair);
    if (it == pair_count.end() || it->second != top.count) continue;  // stale
    if (top.count < static_cast<int64_t>(options_.min_frequency)) break;
    int32_t a = static_cast<int32_t>(top.pair >> 32), b = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
    const std::string& right = tokens[static_cast<size_t>(b)];
    int32_t merged = intern(tokens[static_cast<size_t>(a)] + right.substr(right.rfind("##", 0) == 0 ? 2 : 0));
    ++merges;
    std::vector<uint32_t> occurrences = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    pair_count.erase(top.pair);
    std::map<uint64_t, int64_t> delta;  // ordered, so heap pushes are deterministic
    for (uint32_t w : occurrences) {
      auto& s = symbols[w];
      const int64_t count = static_cast<int64_t>(words[w].second);
      for (size_t k = 0; k + 1 < s.size();) {
        if (s[k] != a || s[k + 1] != b) {
          ++k;
          continue;
        }
        if (k > 0) {
          delta[key(s[k - 1], a)] -= count;
          delta[key(s[k - 1], merged)] += count;
        }
        if (k + 2 < s.size()) {
          delta[key(b, s[k + 2])] -= count;
          delta[key(merged, s[k + 2])] += count;
        }
        s[k] = merged;
        s.erase(s.begin() + static_cast<std::ptrdiff_t>(k) + 1);
      }
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        if (s[k] != merged && s[k + 1] != merged) continue;
        auto& list = pair_words[key(s[k], s[k + 1])];
        if (list.empty() || list.back() != w) list.push_back(w);
      }
    }
    for (const auto& [p, d] : delta) {
      if (d == 0 || p == top.pair) continue;
      int64_t& c = pair_count[p];
      c += d;
      if (c <= 0) {
        pair_count.erase(p);
        continue;
      }
      heap.push({c, p});  // any older entry for p is now stale and skipped when popped
    }
  }
  if (report) {
    report->texts = texts_;
    report->words = words_;
    report->unique_words = words.size();
    report->alphabet = sorted_chars.size();
    report->merges = merges;
  }
  return tokens;
}

}  // namespace modtrain
