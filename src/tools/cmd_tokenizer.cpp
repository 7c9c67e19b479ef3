// `modtrain tokenizer train` (a WordPiece vocab from raw shards) and `modtrain tokenize`
// (text lines on stdin -> JSON id arrays on stdout, for parity checks and debugging).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/parallel.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/vocab_trainer.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/io/files.h"

namespace modtrain::tools {
namespace {

struct TrainFlags {
  std::vector<std::string> inputs;
  std::string out;
  VocabTrainerOptions options;
  bool cased = false, no_tweets = false;
};

constexpr size_t kTextsPerChunk = 200000;  // texts counted at a time (bounds memory)

int tokenizer_train(TrainFlags flags) {
  flags.options.lowercase = !flags.cased;
  flags.options.normalize_tweets = !flags.no_tweets;
  VocabTrainer trainer(flags.options);
  uint64_t skipped = 0;
  std::vector<std::string> texts;
  auto flush = [&] {
    trainer.add_texts(texts);
    texts.clear();
  };
  const std::vector<std::string> files = expand_globs(flags.inputs, "--input");
  io::refuse_output_onto_input(flags.out, files, "--out");
  for (const auto& file : files) {
    bool plain = file.size() > 4 && file.compare(file.size() - 4, 4, ".txt") == 0;
    if (plain) {  // one text per line
      std::ifstream in(file, std::ios::binary);
      if (!in) throw UserError("cannot read " + file);
      std::string line;
      while (std::getline(in, line)) {
        if (!line.empty()) texts.push_back(line);
        if (texts.size() >= kTextsPerChunk) flush();
      }
      continue;
    }
    RawShardReader reader(file, LabelSpec{}, /*labels_required=*/false);
    RawUnit unit;
    RawRecord record;
    std::string reason;
    while (reader.next(unit)) {
      if (unit.blank) continue;
      if (!reader.decode(unit, record, reason)) {
        ++skipped;
        continue;
      }
      texts.push_back(std::move(record.text));
      if (texts.size() >= kTextsPerChunk) flush();
    }
  }
  flush();
  VocabTrainerReport report;
  std::vector<std::string> tokens = trainer.train(&report);
  std::string content;
  for (const auto& t : tokens) content += t + "\n";
  io::write_file_atomic(flags.out, content);
  std::printf("vocab: %zu tokens -> %s (%llu texts, %llu words, %llu distinct, alphabet %llu, %llu merges)\n",
              tokens.size(), flags.out.c_str(), static_cast<unsigned long long>(report.texts),
              static_cast<unsigned long long>(report.words), static_cast<unsigned long long>(report.unique_words),
              static_cast<unsigned long long>(report.alphabet), static_cast<unsigned long long>(report.merges));
  if (tokens.size() < flags.options.vocab_size)
    log::warn("the corpus supports only " + std::to_string(tokens.size()) + " tokens (asked for " +
              std::to_string(flags.options.vocab_size) + "); lower --min-frequency or add text");
  if (skipped)
    log::warn(std::to_string(skipped) +
              " records could not be read and were not used (`modtrain data prepare` names them)");
  return kExitOk;
}

struct TokenizeFlags {
  std::string vocab, tokenizer;
  bool cased = false, tweets = false;
  int64_t max_len = 0;
  int threads = 1;
};

int tokenize(const TokenizeFlags& flags) {
  if (flags.max_len < 0 || flags.max_len == 1)
    throw UserError("--max-len " + std::to_string(flags.max_len) +
                    (flags.max_len < 0 ? " is negative" : " leaves no room for the special tokens") +
                    "; give 0 (no limit) or 2 and more");
  if (flags.vocab.empty() == flags.tokenizer.empty())
    throw UserError("give one of --vocab (a WordPiece vocab.txt) or --tokenizer (a model directory or tokenizer file)");
  const std::unique_ptr<Tokenizer> loaded =
      load_tokenizer(flags.vocab.empty() ? flags.tokenizer : flags.vocab, !flags.cased);
  const Tokenizer& tokenizer = *loaded;
  if (flags.cased && loaded->type() != "wordpiece")
    throw UserError("--cased applies to a WordPiece vocab.txt; " + flags.tokenizer + " is a " + loaded->type() +
                    " tokenizer whose files say how it treats case; drop --cased");
  // A tokenizer.json (or a directory with one) says itself whether it lowercases: --cased cannot
  // change it, and was silently ignored for an uncased one.
  if (const auto* wp = dynamic_cast<const WordPieceTokenizer*>(loaded.get());
      wp && flags.cased && wp->options().lowercase)
    throw UserError("--cased: " + (flags.vocab.empty() ? flags.tokenizer : flags.vocab) +
                    " is an uncased WordPiece tokenizer (its tokenizer.json normalizer lowercases); drop --cased, or "
                    "give a cased tokenizer");
  io::Output out("-", {});
  const size_t threads = static_cast<size_t>(std::max(1, flags.threads));
  std::vector<std::string> lines;
  std::vector<std::string> outputs;
  auto encode_range = [&](size_t begin, size_t end) {
    std::vector<int32_t> ids;
    std::string normalized;
    for (size_t i = begin; i < end; ++i) {
      std::string_view text = lines[i];
      if (flags.tweets) {
        normalize_tweet(text, normalized);
        text = normalized;
      }
      tokenizer.encode(text, ids, static_cast<size_t>(flags.max_len));
      std::string& out = outputs[i];
      out = "[";
      for (size_t k = 0; k < ids.size(); ++k) {
        if (k) out += ',';
        out += std::to_string(ids[k]);
      }
      out += "]\n";
    }
  };
  std::string line;
  bool more = true;
  while (more) {
    lines.clear();
    while (lines.size() < 65536 && (more = static_cast<bool>(std::getline(std::cin, line)))) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(line);
    }
    outputs.assign(lines.size(), {});
    size_t per = (lines.size() + threads - 1) / threads;
    run_parallel(static_cast<int>(threads), [&](int t) {  // an exception in a worker reaches this thread
      size_t b = std::min(lines.size(), static_cast<size_t>(t) * per), e = std::min(lines.size(), b + per);
      if (b < e) encode_range(b, e);
    });
    for (const auto& o : outputs) out.write(o);  // a failed write stops here, naming the cause
  }
  out.commit();
  return kExitOk;
}

}  // namespace

