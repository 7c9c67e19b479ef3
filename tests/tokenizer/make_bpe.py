#!/usr/bin/env python3
"""Writes the byte-level BPE test tokenizer (RoBERTa's layout: vocab.json, merges.txt and a
tokenizer.json with RobertaProcessing and <mask> lstrip) from a BPE that Hugging Face tokenizers
trained on fortunes text, keeping its first MERGES merges (a prefix of a BPE's merges with the
byte alphabet is itself a valid BPE). Deterministic given TRAINED.
    cat /usr/share/games/fortunes/{fortunes,computers,food,education,science} | head -c 400000 > corpus.txt
    node train_bpe.js corpus.txt trained.json            (tokenizers@0.23.2)
    python3 make_bpe.py trained.json OUTDIR [MERGES]
    node reference_json.js OUTDIR/tokenizer.json < cases.jsonl > OUTDIR/golden.jsonl
    node reference_json.js OUTDIR/tokenizer.json --max-len 12 < cases.jsonl > OUTDIR/golden-max12.jsonl
"""
import json, os, sys

trained, out = sys.argv[1], sys.argv[2]
keep = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
os.makedirs(out, exist_ok=True)


def bytes_to_unicode():  # GPT-2's printable stand-ins for the 256 byte values
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


merges = json.load(open(trained, encoding="utf-8"))["model"]["merges"][:keep]
merges = [m if isinstance(m, list) else m.split(" ") for m in merges]
vocab = {}
for t in ["<s>", "<pad>", "</s>", "<unk>"]:
    vocab[t] = len(vocab)
byte_chars = bytes_to_unicode()
for b in range(256):
    vocab.setdefault(byte_chars[b], len(vocab))
for a, b in merges:
    vocab.setdefault(a + b, len(vocab))
vocab["<mask>"] = len(vocab)

with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")
    for a, b in merges:
        f.write(f"{a} {b}\n")


def added(content, id, lstrip=False):
    return {"id": id, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": False, "special": True}


spec = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added("<s>", 0), added("<pad>", 1), added("</s>", 2), added("<unk>", 3),
                     added("<mask>", vocab["<mask>"], lstrip=True)],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
                       "add_prefix_space": False},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
}
with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(spec, f, ensure_ascii=False, indent=1)
print(f"{len(vocab)} tokens, {len(merges)} merges -> {out}")
