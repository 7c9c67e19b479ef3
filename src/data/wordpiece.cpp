#include "modtrain/data/wordpiece.h"

#include <fstream>
#include <sstream>

#include "bert_words.h"
#include "hf_tokenizer_json.h"
#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/io/files.h"

namespace modtrain {

// ---- Vocab -------------------------------------------------------------------------------------
namespace {
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}
constexpr std::string_view kContinuation = "##";
}  // namespace

void Vocab::Table::build(const std::vector<std::pair<std::string_view, int32_t>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2 + 1) capacity <<= 1;
  slots.assign(capacity, {std::string_view(), -1});
  mask = capacity - 1;
  for (const auto& [key, id] : entries) {
    size_t slot = hash_bytes(key) & mask;
    while (slots[slot].second >= 0 && slots[slot].first != key) slot = (slot + 1) & mask;
    slots[slot] = {key, id};  // a duplicate token keeps the last id, as Hugging Face does
  }
}

int32_t Vocab::Table::find(std::string_view key) const {
  if (slots.empty()) return -1;
  size_t slot = hash_bytes(key) & mask;
  while (slots[slot].second >= 0) {
    if (slots[slot].first == key) return slots[slot].second;
    slot = (slot + 1) & mask;
  }
  return -1;
}

Vocab Vocab::load(const std::string& path) {
  std::string text;
  try {  // a regular file of bounded size (a device or FIFO would never end)
    text = io::read_file(path, io::kMaxReadBytes, "vocab");
  } catch (const UserError& e) {
    throw UserError(std::string(e.what()) + " (train one with `modtrain tokenizer train` or check tokenizer.vocab)",
                    e.exit_code());
  }
  std::istringstream in(text);
  Vocab vocab;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    vocab.tokens_.push_back(line);
  }
  vocab.index(path);
  return vocab;
}

Vocab Vocab::from_tokens(const std::vector<std::string>& tokens) {
  Vocab vocab;
  vocab.tokens_ = tokens;
  vocab.index("<memory>");
  return vocab;
}

void Vocab::index(const std::string& source) {
  std::vector<std::pair<std::string_view, int32_t>> initial, continuation;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    std::string_view t = tokens_[id];
    if (t.size() > kContinuation.size() && t.substr(0, 2) == kContinuation) {
      continuation.emplace_back(t.substr(2), static_cast<int32_t>(id));
      max_piece_bytes_ = std::max(max_piece_bytes_, t.size() - 2);
    } else {
      initial.emplace_back(t, static_cast<int32_t>(id));
      max_piece_bytes_ = std::max(max_piece_bytes_, t.size());
    }
  }
  initial_.build(initial);
  continuation_.build(continuation);
  pad_ = id_of("[PAD]");
  unk_ = id_of("[UNK]");
  cls_ = id_of("[CLS]");
  sep_ = id_of("[SEP]");
  mask_ = id_of("[MASK]");
  if (unk_ < 0 || cls_ < 0 || sep_ < 0 || pad_ < 0) {
    throw UserError(source + ": not a BERT vocab: [PAD], [UNK], [CLS] and [SEP] must each be on a line of their own (" +
                    std::to_string(tokens_.size()) + " lines read)");
  }
}

int32_t Vocab::find(std::string_view piece, bool continuation) const {
  return continuation ? continuation_.find(piece) : initial_.find(piece);
}

int32_t Vocab::id_of(std::string_view token) const {
  if (token.size() > 2 && token.substr(0, 2) == kContinuation) return continuation_.find(token.substr(2));
  return initial_.find(token);
}

