#!/usr/bin/env python3
"""Writes the tokenizer parity inputs (cases.jsonl: one JSON string per line) and the two test
vocabularies. Deterministic. The expected ids come from reference.js (Hugging Face tokenizers):
    python3 make_cases.py OUTDIR
    node reference.js OUTDIR/vocab-uncased.txt --jsonl < OUTDIR/cases.jsonl > OUTDIR/golden-uncased.jsonl
    node reference.js OUTDIR/vocab-cased.txt --cased --jsonl < OUTDIR/cases.jsonl > OUTDIR/golden-cased.jsonl
"""
import json, random, sys, os

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(20261128)

specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
words = ("the a an and or but not you your i me my we they he she it is are was be this that "
         "hate love kill threat spam buy now free click here follow back go home people stupid idiot "
         "great good bad news fake true vaccine election win money crypto bitcoin user http "
         "can't won't don't it's i'm cafe naive resume uber hello world covid").split()
pieces = "##s ##ed ##ing ##ly ##er ##est ##able ##ness ##ment ##tion ##y ##e ##a ##o ##i ##n ##t ##r ##l un re pre dis".split()
extra_uncased = ["中", "国", "人", "日", "本", "语", "привет", "мир", "##ет", "при", "😀", "😂", "🔥", "❤", "ß", "ω", "ᄒ", "##ᅡ", "##ᆫ",
                 "ﬁ", "##ﬁ", "ñ", "é", "##é", "straße", "σ", "##σ", "##ς", "ا", "##ل", "क", "##ि", "##्", "ǆ"]
extra_cased = ["Hello", "World", "The", "I", "##S", "USA", "Café", "café", "Ω", "Σ", "ÉCOLE", "É", "##É", "naïve", "İ", "##̇", "é", "e", "##́",
               "中", "国", "😀", "🔥", "❤", "️", "##️", "Straße", "ß", "ẞ", "K", "K", "Å", "Å", "ñ", "ñ", "##ñ"]

def vocab(cased):
    toks = list(specials)
    for c in range(33, 127):
        ch = chr(c)
        if not cased and ch.isupper():
            continue
        toks.append(ch)
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        toks.append("##" + c)
    toks += words + pieces
    if cased:
        toks += [w.capitalize() for w in words[:20]]
        toks += ["##" + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
        toks += extra_cased
    else:
        toks += extra_uncased
    seen, result = set(), []
    for t in toks:
        if t not in seen:
            seen.add(t)
            result.append(t)
    return result

for name, cased in (("vocab-uncased.txt", False), ("vocab-cased.txt", True)):
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab(cased)) + "\n")

cases = [
    "", " ", "hello world", "Hello, World!", "HELLO WORLD", "hello   \t\n  world  ",
    "café naïve résumé Ångström ÉCOLE", "e\u0301 cafe\u0301", "Straße STRASSE ẞ", "İstanbul ıi",
    "ΣΊΣΥΦΟΣ σίσυφος", "ǅ ǆ Ǆ", "ﬁne ﬂow", "Kelvin \u212a ohm \u2126 angstrom \u212b",
    "中国人 日本語 한국어 안녕하세요", "我爱北京天安门", "\u4e2d\u0301", "\uf900\uf901 compat",
    "привет, мир! ПРИВЕТ", "مرحبا بالعالم", "नमस्ते दुनिया किताब", "สวัสดีครับ", "שָׁלוֹם",
    "I love it 😀😂🔥 ❤️ 👍🏽 👨‍👩‍👧 🥰🫠 #blessed", "emoji\u200djoin zero\u200bwidth \ufeffbom",
    "ctrl\x00null\x01soh\x07bel\x1bx\x7fdel", "tab\tnewline\ncr\rvt\x0bff\x0cend", "nbsp\u00a0ideo\u3000thin\u2009line\u2028para\u2029",
    "nel\u0085x", "repl\ufffdacement", "private\ue000use", "unassigned\U000e0080x", "fs\x1cgs\x1drs\x1eus\x1fx",
    "don't can't won't I'm it's", "(parens) [brackets] {braces} <angles>", "a.b,c;d:e!f?g", "$100 & 50% #tag @user ~tilde `tick` ^caret |pipe \\back",
    "«quotes» „low“ ‘single’ — dash – en … ellipsis", "full｜width！ ＡＢＣ １２３", "¿qué? ¡sí!", "1,000.50 3.14159 1e10",
    "[CLS] hello [SEP] world [PAD][UNK][MASK]", "[cls] lowercase special", "x[SEP]y [SEP[SEP]] [ SEP ]", "[MASK]ed [CLS]",
    "a" * 100, "a" * 101, "b" * 99 + "é", ("word " * 60).strip(), "supercalifragilisticexpialidocious",
    "hateful hating haters unfollow reposting", "@user @user_123 http http://t.co/x www.example.com",
    "RT @someone: this is SO FAKE!!! #FakeNews http://t.co/abc123", "lol 😂😂😂 ur so dumb smh",
    "x\u0301\u0302\u0303 stacked", "\u0301leading mark", "한 jamo", "\U0001F1FA\U0001F1F8 flags", "a\u00adsoft\u00adhyphen",
    "math 𝐀𝐁𝐂 𝕏", "arrows →←↑ ∑∫ ≤≥ ™©®", "tilde ~ 〜 ～", "CamelCaseWordsHere", "UPPER lower MiXeD",
]

pool = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 4
    + list(" " * 30) + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    + list("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßœŒĳ") + list("αβγδεζηθΣσςΩ") + list("абвгдежзийклмнопрстуфхцчшщъыьэюяЁё")
    + list("中国人日本語漢字") + list("한국어") + list("ابتثجحخ") + list("कखगघि्ं") + list("ไทย")
    + ["\u0301", "\u0308", "\u0327", "\u200b", "\u200d", "\ufe0f", "\u00a0", "\u3000", "\t", "\n", "\x00", "\x7f", "\ufffd", "\u2028"]
    + list("😀😂🔥❤👍🏽🥰🫠🙏💯") + list("«»“”‘’—–…¿¡") + list("ＡＢ１！｜") + ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"]
    + list("ﬁﬂǅ\u212a\u2126\u212bİıẞ")
)
for _ in range(1500):
    n = rng.randint(1, 40)
    cases.append("".join(rng.choice(pool) for _ in range(n)))
for _ in range(300):  # word-like strings that exercise ## pieces
    n = rng.randint(1, 8)
    cases.append(" ".join(rng.choice(words) + rng.choice(["", "s", "ing", "ed", "ly", "ness", "able", "xyz"]) for _ in range(n)))

# unassigned code points (Cn) are kept by HF; format characters (Cf) are removed
cases += ["a\u0378b", "a\U0002FFFEb", "a\U000E0080b", "a\uFDD0b", "a\U00030000b", "a\u0870b", "a\U0001FAE8b", "a\U000E0001b"]

with open(os.path.join(out, "cases.jsonl"), "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=True) + "\n")
print(len(cases), "cases")
