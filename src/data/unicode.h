// Private: the Unicode facts BERT tokenization needs, on top of utf8proc (normalization data and
// general categories). Definitions follow Hugging Face `tokenizers` (Rust), our parity target.
#pragma once

#include <utf8proc.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace modtrain::unicode {

// Decodes one code point at text[i]; invalid or truncated UTF-8 yields U+FFFD for one byte.
inline char32_t decode(std::string_view text, size_t i, size_t& length) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + i;
  size_t left = text.size() - i;
  unsigned char c = s[0];
  if (c < 0x80) {
    length = 1;
    return c;
  }
  auto cont = [&](size_t k) { return k < left && (s[k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    length = 2;
    return (char32_t(c & 0x1F) << 6) | (s[1] & 0x3F);
  }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    char32_t cp = (char32_t(c & 0x0F) << 12) | (char32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
      length = 3;
      return cp;
    }
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    char32_t cp =
        (char32_t(c & 0x07) << 18) | (char32_t(s[1] & 0x3F) << 12) | (char32_t(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      length = 4;
      return cp;
    }
  }
  length = 1;
  return 0xFFFD;
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline utf8proc_category_t category(char32_t cp) { return utf8proc_category(static_cast<utf8proc_int32_t>(cp)); }

// The Unicode White_Space property (Rust's char::is_whitespace), which BERT's pre-tokenizer splits on.
inline bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Control, format, private-use and surrogate code points (Cc, Cf, Co, Cs) except \t \n \r: removed
// by BERT's text cleaning. Unassigned code points (Cn) are kept, as Hugging Face tokenizers does.
inline bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS: return true;
    default: return false;
  }
}

// ASCII symbols and Unicode P* categories: each becomes a word of its own.
inline bool is_punctuation(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
  }
}

// CJK ideograph blocks that BERT surrounds with spaces (the blocks of the original BERT code).
inline bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Canonical decomposition (NFD) of one code point into `out`; returns the count (<= 4 for BMP, up to 18).
inline int decompose(char32_t cp, utf8proc_int32_t* out, int capacity) {
  int last_boundclass = 0;
  utf8proc_ssize_t n =
      utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), out, capacity, UTF8PROC_DECOMPOSE, &last_boundclass);
  if (n < 0 || n > capacity) {
    out[0] = static_cast<utf8proc_int32_t>(cp);
    return 1;
  }
  return static_cast<int>(n);
}

// Replaces invalid UTF-8 with U+FFFD; returns how many invalid sequences were replaced.
inline size_t repair_utf8(std::string& text) {
  size_t bad = 0, i = 0;
  std::string out;
  bool copied = false;
  while (i < text.size()) {
    size_t len = 0;
    char32_t cp = decode(text, i, len);
    bool invalid = cp == 0xFFFD && !(len == 3 && text.compare(i, 3, "\xEF\xBF\xBD") == 0);
    if (invalid && !copied) {
      out.assign(text, 0, i);
      copied = true;
    }
    if (invalid) {
      ++bad;
      append_utf8(out, 0xFFFD);
    } else if (copied) out.append(text, i, len);
    i += len;
  }
  if (copied) text.swap(out);
  return bad;
}

}  // namespace modtrain::unicode
