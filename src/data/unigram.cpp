#include "modtrain/data/unigram.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>

#include "hf_tokenizer_json.h"
#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "unicode.h"

namespace modtrain {

namespace {
using json = nlohmann::json;
using hf::fail;

std::string base64_decode(const std::string& in, const std::string& path) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const size_t v = alphabet.find(c);
    if (v == std::string::npos) fail(path, "precompiled_charsmap is not base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// darts-clone's double-array unit fields (SentencePiece's charsmap trie).
bool has_leaf(uint32_t u) { return ((u >> 8) & 1) != 0; }
uint32_t value_of(uint32_t u) { return u & ((1U << 31) - 1); }
uint32_t label_of(uint32_t u) { return u & ((1U << 31) | 0xFF); }
uint32_t offset_of(uint32_t u) { return (u >> 10) << ((u & (1U << 9)) >> 6); }
}  // namespace

UnigramTokenizer UnigramTokenizer::from_tokenizer_json(const std::string& path) {
  return from_spec(hf::parse_file(path, "tokenizer.json"), path);
}

// ---- sentencepiece.bpe.model: SentencePiece's ModelProto ------------------------------------------
// Read by hand (protobuf's wire format: varints, fixed32 and length-delimited fields; Debian's
// libsentencepiece-dev ships no sentencepiece_model.pb.h) and turned into the tokenizer.json that
// transformers' XLMRobertaConverter writes for it, so that a directory with only the .model
// tokenizes exactly as AutoTokenizer (which converts it the same way) would.
namespace {
struct ProtoReader {
  std::string_view data;
  size_t at = 0;
  const std::string& path;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= data.size()) fail(path, "truncated SentencePiece model (a varint runs past the end)");
      const auto c = static_cast<unsigned char>(data[at++]);
      v |= static_cast<uint64_t>(c & 0x7F) << shift;
      if (c < 0x80) return v;
    }
    fail(path, "not a SentencePiece model (a varint longer than 10 bytes)");
  }
  // Calls on_field(number, wire type, varint value, bytes) for each field.
  template <class F>
  void fields(F on_field) {
    while (at < data.size()) {
      const uint64_t key = varint();
      const int wire = static_cast<int>(key & 7);
      const uint32_t number = static_cast<uint32_t>(key >> 3);
      uint64_t value = 0;
      std::string_view bytes;
      if (wire == 0) {
        value = varint();
      } else if (wire == 1 || wire == 5) {
        const size_t n = wire == 1 ? 8 : 4;
        if (data.size() - at < n) fail(path, "truncated SentencePiece model");
        bytes = data.substr(at, n);
        at += n;
      } else if (wire == 2) {
        const uint64_t n = varint();
        if (n > data.size() - at) fail(path, "truncated SentencePiece model (a field runs past the end)");
        bytes = data.substr(at, static_cast<size_t>(n));
        at += static_cast<size_t>(n);
      } else {
        fail(path, "not a SentencePiece model (protobuf wire type " + std::to_string(wire) + ")");
      }
      on_field(number, wire, value, bytes);
    }
  }
};

std::string base64_encode(std::string_view in) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += alphabet[(v >> k) & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

json special(const std::string& content, int32_t id, bool lstrip = false) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", lstrip},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}
}  // namespace

UnigramTokenizer UnigramTokenizer::from_sentencepiece_model(const std::string& path) {
  return from_spec(sentencepiece_spec(path), path);
}

