// What the two synthetic tasks (synth.cpp: cues, synth_context.cpp: context) share: the random
// stream, the latent record each generator draws, and the tweet noise both put around a post.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "modtrain/data/sampler.h"
#include "modtrain/data/synth.h"

namespace modtrain::synth_detail {

using Words = std::vector<const char*>;
constexpr size_t kNumLabels = 7;  // synth_labels()

struct Rng {
  SplitMix64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform() { return static_cast<double>(gen.next() >> 11) * (1.0 / 9007199254740992.0); }
  bool chance(double p) { return uniform() < p; }
  size_t below(size_t n) { return static_cast<size_t>(gen.below(n)); }
  const char* pick(const Words& w) { return w[below(w.size())]; }
};

// What a generator knows about one record besides its text: the latent truth, and for each label
// what was written for it (the evidence a Bayes-optimal scorer would see).
enum class Evidence : uint8_t {
  kNone,      // nothing about the label (a negative, or a positive that carries no cue)
  kPositive,  // a construction that makes the label true
  kContrast,  // (context task) the same words arranged so that the label is false
};
struct Latent {
  bool truth[kNumLabels] = {};
  Evidence evidence[kNumLabels] = {};
  bool url = false;               // the trailing link (spam posts carry one more often)
  std::vector<uint8_t> mentions;  // per identity group (synth_subgroups())
  std::string text, language = "en";
};

// The correlated latent truth both tasks draw first (hate -> harassment, threat -> harassment,
// spam -> sexual), and the exact prior over its 128 values that the Bayes scores need.
const double* base_rates(SynthTask task);  // per label, before the correlations
void draw_truth(Rng& rng, SynthTask task, bool truth[kNumLabels]);
const std::vector<double>& truth_prior(SynthTask task);  // indexed by the bit pattern sum(truth[l] << l)
constexpr double kCueRate = 0.85;                        // cues task: a positive carries a cue phrase; 15% carry none

// The context task (synth_context.cpp): fills latent.text, evidence, url and mentions after the
// truth was drawn. `rng` is the record's stream.
void context_post(Rng& rng, uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options,
                  Latent& latent);
// P(evidence | truth) of the context task for one label, and of the url.
double context_likelihood(size_t label, bool truth, Evidence e);
double context_url_likelihood(bool spam, bool url);

// Shared tweet noise: a typo now and then in a word of a sentence; the log-normal length filler
// and the benign identity mentions, each from a stream of its own (labels never depend on them).
std::string with_typos(Rng& rng, const std::string& sentence);
// The parts joined as one post (". " or " &amp; " between them), each with typos and now and then
// in capitals; a t.co or bit.ly link.
void append_sentences(Rng& rng, const std::vector<std::string>& parts, std::string& text);
void append_link(Rng& rng, std::string& text);
void lengthen_record(uint64_t seed, const std::string& split, uint64_t index, std::string& text, const Words& chatter);
void add_benign_mention(uint64_t seed, const std::string& split, uint64_t index, std::vector<std::string>& parts,
                        std::vector<uint8_t>& mentions);
const Words* language_clean(const std::string& code);  // a language's clean sentences (nullptr: unknown)
extern const Words kClean, kHashtags, kEmoji, kNames, kGroups, kGroupNames;

}  // namespace modtrain::synth_detail
