#include "modtrain/data/tweet_normalizer.h"

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "unicode.h"

namespace modtrain {
namespace {

// The character references decoded: a bounded set, so that Hugging Face tokenizers can express the
// same decoding with one regex Replace per character (tweet_normalizer_hf_steps). The named ones
// that social-media text carries (the platforms escape only & < > and quotes; HTML-scraped text
// adds the typographic ones) and, in any numeric form (decimal or hex, any case, leading zeros),
// the same characters plus ASCII punctuation and space. Not decoded: other numeric references
// (&#128545; stays as written: decoding every code point cannot be expressed as a bounded set of
// replacements), '#' and ';' (their decoding could complete another reference), unknown names.
struct Decoded {
  char32_t cp;
  const char* names[2];  // named forms ("" = none)
};
constexpr Decoded kDecoded[] = {
    {'"', {"quot", ""}},     {'\'', {"apos", ""}},     {'<', {"lt", ""}},       {'>', {"gt", ""}},
    {0xA0, {"nbsp", ""}},    {0x2026, {"hellip", ""}}, {0x2014, {"mdash", ""}}, {0x2013, {"ndash", ""}},
    {0x2018, {"lsquo", ""}}, {0x2019, {"rsquo", ""}},  {0x201C, {"ldquo", ""}}, {0x201D, {"rdquo", ""}},
    {0xA9, {"copy", ""}},    {0xAE, {"reg", ""}},      {0x2122, {"trade", ""}}, {0x20AC, {"euro", ""}},
    {0xA3, {"pound", ""}},   {0xAB, {"laquo", ""}},    {0xBB, {"raquo", ""}},   {' ', {"", ""}},
    {'!', {"", ""}},         {'$', {"", ""}},          {'%', {"", ""}},         {'(', {"", ""}},
    {')', {"", ""}},         {'*', {"", ""}},          {'+', {"", ""}},         {',', {"", ""}},
    {'-', {"", ""}},         {'.', {"", ""}},          {'/', {"", ""}},         {':', {"", ""}},
    {'=', {"", ""}},         {'?', {"", ""}},          {'@', {"", ""}},         {'[', {"", ""}},
    {'\\', {"", ""}},        {']', {"", ""}},          {'^', {"", ""}},         {'_', {"", ""}},
    {'`', {"", ""}},         {'{', {"", ""}},          {'|', {"", ""}},         {'}', {"", ""}},
    {'~', {"", ""}},         {'&', {"amp", ""}},  // last: its output starts references, so it must run after every
                                                  // other step
};

const Decoded* decoded(char32_t cp) {
  for (const Decoded& d : kDecoded)
    if (d.cp == cp) return &d;
  return nullptr;
}

bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Length of the whitespace code point at text[i] (0 if none).
size_t whitespace_at(std::string_view text, size_t i) {
  size_t len = 0;
  char32_t cp = unicode::decode(text, i, len);
  return unicode::is_whitespace(cp) ? len : 0;
}

// "http://", "https://" or "www." at text[i], ASCII letters in any case.
bool url_start(std::string_view s, size_t i) {
  auto at = [&](size_t k, char lower) { return i + k < s.size() && (s[i + k] == lower || s[i + k] == lower - 32); };
  if (at(0, 'w') && at(1, 'w') && at(2, 'w') && i + 3 < s.size() && s[i + 3] == '.') return true;
  if (!(at(0, 'h') && at(1, 't') && at(2, 't') && at(3, 'p'))) return false;
  size_t k = 4 + (at(4, 's') ? 1 : 0);
  return s.substr(i + k, 3) == "://";
}

// Step 2: URLs not preceded by a word character -> "http" (to the next whitespace).
void replace_urls(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    if ((i == 0 || !is_word_byte(static_cast<unsigned char>(s[i - 1]))) && url_start(s, i)) {
      while (i < s.size() && !whitespace_at(s, i)) {
        size_t len = 0;
        unicode::decode(s, i, len);
        i += len;
      }
      out += "http";
      continue;
    }
    out.push_back(s[i++]);
  }
}

// Step 3: "@" + word characters, not preceded by a word character (e-mail addresses stay) -> "@user".
void replace_mentions(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '@' && (i == 0 || !is_word_byte(static_cast<unsigned char>(s[i - 1]))) && i + 1 < s.size() &&
        is_word_byte(static_cast<unsigned char>(s[i + 1]))) {
      ++i;
      while (i < s.size() && is_word_byte(static_cast<unsigned char>(s[i]))) ++i;
      out += "@user";
      continue;
    }
    out.push_back(s[i++]);
  }
}

