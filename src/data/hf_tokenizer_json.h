// What the tokenizer.json-driven tokenizers (byte-level BPE, Unigram) share: added tokens matched
// in the raw text before anything else (leftmost, longest; lstrip / rstrip take the whitespace
// beside them), the post-processor's tokens around the ids, and loading both from tokenizer.json.
// Internal to src/data.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "modtrain/data/tokenizer.h"

namespace modtrain::hf {

// AddedToken and Template are declared in modtrain/data/tokenizer.h.

std::vector<AddedToken> added_tokens(const nlohmann::json& spec, const std::string& path);
// A token id from JSON: an integer in [0, 2^31 - 1], else fail() with `what` (no int32 wrap-around).
int32_t id_value(const nlohmann::json& v, const std::string& path, const std::string& what);
// RobertaProcessing, BertProcessing, TemplateProcessing (single), ByteLevel or none.
Template post_processor(const nlohmann::json& spec, const std::string& path);
nlohmann::json parse_file(const std::string& path, const std::string& what);
// A tokenizer.json normalizer without the tweet-normalisation steps an export puts in front
// (tweet_normalizer_hf_steps): modtrain applies them itself when tokenizer.normalize_tweets is on.
// What is left: null, the one remaining normalizer, or a Sequence of the rest.
nlohmann::json without_tweet_steps(const nlohmann::json& normalizer);
[[noreturn]] void fail(const std::string& path, const std::string& what);
// One entry of a tokenizer.json's added_tokens as an export writes it (a special token).
nlohmann::ordered_json added_token_json(const std::string& content, int32_t id, bool lstrip);
inline bool is_special(const SpecialIds& s, int32_t id) {
  return id == s.pad || id == s.unk || id == s.cls || id == s.sep || id == s.mask;
}
size_t trailing_space_start(std::string_view s);  // where the trailing White_Space begins
size_t leading_space_end(std::string_view s);     // where the leading White_Space ends

// ASCII case-insensitive equality (`content` of a fold_case added token is lowercase).
inline bool equal_folded(std::string_view text, std::string_view content) {
  if (text.size() != content.size()) return false;
  for (size_t k = 0; k < text.size(); ++k) {
    const char c = text[k];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c) != content[k]) return false;
  }
  return true;
}

// Which bytes start some added token: the only places split_added looks (built once per tokenizer).
using FirstBytes = std::array<bool, 256>;
FirstBytes first_bytes(const std::vector<AddedToken>& added);

// Calls on_segment(text, first) for the text between added tokens (first: it starts at 0) and
// on_added(id) for each added token, in order.
template <class OnSegment, class OnAdded>
void split_added(std::string_view text, const std::vector<AddedToken>& added, const FirstBytes& first_byte,
                 OnSegment on_segment, OnAdded on_added) {
  size_t segment = 0;
  for (size_t i = 0; i < text.size();) {
    if (!first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : added)
      if ((a.fold_case ? equal_folded(text.substr(i, a.content.size()), a.content)
                       : text.compare(i, a.content.size(), a.content) == 0) &&
          (!hit || a.content.size() > hit->content.size()))
        hit = &a;
    if (!hit) {
      ++i;
      continue;
    }
    std::string_view before = text.substr(segment, i - segment);
    if (hit->lstrip) before = before.substr(0, trailing_space_start(before));
    if (!before.empty()) on_segment(before, segment == 0);
    on_added(hit->id);
    i += hit->content.size();
    if (hit->rstrip) i += leading_space_end(text.substr(i));
    segment = i;
  }
  if (segment < text.size()) on_segment(text.substr(segment), segment == 0);
}

// Truncates `content` to leave room for the template's tokens within max_len (0 = no limit),
// then writes before + content + after to `out`. Returns true when it truncated.
bool finish(const Template& t, std::vector<int32_t>& content, size_t max_len, std::vector<int32_t>& out);

}  // namespace modtrain::hf