// ---- WordPieceTokenizer ---------------------------------------------------------------------
WordPieceTokenizer::WordPieceTokenizer(std::shared_ptr<const Vocab> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(options) {
  specials_ = {vocab_->pad_id(), vocab_->unk_id(), vocab_->cls_id(), vocab_->sep_id(), vocab_->mask_id()};
}

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const std::string& path) {
  using json = nlohmann::json;
  const json j = hf::parse_file(path, "tokenizer.json");
  const json model = j.value("model", json());
  if (model.value("type", std::string()) != "WordPiece")
    hf::fail(path, "model.type is " + model.value("type", json("none")).dump() + ", not WordPiece");
  if (model.value("continuing_subword_prefix", std::string("##")) != "##")
    hf::fail(path, "model.continuing_subword_prefix must be \"##\" (BERT's)");
  const json v = model.value("vocab", json());
  if (!v.is_object()) hf::fail(path, "model.vocab is not an object of token -> id");
  if (v.empty()) hf::fail(path, "model.vocab is an empty object; a WordPiece vocabulary needs its tokens");
  std::vector<std::string> tokens(v.size());
  for (const auto& [token, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<size_t>() >= tokens.size() ||
        !tokens[id.get<size_t>()].empty())
      hf::fail(path, "model.vocab: the id of " + token + " is not one of 0.." + std::to_string(tokens.size() - 1) +
                         " or repeats");
    tokens[id.get<size_t>()] = token;
  }
  WordPieceOptions options;
  options.max_input_chars_per_word = model.value("max_input_chars_per_word", size_t{100});
  const json n = hf::without_tweet_steps(j.value("normalizer", json()));
  if (!n.is_object() || n.value("type", "") != "BertNormalizer")
    hf::fail(path,
             "normalizer " + n.dump().substr(0, 60) + " is not supported with WordPiece (BertNormalizer expected)");
  options.lowercase = n.value("lowercase", true);
  const json strip = n.value("strip_accents", json());
  if (!strip.is_null() && strip.get<bool>() != options.lowercase)
    hf::fail(path, "normalizer.strip_accents " + strip.dump() + " with lowercase " +
                       (options.lowercase ? "true" : "false") +
                       " is not supported (modtrain strips accents exactly when it lowercases, as bert-base does)");
  if (!n.value("clean_text", true) || !n.value("handle_chinese_chars", true))
    hf::fail(path, "normalizer: clean_text and handle_chinese_chars must be true (BERT's)");
  if (j.value("pre_tokenizer", json()).value("type", "") != "BertPreTokenizer")
    hf::fail(path, "pre_tokenizer must be BertPreTokenizer for WordPiece");
  Vocab vocab;
  try {
    vocab = Vocab::from_tokens(tokens);
  } catch (const UserError& e) {
    const std::string what = e.what();
    hf::fail(path, "model.vocab is " + what.substr(what.find(": ") + 2));
  }
  const hf::Template t = hf::post_processor(j, path);
  if (t.before != std::vector<int32_t>{vocab.cls_id()} || t.after != std::vector<int32_t>{vocab.sep_id()})
    hf::fail(path, "post_processor must put [CLS] before and [SEP] after the ids (BERT's template)");
  // Added tokens (HF's AddedVocabulary): matched in the text before the normalizer and the
  // pre-tokenizer, as BertTokenizerFast does ([USER] is one id, not [ user ]). One in model.vocab
  // must carry its vocab id; the others take the ids after the vocabulary, without gaps.
  std::vector<hf::AddedToken> added = hf::added_tokens(j, path);
  const json& specs = j.contains("added_tokens") ? j.at("added_tokens") : json::array();
  std::vector<std::string> appended;
  for (size_t k = 0; k < added.size(); ++k) {
    hf::AddedToken& a = added[k];
    const std::string what = "added_tokens: " + json(a.content).dump() + " has id " + std::to_string(a.id);
    const bool special = specs[k].value("special", false), normalized = specs[k].value("normalized", !special);
    if (normalized && options.lowercase) {  // HF matches it in the normalized (lowercased) text
      for (char& c : a.content) {
        if (static_cast<unsigned char>(c) >= 0x80)
          hf::fail(path, what +
                             " and is normalized with non-ASCII text; modtrain matches normalized added tokens "
                             "by ASCII case only (set \"normalized\": false)");
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      a.fold_case = true;
    }
    const int32_t in_vocab = vocab.id_of(specs[k].value("content", std::string()));
    if (a.id < static_cast<int32_t>(tokens.size())) {
      if (tokens[static_cast<size_t>(a.id)] != specs[k].value("content", std::string()))
        hf::fail(path, what + ", which model.vocab gives to " + json(tokens[static_cast<size_t>(a.id)]).dump() +
                           "; an added token's id must be its own");
    } else if (in_vocab >= 0) {
      hf::fail(path, what + " but model.vocab has it as id " + std::to_string(in_vocab) + "; the ids conflict");
    } else if (static_cast<size_t>(a.id) != tokens.size() + appended.size()) {
      hf::fail(path, what + "; added tokens outside model.vocab take the ids from " + std::to_string(tokens.size()) +
                         " on, in order, without gaps or repeats");
    } else {
      appended.push_back(specs[k].value("content", std::string()));
    }
  }
  if (!appended.empty()) {
    tokens.insert(tokens.end(), appended.begin(), appended.end());
    vocab = Vocab::from_tokens(tokens);
  }
  WordPieceTokenizer out(std::make_shared<Vocab>(std::move(vocab)), options);
  out.added_ = std::move(added);
  out.added_first_ = hf::first_bytes(out.added_);
  return out;
}

namespace {
// Greedy longest-match-first over one word; appends its pieces or a single [UNK].
void word_pieces(const Vocab& vocab, std::string_view word, size_t max_chars, std::vector<int32_t>& out) {
  size_t chars = 0;
  for (unsigned char c : word) chars += (c & 0xC0) != 0x80;
  if (chars > max_chars) {
    out.push_back(vocab.unk_id());
    return;
  }
  const size_t rollback = out.size();
  const size_t max_piece = vocab.max_piece_bytes();
  size_t start = 0;
  while (start < word.size()) {
    size_t end = std::min(word.size(), start + max_piece);
    while (end < word.size() && end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
    int32_t id = -1;
    while (end > start) {
      id = vocab.find(word.substr(start, end - start), start > 0);
      if (id >= 0) break;
      do --end;
      while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (id < 0) {  // some part matches nothing: the whole word is unknown
      out.resize(rollback);
      out.push_back(vocab.unk_id());
      return;
    }
    out.push_back(id);
    start = end;
  }
}
}  // namespace

bool WordPieceTokenizer::encode(std::string_view text, std::vector<int32_t>& out, size_t max_len) const {
  out.clear();
  out.push_back(vocab_->cls_id());
  const size_t limit = max_len >= 2 ? max_len - 1 : SIZE_MAX;  // room left for [SEP]
  bool truncated = false;
  if (added_.empty()) {
    encode_words(text, out, limit, truncated);
  } else {
    hf::split_added(
        text, added_, added_first_,
        [&](std::string_view segment, bool) {
          if (!truncated) encode_words(segment, out, limit, truncated);
        },
        [&](int32_t id) {
          if (truncated || out.size() >= limit) truncated = true;
          else out.push_back(id);
        });
  }
  out.push_back(vocab_->sep_id());
  return truncated;
}

void WordPieceTokenizer::encode_words(std::string_view text, std::vector<int32_t>& out, size_t limit,
                                      bool& truncated) const {
  thread_local std::string scratch;
  const Vocab& vocab = *vocab_;
  auto room = [&] {
    if (out.size() < limit) return true;
    truncated = true;
    return false;
  };
  bert::for_each_word(
      text, options_.lowercase, &vocab, scratch,
      [&](std::string_view word) {
        if (!room()) return false;
        word_pieces(vocab, word, options_.max_input_chars_per_word, out);
        if (out.size() > limit) {
          out.resize(limit);
          truncated = true;
          return false;
        }
        return true;
      },
      [&](int32_t special) {
        if (!room()) return false;
        out.push_back(special);
        return true;
      });
}

std::string wordpiece_tokenizer_json(const Vocab& vocab, bool lowercase, int max_len) {
  using ordered = nlohmann::ordered_json;
  ordered vocab_map = ordered::object();
  for (size_t i = 0; i < vocab.size(); ++i) vocab_map[vocab.token(static_cast<int32_t>(i))] = i;
  ordered added = ordered::array();
  for (const char* special : kSpecialTokens) {
    int32_t id = vocab.id_of(special);
    if (id >= 0) added.push_back(hf::added_token_json(special, id, false));
  }
  auto special = [&](const char* t) { return ordered{{"id", t}, {"ids", {vocab.id_of(t)}}, {"tokens", {t}}}; };
  ordered spec = {
      {"version", "1.0"},
      {"truncation", {{"direction", "Right"}, {"max_length", max_len}, {"strategy", "LongestFirst"}, {"stride", 0}}},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "BertNormalizer"},
        {"clean_text", true},
        {"handle_chinese_chars", true},
        {"strip_accents", nullptr},
        {"lowercase", lowercase}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"[CLS]", special("[CLS]")}, {"[SEP]", special("[SEP]")}}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab", vocab_map}}}};
  return spec.dump(2) + "\n";
}

bool WordPieceTokenizer::continues_word(int32_t id) const {
  return !hf::is_special(specials_, id) && vocab_->token(id).rfind("##", 0) == 0;
}

HfTokenizerLayout WordPieceTokenizer::hugging_face(const TokenizerFiles& files, int max_len) const {
  HfTokenizerLayout out;
  if (files.defining.front().first != "tokenizer.json")
    out.files.emplace_back("tokenizer.json", wordpiece_tokenizer_json(*vocab_, options_.lowercase, max_len));
  out.config_json = nlohmann::ordered_json{
      {"tokenizer_class", "BertTokenizer"},
      {"do_lower_case", options_.lowercase},
      {"strip_accents", nullptr},
      {"tokenize_chinese_chars",
       true}}.dump();
  out.special_tokens = hf_special_tokens(specials_, false);
  return out;
}

std::vector<std::string> WordPieceTokenizer::words(std::string_view text) const {
  std::vector<std::string> result;
  std::string scratch;
  bert::for_each_word(
      text, options_.lowercase, vocab_.get(), scratch,
      [&](std::string_view w) {
        result.emplace_back(w);
        return true;
      },
      [&](int32_t id) {
        result.push_back(vocab_->token(id));
        return true;
      });
  return result;
}

}  // namespace modtrain