// Step 4: whitespace runs -> one space, none at either end.
void collapse_whitespace(std::string_view s, std::string& out) {
  out.clear();
  bool pending = false;
  for (size_t i = 0; i < s.size();) {
    if (size_t ws = whitespace_at(s, i)) {
      pending = true;
      i += ws;
      continue;
    }
    if (pending && !out.empty()) out.push_back(' ');
    pending = false;
    size_t len = 0;
    unicode::decode(s, i, len);
    out.append(s.substr(i, len));
    i += len;
  }
}

// The whitespace class of unicode::is_whitespace, for the regexes.
constexpr const char* kWhitespaceClass =
    "\\t\\n\\x{0B}\\x{0C}\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

std::string hex_pattern(char32_t cp) {  // 2A -> 2[aA]
  char digits[16];
  std::snprintf(digits, sizeof digits, "%X", static_cast<unsigned>(cp));
  std::string out;
  for (const char* d = digits; *d; ++d) {
    if (*d >= 'A' && *d <= 'F') out += std::string("[") + static_cast<char>(*d + 32) + *d + "]";
    else out += *d;
  }
  return out;
}

}  // namespace

void unescape_html(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    const Decoded* hit = nullptr;
    size_t end = 0;  // one past the ';'
    if (i + 1 < text.size() && text[i + 1] == '#') {
      const bool hex = i + 2 < text.size() && (text[i + 2] == 'x' || text[i + 2] == 'X');
      size_t k = i + (hex ? 3 : 2), start = k;
      uint64_t value = 0;
      while (k < text.size() && (hex ? is_hex(text[k]) : (text[k] >= '0' && text[k] <= '9'))) {
        const char c = text[k];
        const uint64_t digit = c <= '9' ? static_cast<uint64_t>(c - '0') : static_cast<uint64_t>((c | 32) - 'a' + 10);
        value = std::min<uint64_t>(value * (hex ? 16 : 10) + digit, 0x110000);  // saturate: no overflow
        ++k;
      }
      if (k > start && k < text.size() && text[k] == ';' && value < 0x110000) {
        hit = decoded(static_cast<char32_t>(value));
        end = k + 1;
      }
    } else {
      for (const Decoded& d : kDecoded)
        for (const char* name : d.names) {
          const size_t n = std::strlen(name);
          if (n > 0 && text.substr(i + 1, n) == name && i + 1 + n < text.size() && text[i + 1 + n] == ';') {
            hit = &d;
            end = i + 2 + n;
          }
        }
    }
    if (!hit) {  // not a reference of the set: keep the text as written
      out.push_back(text[i++]);
      continue;
    }
    unicode::append_utf8(out, hit->cp);
    i = end;
  }
}

void normalize_tweet(std::string_view text, std::string& out) {
  thread_local std::string a, b;
  unescape_html(text, a);
  replace_urls(a, b);
  replace_mentions(b, a);
  collapse_whitespace(a, out);
}

std::string normalize_tweet(std::string_view text) {
  std::string out;
  normalize_tweet(text, out);
  return out;
}

std::string tweet_normalizer_hf_steps() {
  using nlohmann::ordered_json;
  ordered_json steps = ordered_json::array();
  auto replace = [&](const std::string& regex, const std::string& content) {
    steps.push_back({{"type", "Replace"}, {"pattern", {{"Regex", regex}}}, {"content", content}});
  };
  // 1. character references, one step per character, '&' last (see kDecoded)
  for (const Decoded& d : kDecoded) {
    std::string alternatives;
    for (const char* name : d.names)
      if (*name) alternatives += std::string(name) + "|";
    alternatives += "#0*" + std::to_string(static_cast<unsigned>(d.cp)) + "|#[xX]0*" + hex_pattern(d.cp);
    std::string out;
    unicode::append_utf8(out, d.cp);
    replace("&(?:" + alternatives + ");", out);
  }
  // 2. URLs, 3. mentions (not after a word character), 4. whitespace runs, then both ends
  const std::string ws = kWhitespaceClass;
  replace("(?<![0-9A-Za-z_])(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\\.)[^" + ws + "]*", "http");
  replace("(?<![0-9A-Za-z_])@[0-9A-Za-z_]+", "@user");
  replace("[" + ws + "]+", " ");
  steps.push_back({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}});
  return steps.dump();
}

}  // namespace modtrain
