#include "modtrain/data/bpe.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hf_tokenizer_json.h"
#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "unicode.h"

namespace modtrain {

namespace {
using json = nlohmann::json;

// ---- GPT-2's pre-tokenizer ---------------------------------------------------------------------
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ as a scan over code
// points classified once (no regex engine: the pattern has one lookahead and no nesting).
enum class Cls : uint8_t { kLetter, kNumber, kSpace, kOther };

struct CodePoint {
  uint32_t begin, end;  // bytes
  int32_t cp;           // U+FFFD for a byte that is not UTF-8
  Cls cls;
};

Cls classify(char32_t cp) {
  if (unicode::is_whitespace(cp)) return Cls::kSpace;  // \s: Unicode White_Space
  switch (unicode::category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return Cls::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return Cls::kNumber;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return Cls::kSpace;
    default: return Cls::kOther;
  }
}

void decode(std::string_view s, std::vector<CodePoint>& out) {
  out.clear();
  for (size_t i = 0, n = 0; i < s.size(); i += n) {
    const char32_t cp = unicode::decode(s, i, n);  // invalid UTF-8: U+FFFD for one byte
    out.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + n), static_cast<int32_t>(cp), classify(cp)});
  }
}

template <class OnPiece>
void for_each_piece(const std::vector<CodePoint>& cps, OnPiece on_piece) {
  const size_t n = cps.size();
  for (size_t i = 0; i < n;) {
    size_t j = i;
    if (cps[i].cp == '\'' && i + 1 < n) {  // contractions, case-sensitive as in GPT-2
      const int32_t a = cps[i + 1].cp, b = i + 2 < n ? cps[i + 2].cp : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) j = i + 3;
    }
    if (j == i) {
      // " ?X+" for letters, numbers and the rest; a space joins the run that follows it
      const size_t k = (cps[i].cp == ' ' && i + 1 < n && cps[i + 1].cls != Cls::kSpace) ? i + 1 : i;
      const Cls c = cps[k].cls;
      if (c != Cls::kSpace) {
        for (j = k; j < n && cps[j].cls == c;) ++j;
      } else {  // \s+(?!\S): a whitespace run leaves its last character to the word after it
        size_t e = i;
        while (e < n && cps[e].cls == Cls::kSpace) ++e;
        j = (e < n && e - i > 1) ? e - 1 : e;
      }
    }
    on_piece(cps[i].begin, cps[j - 1].end);
    i = j;
  }
}

// GPT-2's printable stand-ins for the 256 byte values (bytes_to_unicode), as UTF-8.
const std::vector<std::string>& byte_chars() {
  static const std::vector<std::string> chars = [] {
    std::vector<std::string> out(256);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unicode::append_utf8(out[static_cast<size_t>(b)], static_cast<char32_t>(printable ? b : next++));
    }
    return out;
  }();
  return chars;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

using hf::fail;

// tokenizer.json's merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
std::pair<std::string, std::string> merge_of(const json& m, const std::string& where) {
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0], m[1]};
  if (m.is_string()) {
    const std::string s = m;
    const size_t space = s.find(' ');
    if (space != std::string::npos && space > 0 && space + 1 < s.size() && s.find(' ', space + 1) == std::string::npos)
      return {s.substr(0, space), s.substr(space + 1)};
  }
  throw UserError(where + " is not a merge (\"left right\" or [\"left\", \"right\"]): " + m.dump());
}
}  // namespace

std::vector<std::string> ByteLevelBpeTokenizer::split(std::string_view text) {
  std::vector<CodePoint> cps;
  decode(text, cps);
  std::vector<std::string> out;
  for_each_piece(cps, [&](uint32_t b, uint32_t e) { out.emplace_back(text.substr(b, e - b)); });
  return out;
}

