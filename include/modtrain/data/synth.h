// `modtrain data synth`: deterministic synthetic tweets, the embedded default dataset for the
// quickstart, the tests and the nightly runs. Mentions, hashtags, URLs, emoji, HTML entities and
// typos; the labels hate, harassment, threat, sexual, self_harm, spam, misinformation with a
// realistic imbalance (most tweets clean), overlapping labels, cue-less positives, label noise,
// and some labels not annotated. Two tasks (docs/synthetic-data.md):
//   context (the default): most positives come from constructions whose label is decided by
//     negation, quotation, stance, speaker or word order, and the same words appear as often in the
//     label's negatives (contrasts), so a bag of words cannot tell them apart;
//   cues: the earlier default generator, each positive label a fixed cue phrase (a bag of words
//     reaches its ceiling); kept for the baselines stored on it.
// Both know each record's latent truth and write the Bayes-optimal scores of the validation split
// (bayes-valid.jsonl): the task's ceiling. Lengths are skewed like real posts: most short, a long tail past
// data.max_len (filler sentences, mentions, hashtags, links and emoji added from a random stream of their own, so a
// record's labels and cue text do not depend on its length). Group names are invented ("the
// Quendari"): no real slurs, no real groups.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace modtrain {

inline const std::vector<std::string>& synth_labels() {
  static const std::vector<std::string> labels = {"hate",      "harassment", "threat",        "sexual",
                                                  "self_harm", "spam",       "misinformation"};
  return labels;
}

enum class SynthTask { kContext, kCues };
const char* synth_task_name(SynthTask task);
struct SynthOptions;
double synth_label_noise(const SynthOptions& options);  // the flip probability in force

struct SynthOptions {
  SynthTask task = SynthTask::kContext;
  std::string out_dir = "data";
  uint64_t train = 20000;
  uint64_t valid = 2000;
  int train_shards = 4;
  int valid_shards = 1;
  uint64_t seed = 1234;
  // Probability that an annotated label is flipped; < 0: the task's own (context 0.005, cues 0.02).
  double label_noise = -1;
  double unannotated = 0.08;  // share of records with some labels not annotated
  // Post lengths: log-normal word counts (median ~14 words, ~5% beyond 45 words, a few past 100,
  // so data.max_len 64 truncates some), as real posts are skewed; false = the short templates alone.
  bool realistic_lengths = true;
  // Languages of the posts, each record's drawn uniformly: en (the default, alone: the English
  // dataset as before) and es, ar, hi, ru, ja (the same labels and cues; records get "lang").
  std::vector<std::string> languages = {"en"};
  // Identity mentions (for the bias metrics; off by default so the default dataset and its baselines stay as they
  // are): ~18% of posts mention one of the invented groups, most of them benignly ("as a Morvish
  // woman i ...", "proud to be Ostrani"), the hateful ones through the hate cues; every record carries
  // each group as a 0/1 field (synth_subgroups()) for data.subgroups.
  bool identities = false;
  // Simulated annotators: 0 = one 0/1 label per record (label_noise flips it); N > 0 = each label is
  // the share of N annotators who said yes (data.soft_labels), each annotator wrong with
  // annotator_noise, more often on posts whose positive label carries no cue (harder cases).
  int annotators = 0;
  double annotator_noise = 0.1;
};

// The identity subgroups of `identities` (the JSONL field names).
inline const std::vector<std::string>& synth_subgroups() {
  static const std::vector<std::string> groups = {"quendari", "zorblaxian", "morvish",
                                                  "telluran", "ostrani",    "vexling"};
  return groups;
}

struct SynthReport {
  std::vector<std::string> files;
  uint64_t records = 0;
  std::vector<uint64_t> positives;  // per label, over both splits (soft labels: share >= 0.5)
  // The validation split, row-major [records x labels]: the Bayes-optimal scores P(truth | what was
  // written), the labels an evaluation binarised at 0.5 sees, and which are annotated.
  std::vector<float> valid_bayes, valid_targets, valid_mask;
  std::string bayes_file;  // the same scores as JSONL ({"id", "scores": {label: p}} per record)
};

// One synthetic record: its JSONL line (no newline), its labels as an evaluation sees them, and the
// Bayes-optimal score of each label.
struct SynthPost {
  std::string id, line;
  bool observed[7] = {}, annotated[7] = {};
  double bayes[7] = {};
};
SynthPost synth_post(uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options);

// One synthetic record as a JSONL line (no newline); deterministic in (seed, split, index).
std::string synth_record(uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options);

SynthReport synthesize_tweets(const SynthOptions& options);

}  // namespace modtrain
