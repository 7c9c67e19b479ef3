// `modtrain predict`: batched inference with a trained model on JSONL/CSV/TSV shards or plain
// text lines (a .txt file or `-` for stdin): per record the per-label probabilities and the labels
// flagged by the model's thresholds, ids carried through, the same normalisation and tokenizer as
// training. Bad input lines follow the data.on_bad_record policies (fail / skip, with line numbers).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/io/files.h"
#include "modtrain/serve/hf_export.h"
#include "modtrain/serve/model_dir.h"
#include "modtrain/serve/model_path.h"
#include "modtrain/train/evaluator.h"

namespace modtrain::tools {
namespace {

struct PredictFlags {
  std::string model, input, output = "-", on_bad_record = "fail";
  int batch = 64;
};

struct Pending {
  std::string id;
  uint64_t line;
  std::vector<int32_t> ids;
};

class Predictor {
 public:
  static constexpr size_t kWindowBatches = 8;  // records are sorted by length within 8 batches
  // `bad(where, reason)` applies the bad-record policy (throws, or counts and skips).
  using BadRecord = std::function<void(const std::string& where, const std::string& reason)>;
  Predictor(LoadedModel& loaded, io::Output& out, int batch, std::string source, BadRecord bad)
      : m_(loaded),
        out_(out),
        batch_(batch),
        tokenizer_(loaded.vocab, {loaded.meta.lowercase, 100}),
        source_(std::move(source)),
        bad_(std::move(bad)) {}

  void add(std::string id, uint64_t line, const std::string& raw_text) {
    std::string_view text = raw_text;
    if (m_.meta.normalize_tweets) {
      normalize_tweet(text, normalized_);
      text = normalized_;
    }
    Pending p{std::move(id), line, {}};
    tokenizer_.encode(text, p.ids, static_cast<size_t>(m_.meta.max_len));
    pending_.push_back(std::move(p));
    if (pending_.size() >= static_cast<size_t>(batch_) * kWindowBatches) flush();
  }

  // Scores a window of records: sorted by length into batches (so a batch's attention layout is
  // close to its records' lengths), through the padding-free path (equal logits, tested), and
  // written back in input order.
  void flush() {
    if (pending_.empty()) return;
    const size_t n = pending_.size(), L = m_.meta.labels.size();
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return pending_[a].ids.size() < pending_[b].ids.size(); });
    std::vector<float> scores(n * L);
    torch::NoGradGuard no_grad;
    for (size_t start = 0; start < n; start += static_cast<size_t>(batch_)) {
      const size_t end = std::min(n, start + static_cast<size_t>(batch_));
      const int64_t b = static_cast<int64_t>(end - start);
      const int64_t t = static_cast<int64_t>(pending_[order[end - 1]].ids.size());  // the longest (sorted)
      torch::Tensor ids = torch::full({b, t}, static_cast<int64_t>(m_.vocab->pad_id()), torch::kInt64);
      torch::Tensor mask = torch::zeros({b, t}, torch::kInt64);
      int64_t* id = ids.data_ptr<int64_t>();
      int64_t* keep = mask.data_ptr<int64_t>();
      for (int64_t i = 0; i < b; ++i) {
        const auto& v = pending_[order[start + static_cast<size_t>(i)]].ids;
        for (size_t k = 0; k < v.size(); ++k)
          id[i * t + static_cast<int64_t>(k)] = v[k], keep[i * t + static_cast<int64_t>(k)] = 1;
      }
      torch::Tensor probs =
          probabilities(m_.model->logits(ids, mask, /*unpad=*/true, torch::kCPU), m_.meta.problem).contiguous();
      const float* row = probs.data_ptr<float>();
      for (int64_t i = 0; i < b; ++i)
        std::copy(row + i * static_cast<int64_t>(L), row + (i + 1) * static_cast<int64_t>(L),
                  scores.begin() + static_cast<std::ptrdiff_t>(order[start + static_cast<size_t>(i)] * L));
    }
    const float* p = scores.data();
    const int64_t b = static_cast<int64_t>(n);
    for (int64_t i = 0; i < b; ++i) {
      const Pending& r = pending_[static_cast<size_t>(i)];
      // A non-finite score must never read as "not flagged": the record is an error.
      size_t nonfinite = L;
      for (size_t l = 0; l < L && nonfinite == L; ++l)
        if (!std::isfinite(p[static_cast<size_t>(i) * L + l])) nonfinite = l;
      if (nonfinite < L) {
        bad_(source_ + ":" + std::to_string(r.line), "the model's score for '" + m_.meta.labels[nonfinite] +
                                                         "' is not a finite number (the weights or this input "
                                                         "overflow); no flags can be given");
        continue;
      }
      ++records_;
      nlohmann::ordered_json scores = nlohmann::ordered_json::object(), flagged = nlohmann::ordered_json::array();
      size_t best = 0;
      for (size_t l = 0; l < L; ++l) {
        float v = p[static_cast<size_t>(i) * L + l];
        scores[m_.meta.labels[l]] = v;
        if (v > p[static_cast<size_t>(i) * L + best]) best = l;
        if (m_.meta.problem == Problem::kMultiLabel && v >= m_.meta.thresholds[l]) flagged.push_back(m_.meta.labels[l]);
      }
      if (m_.meta.problem == Problem::kMultiClass) flagged.push_back(m_.meta.labels[best]);
      out_.write(nlohmann::ordered_json{{"id", r.id}, {"line", r.line}, {"scores", scores}, {"flagged", flagged}}.dump(
                     -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
                 "\n");
    }
    pending_.clear();
  }
  uint64_t records() const { return records_; }

