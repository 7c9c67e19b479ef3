#include "hf_tokenizer_json.h"

#include <cctype>
#include <climits>

#include "modtrain/data/tweet_normalizer.h"

#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "unicode.h"

namespace modtrain::hf {

nlohmann::json without_tweet_steps(const nlohmann::json& normalizer) {
  if (!normalizer.is_object() || normalizer.value("type", "") != "Sequence") return normalizer;
  const nlohmann::json tweet = nlohmann::json::parse(tweet_normalizer_hf_steps());
  const nlohmann::json& steps = normalizer.at("normalizers");
  if (!steps.is_array() || steps.size() < tweet.size()) return normalizer;
  for (size_t i = 0; i < tweet.size(); ++i)
    if (steps[i] != tweet[i]) return normalizer;
  const nlohmann::json rest(steps.begin() + static_cast<std::ptrdiff_t>(tweet.size()), steps.end());
  if (rest.empty()) return nullptr;
  if (rest.size() == 1) return rest[0];
  return {{"type", "Sequence"}, {"normalizers", rest}};
}

using json = nlohmann::json;

void fail(const std::string& path, const std::string& what) { throw UserError(path + ": " + what); }

json parse_file(const std::string& path, const std::string& what) {
  const std::string text = io::read_file(path, io::kMaxReadBytes, what);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers that overflow a double (1e400)
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(path, "not a JSON object (a deeply nested list, a number...); is this the " + what + "?");
  return j;
}

size_t trailing_space_start(std::string_view s) {
  size_t end = 0;
  for (size_t i = 0, n = 0; i < s.size(); i += n)
    if (!unicode::is_whitespace(unicode::decode(s, i, n))) end = i + n;
  return end;
}

size_t leading_space_end(std::string_view s) {
  size_t i = 0;
  for (size_t n = 0; i < s.size() && unicode::is_whitespace(unicode::decode(s, i, n));) i += n;
  return i;
}

int32_t id_value(const json& v, const std::string& path, const std::string& what) {
  // get<int32_t>() would wrap 2^32 + N to N: a range check first
  if (!v.is_number_integer()) fail(path, what + " is not an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX))
    fail(path, what + " is " + v.dump() + ", outside 0.." + std::to_string(INT32_MAX));
  return v.get<int32_t>();
}

std::vector<AddedToken> added_tokens(const json& spec, const std::string& path) {
  std::vector<AddedToken> added;
  if (!spec.contains("added_tokens") || spec.at("added_tokens").is_null()) return added;
  if (!spec.at("added_tokens").is_array()) fail(path, "added_tokens is not an array");
  for (const json& a : spec.at("added_tokens")) {
    const std::string content = a.is_object() ? a.value("content", "") : "";
    const json id_json = a.is_object() ? a.value("id", json()) : json();
    if (content.empty() || !id_json.is_number_integer())
      fail(path, "added_tokens entry without content or id: " + a.dump().substr(0, 80));
    const int32_t id = id_value(id_json, path, "added_tokens: the id of " + content);
    added.push_back({content, id, a.value("lstrip", false), a.value("rstrip", false)});
  }
  return added;
}

Template post_processor(const json& spec, const std::string& path) {
  const json post = spec.contains("post_processor") ? spec.at("post_processor") : json();
  Template t;
  const std::string type = post.is_null() ? "" : post.value("type", std::string("?"));
  if (type.empty() || type == "ByteLevel") return t;  // GPT-2: nothing around the ids
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto special = [&](const char* key) {
      const json s = post.value(key, json());
      if (!s.is_array() || s.size() != 2 || !s[1].is_number_integer())
        fail(path, std::string("post_processor.") + key + " is not [token, id]");
      return s[1].get<int32_t>();
    };
    t.before = {special("cls")};
    t.after = {special("sep")};
    return t;
  }
  if (type == "TemplateProcessing") {
    const json single = post.value("single", json());
    const json specials = post.value("special_tokens", json::object());
    if (!single.is_array()) fail(path, "post_processor.single is not a list");
    bool seen_a = false;
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        if (seen_a) fail(path, "post_processor.single has two sequences");
        seen_a = true;
      } else if (piece.contains("SpecialToken")) {
        const std::string name = piece.at("SpecialToken").value("id", "");
        if (!specials.contains(name) || !specials.at(name).contains("ids"))
          fail(path, "post_processor.special_tokens has no ids for " + name);
        for (const json& id : specials.at(name).at("ids")) (seen_a ? t.after : t.before).push_back(id.get<int32_t>());
      } else {
        fail(path, "post_processor.single entry " + piece.dump() + " is neither Sequence nor SpecialToken");
      }
    }
    if (!seen_a) fail(path, "post_processor.single has no sequence ($A)");
    return t;
  }
  fail(path, "post_processor " + type +
                 " is not supported (TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel or none)");
}

FirstBytes first_bytes(const std::vector<AddedToken>& added) {
  FirstBytes first{};
  for (const AddedToken& a : added) {
    const unsigned char c = static_cast<unsigned char>(a.content[0]);
    first[c] = true;
    if (a.fold_case)
      first[static_cast<unsigned char>(std::tolower(c))] = first[static_cast<unsigned char>(std::toupper(c))] = true;
  }
  return first;
}

bool finish(const Template& t, std::vector<int32_t>& content, size_t max_len, std::vector<int32_t>& out) {
  const size_t extra = t.before.size() + t.after.size();
  bool truncated = false;
  if (max_len > 0 && content.size() + extra > max_len) {
    content.resize(max_len > extra ? max_len - extra : 0);
    truncated = true;
  }
  out.clear();
  out.insert(out.end(), t.before.begin(), t.before.end());
  out.insert(out.end(), content.begin(), content.end());
  out.insert(out.end(), t.after.begin(), t.after.end());
  return truncated;
}

nlohmann::ordered_json added_token_json(const std::string& content, int32_t id, bool lstrip) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", lstrip},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace modtrain::hf
