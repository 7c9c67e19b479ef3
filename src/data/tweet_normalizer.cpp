#include "modtrain/data/tweet_normalizer.h"

#include <cstdlib>
#include <cstring>

#include "unicode.h"

namespace modtrain {
namespace {

struct NamedEntity {
  const char* name;
  char32_t cp;
};
// The named references that social-media text carries in practice (the HTML5 table has 2,231;
// the platforms escape only & < > and quotes). Unknown names are left as written.
constexpr NamedEntity kNamed[] = {
    {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018},
    {"rsquo", 0x2019}, {"ldquo", 0x201C},  {"rdquo", 0x201D}, {"copy", 0xA9},    {"reg", 0xAE},
    {"trade", 0x2122}, {"euro", 0x20AC},   {"pound", 0xA3},   {"laquo", 0xAB},   {"raquo", 0xBB},
};

bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool starts_with_nocase(std::string_view s, size_t i, const char* prefix) {
  size_t n = std::strlen(prefix);
  if (s.size() - i < n) return false;
  for (size_t k = 0; k < n; ++k) {
    char c = s[i + k];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != prefix[k]) return false;
  }
  return true;
}

// Length of the whitespace code point at text[i] (0 if none).
size_t whitespace_at(std::string_view text, size_t i) {
  size_t len = 0;
  char32_t cp = unicode::decode(text, i, len);
  return unicode::is_whitespace(cp) ? len : 0;
}

}  // namespace

void unescape_html(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '&') {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t semi = text.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 12) {
      out.push_back(c);
      ++i;
      continue;
    }
    std::string_view body = text.substr(i + 1, semi - i - 1);
    char32_t cp = 0;
    if (body.size() >= 2 && body[0] == '#') {
      bool hex = body[1] == 'x' || body[1] == 'X';
      std::string digits(body.substr(hex ? 2 : 1));
      char* end = nullptr;
      unsigned long value = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      bool valid = !digits.empty() && end && *end == '\0' && value > 0 && value <= 0x10FFFF &&
                   !(value >= 0xD800 && value <= 0xDFFF);
      cp = valid ? static_cast<char32_t>(value) : 0;
    } else {
      for (const auto& e : kNamed)
        if (body == e.name) cp = e.cp;
    }
    if (cp == 0) {  // not a reference we know: keep the text as written
      out.push_back(c);
      ++i;
      continue;
    }
    unicode::append_utf8(out, cp);
    i = semi + 1;
  }
}

void normalize_tweet(std::string_view text, std::string& out) {
  thread_local std::string unescaped;
  unescape_html(text, unescaped);
  std::string_view s = unescaped;
  out.clear();
  out.reserve(s.size());
  bool pending_space = false;
  auto put = [&](std::string_view piece) {
    if (pending_space && !out.empty()) out.push_back(' ');
    pending_space = false;
    out.append(piece);
  };
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    bool at_word_start = i == 0 || !is_word_byte(static_cast<unsigned char>(s[i - 1]));
    if (size_t ws = whitespace_at(s, i)) {
      pending_space = true;
      i += ws;
      continue;
    }
    // URLs: http(s)://... or www.... up to the next whitespace -> "http"
    if (at_word_start && (starts_with_nocase(s, i, "http://") || starts_with_nocase(s, i, "https://") ||
                          starts_with_nocase(s, i, "www."))) {
      while (i < s.size() && !whitespace_at(s, i)) ++i;
      put("http");
      continue;
    }
    // @mentions: "@" + [A-Za-z0-9_]+ not preceded by a word character (e-mail addresses stay)
    if (c == '@' && at_word_start && i + 1 < s.size() && is_word_byte(static_cast<unsigned char>(s[i + 1]))) {
      i += 1;
      while (i < s.size() && is_word_byte(static_cast<unsigned char>(s[i]))) ++i;
      put("@user");
      continue;
    }
    size_t len = 0;
    unicode::decode(s, i, len);
    put(s.substr(i, len));
    i += len;
  }
}

std::string normalize_tweet(std::string_view text) {
  std::string out;
  normalize_tweet(text, out);
  return out;
}

}  // namespace modtrain