 private:
  LoadedModel& m_;
  io::Output& out_;
  int batch_;
  WordPieceTokenizer tokenizer_;
  std::string source_;
  BadRecord bad_;
  std::string normalized_;
  std::vector<Pending> pending_;
  uint64_t records_ = 0;
};

int predict(const PredictFlags& flags) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded = load_model_dir(flags.model, torch::kCPU);
  std::vector<std::string> inputs = {flags.input};
  const std::filesystem::path model_dir = resolve_model_path(flags.model);
  for (const char* f : {"model.safetensors", "config.json", "modtrain.json", "vocab.txt"})
    inputs.push_back((model_dir / f).string());
  io::Output out(flags.output, inputs, "--output");
  uint64_t rejected = 0, blank = 0;
  auto bad = [&](const std::string& where, const std::string& reason) {
    if (flags.on_bad_record == "fail") throw UserError(where + ": " + reason + " (use --on-bad-record skip to go on)");
    log::warn(where + ": " + reason + "; skipped");
    ++rejected;
  };
  const std::string source = flags.input == "-" ? "<stdin>" : flags.input;
  Predictor predictor(loaded, out, flags.batch, source, bad);
  const bool plain =
      flags.input == "-" || (flags.input.size() > 4 && flags.input.compare(flags.input.size() - 4, 4, ".txt") == 0);
  if (plain) {  // one text per line; the id is the line number
    std::ifstream in;
    if (flags.input != "-") {
      in.open(flags.input, std::ios::binary);
      if (!in) throw UserError("--input: cannot read " + flags.input);
    }
    std::istream& src = flags.input == "-" ? std::cin : in;
    std::string line;
    for (uint64_t n = 1; std::getline(src, line); ++n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) {  // as `data prepare`: skipped and counted
        ++blank;
        continue;
      }
      predictor.add(std::to_string(n), n, line);
    }
  } else {
    RawShardReader reader(flags.input, LabelSpec{}, /*labels_required=*/false);
    RawUnit unit;
    RawRecord record;
    std::string reason;
    while (reader.next(unit)) {
      if (unit.blank) {
        ++blank;
        continue;
      }
      if (!reader.decode(unit, record, reason)) {
        bad(flags.input + ":" + std::to_string(unit.line), reason);
        continue;
      }
      predictor.add(record.id, unit.line, record.text);
    }
  }
  predictor.flush();
  out.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "predicted %llu records (%llu rejected, %llu blank lines skipped) in %.2f s: %.0f records/s\n",
               static_cast<unsigned long long>(predictor.records()), static_cast<unsigned long long>(rejected),
               static_cast<unsigned long long>(blank), seconds, predictor.records() / std::max(seconds, 1e-9));
  return kExitOk;
}

}  // namespace

void add_predict_commands(CLI::App& app, Action& action) {
  auto export_flags = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* e =
      app.add_subcommand("export", "Write a Hugging Face model directory (transformers / text-embeddings-inference)");
  e->add_option("--checkpoint", export_flags->first, "Model directory (RUN/model)")->required();
  e->add_option("--out", export_flags->second, "Output directory")->required();
  e->callback([&action, export_flags] {
    action = [export_flags] {
      return run_local([&] {
        // Read and validate what is exported (metadata, vocab, every weight finite), then the
        // written copy the same way: an export is never a byte copy of a corrupt model.
        load_model_dir(export_flags->first, torch::kCPU);
        export_huggingface(export_flags->first, export_flags->second);
        load_model_dir(export_flags->second, torch::kCPU);
        std::printf("exported %s -> %s\n", export_flags->first.c_str(), export_flags->second.c_str());
        return kExitOk;
      });
    };
  });

  auto flags = std::make_shared<PredictFlags>();
  CLI::App* p =
      app.add_subcommand("predict", "Score texts with a trained model (JSONL output: scores and flagged labels)");
  p->add_option("--model", flags->model, "Model directory (RUN/model)")->required();
  p->add_option("--input", flags->input, "JSONL/CSV/TSV shard, a .txt file of lines, or - for lines on stdin")
      ->required();
  p->add_option("--output", flags->output, "Output JSONL file, or - for stdout")->capture_default_str();
  p->add_option("--batch", flags->batch, "Records per forward pass")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  p->add_option("--on-bad-record", flags->on_bad_record, "fail or skip")
      ->check(CLI::IsMember({"fail", "skip"}))
      ->capture_default_str();
  p->callback([&action, flags] { action = [flags] { return run_local([&] { return predict(*flags); }); }; });
}

}  // namespace modtrain::tools
