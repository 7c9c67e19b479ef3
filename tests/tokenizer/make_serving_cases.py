#!/usr/bin/env python3
"""Writes tests/data/tokenizer/serving/cases.jsonl: the posts of the train/serve parity test
(tests/unit/test_serving_parity.cpp), one JSON string per line. The tweet normaliser's edge cases
(written by hand: mentions next to URLs, nested and unknown character references, every whitespace
character, look-alike letters) and 2,000 synthetic posts mixing mentions, URLs, named and numeric
character references (decoded and not), emoji, hashtags, other scripts and odd whitespace.
Deterministic (seeded). The ids come from tests/tokenizer/reference_json.js (npm tokenizers) on
the exported tokenizer.json files next to it:

  python3 tests/tokenizer/make_serving_cases.py
  MODTRAIN_WRITE_SERVING=tests/data/tokenizer/serving build/tests/modtrain_unit_tests "[serving]"
  for f in wordpiece bpe unigram; do NODE_PATH=... node tests/tokenizer/reference_json.js \\
      tests/data/tokenizer/serving/$f/tokenizer.json --max-len 64 < tests/data/tokenizer/serving/cases.jsonl \\
      > tests/data/tokenizer/serving/golden-$f.jsonl; done
"""
import json
import os
import random

HAND = [
    "@bob you are PATHETIC 😡 #hate http://t.co/x",
    "@alice hi @Bob_99!", "RT @someone: wow", "mail me at bob@example.com", "@ alone", "(@carol)",
    "see https://t.co/AbC123 now", "HTTP://EXAMPLE.COM/x?y=1&z=2", "www.example.org/page, ok", "nothttp://x",
    "@www.example.com", "a@www.example.com", "@http://x.y", "x.@bob", "@bob@alice", "@_", "@", "@@bob",
    "fish &amp; chips &lt;3 &gt;:( &quot;q&quot; it&#39;s", "&#x1F600; &#128512;", "&amp;lt;", "&#38;lt;",
    "&amp;#39;", "&#38;amp;", "&amp;amp;", "&bogus; & &#0; &#xD800; &", "a&nbsp;b", "&nbsp;&nbsp;x&nbsp;",
    "it&#039;s &#X27; &#x2a;&#x2A; &#8220;q&#x201d;", "&#35;tag &#59; &#65;", "&#64;bob hi", "&#0000000064;x",
    "&lt&gt; &lt;&gt; &&amp; & amp; &amp", "&#x2F;&#47;&#0047;", "&hellip;&mdash;&ndash;&trade;&euro;&pound;",
    "&copy;&reg;&laquo;x&raquo;&lsquo;&rsquo;&ldquo;&rdquo;&apos;", "&#x40;www.x.com", "https:/x http:x www x",
    "httpſ://x ＨＴＴＰ://x Http://X", "  lots \t of\n\n space  ", "ideo\u3000space", "a\u2028b\u2029c\u0085d",
    "x\u00a0\u1680\u2000\u200a\u202f\u205fy", "\u000b\u000cz", "😂🔥 #blessed привет 中国", "",
    "   ", "wwwx.com www.", "http:// https://", "&#x2026; &#8230; &hellip;",
]

WORDS = ["you", "are", "so", "great", "pathetic", "idiot", "free", "crypto", "giveaway", "click", "the", "link",
         "vermin", "love", "this", "game", "lol", "omg", "RT", "WOW", "Hello", "misinfo", "vaccines", "5g",
         "привет", "всем", "que", "asco", "中国", "日本語", "مرحبا", "नमस्ते", "café", "naïve", "Straße"]
EMOJI = ["😂", "🔥", "😭", "🙏", "💯", "❤️", "😡", "🤡", "👀", "👍🏽", "🇫🇷"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&hellip;", "&mdash;", "&#39;", "&#039;",
            "&#x27;", "&#X2A;", "&#64;", "&#128545;", "&#x1F621;", "&bogus;", "&", "&amp;lt;", "&#38;gt;",
            "&#35;", "&#59;", "&#8220;", "&#x201D;", "&euro;", "&amp;amp;", "&#32;"]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2028", " \u200a ", "\r\n"]


def mention(r):
    return r.choice(["@", "@", ".@", "x@", "@@"]) + r.choice(["bob", "Alice_99", "news_now", "_", "www", "http"])


def url(r):
    scheme = r.choice(["http://", "https://", "HTTPS://", "www.", "Http://", "http:/", "hxxp://"])
    return scheme + r.choice(["t.co/", "bit.ly/", "example.com/a?b=1&amp;c=2", "x.y/", ""]) + "%x" % r.getrandbits(20)


def post(r):
    parts = []
    for _ in range(r.randint(1, 12)):
        k = r.random()
        if k < 0.45: parts.append(r.choice(WORDS))
        elif k < 0.55: parts.append(mention(r))
        elif k < 0.63: parts.append(url(r))
        elif k < 0.78: parts.append(r.choice(ENTITIES) + (r.choice(WORDS) if r.random() < 0.3 else ""))
        elif k < 0.88: parts.append(r.choice(EMOJI))
        else: parts.append("#" + r.choice(WORDS))
    text = ""
    for p in parts:
        text += p + r.choice(SPACES) if r.random() < 0.9 else p
    if r.random() < 0.2: text = r.choice(SPACES) + text
    return text


r = random.Random(20261130)
cases = HAND + [post(r) for _ in range(2000)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tokenizer", "serving", "cases.jsonl")
with open(out, "w") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(out, len(cases))
