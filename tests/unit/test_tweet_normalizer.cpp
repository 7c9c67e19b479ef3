// Tweet normalisation: mentions, URLs, HTML entities, whitespace; emoji and scripts kept.
#include <catch2/catch.hpp>

#include "modtrain/data/tweet_normalizer.h"

using modtrain::normalize_tweet;

TEST_CASE("mentions become @user, e-mail addresses stay", "[tweets]") {
  CHECK(normalize_tweet("@alice hi @Bob_99!") == "@user hi @user!");
  CHECK(normalize_tweet("RT @someone: wow") == "RT @user: wow");
  CHECK(normalize_tweet("mail me at bob@example.com") == "mail me at bob@example.com");
  CHECK(normalize_tweet("@ alone") == "@ alone");
  CHECK(normalize_tweet("(@carol)") == "(@user)");
}

TEST_CASE("URLs become http", "[tweets]") {
  CHECK(normalize_tweet("see https://t.co/AbC123 now") == "see http now");
  CHECK(normalize_tweet("HTTP://EXAMPLE.COM/x?y=1&z=2") == "http");
  CHECK(normalize_tweet("www.example.org/page, ok") == "http ok");
  CHECK(normalize_tweet("nothttp://x") == "nothttp://x");
}

TEST_CASE("HTML entities are unescaped once", "[tweets]") {
  CHECK(normalize_tweet("fish &amp; chips &lt;3 &gt;:( &quot;q&quot; it&#39;s") == "fish & chips <3 >:( \"q\" it's");
  // numeric references: punctuation and the named characters in any form; other code points stay
  CHECK(normalize_tweet("it&#039;s &#X27; &#x2a;&#x2A; &#8220;q&#x201d;") == "it's ' ** \u201cq\u201d");
  CHECK(normalize_tweet("&#x1F600; &#128512;") == "&#x1F600; &#128512;");
  CHECK(normalize_tweet("&#35;tag &#59; &#65;") == "&#35;tag &#59; &#65;");  // '#', ';' and letters: not decoded
  CHECK(normalize_tweet("&#38;lt; &amp;#39; &#64;bob") == "&lt; &#39; @user");
  CHECK(normalize_tweet("&amp;lt;") == "&lt;");
  CHECK(normalize_tweet("&bogus; & &#0; &#xD800; &") == "&bogus; & &#0; &#xD800; &");
  CHECK(normalize_tweet("a&nbsp;b") == "a b");  // nbsp is whitespace: collapsed
}

TEST_CASE("whitespace collapses and trims, emoji and other scripts stay", "[tweets]") {
  CHECK(normalize_tweet("  lots \t of\n\n space  ") == "lots of space");
  CHECK(normalize_tweet("ideo\u3000space") == "ideo space");
  CHECK(normalize_tweet("😂🔥 #blessed привет 中国") == "😂🔥 #blessed привет 中国");
  CHECK(normalize_tweet("") == "");
}