void add_tokenizer_commands(CLI::App& app, Action& action) {
  CLI::App* tokenizer = app.add_subcommand("tokenizer", "Train WordPiece vocabularies");
  auto train = std::make_shared<TrainFlags>();
  CLI::App* t =
      tokenizer->add_subcommand("train", "Train a WordPiece vocab.txt on raw shards (JSONL/CSV/TSV or .txt lines)");
  t->add_option("-i,--input", train->inputs, "Input files or glob patterns")->required();
  t->add_option("--vocab-size", train->options.vocab_size, "Tokens in the vocabulary, specials included")
      ->capture_default_str()
      ->check(CLI::Range(100, 1000000));
  t->add_option("-o,--out", train->out, "Output vocab.txt")->required();
  t->add_option("--min-frequency", train->options.min_frequency, "Never merge pairs seen fewer times")
      ->capture_default_str();
  t->add_option("--limit-alphabet", train->options.limit_alphabet, "Most frequent characters kept")
      ->capture_default_str();
  t->add_flag("--cased", train->cased, "Keep case and accents (default: uncased, like bert-base-uncased)");
  t->add_flag("--no-tweets", train->no_tweets, "Skip tweet normalisation (@user, http, entities)");
  t->add_option("--threads", train->options.threads, "Counting threads (0 = all cores)")->check(CLI::Range(0, 1024));
  t->callback([&action, train] { action = [train] { return run_local([&] { return tokenizer_train(*train); }); }; });

  auto tok = std::make_shared<TokenizeFlags>();
  CLI::App* k = app.add_subcommand("tokenize", "Text lines on stdin -> one JSON array of ids per line on stdout");
  k->add_option("--vocab", tok->vocab, "A WordPiece vocab.txt");
  k->add_option("--tokenizer", tok->tokenizer,
                "A model directory or tokenizer file: tokenizer.json (WordPiece, byte-level BPE or Unigram), "
                "vocab.json + merges.txt, sentencepiece.bpe.model or vocab.txt");
  k->add_flag("--cased", tok->cased, "Cased vocab.txt: no lowercasing or accent stripping");
  k->add_flag("--tweets", tok->tweets, "Normalise tweets first (@user, http, entities, whitespace)");
  k->add_option("--max-len", tok->max_len,
                "Truncate to this many ids, the special tokens included (0 = none, else >= 2)");
  k->add_option("--threads", tok->threads, "Threads (default 1)")->check(CLI::Range(1, 1024));
  k->callback([&action, tok] { action = [tok] { return run_local([&] { return tokenize(*tok); }); }; });
}

}  // namespace modtrain::tools