std::string UnigramTokenizer::sentencepiece_to_tokenizer_json(const std::string& path) {
  json spec = sentencepiece_spec(path);
  json out = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
  for (auto& [key, value] : spec.items()) out[key] = value;
  for (auto& token : out["added_tokens"])
    token["single_word"] = false, token["normalized"] = false, token["special"] = true;
  out["decoder"] = {
      {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
  return out.dump(2) + "\n";
}

nlohmann::json UnigramTokenizer::sentencepiece_spec(const std::string& path) {
  const std::string blob = io::read_file(path, io::kMaxReadBytes, "SentencePiece model");
  std::vector<std::pair<std::string, double>> pieces;
  std::string charsmap;
  bool add_dummy_prefix = true;
  int64_t model_type = 1;  // UNIGRAM, protobuf's default
  ProtoReader top{blob, 0, path};
  top.fields([&](uint32_t number, int wire, uint64_t, std::string_view bytes) {
    if (number == 1 && wire == 2) {  // SentencePiece { piece = 1; score = 2; type = 3 }
      std::string piece;
      float score = 0;
      ProtoReader r{bytes, 0, path};
      r.fields([&](uint32_t n, int w, uint64_t, std::string_view b) {
        if (n == 1 && w == 2) piece = std::string(b);
        if (n == 2 && w == 5) std::memcpy(&score, b.data(), 4);
      });
      pieces.emplace_back(piece, static_cast<double>(score));
    } else if (number == 2 && wire == 2) {  // TrainerSpec { model_type = 3 }
      ProtoReader r{bytes, 0, path};
      r.fields([&](uint32_t n, int w, uint64_t v, std::string_view) {
        if (n == 3 && w == 0) model_type = static_cast<int64_t>(v);
      });
    } else if (number == 3 && wire == 2) {  // NormalizerSpec { precompiled_charsmap = 2; add_dummy_prefix = 3 }
      ProtoReader r{bytes, 0, path};
      r.fields([&](uint32_t n, int w, uint64_t v, std::string_view b) {
        if (n == 2 && w == 2) charsmap = std::string(b);
        if (n == 3 && w == 0) add_dummy_prefix = v != 0;
      });
    }
  });
  if (model_type != 1)
    fail(path, "a SentencePiece model of type " + std::to_string(model_type) +
                   " (2 = BPE, 3 = word, 4 = char); XLM-R's family is Unigram (1)");
  if (pieces.size() < 4 || pieces[0].first != "<unk>" || pieces[1].first != "<s>" || pieces[2].first != "</s>")
    fail(path, "does not start with <unk> <s> </s> as XLM-R's SentencePiece model does (" +
                   std::to_string(pieces.size()) + " pieces)");
  // fairseq's order: <s> <pad> </s> <unk>, then the pieces from 3 on (ids shifted by one), <mask> last.
  json vocab = json::array({json::array({"<s>", 0.0}), json::array({"<pad>", 0.0}), json::array({"</s>", 0.0}),
                            json::array({"<unk>", 0.0})});
  for (size_t i = 3; i < pieces.size(); ++i) vocab.push_back(json::array({pieces[i].first, pieces[i].second}));
  vocab.push_back(json::array({"<mask>", 0.0}));
  const int32_t mask = static_cast<int32_t>(vocab.size() - 1);
  json normalizers = json::array();
  if (!charsmap.empty())
    normalizers.push_back({{"type", "Precompiled"}, {"precompiled_charsmap", base64_encode(charsmap)}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}});
  json spec = {{"added_tokens", json::array({special("<s>", 0), special("<pad>", 1), special("</s>", 2),
                                             special("<unk>", 3), special("<mask>", mask, true)})},
               {"normalizer", {{"type", "Sequence"}, {"normalizers", normalizers}}},
               {"pre_tokenizer",
                {{"type", "Metaspace"},
                 {"replacement", "\xE2\x96\x81"},
                 {"prepend_scheme", add_dummy_prefix ? "always" : "never"},
                 {"split", true}}},
               {"post_processor",
                {{"type", "RobertaProcessing"}, {"cls", json::array({"<s>", 0})}, {"sep", json::array({"</s>", 2})}}},
               {"model", {{"type", "Unigram"}, {"unk_id", 3}, {"vocab", vocab}, {"byte_fallback", false}}}};
  return spec;
}

UnigramTokenizer UnigramTokenizer::from_spec(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("model")) fail(path, "no model");
  const json& model = j.at("model");
  if (model.value("type", std::string()) != "Unigram")
    fail(path,
         "model.type is " + model.value("type", json("none")).dump() + ", not Unigram (this is the Unigram loader)");
  if (model.value("byte_fallback", false)) fail(path, "model.byte_fallback is not supported (XLM-R has none)");
  UnigramTokenizer t;
  const json vocab = model.value("vocab", json());
  if (!vocab.is_array() || vocab.empty()) fail(path, "model.vocab is not a list of [piece, score]");
  double min_score = std::numeric_limits<double>::infinity();
  std::map<std::string, int32_t> seen;
  for (size_t i = 0; i < vocab.size(); ++i) {
    const json& e = vocab[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      fail(path, "model.vocab[" + std::to_string(i) + "] is not [piece, score]: " + e.dump().substr(0, 80));
    t.pieces_.push_back(e[0]);
    t.scores_.push_back(e[1].get<double>());
    min_score = std::min(min_score, t.scores_.back());
  }
  t.unk_score_ = min_score - 10.0;  // HF and SentencePiece: kUnkPenalty below the lowest piece
  const json unk = model.value("unk_id", json());
  if (!unk.is_number_integer() || unk.get<int64_t>() < 0 || unk.get<size_t>() >= t.pieces_.size())
    fail(path, "model.unk_id " + unk.dump() + " is not an id of model.vocab (" + std::to_string(t.pieces_.size()) +
                   " pieces)");
  t.unk_ = unk.get<int32_t>();

  // The pieces' trie (bytes), children flattened once built.
  std::vector<std::map<uint8_t, uint32_t>> children(1);
  std::vector<int32_t> ids(1, -1);
  for (size_t id = 0; id < t.pieces_.size(); ++id) {
    uint32_t node = 0;
    for (unsigned char c : t.pieces_[id]) {
      auto it = children[node].find(c);
      if (it == children[node].end()) {
        children.emplace_back();
        ids.push_back(-1);
        it = children[node].emplace(c, static_cast<uint32_t>(children.size() - 1)).first;
      }
      node = it->second;
    }
    if (ids[node] < 0) ids[node] = static_cast<int32_t>(id);  // a repeated piece keeps its first id
  }
  t.nodes_.resize(children.size());
  for (size_t n = 0; n < children.size(); ++n) {
    t.nodes_[n] = {static_cast<uint32_t>(t.edges_.size()), static_cast<uint32_t>(children[n].size()), ids[n]};
    for (const auto& [byte, child] : children[n]) t.edges_.push_back({byte, child});
  }

  // The normalizer sequence.
  const json normalizer = hf::without_tweet_steps(j.value("normalizer", json()));
  std::vector<json> steps;
  if (!normalizer.is_null()) {
    if (normalizer.value("type", "") == "Sequence") {
      for (const json& n : normalizer.value("normalizers", json::array())) steps.push_back(n);
    } else {
      steps.push_back(normalizer);
    }
  }
  for (const json& n : steps) {
    const std::string type = n.value("type", std::string("?"));
    Normalizer step{Normalizer::kNfkc, "", "", false, false};
    if (type == "Precompiled") {
      const json map = n.value("precompiled_charsmap", json());
      if (map.is_null() || (map.is_string() && map.get<std::string>().empty())) continue;
      if (!map.is_string()) fail(path, "normalizer Precompiled: precompiled_charsmap is not a base64 string");
      const std::string blob = base64_decode(map, path);
      uint32_t trie_bytes = 0;
      if (blob.size() >= 4)
        for (int b = 3; b >= 0; --b)
          trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(blob[static_cast<size_t>(b)]);
      if (blob.size() < 4 || trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > blob.size() - 4)
        fail(path, "normalizer Precompiled: precompiled_charsmap is not a SentencePiece charsmap (trie size " +
                       std::to_string(trie_bytes) + ", " + std::to_string(blob.size()) + " bytes)");
      t.charsmap_trie_.resize(trie_bytes / 4);
      for (size_t u = 0; u < t.charsmap_trie_.size(); ++u) {
        uint32_t v = 0;
        for (int b = 3; b >= 0; --b)
          v = (v << 8) | static_cast<unsigned char>(blob[4 + u * 4 + static_cast<size_t>(b)]);
        t.charsmap_trie_[u] = v;
      }
      t.charsmap_strings_ = blob.substr(4 + trie_bytes);
      step.kind = Normalizer::kPrecompiled;
    } else if (type == "Replace") {
      const json pattern = n.value("pattern", json());
      step.to = n.value("content", std::string());
      if (pattern.contains("String")) {
        step.kind = Normalizer::kReplace;
        step.from = pattern.at("String");
        if (step.from.empty()) fail(path, "normalizer Replace with an empty pattern");
      } else if (pattern.value("Regex", std::string()) == " {2,}") {
        step.kind = Normalizer::kReplaceSpaceRuns;
      } else {
        fail(path, "normalizer Replace with pattern " + pattern.dump() +
                       " is not supported (a literal String, or the Regex \" {2,}\" XLM-R uses)");
      }
    } else if (type == "Strip") {
      step.kind = Normalizer::kStrip;
      step.left = n.value("strip_left", false);
      step.right = n.value("strip_right", false);
    } else if (type == "NFKC") {
      step.kind = Normalizer::kNfkc;
    } else if (type == "Lowercase") {
      step.kind = Normalizer::kLowercase;
    } else {
      fail(path,
           "normalizer " + type + " is not supported with Unigram (Precompiled, Replace, Strip, NFKC, Lowercase)");
    }
    t.normalizers_.push_back(step);
  }

  // Metaspace (the current prepend_scheme, or the older add_prefix_space).
  const json pre = j.value("pre_tokenizer", json());
  if (!pre.is_object() || pre.value("type", "") != "Metaspace")
    fail(path, "pre_tokenizer " + pre.dump().substr(0, 80) + " is not supported with Unigram (Metaspace expected)");
  t.replacement_ = pre.value("replacement", std::string("\xE2\x96\x81"));
  size_t replacement_length = 0;
  if (!t.replacement_.empty()) unicode::decode(t.replacement_, 0, replacement_length);
  if (replacement_length == 0 || replacement_length != t.replacement_.size())
    fail(path, "pre_tokenizer.replacement must be one character");
  const std::string scheme =
      pre.value("prepend_scheme", std::string(pre.value("add_prefix_space", true) ? "always" : "never"));
  if (scheme == "always") t.prepend_ = Prepend::kAlways;
  else if (scheme == "first") t.prepend_ = Prepend::kFirst;
  else if (scheme == "never") t.prepend_ = Prepend::kNever;
  else fail(path, "pre_tokenizer.prepend_scheme " + scheme + " is not always, first or never");
  t.split_ = pre.value("split", true);

  t.added_ = hf::added_tokens(j, path);
  for (const auto& a : t.added_)
    if (static_cast<size_t>(a.id) >= t.pieces_.size())
      fail(path, "added token " + a.content + " has id " + std::to_string(a.id) + ", past model.vocab (" +
                     std::to_string(t.pieces_.size()) + " pieces)");
  t.template_ = hf::post_processor(j, path);
  auto find = [&](const std::string& piece) {
    for (size_t i = 0; i < t.pieces_.size(); ++i)
      if (t.pieces_[i] == piece) return static_cast<int32_t>(i);
    return -1;
  };
  t.specials_.unk = t.unk_;
  t.specials_.cls = t.template_.before.empty() ? find("<s>") : t.template_.before.front();
  t.specials_.sep = t.template_.after.empty() ? find("</s>") : t.template_.after.back();
  t.specials_.pad = find("<pad>");
  t.specials_.mask = find("<mask>");
  t.added_first_ = hf::first_bytes(t.added_);
  return t;
}

const char* UnigramTokenizer::charsmap_lookup(std::string_view chunk) const {
  const size_t size = charsmap_trie_.size();
  size_t pos = offset_of(charsmap_trie_[0]);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    pos ^= c;
    if (pos >= size) return nullptr;
    const uint32_t unit = charsmap_trie_[pos];
    if (label_of(unit) != c) return nullptr;
    pos ^= offset_of(unit);
    if (pos >= size) return nullptr;
    if (has_leaf(unit)) {
      const uint32_t value = value_of(charsmap_trie_[pos]);
      return value < charsmap_strings_.size() ? charsmap_strings_.c_str() + value : nullptr;
    }
  }
  return nullptr;
}

