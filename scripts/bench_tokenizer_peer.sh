#!/usr/bin/env bash
# Tokenizer speed, modtrain vs Hugging Face tokenizers (npm, the Rust library) on the same work:
# every fortune in Debian's fortunes (15k real texts) encoded with <s> ... </s>, one thread each,
# best of 3 rounds after a warm-up, the two alternated 3 times; the ids' checksums must agree. Two
# tokenizers, trained here on the same fortunes: a byte-level BPE (HF tokenizers' trainer, ~30k
# merges, RoBERTa's tokenizer.json layout) and a SentencePiece Unigram (spm_train, 32k pieces,
# XLM-R's layout through tests/tokenizer/make_unigram.py). Writes bench/results/tokenizer-peer.json.
# Needs node + npm (installs tokenizers@0.23.2 in a scratch folder) and Debian's fortunes and
# sentencepiece packages. Usage: scripts/bench_tokenizer_peer.sh (build first)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/modtrain-bench-tokenizer-peer}
mkdir -p "$work"
cd "$work"
[[ -d node_modules/tokenizers ]] || npm install --silent tokenizers@0.23.2 >/dev/null
[[ -d /usr/share/games/fortunes ]] || { echo "install Debian's fortunes package first" >&2; exit 1; }
cp "$repo"/tests/tokenizer/train_bpe.js "$repo"/bench/peer/hf_tokenizers.js .
python3 - <<'PY'
import glob, json, os
texts = []
for f in sorted(glob.glob("/usr/share/games/fortunes/*")):
    if f.endswith((".dat", ".u8")) or os.path.islink(f) or os.path.isdir(f):
        continue
    body = open(f, encoding="utf-8", errors="replace").read()
    texts += [t.strip("\n") for t in body.split("\n%\n") if t.strip()]
open("corpus.txt", "w").write("\n".join(texts))
with open("texts.jsonl", "w") as out:
    for t in texts:
        out.write(json.dumps(t) + "\n")
print(f"{len(texts)} fortunes")
PY
[[ -f bpe.json ]] || { node train_bpe.js corpus.txt trained.json && python3 - <<'PY'
import json
j = json.load(open("trained.json"))
vocab = j["model"]["vocab"]
# The byte alphabet the trainer did not see (a real byte-level vocabulary has all 256 bytes).
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
for c in cs:
    vocab.setdefault(chr(c), len(vocab))
specials = []
for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]:
    vocab[t] = len(vocab)
    specials.append({"id": vocab[t], "content": t, "single_word": False, "lstrip": t == "<mask>", "rstrip": False,
                     "normalized": False, "special": True})
j["added_tokens"] = specials
j["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", vocab["</s>"]], "cls": ["<s>", vocab["<s>"]],
                       "trim_offsets": True, "add_prefix_space": False}
json.dump(j, open("bpe.json", "w"), ensure_ascii=False)
print(f"BPE: {len(vocab)} tokens, {len(j['model']['merges'])} merges")
PY
}
[[ -f unigram.json ]] || {
  spm_train --input=corpus.txt --model_prefix=uni --vocab_size=32000 --hard_vocab_limit=false --model_type=unigram \
    --character_coverage=0.9995 --num_threads="$(nproc)" --minloglevel=2 > /dev/null 2>&1
  python3 "$repo"/tests/tokenizer/make_unigram.py uni.model unigram-dir > /dev/null
  cp unigram-dir/tokenizer.json unigram.json
}
for kind in bpe unigram; do
  for rep in 1 2 3; do
    "$repo"/build/bench/modtrain_bench_tokenizer_peer $kind.json texts.jsonl 3 > modtrain-$kind-$rep.json
    RAYON_NUM_THREADS=1 node hf_tokenizers.js $kind.json texts.jsonl 3 > hf-$kind-$rep.json
    echo "$kind round $rep: modtrain $(cat modtrain-$kind-$rep.json)"
    echo "               hf       $(cat hf-$kind-$rep.json)"
  done
done
python3 - "$repo/bench/results/tokenizer-peer.json" <<'PY'
import json, os, statistics, sys
result = {"benchmark": "tokenizer_peer", "machine": os.uname().nodename, "cores": os.cpu_count(), "threads": 1,
          "texts": "every fortune in Debian's fortunes", "tokenizers": {}}
ok = True
for kind, what in (("bpe", "byte-level BPE (RoBERTa layout), HF-trained on fortunes"),
                   ("unigram", "SentencePiece Unigram (XLM-R layout), spm_train on fortunes")):
    m = [json.load(open(f"modtrain-{kind}-{r}.json")) for r in (1, 2, 3)]
    h = [json.load(open(f"hf-{kind}-{r}.json")) for r in (1, 2, 3)]
    same = all(a["checksum"] == b["checksum"] and a["tokens"] == b["tokens"] for a, b in zip(m, h))
    mt, ht = statistics.median(x["tokens_per_s"] for x in m), statistics.median(x["tokens_per_s"] for x in h)
    result["tokenizers"][kind] = {"tokenizer": what, "texts": m[0]["texts"], "tokens": m[0]["tokens"], "same_ids": same,
                                  "modtrain_tokens_per_s": mt, "hf_tokenizers_tokens_per_s": ht, "ratio": mt / ht,
                                  "runs": {"modtrain": m, "hf": h}}
    print(f"{kind}: modtrain {mt:.0f} tokens/s, HF tokenizers {ht:.0f} tokens/s, {mt / ht:.2f}x, same ids: {same}")
    ok = ok and same
json.dump(result, open(sys.argv[1], "w"), indent=1)
sys.exit(0 if ok else 1)
PY
