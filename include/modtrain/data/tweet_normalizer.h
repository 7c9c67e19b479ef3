// Tweet normalisation applied before tokenization when tokenizer.normalize_tweets is on:
// HTML entities unescaped (&amp; -> &), URLs -> "http", @mentions -> "@user", whitespace runs
// collapsed to one space and trimmed. Emoji, hashtags and non-Latin scripts are kept as they are.
#pragma once

#include <string>
#include <string_view>

namespace modtrain {

// Writes the normalised `text` to `out` (cleared first).
void normalize_tweet(std::string_view text, std::string& out);
std::string normalize_tweet(std::string_view text);

// Unescapes HTML character references once (&amp;lt; -> &lt;): the named references that appear
// in tweets (amp lt gt quot apos nbsp and typographic ones) and every numeric one (&#39; &#x1F600;).
void unescape_html(std::string_view text, std::string& out);

}  // namespace modtrain