std::string UnigramTokenizer::precompiled(std::string_view text) const {
  // As HF's Precompiled normalizer: grapheme by grapheme; a grapheme shorter than 6 bytes is looked
  // up whole (its first prefix match replaces all of it), otherwise each character on its own.
  std::string out;
  out.reserve(text.size());
  std::vector<std::pair<size_t, size_t>> chars;  // the grapheme's characters (byte ranges)
  auto flush = [&] {
    if (chars.empty()) return;
    const size_t b = chars.front().first, e = chars.back().second;
    if (e - b < 6) {
      if (const char* r = charsmap_lookup(text.substr(b, e - b))) {
        out += r;
        chars.clear();
        return;
      }
    }
    for (const auto& [cb, ce] : chars) {
      if (const char* r = charsmap_lookup(text.substr(cb, ce - cb))) out += r;
      else out.append(text.substr(cb, ce - cb));
    }
    chars.clear();
  };
  utf8proc_int32_t prev = -1, state = 0;
  for (size_t i = 0, n = 0; i < text.size(); i += n) {
    const auto cp = static_cast<utf8proc_int32_t>(unicode::decode(text, i, n));
    if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) flush();
    chars.emplace_back(i, i + n);
    prev = cp;
  }
  flush();
  return out;
}

std::string UnigramTokenizer::normalize(std::string_view text) const {
  std::string s(text);
  for (const Normalizer& n : normalizers_) {
    switch (n.kind) {
      case Normalizer::kPrecompiled: s = precompiled(s); break;
      case Normalizer::kReplace: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          if (s.compare(i, n.from.size(), n.from) == 0) out += n.to, i += n.from.size();
          else out += s[i++];
        }
        s = std::move(out);
        break;
      }
      case Normalizer::kReplaceSpaceRuns: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          size_t j = i;
          while (j < s.size() && s[j] == ' ') ++j;
          if (j - i >= 2) out += n.to, i = j;
          else out += s[i++];
        }
        s = std::move(out);
        break;
      }
      case Normalizer::kStrip: {
        size_t b = n.left ? hf::leading_space_end(s) : 0;
        size_t e = n.right ? b + hf::trailing_space_start(std::string_view(s).substr(b)) : s.size();
        s = s.substr(b, e - b);
        break;
      }
      case Normalizer::kNfkc: {
        utf8proc_uint8_t* r = utf8proc_NFKC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
        if (r) s = reinterpret_cast<char*>(r), free(r);
        break;
      }
      case Normalizer::kLowercase: {
        std::string out;
        for (size_t i = 0, n = 0; i < s.size(); i += n)
          unicode::append_utf8(
              out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(unicode::decode(s, i, n)))));
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

