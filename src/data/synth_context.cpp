// The context task (`data synth`, the default; docs/synthetic-data.md): labels that the words alone do not
// decide. Most of a label's positives come from constructions with two factors whose product
// decides the label (docs/synthetic-data.md says what each one tests):
//   flip:  a frame (assert / negate, endorse / condemn, agree / disagree, i / nobody) times a
//          filler of one of two polarities ("the Morvish are vermin" is hate, "the Morvish are not
//          vermin" and "the Morvish are human" are not, "the Morvish are not human" is);
//   order: the same words in another order or from another speaker ("i know where you live" is a
//          threat, "you know where i live" is not);
//   plain: a phrase that is harmful wherever it stands (the part a bag of words can learn).
// Every negative record may carry a contrast: the same constructions arranged to be harmless, drawn
// as often as positives draw them, so each frame word and each filler is as frequent in the label's
// negatives as in its positives. A gap word ("really", "honestly", ...) often sits between the frame
// and the filler, so the deciding pair is not one bigram either.
#include <algorithm>
#include <string>

#include "modtrain/core/text.h"
#include "synth_internal.h"

namespace modtrain::synth_detail {
namespace {

// harmful(frame f, filler g): flip: f == g; order: f == 0 (fillers[0] only); plain: always.
struct Construction {
  Words frames[2];
  Words fillers[2];  // fillers[1] empty: an order construction (or a plain one when frames[1] is empty too)
  bool contrastable() const { return !frames[1].empty(); }
  bool flip() const { return !fillers[1].empty(); }
};
using Constructions = std::vector<Construction>;

// ---- English -------------------------------------------------------------------------------------
// Gaps: a word between a frame and its filler, in affirmed and negated frames alike.
const Words kGaps = {"", "", "", "really", "honestly", "truly", "literally", "actually", "tbh", "ngl", "like"};
const Words kDehumanising = {"vermin", "a disease", "subhuman", "filth", "parasites", "animals", "a plague"};
const Words kHumanising = {"human",          "welcome here", "our neighbours",
                           "people like us", "equal to us",  "part of this country"};
const Words kInsults = {"pathetic", "worthless", "a loser", "an idiot", "a clown", "so ugly", "a waste of space"};
const Words kPraise = {"welcome here", "smart", "a good person", "worth listening to", "one of us", "wanted here"};
const Words kFalseClaims = {"vaccines contain microchips", "5g towers cause illness", "the moon landing was staged",
                            "drinking bleach cures viruses", "the election was rigged by machines"};
const Words kTrueClaims = {"vaccines are safe", "5g towers are harmless", "the moon landing was real",
                           "bleach is poisonous", "the election was fair"};
const Words kNeutralTails = {"", "", " tonight", " after school", " just saying", " see you soon", " remember that"};

// Index = label (hate, harassment, threat, sexual, self_harm, spam, misinformation).
const Constructions kEnglish[kNumLabels] = {
    // hate: negation and counter-speech over a group; the group is mentioned in both outcomes
    {{{{"%G are %A %P", "i think %G are %A %P", "everyone knows %G are %A %P"},
       {"%G are not %A %P", "i don't think %G are %A %P", "nobody thinks %G are %A %P"}},
      {kDehumanising, kHumanising}},
     {{{"calling %G %P is %A fair", "saying %G are %P is %A just the truth", "people who call %G %P are %A right"},
       {"calling %G %P is %A not ok", "saying %G are %P is %A disgusting", "people who call %G %P are %A wrong"}},
      {kDehumanising, kHumanising}},
     {{{"%G %A deserve %P"}, {"%G %A don't deserve %P"}},
      {{"to be deported", "to suffer", "nothing but hate"}, {"rights", "respect", "to live here", "a fair chance"}}},
     {{{"get %G out of our country", "i can't stand %G, they ruin everything"}, {}}, {}}},
    // harassment: negation and agreement with an insult aimed at the reader
    {{{{"you are %A %P", "@%N i think you are %A %P", "i mean it, you are %A %P"},
       {"you are not %A %P", "@%N i don't think you are %A %P", "nobody thinks you are %A %P"}},
      {kInsults, kPraise}},
     {{{"everyone says you are %P, and %A they are right", "they called you %P and %A i agree"},
       {"everyone says you are %P, and %A they are wrong", "they called you %P and %A i disagree"}},
      {kInsults, kPraise}},
     {{{"log off forever loser", "go cry about it clown", "nobody likes you, leave"}, {}}, {}}},
    // threat: who does what to whom
    {{{{"i know %A where you live%P", "i will %A find you%P", "i will %A be waiting for you%P"},
       {"you know %A where i live%P", "you will %A find me%P", "you will %A be waiting for me%P"}},
      {kNeutralTails, {}}},
     {{{"i will %A %P you", "we will %A %P you"}, {"nobody will %A %P you", "no one is going to %A %P you"}},
      {{"hurt", "destroy", "break", "get rid of"}, {"protect", "help", "save", "stand up for"}}},
     {{{"watch your back", "you won't be safe tomorrow"}, {}}, {}}},
    // sexual: an invitation versus a warning about the same request
    {{{{"dm me if you want to %A %P", "you should %A %P with me tonight"},
       {"never %A %P with strangers online", "if someone asks you to %A %P, report them"}},
      {{"swap nudes", "trade spicy pics", "see my 18+ pics", "hook up"}, {}}},
     {{{"hot singles near you", "nsfw link below", "18+ content in my bio"}, {}}, {}}},
    // self_harm: wanting or not wanting, first person or a message of support
    {{{{"i %A want to %P", "some days i %A want to %P"}, {"i %A don't want to %P", "i no longer %A want to %P"}},
      {{"disappear", "end it all", "stop existing", "hurt myself"},
       {"live", "keep going", "wake up tomorrow", "be alive"}}},
     {{{"i feel like i %A can't go on%P", "i think nobody would %A miss me%P"},
       {"if you feel like you %A can't go on%P, please call someone", "remember that people would %A miss you%P"}},
      {{"", " anymore", " lately", " tonight"}, {}}},
     {{{"i hurt myself again", "everything feels hopeless tonight"}, {}}, {}}},
    // spam: an offer to the reader versus a post about the same things
    {{{{"click the link to get %A free %P", "free %P for everyone who follows, %A link below",
        "dm me to win %A free %P"},
       {"i got %A free %P at work today", "my friend won %A free %P at the fair",
        "the %P at the cafe were %A free today"}},
      {{"coffee", "pizza", "tickets", "followers", "phone cases", "concert passes"}, {}}},
     {{{"earn $500 a day from home", "free crypto giveaway", "follow for follow"}, {}}, {}}},
    // misinformation: a false claim asserted or a true claim denied, versus the reverse
    {{{{"it is %A true that %P", "they finally admitted that %A %P", "everyone knows that %A %P"},
       {"it is %A false that %P", "it's a myth that %A %P", "nobody believes that %A %P"}},
      {kFalseClaims, kTrueClaims}},
     {{{"doctors don't want you to know this cure", "the flood was created by the government"}, {}}, {}}},
};

// ---- the other languages: per label one construction and one plain phrase --------------------------
struct ContextLanguage {
  const char* code;
  const char* space;  // what joins a gap word to the next (Japanese: nothing)
  Words gaps;
  Constructions labels[kNumLabels];
};
const ContextLanguage kOtherLanguages[] = {
    {"es",
     " ",
     {"", "", "realmente", "de verdad", "sinceramente"},
     {{{{{"los %G son %A %P"}, {"los %G no son %A %P"}},
        {{"una plaga", "basura", "parásitos"}, {"humanos", "bienvenidos aquí", "nuestros vecinos"}}},
       {{{"fuera los %G de nuestro país"}, {}}, {}}},
      {{{{"eres %A %P"}, {"no eres %A %P"}},
        {{"patético", "un inútil", "un payaso"}, {"bienvenido aquí", "una buena persona", "inteligente"}}},
       {{{"nadie te quiere, lárgate"}, {}}, {}}},
      {{{{"sé %A dónde vives%P"}, {"sabes %A dónde vivo%P"}}, {{"", " esta noche", ", recuérdalo"}, {}}},
       {{{"te vas a arrepentir cuando te vea"}, {}}, {}}},
      {{{{"mándame %A %P"}, {"nunca mandes %A %P a desconocidos"}}, {{"fotos sin ropa", "fotos íntimas"}, {}}},
       {{{"contenido +18 en mi perfil"}, {}}, {}}},
      {{{{"quiero %A %P"}, {"no quiero %A %P"}}, {{"desaparecer", "acabar con todo"}, {"vivir", "seguir adelante"}}},
       {{{"ya no puedo más"}, {}}, {}}},
      {{{{"haz clic para ganar %A %P gratis"}, {"me regalaron %A %P gratis en el trabajo"}},
        {{"café", "entradas", "pizza"}, {}}},
       {{{"gana 500 dólares al día desde casa"}, {}}, {}}},
      {{{{"es %A verdad que %P"}, {"es %A falso que %P"}},
        {{"las vacunas tienen microchips", "las antenas 5g causan enfermedades"},
         {"las vacunas son seguras", "las antenas 5g son inofensivas"}}},
       {{{"los médicos ocultan esta cura"}, {}}, {}}}}},
    {"ar",
     " ",
     {"", "", "حقاً", "فعلاً"},
     {{{{{"صحيح أن %G %A %P"}, {"ليس صحيحاً أن %G %A %P"}},
        {{"حشرات", "قذارة", "وباء"}, {"بشر", "مرحب بهم هنا", "جيراننا"}}},
       {{{"اطردوا %G من بلادنا"}, {}}, {}}},
      {{{{"صحيح أنك %A %P"}, {"ليس صحيحاً أنك %A %P"}},
        {{"مثير للشفقة", "فاشل", "غبي"}, {"مرحب بك هنا", "شخص طيب", "ذكي"}}},
       {{{"لا أحد يحبك، اختفِ"}, {}}, {}}},
      {{{{"أعرف %A أين تسكن%P"}, {"تعرف %A أين أسكن%P"}}, {{"", " الليلة", "، تذكر ذلك"}, {}}},
       {{{"ستندم عندما أراك"}, {}}, {}}},
      {{{{"أرسل لي %A %P"}, {"لا ترسل %A %P للغرباء أبداً"}}, {{"صوراً عارية", "صوراً خاصة"}, {}}},
       {{{"محتوى للكبار فقط في حسابي"}, {}}, {}}},
      {{{{"أريد %A أن %P"}, {"لا أريد %A أن %P"}}, {{"أختفي", "أنهي كل شيء"}, {"أعيش", "أستمر"}}},
       {{{"لم أعد أحتمل"}, {}}, {}}},
      {{{{"اضغط على الرابط لتربح %P مجاناً %A"}, {"حصلت على %P مجاناً في العمل %A"}}, {{"قهوة", "تذاكر", "بيتزا"}, {}}},
       {{{"اربح ٥٠٠ دولار يومياً من المنزل"}, {}}, {}}},
      {{{{"صحيح %A أن %P"}, {"ليس %A صحيحاً أن %P"}},
        {{"اللقاحات تحتوي على شرائح إلكترونية", "أبراج الجيل الخامس تسبب الأمراض"},
         {"اللقاحات آمنة", "أبراج الجيل الخامس غير ضارة"}}},
       {{{"الأطباء يخفون هذا العلاج"}, {}}, {}}}}},
    {"hi",
     " ",
     {"", "", "सच में", "वाकई"},
     {{{{{"%G %A %P हैं, यह सच है"}, {"%G %A %P हैं, यह झूठ है"}},
        {{"कीड़े", "गंदगी", "बीमारी"}, {"इंसान", "हमारे पड़ोसी", "यहाँ स्वागत योग्य"}}},
       {{{"%G को हमारे देश से निकालो"}, {}}, {}}},
      {{{{"तुम %A %P हो, यह सच है"}, {"तुम %A %P हो, यह झूठ है"}},
        {{"बेकार", "बेवकूफ़", "जोकर"}, {"अच्छे इंसान", "समझदार", "यहाँ स्वागत योग्य"}}},
       {{{"तुम्हें कोई पसंद नहीं करता, चले जाओ"}, {}}, {}}},
      {{{{"मुझे %A पता है तुम कहाँ रहते हो%P"}, {"तुम्हें %A पता है मैं कहाँ रहता हूँ%P"}}, {{"", " आज रात", ", याद रखना"}, {}}},
       {{{"जब मैं तुम्हें देखूँगा तब पछताओगे"}, {}}, {}}},
      {{{{"मुझे %A %P भेजो"}, {"अजनबियों को कभी %A %P मत भेजो"}}, {{"न्यूड तस्वीरें", "निजी तस्वीरें"}, {}}},
       {{{"मेरी प्रोफ़ाइल में 18+ कंटेंट"}, {}}, {}}},
      {{{{"मैं %A %P चाहता हूँ"}, {"मैं %A %P नहीं चाहता"}}, {{"गायब होना", "सब खत्म करना"}, {"जीना", "आगे बढ़ना"}}},
       {{{"अब और सहन नहीं होता"}, {}}, {}}},
      {{{{"लिंक पर क्लिक करो और %A मुफ़्त %P जीतो"}, {"मुझे आज काम पर %A मुफ़्त %P मिली"}}, {{"कॉफ़ी", "टिकटें", "पिज़्ज़ा"}, {}}},
       {{{"घर बैठे रोज़ 500 डॉलर कमाएँ"}, {}}, {}}},
      {{{{"यह %A सच है कि %P"}, {"यह %A झूठ है कि %P"}},
        {{"टीकों में माइक्रोचिप होती है", "5g टावर बीमारी फैलाते हैं"}, {"टीके सुरक्षित हैं", "5g टावर हानिरहित हैं"}}},
       {{{"डॉक्टर यह इलाज छुपाते हैं"}, {}}, {}}}}},
    {"ru",
     " ",
     {"", "", "реально", "правда"},
     {{{{{"правда, что %G — %A %P"}, {"неправда, что %G — %A %P"}},
        {{"паразиты", "мусор", "зараза"}, {"люди", "наши соседи", "здесь желанные гости"}}},
       {{{"гоните %G из нашей страны"}, {}}, {}}},
      {{{{"правда, что ты %A %P"}, {"неправда, что ты %A %P"}},
        {{"жалкий", "никчёмный", "клоун"}, {"хороший человек", "умный", "здесь свой"}}},
       {{{"тебя никто не любит, уходи"}, {}}, {}}},
      {{{{"я %A знаю, где ты живёшь%P"}, {"ты %A знаешь, где я живу%P"}},
        {{"", " сегодня вечером", ", помни об этом"}, {}}},
       {{{"ты пожалеешь, когда я тебя найду"}, {}}, {}}},
      {{{{"пришли мне %A %P"}, {"никогда %A не присылай %P незнакомцам"}}, {{"откровенные фото", "интимные фото"}, {}}},
       {{{"контент 18+ в профиле"}, {}}, {}}},
      {{{{"я %A хочу %P"}, {"я %A не хочу %P"}}, {{"исчезнуть", "покончить со всем"}, {"жить", "двигаться дальше"}}},
       {{{"я больше не могу"}, {}}, {}}},
      {{{{"жми на ссылку и выиграй %A бесплатный %P"}, {"мне %A дали бесплатный %P на работе"}},
        {{"кофе", "билет", "телефон"}, {}}},
       {{{"зарабатывай 500 долларов в день из дома"}, {}}, {}}},
      {{{{"это %A правда, что %P"}, {"это %A ложь, что %P"}},
        {{"в вакцинах есть микрочипы", "вышки 5g вызывают болезни"}, {"вакцины безопасны", "вышки 5g безвредны"}}},
       {{{"врачи скрывают это лекарство"}, {}}, {}}}}},
    {"ja",
     "",
     {"", "", "本当に", "正直"},
     {{{{{"%Gは%A%Pだ"}, {"%Gは%A%Pではない"}}, {{"害虫", "ゴミ", "病気"}, {"人間", "私たちの隣人", "歓迎される存在"}}},
       {{{"%Gをこの国から追い出せ"}, {}}, {}}},
      {{{{"お前は%A%Pだ"}, {"お前は%A%Pではない"}},
        {{"情けない奴", "役立たず", "ピエロ"}, {"いい人", "賢い人", "仲間"}}},
       {{{"誰もお前のことなんか好きじゃない、消えろ"}, {}}, {}}},
      {{{{"お前の住所は%A知ってる%P"}, {"私の住所は%A知ってるよね%P"}}, {{"", "、今夜", "、覚えておけ"}, {}}},
       {{{"会ったら後悔させてやる"}, {}}, {}}},
      {{{{"%A%Pを送って"}, {"知らない人に%A%Pを送らないで"}}, {{"裸の写真", "エッチな写真"}, {}}},
       {{{"プロフに18禁コンテンツあり"}, {}}, {}}},
      {{{{"%A%Pたい"}, {"%A%Pたくない"}}, {{"消え", "全部終わりにし"}, {"生き", "前に進み"}}},
       {{{"もう耐えられない"}, {}}, {}}},
      {{{{"リンクをクリックして%A無料の%Pをゲット"}, {"今日職場で%A無料の%Pをもらった"}},
        {{"コーヒー", "チケット", "ピザ"}, {}}},
       {{{"自宅で1日500ドル稼げる"}, {}}, {}}},
      {{{{"%A%P、調べてみて"}, {"%Pというのは%A嘘だ"}},
        {{"ワクチンにはマイクロチップが入っている", "5gの電波塔が病気を引き起こす"},
         {"ワクチンは安全だ", "5gの電波塔は無害だ"}}},
       {{{"医者はこの治療法を隠している"}, {}}, {}}}}},
};

constexpr double kSpamUrl = 0.6, kOtherUrl = 0.25;  // how often a post ends with a link

const Words kDecoys = {"this song kills me",   "i'm dead 😂",
                       "that exam was brutal", "the spam in my inbox is wild",
                       "i hate mondays",       "you're killing me with these jokes",
                       "what a hot day"};

// How often a negative record carries a contrast for a label: as many contrasts as positives carry
// contrastable constructions, so frame words and fillers are as common in negatives as in positives.
// A positive's construction is a plain phrase with this probability (in every language), otherwise
// one of the label's contrastable constructions.
constexpr double kPlainShare = 0.2;
// A positive carries a construction; 10% carry none (the part no model can find).
constexpr double kConstructionRate = 0.9;
double contrast_rate(size_t label) {
  static const std::vector<double> marginal = [] {  // P(truth) after the correlations
    std::vector<double> m(kNumLabels, 0.0);
    const std::vector<double>& prior = truth_prior(SynthTask::kContext);
    for (size_t pattern = 0; pattern < prior.size(); ++pattern)
      for (size_t l = 0; l < kNumLabels; ++l)
        if ((pattern >> l) & 1) m[l] += prior[pattern];
    return m;
  }();
  const double r = marginal[label];
  return r * kConstructionRate * (1 - kPlainShare) / (1 - r);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// One construction of `set` written harmful (positive) or harmless (contrast). `group` receives the
// group index when the template names one.
std::string construct(Rng& rng, const Constructions& set, bool positive, const Words& gaps, const char* space,
                      const Words& groups, int& group) {
  const bool plain = positive && rng.chance(kPlainShare);
  std::vector<const Construction*> usable;
  for (const Construction& c : set)
    if (c.contrastable() != plain) usable.push_back(&c);
  const Construction& c = *usable[rng.below(usable.size())];
  size_t frame = 0, filler = 0;
  if (c.flip()) {
    frame = rng.below(2);
    filler = positive ? frame : 1 - frame;
  } else if (!positive) {
    frame = 1;
  }
  std::string s = rng.pick(c.frames[frame]);
  if (!c.fillers[0].empty()) replace_all(s, "%P", rng.pick(c.fillers[filler]));
  const std::string gap = rng.pick(gaps);
  replace_all(s, "%A", gap.empty() ? "" : gap + space);
  if (s.find("%N") != std::string::npos) replace_all(s, "%N", rng.pick(kNames));
  if (s.find("%G") != std::string::npos) {
    group = static_cast<int>(rng.below(groups.size()));
    replace_all(s, "%G", groups[static_cast<size_t>(group)]);
  }
  replace_all(s, "  ", " ");
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

const ContextLanguage* find_context_language(const std::string& code) {
  for (const ContextLanguage& l : kOtherLanguages)
    if (code == l.code) return &l;
  return nullptr;
}

}  // namespace

double context_likelihood(size_t label, bool truth, Evidence e) {
  if (truth) return e == Evidence::kPositive ? kConstructionRate : e == Evidence::kNone ? 1 - kConstructionRate : 0.0;
  return e == Evidence::kPositive ? 0.0 : e == Evidence::kContrast ? contrast_rate(label) : 1 - contrast_rate(label);
}

double context_url_likelihood(bool spam, bool url) {
  const double p = spam ? kSpamUrl : kOtherUrl;
  return url ? p : 1 - p;
}

void context_post(Rng& rng, uint64_t seed, const std::string& split, uint64_t index, const SynthOptions& options,
                  Latent& latent) {
  const ContextLanguage* language = find_context_language(latent.language);  // nullptr: English
  const Words& clean = language ? *language_clean(latent.language) : kClean;
  const Words& gaps = language ? language->gaps : kGaps;
  const char* space = language ? language->space : " ";
  std::vector<std::string> parts;
  if (rng.chance(0.5)) parts.push_back(rng.pick(clean));
  if (!language && rng.chance(0.3)) parts.push_back(rng.pick(clean));
  latent.mentions.assign(kGroups.size(), 0);
  for (size_t l = 0; l < kNumLabels; ++l) {
    Evidence e = Evidence::kNone;
    if (latent.truth[l]) e = rng.chance(kConstructionRate) ? Evidence::kPositive : Evidence::kNone;
    else if (rng.chance(contrast_rate(l))) e = Evidence::kContrast;
    latent.evidence[l] = e;
    if (e == Evidence::kNone) continue;
    int group = -1;
    parts.push_back(construct(rng, language ? language->labels[l] : kEnglish[l], e == Evidence::kPositive, gaps, space,
                              language ? kGroupNames : kGroups, group));
    if (group >= 0) latent.mentions[static_cast<size_t>(group)] = 1;
  }
  if (!language && rng.chance(0.1)) parts.push_back(rng.pick(kDecoys));
  if (options.identities) add_benign_mention(seed, split, index, parts, latent.mentions);
  if (parts.empty()) parts.push_back(rng.pick(clean));
  for (size_t i = parts.size(); i > 1; --i) std::swap(parts[i - 1], parts[rng.below(i)]);

  std::string& text = latent.text;
  if (rng.chance(0.15)) text += std::string("RT @") + rng.pick(kNames) + ": ";
  if (rng.chance(0.25)) text += std::string("@") + rng.pick(kNames) + " ";
  append_sentences(rng, parts, text);
  if (rng.chance(0.3)) text += std::string(" ") + rng.pick(kEmoji);
  latent.url = rng.chance(latent.truth[5] ? kSpamUrl : kOtherUrl);
  if (latent.url) append_link(rng, text);
  if (rng.chance(0.3)) text += std::string(" ") + rng.pick(kHashtags);
  if (options.realistic_lengths) lengthen_record(seed, split, index, text, clean);
}

}  // namespace modtrain::synth_detail
