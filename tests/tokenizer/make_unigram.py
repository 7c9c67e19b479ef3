#!/usr/bin/env python3
"""Writes the SentencePiece Unigram test tokenizer in XLM-R's layout from a model that spm_train
made: sentencepiece.bpe.model (the model itself) and the tokenizer.json that transformers'
XLMRobertaConverter would write for it (fairseq order <s> <pad> </s> <unk>, pieces from 3 on with
their scores, <mask> last; the Precompiled charsmap, " {2,}" -> " ", Metaspace, <s> $A </s>).
    spm_train --input=corpus.txt --model_prefix=uni --vocab_size=2000 --model_type=unigram \
              --character_coverage=1.0          (Debian's sentencepiece; corpus: fortunes + cases)
    python3 make_unigram.py uni.model OUTDIR
    node reference_json.js OUTDIR/tokenizer.json < cases.jsonl > OUTDIR/golden.jsonl
    spm_encode --model=uni.model --output_format=id < texts | (fairseq offset) > OUTDIR/golden-spm.jsonl
The protobuf is read by hand (its wire format: varints, fixed32 and length-delimited fields)."""
import base64, json, os, shutil, struct, sys

model_path, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
blob = open(model_path, "rb").read()


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(wire)
        yield num, wire, v


pieces, charsmap = [], b""
for num, wire, v in fields(blob):
    if num == 1:
        p = {"score": 0.0, "type": 1}
        for n2, w2, v2 in fields(v):
            if n2 == 1:
                p["piece"] = v2.decode("utf-8")
            elif n2 == 2:
                p["score"] = struct.unpack("<f", v2)[0]
            elif n2 == 3:
                p["type"] = v2
        pieces.append(p)
    elif num == 3:
        for n2, w2, v2 in fields(v):
            if n2 == 2:
                charsmap = v2
assert [p["piece"] for p in pieces[:3]] == ["<unk>", "<s>", "</s>"], pieces[:3]
vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
vocab += [[p["piece"], p["score"]] for p in pieces[3:]]
vocab += [["<mask>", 0.0]]
mask = len(vocab) - 1


def added(content, id, lstrip=False):
    return {"id": id, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": False, "special": True}


spec = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added("<s>", 0), added("<pad>", 1), added("</s>", 2), added("<unk>", 3),
                     added("<mask>", mask, lstrip=True)],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode("ascii")},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                          "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": False},
}
with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(spec, f, ensure_ascii=False)
shutil.copy(model_path, os.path.join(out, "sentencepiece.bpe.model"))
print(f"{len(vocab)} pieces, charsmap {len(charsmap)} bytes -> {out}")
