#include "modtrain/data/synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "synth_internal.h"

// The driver of both tasks (latent truth, annotations, Bayes scores, files) and the cues task: the
// generator before the context task became the default, kept for the stored baselines (`data synth --task cues`): each
// positive label's fixed cue phrase, decoys that share a word with a cue, label noise.
namespace modtrain::synth_detail {

using nlohmann::json;

// ---- vocabulary of the generator ------------------------------------------------------------
namespace {
const Words kSubjects = {"i",        "we",        "my friends", "my mom",    "the team",
                         "everyone", "this city", "my boss",    "our class", "the neighbours"};
}  // namespace
const Words kClean = {"just watched the game and it was amazing",
                      "can't wait for the weekend",
                      "coffee first then everything else",
                      "the new album is on repeat all day",
                      "traffic on the bridge is terrible again",
                      "finally finished my thesis",
                      "who else is watching the finale tonight",
                      "made pasta from scratch for the first time",
                      "rainy days are for reading",
                      "our dog learned a new trick",
                      "the concert last night was unreal",
                      "so proud of my little sister",
                      "need recommendations for a good podcast",
                      "happy birthday to my best friend",
                      "this weather is perfect for a run",
                      "the bus was late again this morning",
                      "trying a new recipe tonight",
                      "what a goal in the last minute",
                      "studying for exams all week",
                      "the sunset from the beach today",
                      "new phone who dis",
                      "monday mood activated",
                      "love this song so much",
                      "anyone else tired of meetings",
                      "the museum has a new exhibit",
                      "killing it at the gym today",
                      "this movie is so bad it's good",
                      "my plants are finally growing",
                      "gonna sleep for twelve hours",
                      "that test destroyed me lol"};
const Words kGroups = {"the Quendari", "Zorblaxians", "the Morvish", "Tellurans", "the Ostrani", "Vexlings"};
namespace {
const Words kHate = {"%G are subhuman and should be banned", "%G are vermin",           "%G ruin everything they touch",
                     "i can't stand %G, they are filth",     "%G don't deserve rights", "get %G out of our country",
                     "%G are a disease on this society"};
const Words kHarass = {"you are pathetic",        "nobody likes you", "log off forever loser",
                       "you're so ugly it hurts", "shut up idiot",    "everyone is laughing at you",
                       "go cry about it clown",   "you're worthless"};
const Words kThreat = {"i will find you",       "watch your back",         "you'll regret this when i see you",
                       "i know where you live", "someone should hurt you", "you won't be safe tomorrow"};
const Words kSexual = {"send nudes",           "dm me for spicy pics", "18+ content in my bio", "wanna hook up tonight",
                       "hot singles near you", "nsfw link below"};
const Words kSelfHarm = {"i want to disappear",  "i can't go on anymore", "thinking about ending it all",
                         "nobody would miss me", "i hurt myself again",   "everything feels hopeless tonight"};
const Words kSpam = {"buy now limited offer", "click the link for free followers", "free crypto giveaway",
                     "follow for follow",     "earn $500 a day from home",         "best deals only today",
                     "claim your prize now"};
const Words kMisinfo = {"vaccines contain microchips",
                        "the election was rigged by machines",
                        "5g towers cause illness",
                        "doctors don't want you to know this cure",
                        "the moon landing was staged",
                        "drinking bleach cures viruses",
                        "the flood was created by the government"};
const Words kDecoys = {"this song kills me",
                       "i'm dead 😂",
                       "that exam was brutal",
                       "the spam in my inbox is wild",
                       "fake news is a real problem",
                       "i hate mondays",
                       "you're killing me with these jokes",
                       "free coffee at work today",
                       "what a hot day"};
}  // namespace
const Words kHashtags = {"#mood", "#news", "#blessed", "#gameday", "#tbt", "#fail", "#wow", "#truth", "#deal", "#help"};
const Words kEmoji = {"😂", "🔥", "😭", "🙏", "💯", "❤️", "😡", "🤡", "👀", "😍", "💀", "🥰"};
const Words kNames = {"jess_22",     "MikeTheBike", "news_now",    "dr_amy",
                      "xx_gamer_xx", "Paula",       "crypto_king", "teamblue"};
namespace {
const Words kForeign = {"que asco", "привет всем", "c'est la vie", "das ist gut", "jajaja", "mdr"};

// Posts in other scripts (`data synth --languages`): the same labels and cues in Spanish, Arabic,
// Hindi, Russian and Japanese, so that tests and the nightly exercise the BPE and Unigram
// tokenizers end to end. Invented group names, no real slurs or groups, as above.
}  // namespace
const Words kGroupNames = {"Quendari", "Zorblaxians", "Morvish", "Tellurans", "Ostrani", "Vexlings"};
namespace {
struct Language {
  const char* code;
  Words clean;
  Words cues[7];  // hate, harassment, threat, sexual, self_harm, spam, misinformation
};
const Language kLanguages[] = {
    {"es",
     {"acabo de ver el partido y fue increíble", "qué ganas de que llegue el fin de semana",
      "primero café y luego todo lo demás", "el tráfico en el puente está fatal otra vez", "por fin terminé mi tesis",
      "feliz cumpleaños a mi mejor amiga"},
     {{"los %G son una plaga y deberían prohibirlos", "no soporto a los %G, son basura"},
      {"eres patético", "nadie te quiere, lárgate"},
      {"sé dónde vives", "te vas a arrepentir cuando te vea"},
      {"mándame fotos sin ropa", "contenido +18 en mi perfil"},
      {"ya no puedo más", "quiero desaparecer"},
      {"compra ya oferta limitada", "gana 500 dólares al día desde casa"},
      {"las vacunas tienen microchips", "las antenas 5g causan enfermedades"}}},
    {"ar",
     {"شاهدت المباراة للتو وكانت رائعة", "لا أستطيع انتظار عطلة نهاية الأسبوع", "القهوة أولاً ثم كل شيء آخر",
      "أخيراً أنهيت رسالتي", "عيد ميلاد سعيد لأعز صديق", "الطقس اليوم مثالي للجري"},
     {{"%G حشرات ويجب طردهم", "لا أطيق %G، إنهم قذارة"},
      {"أنت مثير للشفقة", "لا أحد يحبك، اختفِ"},
      {"أعرف أين تسكن", "ستندم عندما أراك"},
      {"أرسل صوراً عارية", "محتوى للكبار فقط في حسابي"},
      {"لم أعد أحتمل", "أريد أن أختفي"},
      {"اشترِ الآن عرض محدود", "اربح ٥٠٠ دولار يومياً من المنزل"},
      {"اللقاحات تحتوي على شرائح إلكترونية", "أبراج الجيل الخامس تسبب الأمراض"}}},
    {"hi",
     {"अभी मैच देखा, कमाल का था", "वीकेंड का इंतज़ार नहीं हो रहा", "पहले चाय, फिर बाकी सब", "आखिरकार मेरी थीसिस पूरी हो गई",
      "मेरे सबसे अच्छे दोस्त को जन्मदिन मुबारक", "आज दौड़ने के लिए मौसम एकदम सही है"},
     {{"%G कीड़े हैं, इन पर पाबंदी लगनी चाहिए", "मैं %G को बर्दाश्त नहीं कर सकता, ये गंदगी हैं"},
      {"तुम बेकार हो", "तुम्हें कोई पसंद नहीं करता, चले जाओ"},
      {"मुझे पता है तुम कहाँ रहते हो", "जब मैं तुम्हें देखूँगा तब पछताओगे"},
      {"न्यूड तस्वीरें भेजो", "मेरी प्रोफ़ाइल में 18+ कंटेंट"},
      {"अब और सहन नहीं होता", "मैं गायब हो जाना चाहता हूँ"},
      {"अभी खरीदें सीमित ऑफ़र", "घर बैठे रोज़ 500 डॉलर कमाएँ"},
      {"टीकों में माइक्रोचिप होती है", "5g टावर बीमारी फैलाते हैं"}}},
    {"ru",
     {"только что посмотрел матч, это было потрясающе", "скорее бы выходные", "сначала кофе, потом всё остальное",
      "наконец-то закончил диплом", "с днём рождения, лучший друг", "сегодня отличная погода для пробежки"},
     {{"%G — паразиты, их надо запретить", "терпеть не могу %G, они мусор"},
      {"ты жалкий", "тебя никто не любит, уходи"},
      {"я знаю, где ты живёшь", "ты пожалеешь, когда я тебя найду"},
      {"пришли откровенные фото", "контент 18+ в профиле"},
      {"я больше не могу", "хочу исчезнуть"},
      {"купи сейчас, предложение ограничено", "зарабатывай 500 долларов в день из дома"},
      {"в вакцинах есть микрочипы", "вышки 5g вызывают болезни"}}},
    {"ja",
     {"今試合を見たけど最高だった", "週末が待ちきれない", "まずコーヒー、それから全部", "やっと論文が終わった",
      "親友、誕生日おめでとう", "今日はランニング日和だ"},
     {{"%Gは害虫だ、追い出すべきだ", "%Gには我慢できない、あいつらはゴミだ"},
      {"お前は情けない", "誰もお前のことなんか好きじゃない、消えろ"},
      {"お前の住所は知ってる", "会ったら後悔させてやる"},
      {"裸の写真を送って", "プロフに18禁コンテンツあり"},
      {"もう耐えられない", "消えてしまいたい"},
      {"今すぐ購入、期間限定", "自宅で1日500ドル稼げる"},
      {"ワクチンにはマイクロチップが入っている", "5gの電波塔が病気を引き起こす"}}},
};

const Language* find_language(const std::string& code) {
  for (const Language& l : kLanguages)
    if (code == l.code) return &l;
  return nullptr;
}

struct LabelModel {
  const char* name;
  double rate;
  const Words* cues;
};
// Base rates: most tweets are clean; positives overlap (hate often comes with harassment).
const LabelModel kLabels[] = {{"hate", 0.07, &kHate},
                              {"harassment", 0.09, &kHarass},
                              {"threat", 0.04, &kThreat},
                              {"sexual", 0.05, &kSexual},
                              {"self_harm", 0.03, &kSelfHarm},
                              {"spam", 0.08, &kSpam},
                              {"misinformation", 0.06, &kMisinfo}};
static_assert(sizeof(kLabels) / sizeof(kLabels[0]) == kNumLabels);

std::string typo(Rng& rng, const std::string& word) {
  bool ascii = std::all_of(word.begin(), word.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (word.size() < 4 || !ascii || !rng.chance(0.04)) return word;
  std::string w = word;
  size_t i = 1 + rng.below(w.size() - 2);
  switch (rng.below(3)) {
    case 0: std::swap(w[i], w[i + 1]); break;  // swap
    case 1: w.erase(i, 1); break;              // drop
    default: w.insert(i, 1, w[i]); break;      // double
  }
  return w;
}

// A standard normal draw (Box-Muller) for the log-normal lengths.
double normal(Rng& rng) {
  const double u1 = std::max(rng.uniform(), 1e-12), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

size_t words_in(const std::string& text) {
  size_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ';
    n += !space && !in_word;
    in_word = !space;
  }
  return n;
}

// Pads `text` to a drawn word count with what long posts are made of (more chatter, mentions,
// hashtags, links, emoji). Labels are decided before and do not change: filler is clean.
void lengthen(Rng& rng, std::string& text, const Words& chatter) {
  const double median_words = 14, sigma = 0.75;
  const size_t target = static_cast<size_t>(std::clamp(median_words * std::exp(sigma * normal(rng)), 3.0, 150.0));
  for (size_t words = words_in(text); words < target;) {
    std::string more;
    const double kind = rng.uniform();
    if (kind < 0.62) more = rng.pick(chatter);
    else if (kind < 0.76) more = rng.pick(kHashtags);
    else if (kind < 0.86) more = rng.pick(kEmoji);
    else if (kind < 0.95) more = std::string("@") + rng.pick(kNames);
    else more = "https://t.co/" + text::hex64(rng.gen.next()).substr(0, 8);
    text += (kind < 0.62 && rng.chance(0.5) ? ". " : " ") + more;
    words += words_in(more);
  }
}

// Fills %G with a group; `group` receives its index (kGroups order = synth_subgroups()).
std::string fill(Rng& rng, const char* pattern, int* group = nullptr) {
  std::string s = pattern;
  size_t at = s.find("%G");
  if (at != std::string::npos) {
    const size_t g = rng.below(kGroups.size());
    s.replace(at, 2, kGroups[g]);
    if (group) *group = static_cast<int>(g);
  }
  return s;
}

// Benign identity mentions (%N: the group's adjective): what a toxicity model must not flag.
const Words kGroupAdjectives = {"Quendari", "Zorblaxian", "Morvish", "Telluran", "Ostrani", "Vexling"};
const Words kBenignMentions = {"as a %N woman i love this city",         "proud to be %N",
                               "my %N grandmother makes the best bread", "happy new year to all my %N friends",
                               "as a %N man i find this hilarious",      "the %N festival downtown was beautiful",
                               "learning the %N language this year",     "our %N neighbours invited us for dinner"};

uint64_t stream(uint64_t seed, const std::string& split, uint64_t index, uint64_t a, uint64_t b, uint64_t c) {
  return seed * a ^ text::fnv1a64(split) ^ (index * b) ^ c;
}

// The cues task: a clean sentence, cue phrases for (most) positive labels, decoys, tweet noise.
// With more than one language the other languages' phrases replace the English.
void cues_post(Rng& rng, uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options,
               Latent& latent) {
  const Language* language = latent.language == "en" ? nullptr : find_language(latent.language);
  std::vector<std::string> parts;
  latent.mentions.assign(kGroups.size(), 0);
  if (language) {
    auto fill_group = [&](const char* pattern) {
      std::string t = pattern;
      const size_t at = t.find("%G");
      if (at != std::string::npos) t.replace(at, 2, rng.pick(kGroupNames));
      return t;
    };
    if (rng.chance(0.5)) parts.push_back(rng.pick(language->clean));
    for (size_t l = 0; l < kNumLabels; ++l)
      if (latent.truth[l] && rng.chance(kCueRate)) {
        parts.push_back(fill_group(rng.pick(language->cues[l])));
        latent.evidence[l] = Evidence::kPositive;
      }
    if (parts.empty()) parts.push_back(rng.pick(language->clean));
  } else {
    if (rng.chance(0.5)) parts.push_back(rng.pick(kClean));
    if (rng.chance(0.5)) parts.push_back(rng.pick(kClean));
    for (size_t l = 0; l < kNumLabels; ++l) {
      if (latent.truth[l] && rng.chance(kCueRate)) {  // 15% carry no cue
        int group = -1;
        parts.push_back(fill(rng, rng.pick(*kLabels[l].cues), &group));
        if (group >= 0) latent.mentions[static_cast<size_t>(group)] = 1;
        latent.evidence[l] = Evidence::kPositive;
      }
    }
    if (rng.chance(0.12)) parts.push_back(rng.pick(kDecoys));
    if (parts.empty()) parts.push_back(rng.pick(kClean));
  }
  if (options.identities && !language) add_benign_mention(seed, split, index, parts, latent.mentions);
  for (size_t i = parts.size(); i > 1; --i) std::swap(parts[i - 1], parts[rng.below(i)]);
  std::string& text = latent.text;
  if (rng.chance(0.15)) text += std::string("RT @") + rng.pick(kNames) + ": ";
  if (rng.chance(0.25)) text += std::string("@") + rng.pick(kNames) + " ";
  if (rng.chance(0.3) && !language) text += std::string(rng.pick(kSubjects)) + ": ";
  append_sentences(rng, parts, text);
  if (rng.chance(0.3)) text += std::string(" ") + rng.pick(kEmoji);
  if (rng.chance(0.15)) text += std::string(" ") + rng.pick(kEmoji) + rng.pick(kEmoji);
  latent.url = rng.chance(0.25) || latent.truth[5];
  if (latent.url) append_link(rng, text);
  if (rng.chance(0.3)) text += std::string(" ") + rng.pick(kHashtags);
  if (rng.chance(0.03) && !language) text += std::string(" ") + rng.pick(kForeign);
  if (options.realistic_lengths) lengthen_record(seed, split, index, text, language ? language->clean : kClean);
}

double cues_likelihood(bool truth, Evidence e) {
  if (truth) return e == Evidence::kPositive ? kCueRate : 1 - kCueRate;
  return e == Evidence::kPositive ? 0.0 : 1.0;
}

// P(truth[l] | evidence) for every label: the exact posterior over the 128 truth patterns, their
// prior times the likelihood of what the generator wrote (each label's evidence and the link).
void bayes_scores(SynthTask task, const Latent& latent, double out[kNumLabels]) {
  const std::vector<double>& prior = truth_prior(task);
  double total = 0, marginal[kNumLabels] = {};
  for (size_t pattern = 0; pattern < prior.size(); ++pattern) {
    double p = prior[pattern];
    for (size_t l = 0; l < kNumLabels && p > 0; ++l) {
      const bool t = (pattern >> l) & 1;
      p *= task == SynthTask::kContext ? context_likelihood(l, t, latent.evidence[l])
                                       : cues_likelihood(t, latent.evidence[l]);
    }
    const bool spam = (pattern >> 5) & 1;
    p *= task == SynthTask::kContext ? context_url_likelihood(spam, latent.url)
                                     : (latent.url ? (spam ? 1.0 : 0.25) : (spam ? 0.0 : 0.75));
    total += p;
    for (size_t l = 0; l < kNumLabels; ++l)
      if ((pattern >> l) & 1) marginal[l] += p;
  }
  // Rounded to 1e-6: records with the same evidence for a label have the same posterior, and the
  // summation's rounding must not break their tie (a float evaluation would merge them, a double
  // one would order them by rounding noise).
  for (size_t l = 0; l < kNumLabels; ++l) out[l] = total > 0 ? std::round(marginal[l] / total * 1e6) / 1e6 : 0.0;
}

}  // namespace

const double* base_rates(SynthTask task) {
  // cues: the rates of the earlier generator. context: an enriched training set (about half
  // the posts clean, as moderation sets sampled for annotation are), so that each construction has
  // enough examples on both sides to be learnt in the quickstart's few minutes.
  static const double cues[kNumLabels] = {0.07, 0.09, 0.04, 0.05, 0.03, 0.08, 0.06};
  static const double context[kNumLabels] = {0.10, 0.10, 0.08, 0.07, 0.06, 0.10, 0.09};
  return task == SynthTask::kContext ? context : cues;
}

void draw_truth(Rng& rng, SynthTask task, bool truth[kNumLabels]) {
  const double* rates = base_rates(task);
  for (size_t l = 0; l < kNumLabels; ++l) truth[l] = rng.chance(rates[l]);
  if (truth[0] && rng.chance(0.4)) truth[1] = true;  // hate -> harassment
  if (truth[2] && rng.chance(0.5)) truth[1] = true;  // threat -> harassment
  if (truth[5] && rng.chance(0.2)) truth[3] = true;  // spam -> sexual (adult spam)
}

const std::vector<double>& truth_prior(SynthTask task) {
  static const auto make = [](SynthTask t) {
    const double* rates = base_rates(t);
    std::vector<double> p(size_t{1} << kNumLabels, 0.0);
    for (size_t base = 0; base < p.size(); ++base) {
      double pb = 1;
      for (size_t l = 0; l < kNumLabels; ++l) pb *= (base >> l) & 1 ? rates[l] : 1 - rates[l];
      for (unsigned coins = 0; coins < 8; ++coins) {  // the three correlation draws, each taken or not
        const double pc = (coins & 1 ? 0.4 : 0.6) * (coins & 2 ? 0.5 : 0.5) * (coins & 4 ? 0.2 : 0.8);
        size_t t = base;
        if ((t & 1) && (coins & 1)) t |= 2;
        if ((t & 4) && (coins & 2)) t |= 2;
        if ((t & 32) && (coins & 4)) t |= 8;
        p[t] += pb * pc;
      }
    }
    return p;
  };
  static const std::vector<double> context = make(SynthTask::kContext), cues = make(SynthTask::kCues);
  return task == SynthTask::kContext ? context : cues;
}

std::string with_typos(Rng& rng, const std::string& s) {
  std::string sentence;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(' ', start);
    if (end == std::string::npos) end = s.size();
    if (!sentence.empty()) sentence += ' ';
    sentence += typo(rng, s.substr(start, end - start));
    start = end + 1;
  }
  return sentence;
}

void append_sentences(Rng& rng, const std::vector<std::string>& parts, std::string& text) {
  for (size_t p = 0; p < parts.size(); ++p) {
    std::string sentence = with_typos(rng, parts[p]);
    if (rng.chance(0.08)) {
      for (auto& c : sentence) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    text += sentence;
    text += p + 1 < parts.size() ? (rng.chance(0.5) ? ". " : " &amp; ") : "";
  }
}

void append_link(Rng& rng, std::string& text) {
  text += std::string(" ") + (rng.chance(0.5) ? "https://t.co/" : "http://bit.ly/") +
          text::hex64(rng.gen.next()).substr(0, 8);
}

void lengthen_record(uint64_t seed, const std::string& split, uint64_t index, std::string& text, const Words& chatter) {
  Rng filler(stream(seed, split, index, 0xA24BAED4963EE407ULL, 0x9FB21C651E98DF25ULL, 0x5851F42D4C957F2DULL));
  lengthen(filler, text, chatter);
}

void add_benign_mention(uint64_t seed, const std::string& split, uint64_t index, std::vector<std::string>& parts,
                        std::vector<uint8_t>& mentions) {
  Rng id(stream(seed, split, index, 0x2545F4914F6CDD1DULL, 0xBF58476D1CE4E5B9ULL, 0x94D049BB133111EBULL));
  if (id.chance(0.15)) {
    const size_t g = id.below(kGroups.size());
    std::string t = id.pick(kBenignMentions);
    t.replace(t.find("%N"), 2, kGroupAdjectives[g]);
    parts.push_back(t);
    mentions[g] = 1;
  }
}

const Words* language_clean(const std::string& code) {
  const Language* l = find_language(code);
  return l ? &l->clean : nullptr;
}

}  // namespace modtrain::synth_detail

namespace modtrain {

using namespace synth_detail;

const char* synth_task_name(SynthTask task) { return task == SynthTask::kContext ? "context" : "cues"; }

double synth_label_noise(const SynthOptions& options) {
  if (options.label_noise >= 0) return options.label_noise;
  return options.task == SynthTask::kContext ? 0.005 : 0.02;
}

SynthPost synth_post(uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options) {
  Rng rng(seed * 0x9E3779B97F4A7C15ULL ^ text::fnv1a64(split) ^ (index * 0xD6E8FEB86659FD93ULL));
  // 1. Latent labels with correlations.
  Latent latent;
  draw_truth(rng, options.task, latent.truth);
  const bool* truth = latent.truth;

  // 2. Text. With more than one language, each record's language is drawn from a stream of its own
  //    (so the English-only dataset is unchanged).
  if (options.languages.size() > 1) {
    Rng pick(stream(seed, split, index, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL, 0x27D4EB2F165667C5ULL));
    latent.language = options.languages[pick.below(options.languages.size())];
  }
  if (options.task == SynthTask::kContext) context_post(rng, seed, split, index, options, latent);
  else cues_post(rng, seed, split, index, options, latent);

  // 3. Annotations: label noise, and some labels not annotated (multi-source data).
  const double label_noise = synth_label_noise(options);
  json labels;
  bool partial = rng.chance(options.unannotated);
  if (partial) {
    labels = json::object();
    for (size_t l = 0; l < kNumLabels; ++l) {
      bool value = truth[l] != rng.chance(label_noise);
      labels[kLabels[l].name] = rng.chance(0.35) ? json(nullptr) : json(value ? 1 : 0);
    }
  } else {
    labels = json::array();
    for (size_t l = 0; l < kNumLabels; ++l)
      if (truth[l] != rng.chance(label_noise)) labels.push_back(kLabels[l].name);
  }
  if (options.annotators > 0) {  // the share of N annotators who said yes; nulls stay not annotated
    Rng votes(stream(seed, split, index, 0x369DEA0F31A53F85ULL, 0xDB4F0B9175AE2165ULL, 0x4F1BBCDCBFA53E0AULL));
    json shares = json::object();
    for (size_t l = 0; l < kNumLabels; ++l) {
      if (labels.is_object() && labels[kLabels[l].name].is_null()) {
        shares[kLabels[l].name] = nullptr;
        continue;
      }
      const double noise = std::min(0.5, options.annotator_noise * (truth[l] && votes.chance(0.3) ? 2.5 : 1.0));
      int yes = 0;
      for (int a = 0; a < options.annotators; ++a) yes += truth[l] != votes.chance(noise);
      shares[kLabels[l].name] = static_cast<double>(yes) / options.annotators;
    }
    labels = shares;
  }
  SynthPost post;
  for (size_t l = 0; l < kNumLabels; ++l) {  // what an evaluation binarised at 0.5 sees
    const json v = labels.is_object() ? labels.value(kLabels[l].name, json(nullptr)) : json(nullptr);
    post.annotated[l] = labels.is_array() || v.is_number();
    post.observed[l] = labels.is_array() ? std::find(labels.begin(), labels.end(), kLabels[l].name) != labels.end()
                                         : v.is_number() && v.get<double>() >= 0.5;
  }
  bayes_scores(options.task, latent, post.bayes);
  json record = {{"id", split + "-" + std::to_string(index)}, {"text", latent.text}, {"labels", labels}};
  if (options.languages.size() > 1) record["lang"] = latent.language;
  if (options.identities)
    for (size_t g = 0; g < kGroups.size(); ++g) record[synth_subgroups()[g]] = latent.mentions[g];
  post.id = record["id"].get<std::string>();
  post.line = record.dump();
  return post;
}

std::string synth_record(uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options) {
  return synth_post(seed, split, index, options).line;
}

SynthReport synthesize_tweets(const SynthOptions& options) {
  namespace fs = std::filesystem;
  if (options.train_shards < 1 || options.valid_shards < 1)
    throw UserError("data synth: shard counts must be at least 1");
  if (options.annotators < 0 || options.annotators > 1000)
    throw UserError("data synth: --annotators is " + std::to_string(options.annotators) +
                    "; give 0 (0/1 labels) to 1000");
  if (!(options.annotator_noise >= 0 && options.annotator_noise <= 0.5))
    throw UserError("data synth: --annotator-noise must lie in [0, 0.5]");
  if (!(options.label_noise < 0.5)) throw UserError("data synth: --label-noise must lie in [0, 0.5)");
  if (options.languages.empty()) throw UserError("data synth: --languages is empty; give e.g. en or en,es,ar,hi,ru,ja");
  for (const std::string& code : options.languages)
    if (code != "en" && !find_language(code))
      throw UserError("data synth: --languages has '" + code + "'; known: en, es, ar, hi, ru, ja");
  fs::create_directories(options.out_dir);
  SynthReport report;
  report.positives.assign(kNumLabels, 0);
  const std::string bayes_path = (fs::path(options.out_dir) / "bayes-valid.jsonl").string();
  std::ofstream bayes_out(bayes_path, std::ios::binary);
  if (!bayes_out) throw UserError("data synth: cannot write " + bayes_path);
  for (const auto& [split, count, shards] :
       {std::tuple<std::string, uint64_t, int>{"train", options.train, options.train_shards},
        std::tuple<std::string, uint64_t, int>{"valid", options.valid, options.valid_shards}}) {
    for (int s = 0; s < shards; ++s) {
      uint64_t begin = count * static_cast<uint64_t>(s) / static_cast<uint64_t>(shards);
      uint64_t end = count * static_cast<uint64_t>(s + 1) / static_cast<uint64_t>(shards);
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05d.jsonl", split.c_str(), s);
      std::string path = (fs::path(options.out_dir) / name).string();
      std::ofstream out(path, std::ios::binary);
      if (!out) throw UserError("data synth: cannot write " + path);
      for (uint64_t i = begin; i < end; ++i) {
        const SynthPost post = synth_post(options.seed, split, i, options);
        for (size_t l = 0; l < kNumLabels; ++l) report.positives[l] += post.observed[l];
        out << post.line << '\n';
        if (split != "valid") continue;
        json scores = json::object();
        for (size_t l = 0; l < kNumLabels; ++l) {
          scores[kLabels[l].name] = post.bayes[l];
          report.valid_bayes.push_back(static_cast<float>(post.bayes[l]));
          report.valid_targets.push_back(post.observed[l] ? 1.0f : 0.0f);
          report.valid_mask.push_back(post.annotated[l] ? 1.0f : 0.0f);
        }
        bayes_out << json{{"id", post.id}, {"scores", scores}}.dump() << '\n';
      }
      if (!out) throw UserError("data synth: cannot write " + path + " (disk full?)", kExitRuntime);
      report.files.push_back(path);
      report.records += end - begin;
    }
  }
  if (!bayes_out.flush()) throw UserError("data synth: cannot write " + bayes_path + " (disk full?)", kExitRuntime);
  report.bayes_file = bayes_path;
  return report;
}

}  // namespace modtrain
