// Tokenizer benchmark: WordPiece encode speed (tokens/s) on tweet-length English text with a
// 30k vocabulary trained on the same kind of text, on 1 thread and on all cores, plus the cost of
// tweet normalisation and of vocabulary training. Target: >= 3M tokens/s on one core.
// Usage: modtrain_bench_tokenizer [--out FILE] [--texts N] [--vocab-size N]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "bench_common.h"
#include "modtrain/data/sampler.h"
#include "modtrain/data/synth.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/vocab_trainer.h"
#include "modtrain/data/wordpiece.h"

using namespace modtrain;

namespace {
// English-like tweets: Zipf-distributed words from the system dictionary (wamerican), mixed
// with mentions, hashtags, URLs, emoji and punctuation, plus the synthetic moderation tweets.
std::vector<std::string> make_corpus(size_t n, bool& used_dictionary) {
  std::vector<std::string> words;
  std::ifstream dict("/usr/share/dict/words");
  for (std::string w; std::getline(dict, w);)
    if (!w.empty() && w.find('\'') == std::string::npos) words.push_back(w);
  used_dictionary = words.size() > 1000;
  SplitMix64 rng(2026);
  const char* extras[] = {"@user", "#news", "http://t.co/x1", "😂", "!", "?", ",", "...", "lol", "&amp;", "🔥"};
  std::vector<std::string> texts;
  SynthOptions synth;
  for (size_t i = 0; i < n; ++i) {
    if (i % 2 == 0 || !used_dictionary) {
      std::string line = synth_record(7, "bench", i, synth);
      size_t at = line.find("\"text\":\"") + 8;
      texts.push_back(line.substr(at, line.find("\"}", at) - at));
      continue;
    }
    std::string t;
    size_t len = 6 + rng.below(22);
    for (size_t k = 0; k < len; ++k) {
      // Zipf-like: rank ~ u^3 concentrates mass on the first words of a shuffled list
      double u = static_cast<double>(rng.below(1u << 30)) / (1u << 30);
      size_t rank = static_cast<size_t>(u * u * u * static_cast<double>(words.size()));
      t += (k ? " " : "") +
           (rng.below(12) == 0 ? std::string(extras[rng.below(11)]) : words[(rank * 7919) % words.size()]);
    }
    texts.push_back(t);
  }
  return texts;
}
}  // namespace

int main(int argc, char** argv) {
  std::string out = "bench/results/tokenizer.json";
  size_t n = 200000, vocab_size = 30000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    if (!std::strcmp(argv[i], "--texts")) n = std::stoul(argv[i + 1]);
    if (!std::strcmp(argv[i], "--vocab-size")) vocab_size = std::stoul(argv[i + 1]);
  }
  bool dictionary = false;
  std::vector<std::string> raw = make_corpus(n, dictionary);
  std::vector<std::string> texts(raw.size());
  double t0 = bench::now_seconds();
  for (size_t i = 0; i < raw.size(); ++i) texts[i] = normalize_tweet(raw[i]);
  double normalize_s = bench::now_seconds() - t0;

  VocabTrainerOptions vo;
  vo.vocab_size = vocab_size;
  t0 = bench::now_seconds();
  VocabTrainer trainer(vo);
  trainer.add_texts(raw);
  auto vocab = std::make_shared<Vocab>(Vocab::from_tokens(trainer.train()));
  double train_s = bench::now_seconds() - t0;
  WordPieceTokenizer tokenizer(vocab);

  uint64_t tokens = 0;
  std::vector<int32_t> ids;
  for (const auto& t : texts) {
    tokenizer.encode(t, ids);
    tokens += ids.size();
  }
  auto encode_all = [&](int threads) {
    std::vector<std::thread> pool;
    size_t per = (texts.size() + threads - 1) / threads;
    for (int k = 0; k < threads; ++k) {
      pool.emplace_back([&, k] {
        std::vector<int32_t> local;
        for (size_t i = k * per; i < std::min(texts.size(), (k + 1) * per); ++i) tokenizer.encode(texts[i], local);
      });
    }
    for (auto& th : pool) th.join();
  };
  nlohmann::json scaling = nlohmann::json::array();
  double single = 0;
  for (int threads = 1; threads <= static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); threads *= 2) {
    double s = bench::time_per_call([&] { encode_all(threads); }, 3.0);
    double rate = static_cast<double>(tokens) / s;
    if (threads == 1) single = rate;
    scaling.push_back({{"threads", threads}, {"tokens_per_s", rate}, {"speedup", rate / single}});
    std::printf("encode, %d thread(s): %.2f M tokens/s\n", threads, rate / 1e6);
  }
  nlohmann::json result = {{"benchmark", "tokenizer"},
                           {"machine", bench::machine()},
                           {"corpus",
                            {{"texts", texts.size()},
                             {"tokens", tokens},
                             {"tokens_per_text", static_cast<double>(tokens) / texts.size()},
                             {"english_dictionary", dictionary}}},
                           {"vocab_size", vocab->size()},
                           {"encode", scaling},
                           {"encode_single_thread_tokens_per_s", single},
                           {"target_single_thread_tokens_per_s", 3.0e6},
                           {"normalize_tweets_texts_per_s", texts.size() / normalize_s},
                           {"vocab_training_seconds", train_s}};
  bench::write_result(out, result);
  std::printf("vocab %zu tokens trained in %.1f s; normalisation %.0f texts/s; %.1f tokens/text -> %s\n", vocab->size(),
              train_s, texts.size() / normalize_s, static_cast<double>(tokens) / texts.size(), out.c_str());
  return 0;
}
