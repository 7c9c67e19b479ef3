// `modtrain data synth | prepare | stats`: the embedded synthetic dataset, raw shards -> prepared
// binary shards, and what a prepared dataset holds.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"
#include "modtrain/data/dataset.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/sampler.h"
#include "modtrain/data/synth.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/guard.h"
#include "modtrain/dist/startup.h"
#include "modtrain/io/files.h"
#include "modtrain/train/metrics.h"

namespace modtrain::tools {
namespace {

// --out must be empty: synthetic shards written over part of an older dataset would leave the
// rest behind, and data.train's glob would then mix two datasets. --force clears it first.
void claim_output_dir(const std::string& dir, bool force) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec))
    throw UserError("--out " + dir + " is " + io::describe_path(dir) + "; give a directory (it is created if missing)");
  size_t entries = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++entries;
  if (ec) throw UserError("--out " + dir + ": cannot list it: " + ec.message(), kExitRuntime);
  if (entries == 0) return;
  if (!force)
    throw UserError("--out " + dir + " is not empty (" + std::to_string(entries) +
                    " entries); new shards would mix with what is there. Use an empty directory, or --force to "
                    "clear it first");
  const fs::path resolved = fs::weakly_canonical(fs::absolute(dir));
  const char* home = std::getenv("HOME");
  if (resolved == resolved.root_path() || (home && fs::equivalent(resolved, home, ec)))
    throw UserError("--force would clear " + resolved.string() + "; refusing to empty / or the home directory");
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    io::remove_tree(it->path().string());
  if (!fs::is_empty(dir, ec)) throw UserError("--force: could not clear " + dir + "; check permissions", kExitRuntime);
}

int data_synth(const SynthOptions& options, bool force) {
  World world;
  return run_guarded(world, [&] {
    if (!world.is_root()) return kExitOk;  // one writer
    claim_output_dir(options.out_dir, force);
    SynthReport report = synthesize_tweets(options);
    std::printf("wrote %llu synthetic tweets (task %s) to %zu files in %s\n",
                static_cast<unsigned long long>(report.records), synth_task_name(options.task), report.files.size(),
                options.out_dir.c_str());
    // The task's ceiling: the Bayes-optimal scorer (the generator's own posterior) evaluated like a
    // model on the validation split.
    const size_t L = synth_labels().size();
    nlohmann::ordered_json ceiling = {
        {"task", synth_task_name(options.task)},
        {"scorer", "Bayes-optimal: P(label | what the generator wrote), " + report.bayes_file},
        {"valid_records", options.valid},
        {"positive_at", 0.5}};
    const std::vector<double> no_thresholds(L, 0.5);  // the ranking metrics do not use them
    const EvalReport r = evaluate_scores(synth_labels(), Problem::kMultiLabel, report.valid_bayes, report.valid_targets,
                                         report.valid_mask, no_thresholds, 0.0);
    auto number = [](double x) { return std::isnan(x) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(x); };
    nlohmann::ordered_json per_label = nlohmann::ordered_json::array();
    for (size_t l = 0; l < L; ++l) {
      const LabelReport& lr = r.labels[l];
      per_label.push_back({{"name", lr.name}, {"pr_auc", number(lr.pr_auc)}, {"roc_auc", number(lr.roc_auc)}});
      std::printf("  %-15s %6.2f%% positive   ceiling PR-AUC %.4f ROC-AUC %.4f\n", synth_labels()[l].c_str(),
                  100.0 * report.positives[l] / std::max<uint64_t>(1, report.records), lr.pr_auc, lr.roc_auc);
    }
    const double macro_pr = r.macro_pr_auc, macro_roc = r.macro_roc_auc;
    ceiling["macro_pr_auc"] = macro_pr;
    ceiling["macro_roc_auc"] = macro_roc;
    ceiling["labels"] = per_label;
    const std::string path = (std::filesystem::path(options.out_dir) / "ceiling.json").string();
    io::write_file_atomic(path, ceiling.dump(2) + "\n");
    std::printf("ceiling (Bayes-optimal scores on the validation split): macro PR-AUC %.4f, ROC-AUC %.4f (%s)\n",
                macro_pr, macro_roc, path.c_str());
    return kExitOk;
  });
}

}  // namespace