void UnigramTokenizer::viterbi(std::string_view word, std::vector<int32_t>& out) const {
  struct Best {
    double score = 0;
    int64_t start = -1;
    int32_t id = -1;
  };
  const size_t size = word.size();
  std::vector<Best> best(size + 1);
  best[0].start = 0;
  for (size_t at = 0; at < size;) {
    size_t char_len = 1;
    unicode::decode(word, at, char_len);
    const double here = best[at].score;
    bool single = false;
    uint32_t node = 0;
    for (size_t k = at; k < size; ++k) {  // every piece that starts here, shortest first
      const TrieNode& n = nodes_[node];
      const TrieEdge* e = edges_.data() + n.first_edge;
      const TrieEdge* end = e + n.edges;
      while (e < end && e->byte != static_cast<uint8_t>(word[k])) ++e;
      if (e == end) break;
      node = e->child;
      const int32_t id = nodes_[node].id;
      if (id < 0) continue;
      Best& target = best[k + 1];
      const double score = here + scores_[static_cast<size_t>(id)];
      if (target.start < 0 || score > target.score) target = {score, static_cast<int64_t>(at), id};
      if (k + 1 - at == char_len) single = true;
    }
    if (!single) {  // no piece for this character: <unk>
      Best& target = best[at + char_len];
      const double score = here + unk_score_;
      if (target.start < 0 || score > target.score) target = {score, static_cast<int64_t>(at), unk_};
    }
    at += char_len;
  }
  const size_t first = out.size();
  for (size_t end = size; end > 0; end = static_cast<size_t>(best[end].start)) {
    const int32_t id = best[end].id;
    if (id == unk_ && out.size() > first && out.back() == unk_) continue;  // consecutive unknowns fuse
    out.push_back(id);
  }
  std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
}