int32_t ByteLevelBpeTokenizer::id_of(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

void ByteLevelBpeTokenizer::build(std::unordered_map<std::string, int32_t> vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  const std::string& source) {
  int32_t top = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) fail(source, "token " + token + " has the negative id " + std::to_string(id));
    top = std::max(top, id);
  }
  if (top + 1 != static_cast<int32_t>(vocab.size()))
    fail(source, "the vocabulary's ids are not 0.." + std::to_string(vocab.size() - 1) + " (largest " +
                     std::to_string(top) + ")");
  tokens_.assign(vocab.size(), std::string());
  for (const auto& [token, id] : vocab) tokens_[static_cast<size_t>(id)] = token;
  ids_ = std::move(vocab);
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = id_of(byte_chars()[static_cast<size_t>(b)]);
    if (byte_ids_[b] < 0)
      fail(source, "the vocabulary lacks the byte-level character for byte " + std::to_string(b) +
                       " (a byte-level BPE vocabulary has all 256)");
  }
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const int32_t ia = id_of(a), ib = id_of(b), im = id_of(a + b);
    if (ia < 0 || ib < 0 || im < 0)
      fail(source, "merge " + std::to_string(r + 1) + " (" + a + " " + b + "): " +
                       (ia < 0   ? a
                        : ib < 0 ? b
                                 : a + b) +
                       " is not in the vocabulary");
    merges_.emplace(pair_key(ia, ib), Merge{static_cast<int32_t>(r), im});  // a repeated pair keeps its first rank
  }
}

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                                        BpeOptions options) {
  const json v = hf::parse_file(vocab_json, "vocab.json");
  if (!v.is_object()) fail(vocab_json, "not a JSON object of token -> id");
  if (v.empty()) fail(vocab_json, "an empty object; a byte-level BPE vocabulary needs its 256 byte tokens");
  std::unordered_map<std::string, int32_t> vocab;
  for (const auto& [token, id] : v.items()) {
    vocab.emplace(token, hf::id_value(id, vocab_json, "the id of " + token));
  }
  std::istringstream in(io::read_file(merges_txt, io::kMaxReadBytes, "merges.txt"));
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(merge_of(json(line), merges_txt + ":" + std::to_string(number)));
  }
  ByteLevelBpeTokenizer t;
  t.options_ = options;
  t.build(std::move(vocab), merges, vocab_json);
  auto special = [&](const char* name, bool lstrip) {
    const int32_t id = t.id_of(name);
    if (id < 0)
      fail(vocab_json, std::string("has no ") + name + " (RoBERTa's special tokens: <s> <pad> </s> <unk> <mask>)");
    t.added_.push_back({name, id, lstrip, false});
    return id;
  };
  t.specials_.cls = special("<s>", false);
  t.specials_.pad = special("<pad>", false);
  t.specials_.sep = special("</s>", false);
  if (options.add_special) t.template_ = {{t.specials_.cls}, {t.specials_.sep}};
  t.specials_.unk = special("<unk>", false);
  t.specials_.mask = special("<mask>", true);  // RoBERTa's <mask> takes the space before it
  t.added_first_ = hf::first_bytes(t.added_);
  return t;
}

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::from_tokenizer_json(const std::string& path) {
  const json j = hf::parse_file(path, "tokenizer.json");
  auto need = [&](const json& parent, const char* key, const std::string& where) -> const json& {
    if (!parent.is_object() || !parent.contains(key)) fail(path, "no " + where + key);
    return parent.at(key);
  };
  const json& model = need(j, "model", "");
  if (need(model, "type", "model.") != "BPE")
    fail(path, "model.type is " + model.at("type").dump() + ", not BPE (this is the byte-level BPE loader)");
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty()))
      fail(path, std::string("model.") + key + " = " + v.dump() + " is not supported (byte-level BPE has none)");
  }
  if (model.value("byte_fallback", false))
    fail(path, "model.byte_fallback is not supported (byte-level BPE needs none)");
  ByteLevelBpeTokenizer t;
  t.options_.ignore_merges = model.value("ignore_merges", false);
  const json normalizer = hf::without_tweet_steps(j.contains("normalizer") ? j.at("normalizer") : json());
  if (!normalizer.is_null())
    fail(path, "normalizer " + normalizer.value("type", std::string("?")) +
                   " is not supported with byte-level BPE (RoBERTa and GPT-2 have none)");
  const json& pre = need(j, "pre_tokenizer", "");
  if (!pre.is_object() || pre.value("type", "") != "ByteLevel" || !pre.value("use_regex", true))
    fail(path, "pre_tokenizer " + pre.dump().substr(0, 80) + " is not supported (ByteLevel with use_regex expected)");
  t.options_.add_prefix_space = pre.value("add_prefix_space", false);

  const json& v = need(model, "vocab", "model.");
  if (!v.is_object()) fail(path, "model.vocab is not an object of token -> id");
  if (v.empty()) fail(path, "model.vocab is an empty object; a byte-level BPE vocabulary needs its 256 byte tokens");
  std::unordered_map<std::string, int32_t> vocab;
  for (const auto& [token, id] : v.items()) {
    vocab.emplace(token, hf::id_value(id, path, "model.vocab: the id of " + token));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const json& m = need(model, "merges", "model.");
  if (!m.is_array()) fail(path, "model.merges is not an array");
  for (size_t i = 0; i < m.size(); ++i)
    merges.push_back(merge_of(m[i], path + ": model.merges[" + std::to_string(i) + "]"));
  // Added tokens may sit past the model's vocabulary (ids appended): they join the id table.
  std::vector<hf::AddedToken> added = hf::added_tokens(j, path);
  for (const auto& a : added) vocab.emplace(a.content, a.id);
  t.build(std::move(vocab), merges, path);
  t.added_ = std::move(added);

  t.template_ = hf::post_processor(j, path);
  t.specials_.cls = t.template_.before.empty() ? t.id_of("<s>") : t.template_.before.front();
  t.specials_.sep = t.template_.after.empty() ? t.id_of("</s>") : t.template_.after.back();
  t.specials_.pad = t.id_of("<pad>");
  t.specials_.unk = t.id_of("<unk>");
  t.specials_.mask = t.id_of("<mask>");
  t.added_first_ = hf::first_bytes(t.added_);
  return t;
}

void ByteLevelBpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (options_.ignore_merges) {
    std::string mapped;
    for (unsigned char b : word) mapped += byte_chars()[b];
    const int32_t whole = id_of(mapped);
    if (whole >= 0) return out.push_back(whole);
  }
  // Merge the lowest-ranked adjacent pair (leftmost on ties) until none is in the merge table, as
  // HF tokenizers' Word::merge_all does: the symbols form a linked list over the word's bytes and
  // a min-heap holds the candidate merges by (rank, position). A merge updates two links and pushes
  // at most two new candidates; a candidate whose pair has changed since it was pushed is skipped
  // when it comes up. O(n log n) in the word's length: a 1 MB post without spaces is one word, and
  // rescanning the word per merge (the textbook loop) took minutes on it. Same ids: both merge the
  // globally lowest-ranked pair first and the leftmost of equals (tests/unit/test_bpe.cpp compares
  // them on long words; bench/bench_tokenizer.cpp times 1 KB to 4 MB).
  struct Symbol {
    int32_t id, prev, next;  // prev/next: positions in the word, -1 at the ends
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, id;  // merge the pair that starts at symbol `pos` into `id`
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  if (word.size() > static_cast<size_t>(INT32_MAX))
    throw UserError("a word of " + std::to_string(word.size()) + " bytes is longer than BPE can encode (2^31 - 1); " +
                    "lower data.max_record_bytes");
  const int32_t n = static_cast<int32_t>(word.size());
  if (n == 0) return;
  symbols.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i)
    symbols[static_cast<size_t>(i)] = {byte_ids_[static_cast<unsigned char>(word[static_cast<size_t>(i)])], i - 1,
                                       i + 1 < n ? i + 1 : -1, true};
  heap.clear();
  const auto later = std::greater<Candidate>();
  auto consider = [&](int32_t pos) {  // the pair starting at `pos`, if it has a merge
    const Symbol& left = symbols[static_cast<size_t>(pos)];
    if (left.next < 0) return;
    auto it = merges_.find(pair_key(left.id, symbols[static_cast<size_t>(left.next)].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, it->second.id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[static_cast<size_t>(c.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    auto it = merges_.find(pair_key(left.id, right.id));  // stale: the pair has changed since
    if (it == merges_.end() || it->second.rank != c.rank || it->second.id != c.id) continue;
    left.id = c.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
    out.push_back(symbols[static_cast<size_t>(i)].id);
  if (symbols.capacity() > (size_t{1} << 20)) {  // a megabyte word: its scratch is not kept for the thread's life
    std::vector<Symbol>().swap(symbols);
    std::vector<Candidate>().swap(heap);
  }
}

void ByteLevelBpeTokenizer::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::string prefixed;
  if (options_.add_prefix_space && text.front() != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<CodePoint> cps;
  decode(text, cps);
  for_each_piece(cps, [&](uint32_t b, uint32_t e) { encode_word(text.substr(b, e - b), out); });
}

bool ByteLevelBpeTokenizer::encode(std::string_view text, std::vector<int32_t>& out, size_t max_len) const {
  std::vector<int32_t> content;
  hf::split_added(
      text, added_, added_first_, [&](std::string_view segment, bool) { encode_segment(segment, content); },
      [&](int32_t id) { content.push_back(id); });
  return hf::finish(template_, content, max_len, out);
}

namespace {

using ordered = nlohmann::ordered_json;

// RoBERTa's tokenizer.json from its slow files (as transformers' RobertaConverter writes it).
std::string roberta_tokenizer_json(const std::string& vocab_json, const std::string& merges_txt, const Tokenizer& t) {
  ordered vocab;
  try {
    vocab = ordered::parse(io::read_file(vocab_json));
  } catch (const ordered::exception& e) {
    throw UserError(vocab_json + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  ordered merges = ordered::array();
  std::istringstream in(io::read_file(merges_txt));
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(line);
  }
  const SpecialIds& s = t.special_ids();
  ordered added = ordered::array();
  for (int32_t id : {s.cls, s.pad, s.sep, s.unk})
    if (id >= 0) added.push_back(hf::added_token_json(t.token(id), id, false));
  if (s.mask >= 0)
    added.push_back(hf::added_token_json(t.token(s.mask), s.mask, true));  // <mask> takes the space before it
  ordered byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ordered spec = {{"version", "1.0"},
                  {"truncation", nullptr},
                  {"padding", nullptr},
                  {"added_tokens", added},
                  {"normalizer", nullptr},
                  {"pre_tokenizer", byte_level},
                  {"post_processor",
                   {{"type", "RobertaProcessing"},
                    {"sep", {t.token(s.sep), s.sep}},
                    {"cls", {t.token(s.cls), s.cls}},
                    {"trim_offsets", true},
                    {"add_prefix_space", false}}},
                  {"decoder", byte_level},
                  {"model",
                   {{"type", "BPE"},
                    {"dropout", nullptr},
                    {"unk_token", nullptr},
                    {"continuing_subword_prefix", ""},
                    {"end_of_word_suffix", ""},
                    {"fuse_unk", false},
                    {"byte_fallback", false},
                    {"vocab", vocab},
                    {"merges", merges}}}};
  return spec.dump(2) + "\n";
}

// RoBERTa's slow files (vocab.json, merges.txt) from a BPE tokenizer.json's model.
std::pair<std::string, std::string> bpe_slow_files(const std::string& tokenizer_json) {
  const ordered j = ordered::parse(io::read_file(tokenizer_json));
  const ordered& model = j.at("model");
  std::string merges = "#version: 0.2\n";
  for (const auto& m : model.at("merges"))
    merges +=
        (m.is_array() ? m.at(0).get<std::string>() + " " + m.at(1).get<std::string>() : m.get<std::string>()) + "\n";
  return {model.at("vocab").dump() + "\n", merges};
}

}  // namespace

bool ByteLevelBpeTokenizer::continues_word(int32_t id) const {
  return !hf::is_special(specials_, id) && tokens_.at(static_cast<size_t>(id)).rfind("\xC4\xA0", 0) != 0;
}

HfTokenizerLayout ByteLevelBpeTokenizer::hugging_face(const TokenizerFiles& files, int /*max_len*/) const {
  HfTokenizerLayout out;
  const auto& defining = files.defining;
  if (defining.front().first == "vocab.json") {
    out.files.emplace_back("tokenizer.json", roberta_tokenizer_json(defining[0].second, defining[1].second, *this));
  } else {
    const bool has_slow = std::any_of(files.companions.begin(), files.companions.end(),
                                      [](const auto& f) { return f.first == "merges.txt"; });
    if (!has_slow) {
      try {
        auto [vocab, merges] = bpe_slow_files(defining.front().second);
        out.files.emplace_back("vocab.json", std::move(vocab));
        out.files.emplace_back("merges.txt", std::move(merges));
      } catch (const ordered::exception& e) {
        throw UserError(defining.front().second + ": malformed BPE model (" + std::string(e.what()) + ")");
      }
    }
  }
  out.config_json = ordered{
      {"tokenizer_class", "RobertaTokenizer"},
      {"add_prefix_space", false},
      {"trim_offsets", true},
      {"errors",
       "replace"}}.dump();
  out.special_tokens = hf_special_tokens(specials_, true);
  return out;
}

}  // namespace modtrain
