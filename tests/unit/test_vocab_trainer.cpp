// WordPiece vocabulary training: specials at 0-4, alphabet + merges, determinism across thread
// counts, and a trained vocab that tokenizes its corpus without [UNK].
#include <catch2/catch.hpp>

#include <memory>

#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/vocab_trainer.h"
#include "modtrain/data/wordpiece.h"

using namespace modtrain;

namespace {
std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  const char* base[] = {"the players are playing and played",
                        "@bob hates haters who hate",
                        "spam spam buy now http://x.co",
                        "Ünïcödé café naïve",
                        "中国人 like tea",
                        "unfollow unfollowed following followers"};
  for (int i = 0; i < 50; ++i)
    for (const char* b : base) texts.push_back(std::string(b) + " " + std::to_string(i % 7));
  return texts;
}
}  // namespace

TEST_CASE("trained vocab: specials first, merges, size limit", "[tokenizer][vocab]") {
  VocabTrainerOptions options;
  options.vocab_size = 120;
  options.threads = 2;
  VocabTrainer trainer(options);
  trainer.add_texts(corpus());
  VocabTrainerReport report;
  auto tokens = trainer.train(&report);
  REQUIRE(tokens.size() == 120);
  CHECK(std::vector<std::string>(tokens.begin(), tokens.begin() + 5) ==
        std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"});
  CHECK(report.texts == 300);
  CHECK(report.merges > 0);
  auto has = [&](const std::string& t) { return std::find(tokens.begin(), tokens.end(), t) != tokens.end(); };
  CHECK(has("spam"));
  CHECK(has("##ing"));
  CHECK(has("@"));
  CHECK(has("user"));  // tweet normalisation: @bob -> @user
  CHECK(has("http"));  // and URLs -> http
  CHECK(has("cafe"));  // uncased: accents stripped
  CHECK(has("中"));
}

TEST_CASE("vocab training is deterministic whatever the thread count", "[tokenizer][vocab]") {
  auto run = [](int threads) {
    VocabTrainerOptions options;
    options.vocab_size = 200;
    options.threads = threads;
    VocabTrainer trainer(options);
    trainer.add_texts(corpus());
    return trainer.train();
  };
  auto one = run(1);
  CHECK(run(2) == one);
  CHECK(run(3) == one);
  CHECK(run(1) == one);
}

TEST_CASE("a trained vocab covers its corpus without [UNK]", "[tokenizer][vocab]") {
  VocabTrainerOptions options;
  options.vocab_size = 300;
  VocabTrainer trainer(options);
  auto texts = corpus();
  trainer.add_texts(texts);
  auto vocab = std::make_shared<Vocab>(Vocab::from_tokens(trainer.train()));
  WordPieceTokenizer tokenizer(vocab);
  std::vector<int32_t> ids;
  for (const auto& t : texts) {
    tokenizer.encode(normalize_tweet(t), ids);  // the trainer saw normalised tweets
    for (int32_t id : ids) CHECK(id != vocab->unk_id());
  }
}