void UnigramTokenizer::encode_segment(std::string_view text, bool first, std::vector<int32_t>& out) const {
  const std::string normalized = normalize(text);
  if (normalized.empty()) return;
  std::string s;  // Metaspace: spaces become the replacement, and a prefix one
  s.reserve(normalized.size() + 8);
  const bool starts = normalized.compare(0, replacement_.size(), replacement_) == 0 || normalized[0] == ' ';
  if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && first))) s += replacement_;
  for (char c : normalized) {
    if (c == ' ') s += replacement_;
    else s += c;
  }
  if (!split_) return viterbi(s, out);
  size_t word = 0;  // a split before each replacement, which starts the next word
  for (size_t i = 1; i <= s.size(); ++i) {
    if (i == s.size() || s.compare(i, replacement_.size(), replacement_) == 0) {
      if (i > word) viterbi(std::string_view(s).substr(word, i - word), out);
      word = i;
    }
  }
}

bool UnigramTokenizer::encode(std::string_view text, std::vector<int32_t>& out, size_t max_len) const {
  std::vector<int32_t> content;
  hf::split_added(
      text, added_, added_first_,
      [&](std::string_view segment, bool first) { encode_segment(segment, first, content); },
      [&](int32_t id) { content.push_back(id); });
  return hf::finish(template_, content, max_len, out);
}

bool UnigramTokenizer::continues_word(int32_t id) const {
  return !hf::is_special(specials_, id) && pieces_.at(static_cast<size_t>(id)).rfind(replacement_, 0) != 0;
}

HfTokenizerLayout UnigramTokenizer::hugging_face(const TokenizerFiles& files, int /*max_len*/) const {
  HfTokenizerLayout out;
  if (files.defining.front().first == "sentencepiece.bpe.model")
    out.files.emplace_back("tokenizer.json", sentencepiece_to_tokenizer_json(files.defining.front().second));
  out.config_json = nlohmann::ordered_json{{"tokenizer_class", "XLMRobertaTokenizer"}}.dump();
  out.special_tokens = hf_special_tokens(specials_, true);
  return out;
}

}  // namespace modtrain
