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
#include "modtrain/infer/predictor.h"
#include "modtrain/io/files.h"
#include "modtrain/modelio/model_dir.h"
#include "modtrain/modelio/model_path.h"
#include "modtrain/train/evaluator.h"

namespace modtrain::tools {
namespace {

struct PredictFlags {
  std::string model, input, output = "-", on_bad_record = "fail";
  int batch = 64;
};

int predict(const PredictFlags& flags) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded = load_model_dir(flags.model, torch::kCPU);
  std::vector<std::string> inputs = {flags.input};
  const std::filesystem::path model_dir = resolve_model_path(flags.model);
  for (const char* f : {"model.safetensors", "config.json", "modtrain.json"})
    inputs.push_back((model_dir / f).string());
  for (const auto& [name, path] : find_tokenizer_files(model_dir.string()).defining) inputs.push_back(path);
  io::Output out(flags.output, inputs, "--output");
  uint64_t rejected = 0, blank = 0;
  auto bad = [&](const std::string& where, const std::string& reason) {
    if (flags.on_bad_record == "fail") throw UserError(where + ": " + reason + " (use --on-bad-record skip to go on)");
    log::warn(where + ": " + reason + "; skipped");
    ++rejected;
  };
  const std::string source = flags.input == "-" ? "<stdin>" : flags.input;
  uint64_t records = 0;
  const std::vector<std::string>& labels = loaded.meta.labels;
  Predictor predictor(loaded, flags.batch, [&](const Prediction& p) {
    if (!p.finite) {  // a non-finite score must never read as "not flagged": the record is an error
      size_t l = 0;
      while (l + 1 < p.scores.size() && std::isfinite(p.scores[l])) ++l;
      return bad(source + ":" + std::to_string(p.line), "the model's score for '" + labels[l] +
                                                            "' is not a finite number (the weights or this input "
                                                            "overflow); no flags can be given");
    }
    ++records;
    nlohmann::ordered_json scores = nlohmann::ordered_json::object(), flagged = nlohmann::ordered_json::array();
    for (size_t l = 0; l < labels.size(); ++l) scores[labels[l]] = p.scores[l];
    for (size_t l : p.flagged) flagged.push_back(labels[l]);
    out.write(nlohmann::ordered_json{{"id", p.id}, {"line", p.line}, {"scores", scores}, {"flagged", flagged}}.dump(
                  -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
              "\n");
  });
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
    uint64_t length = 0;
    for (uint64_t n = 1; io::read_line_capped(src, line, kDefaultMaxRecordBytes, length); ++n) {
      if (length > kDefaultMaxRecordBytes) {  // read past, never held: as data.max_record_bytes' default
        bad(source + ":" + std::to_string(n),
            "a line of " + std::to_string(length) + " bytes, longer than the 1 MiB a record may hold");
        continue;
      }
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
               static_cast<unsigned long long>(records), static_cast<unsigned long long>(rejected),
               static_cast<unsigned long long>(blank), seconds, records / std::max(seconds, 1e-9));
  return kExitOk;
}

}  // namespace

void add_predict_commands(CLI::App& app, Action& action) {
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
