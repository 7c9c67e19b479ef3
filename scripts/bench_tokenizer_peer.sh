#!/usr/bin/env bash
# Tokenizer speed, modtrain vs Hugging Face tokenizers (npm, the Rust library) on the same work:
# a byte-level BPE trained by HF tokenizers on all of Debian's fortunes (about 30k merges, RoBERTa's
# tokenizer.json layout), encoding every fortune (~30k real texts) with <s> ... </s>, one thread
# each, best of 3 rounds after a warm-up, the two alternated 3 times; the ids' checksums must agree.
# Writes bench/results/tokenizer-peer.json. Needs node + npm (installs tokenizers@0.23.2 in a
# scratch folder) and the fortunes package. Usage: scripts/bench_tokenizer_peer.sh (build first)
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
node train_bpe.js corpus.txt trained.json
python3 - <<'PY'
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
json.dump(j, open("tokenizer.json", "w"), ensure_ascii=False)
print(f"BPE: {len(vocab)} tokens, {len(j['model']['merges'])} merges")
PY
for rep in 1 2 3; do
  "$repo"/build/bench/modtrain_bench_tokenizer_peer tokenizer.json texts.jsonl 3 > modtrain-$rep.json
  RAYON_NUM_THREADS=1 node hf_tokenizers.js tokenizer.json texts.jsonl 3 > hf-$rep.json
  echo "round $rep: modtrain $(cat modtrain-$rep.json)"
  echo "         hf       $(cat hf-$rep.json)"
done
python3 - "$repo/bench/results/tokenizer-peer.json" <<'PY'
import json, os, statistics, sys
m = [json.load(open(f"modtrain-{r}.json")) for r in (1, 2, 3)]
h = [json.load(open(f"hf-{r}.json")) for r in (1, 2, 3)]
same = all(a["checksum"] == b["checksum"] and a["tokens"] == b["tokens"] for a, b in zip(m, h))
mt, ht = statistics.median(x["tokens_per_s"] for x in m), statistics.median(x["tokens_per_s"] for x in h)
result = {"benchmark": "tokenizer_peer", "machine": os.uname().nodename, "cores": os.cpu_count(),
          "tokenizer": "byte-level BPE (RoBERTa layout), trained on fortunes", "texts": m[0]["texts"],
          "tokens": m[0]["tokens"], "same_ids": same, "threads": 1,
          "modtrain_tokens_per_s": mt, "hf_tokenizers_tokens_per_s": ht, "ratio": mt / ht,
          "runs": {"modtrain": m, "hf": h}}
json.dump(result, open(sys.argv[1], "w"), indent=1)
print(f"bpe: modtrain {mt:.0f} tokens/s, HF tokenizers {ht:.0f} tokens/s, {mt / ht:.2f}x, same ids: {same}")
sys.exit(0 if same else 1)
PY
