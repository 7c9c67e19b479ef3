// Tweet normalisation applied before tokenization when tokenizer.normalize_tweets is on, in four
// steps: character references unescaped (&amp; -> &, &#39; -> ', a bounded set: see
// tweet_normalizer.cpp), URLs -> "http", @mentions -> "@user", whitespace runs collapsed to one
// space and trimmed. Emoji, hashtags and non-Latin scripts are kept as they are. Each step is one
// that Hugging Face tokenizers' normalizers express exactly (tweet_normalizer_hf_steps), so an
// exported tokenizer.json normalises posts as training did (tests/unit/test_serving_parity.cpp).
#pragma once

#include <string>
#include <string_view>

namespace modtrain {

// Writes the normalised `text` to `out` (cleared first).
void normalize_tweet(std::string_view text, std::string& out);
std::string normalize_tweet(std::string_view text);

// Unescapes HTML character references once (&amp;lt; -> &lt;): the named references that appear
// in tweets (amp lt gt quot apos nbsp and typographic ones) and the numeric forms of those and of
// ASCII punctuation (&#39; &#x27; &#039;). Other numeric references (&#128512;) stay as written.
void unescape_html(std::string_view text, std::string& out);

// The same normalisation as Hugging Face tokenizers normalizers: a JSON array of Replace (regex)
// steps and a Strip, to run before the family's own normalizer in an exported tokenizer.json.
std::string tweet_normalizer_hf_steps();

// 2: the bounded set of references (before: every numeric reference was decoded). Recorded in the
// prepared data's manifest; data prepared with another version is stale.
inline constexpr int kTweetNormalizerVersion = 2;

}  // namespace modtrain