PrepareReport prepare_on_all_ranks(const World& world, const Config& config, int threads, std::FILE* summary) {
  std::unique_ptr<Collectives> collectives = make_mpi_collectives(world, config.data.prepare_timeout_s);
  PrepareGroup group;
  group.rank = world.rank(), group.size = world.size();
  group.all_gather = [&](const std::string& text, const std::string& what) {
    return collectives->all_gather_text(text, what);
  };
  PrepareOptions options;  // --threads per rank; by default the cores of this node shared by its ranks
  options.threads =
      threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / world.local_size());
  options.progress = true;
  PrepareReport report = prepare_data(config, options, group);
  if (world.is_root()) std::fprintf(summary, "%s", report.summary().c_str());
  return report;
}

namespace {

int data_prepare(const ConfigFlags& flags, int threads) {
  World world;
  return run_guarded(world, [&] {
    ResolvedConfig resolved = resolve_config_on_all_ranks(world, flags.path, flags.overrides);
    PrepareReport report = prepare_on_all_ranks(world, resolved.config, threads, stdout);
    if (world.is_root())
      std::printf("prepared data in %s (manifest.json) in %.1f s%s\n", resolved.config.data.prepared_dir.c_str(),
                  report.seconds, world.size() > 1 ? (" on " + std::to_string(world.size()) + " ranks").c_str() : "");
    return kExitOk;
  });
}

struct StatsFlags {
  std::string dir;
  bool json = false;
  int batch = 32;
};

// The share of positions a padded batch spends on padding: batches of `batch` records in a
// shuffled order (fixed seed), each padded to its longest record rounded up to 8 (the loader's
// rule); what model.unpad saves in the linear layers.
double padding_fraction(std::vector<uint32_t> lengths, int batch) {
  SplitMix64 rng(0x5EEDu);
  for (size_t i = lengths.size(); i > 1; --i) std::swap(lengths[i - 1], lengths[rng.below(i)]);
  uint64_t real = 0, positions = 0;
  for (size_t start = 0; start < lengths.size(); start += static_cast<size_t>(batch)) {
    const size_t end = std::min(lengths.size(), start + static_cast<size_t>(batch));
    uint32_t longest = 0;
    for (size_t i = start; i < end; ++i) {
      real += lengths[i];
      longest = std::max(longest, lengths[i]);
    }
    positions += (end - start) * ((longest + 7) / 8 * 8);
  }
  return positions ? 1.0 - static_cast<double>(real) / static_cast<double>(positions) : 0.0;
}

int data_stats(const StatsFlags& flags) {
  Manifest m = Manifest::load(flags.dir);
  DataExpectations expect;
  expect.labels = m.labels;
  expect.problem = m.problem == "multi_class" ? Problem::kMultiClass : Problem::kMultiLabel;
  expect.max_len = m.max_len;
  expect.lowercase = m.lowercase;
  expect.normalize_tweets = m.normalize_tweets;
  expect.soft_labels = m.soft_labels;
  expect.subgroups = m.subgroups;
  expect.slice_by = m.slice_by;
  nlohmann::ordered_json out;  // labels in the data's order
  for (const auto& [split, entry] : m.splits) {
    PreparedDataset data = PreparedDataset::open(flags.dir, split, expect);
    std::vector<uint64_t> positives(m.labels.size()), annotated(m.labels.size()), mentions(m.subgroups.size());
    std::vector<uint64_t> histogram((m.max_len + 7) / 8 + 1);
    std::vector<uint32_t> lengths;
    lengths.reserve(data.size());
    uint64_t truncated = 0;
    for (const ShardEntry& e : entry.shards) truncated += e.truncated;
    uint64_t tokens = 0;
    for (size_t s = 0; s < data.num_shards(); ++s) {
      const PreparedShard& shard = data.shard(s);
      for (uint64_t r = 0; r < shard.size(); ++r) {
        for (size_t k = 0; k < m.labels.size(); ++k) {
          const float v = shard.label_value(r, k);  // soft labels: positive from 0.5 (as eval.positive_at's default)
          positives[k] += v >= 0.5f;
          annotated[k] += v >= 0.0f;
        }
        for (size_t g = 0; g < m.subgroups.size(); ++g)
          mentions[g] += shard.subgroup(r, g) != kLabelUnannotated && shard.subgroup(r, g) >= kSoftLabelScale / 2;
        tokens += shard.length(r);
        lengths.push_back(static_cast<uint32_t>(shard.length(r)));
        ++histogram[shard.length(r) / 8];
      }
    }
    nlohmann::ordered_json labels = nlohmann::ordered_json::object();
    for (size_t k = 0; k < m.labels.size(); ++k)
      labels[m.labels[k]] = {{"positives", positives[k]}, {"annotated", annotated[k]}};
    const double padding = padding_fraction(std::move(lengths), flags.batch);  // shuffles its copy
    out[split] = {{"records", data.size()},
                  {"tokens", tokens},
                  {"shards", data.num_shards()},
                  {"labels", labels},
                  {"length_histogram_by_8", histogram},
                  {"truncated", truncated},
                  {"padding_fraction", {{"batch", flags.batch}, {"shuffled", padding}}},
                  {"rejected", entry.rejected()}};
    if (!m.subgroups.empty()) {
      nlohmann::ordered_json groups = nlohmann::ordered_json::object();
      for (size_t g = 0; g < m.subgroups.size(); ++g) groups[m.subgroups[g]] = mentions[g];
      out[split]["subgroup_mentions"] = groups;
    }
    if (flags.json) continue;
    std::printf("%s: %llu records in %zu shards, %llu tokens (%.1f per record), %llu rejected at prepare\n",
                split.c_str(), static_cast<unsigned long long>(data.size()), data.num_shards(),
                static_cast<unsigned long long>(tokens),
                data.size() ? static_cast<double>(tokens) / static_cast<double>(data.size()) : 0.0,
                static_cast<unsigned long long>(entry.rejected()));
    std::printf("  %-16s %10s %10s %8s\n", "label", "positives", "annotated", "rate");
    for (size_t k = 0; k < m.labels.size(); ++k)
      std::printf("  %-16s %10llu %10llu %7.2f%%\n", m.labels[k].c_str(), static_cast<unsigned long long>(positives[k]),
                  static_cast<unsigned long long>(annotated[k]),
                  annotated[k] ? 100.0 * positives[k] / annotated[k] : 0.0);
    for (size_t g = 0; g < m.subgroups.size(); ++g)
      std::printf("  subgroup %-16s %10llu records mention it\n", m.subgroups[g].c_str(),
                  static_cast<unsigned long long>(mentions[g]));
    std::printf(
        "  padded batches of %d in shuffled order: %.1f%% of positions are padding (model.unpad skips them);\n"
        "  %llu records (%.1f%%) were truncated to max_len %lld\n",
        flags.batch, 100.0 * padding, static_cast<unsigned long long>(truncated),
        data.size() ? 100.0 * static_cast<double>(truncated) / static_cast<double>(data.size()) : 0.0,
        static_cast<long long>(m.max_len));
    std::printf("  length (tokens)  records\n");
    uint64_t most = *std::max_element(histogram.begin(), histogram.end());
    for (size_t b = 0; b < histogram.size(); ++b) {
      if (!histogram[b]) continue;
      int bar = most ? static_cast<int>(40.0 * histogram[b] / most) : 0;
      std::printf("  %4zu-%-4zu %10llu %s\n", b * 8, b * 8 + 7, static_cast<unsigned long long>(histogram[b]),
                  std::string(bar, '#').c_str());
    }
  }
  if (flags.json) std::cout << out.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

void add_data_commands(CLI::App& app, Action& action) {
  CLI::App* data = app.add_subcommand("data", "Synthesize, prepare and inspect datasets");

  auto synth = std::make_shared<SynthOptions>();
  CLI::App* s = data->add_subcommand("synth", "Write the deterministic synthetic tweet dataset (JSONL shards)");
  s->add_option("-o,--out", synth->out_dir, "Output directory")->capture_default_str();
  s->add_option("--train", synth->train, "Training records")->capture_default_str()->check(CLI::Range(1, 100000000));
  s->add_option("--valid", synth->valid, "Validation records")->capture_default_str()->check(CLI::Range(1, 100000000));
  s->add_option("--train-shards", synth->train_shards, "Training shard files")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  s->add_option("--valid-shards", synth->valid_shards, "Validation shard files")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  s->add_option("--seed", synth->seed, "Seed (same seed, same files)")->capture_default_str();
  auto task = std::make_shared<std::string>("context");
  s->add_option("--task", *task,
                "context: labels decided by negation, quotation, stance, speaker and order (a bag of words cannot "
                "solve it); cues: one fixed cue phrase per positive label (the earlier default generator)")
      ->check(CLI::IsMember({"context", "cues"}))
      ->capture_default_str();
  auto short_posts = std::make_shared<bool>(false);
  s->add_flag("--short", *short_posts,
              "Short template posts only (before lengths were realistic: most posts short, a long tail past max_len)");
  s->add_option("--languages", synth->languages,
                "Post languages, each record's drawn uniformly: en es ar hi ru ja (comma-separated; default en)")
      ->delimiter(',');
  auto force = std::make_shared<bool>(false);
  s->add_flag("--identities", synth->identities,
              "Mentions of invented identity groups, mostly benign, as 0/1 fields (for data.subgroups)");
  s->add_option("--label-noise", synth->label_noise,
                "Probability that an annotated 0/1 label is flipped (default: the task's, context 0.005, cues 0.02)")
      ->check(CLI::Range(0.0, 0.49));
  s->add_option("--annotators", synth->annotators,
                "Soft labels: each label is the share of N simulated annotators who said yes (0 = 0/1 labels)")
      ->capture_default_str();
  s->add_option("--annotator-noise", synth->annotator_noise, "How often a simulated annotator is wrong")
      ->capture_default_str();
  s->add_flag("--force", *force, "Clear a non-empty --out directory first (otherwise refused)");
  s->callback([&action, synth, force, short_posts, task] {
    synth->realistic_lengths = !*short_posts;
    synth->task = *task == "cues" ? SynthTask::kCues : SynthTask::kContext;
    action = [synth, force] { return data_synth(*synth, *force); };
  });

  auto prepare_flags = std::make_shared<ConfigFlags>();
  auto threads = std::make_shared<int>(0);
  CLI::App* p =
      data->add_subcommand("prepare",
                           "Tokenize data.train / data.valid into prepared shards (data.prepared_dir); under mpirun "
                           "every rank prepares its share, byte for byte what one process writes");
  add_config_flags(*p, *prepare_flags);
  p->add_option("--threads", *threads, "Worker threads per rank (0 = this node's cores shared by its ranks)")
      ->check(CLI::Range(0, 1024));
  p->callback([&action, prepare_flags, threads] {
    action = [prepare_flags, threads] { return data_prepare(*prepare_flags, *threads); };
  });

  auto stats = std::make_shared<StatsFlags>();
  CLI::App* st = data->add_subcommand("stats", "Records, label frequencies and lengths of a prepared dataset");
  st->add_option("dir", stats->dir, "Prepared directory (with manifest.json)")->required();
  st->add_flag("--json", stats->json, "Machine-readable output");
  st->add_option("--batch", stats->batch, "Records per batch for the padding fraction")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  st->callback([&action, stats] { action = [stats] { return run_local([&] { return data_stats(*stats); }); }; });
}

}  // namespace modtrain::tools
