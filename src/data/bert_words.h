// Private: BERT's normalizer + pre-tokenizer as one pass over the text, shared by the WordPiece
// tokenizer and the vocabulary trainer. Calls on_special(id) for a special token found verbatim
// in the raw text and on_word(word) for each normalized word; either returns false to stop.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "modtrain/data/wordpiece.h"
#include "unicode.h"

namespace modtrain::bert {

enum AsciiClass : uint8_t { kOther = 0, kSpace = 1, kControl = 2, kPunct = 3 };

inline const std::array<uint8_t, 128>& ascii_classes() {
  static const std::array<uint8_t, 128> table = [] {
    std::array<uint8_t, 128> t{};
    for (int c = 0; c < 128; ++c) {
      if (c == '\t' || c == '\n' || c == '\r' || c == ' ') t[c] = kSpace;
      else if (c < 0x20 || c == 0x7F) t[c] = kControl;  // \v and \f too: BERT removes them
      else if (unicode::is_punctuation(static_cast<char32_t>(c))) t[c] = kPunct;
      else t[c] = kOther;
    }
    return t;
  }();
  return table;
}

// Matches one of the special tokens ("[CLS]" ...) at text[i]; returns its length or 0.
inline size_t match_special(std::string_view text, size_t i, const Vocab& vocab, int32_t& id) {
  for (const char* special : kSpecialTokens) {
    std::string_view s(special);
    if (text.compare(i, s.size(), s) == 0) {
      id = vocab.id_of(s);
      if (id >= 0) return s.size();
    }
  }
  return 0;
}

template <class OnWord, class OnSpecial>
void for_each_word(std::string_view text, bool lowercase, const Vocab* vocab, std::string& word, OnWord on_word,
                   OnSpecial on_special) {
  const auto& classes = ascii_classes();
  bool go = true;
  std::string single;  // a punctuation or CJK word of its own
  auto flush = [&] {
    if (!word.empty()) {
      go = on_word(std::string_view(word));
      word.clear();
    }
  };
  auto emit_single = [&](char32_t cp) {
    flush();
    if (!go) return;
    single.clear();
    unicode::append_utf8(single, cp);
    go = on_word(std::string_view(single));
  };
  word.clear();
  size_t i = 0;
  const size_t n = text.size();
  while (i < n && go) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (classes[c]) {
        case kOther:
          word.push_back(lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : static_cast<char>(c));
          break;
        case kSpace: flush(); break;
        case kControl: break;  // removed; not a word break
        case kPunct: {
          int32_t id = -1;
          size_t len = c == '[' && vocab ? match_special(text, i, *vocab, id) : 0;
          if (len) {
            flush();
            if (go) go = on_special(id);
            i += len;
            continue;
          }
          emit_single(c);
          break;
        }
      }
      ++i;
      continue;
    }
    size_t len = 0;
    char32_t cp = unicode::decode(text, i, len);
    i += len;
    if (cp == 0xFFFD || unicode::is_control(cp)) continue;
    if (unicode::is_whitespace(cp)) {
      flush();
      continue;
    }
    if (!lowercase) {
      if (unicode::is_cjk(cp) || unicode::is_punctuation(cp)) emit_single(cp);
      else unicode::append_utf8(word, cp);
      continue;
    }
    // Uncased: NFD, drop nonspacing marks (accents), lowercase; then split as BERT does.
    utf8proc_int32_t parts[32];
    int count = unicode::decompose(cp, parts, 32);
    bool cjk = unicode::is_cjk(cp);
    if (cjk) flush();
    for (int k = 0; k < count && go; ++k) {
      char32_t d = static_cast<char32_t>(parts[k]);
      if (unicode::category(d) == UTF8PROC_CATEGORY_MN) continue;
      d = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(d)));
      if (unicode::is_whitespace(d)) flush();
      else if (unicode::is_punctuation(d)) emit_single(d);
      else unicode::append_utf8(word, d);
    }
    if (cjk) flush();
  }
  if (go) flush();
}

}  // namespace modtrain::bert
