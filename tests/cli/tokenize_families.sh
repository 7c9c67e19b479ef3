#!/usr/bin/env bash
# `modtrain tokenize --tokenizer` gives Hugging Face's ids for every tokenizer family on the golden
# single-line cases (the texts without line breaks): WordPiece from BERT's tokenizer.json, byte-level
# BPE from a directory (tokenizer.json) and from vocab.json + merges.txt alone, Unigram from its
# tokenizer.json and from XLM-R's sentencepiece.bpe.model alone, and truncation (--max-len 12).
# Usage: tokenize_families.sh MODTRAIN DATA_DIR
set -euo pipefail
mt=$1 data=$2/tokenizer
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
python3 - "$data" "$dir" <<'PY'
import json, sys
data, out = sys.argv[1], sys.argv[2]
cases = [json.loads(l) for l in open(f"{data}/cases.jsonl", encoding="utf-8")]
keep = [i for i, c in enumerate(cases) if not any(ch in c for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")]
with open(f"{out}/cases.txt", "w", encoding="utf-8", newline="\n") as f:
    f.write("".join(cases[i] + "\n" for i in keep))
for name, golden in (("wordpiece", "golden-uncased.jsonl"), ("bpe", "bpe/golden.jsonl"),
                     ("bpe12", "bpe/golden-max12.jsonl"), ("unigram", "unigram/golden.jsonl"),
                     ("unigram12", "unigram/golden-max12.jsonl")):
    gold = open(f"{data}/{golden}").read().splitlines()
    with open(f"{out}/{name}.expected", "w") as f:
        f.write("".join(json.dumps(json.loads(gold[i]), separators=(",", ":")) + "\n" for i in keep))
PY
mkdir "$dir/roberta" "$dir/xlmr"
cp "$data/bpe/vocab.json" "$data/bpe/merges.txt" "$dir/roberta/"
cp "$data/unigram/sentencepiece.bpe.model" "$dir/xlmr/"
check() {  # name, expected, tokenize flags...
  local name=$1 expected=$2
  shift 2
  "$mt" tokenize "$@" < "$dir/cases.txt" > "$dir/$name.got"
  diff -q "$dir/$expected.expected" "$dir/$name.got" > /dev/null || { diff "$dir/$expected.expected" "$dir/$name.got" | head; echo "FAILED: $name"; exit 1; }
}
check wordpiece-json wordpiece --tokenizer "$data/wordpiece/tokenizer.json"
check bpe-dir bpe --tokenizer "$data/bpe"
check bpe-files bpe --tokenizer "$dir/roberta" --threads 2
check bpe-max12 bpe12 --tokenizer "$data/bpe" --max-len 12
check unigram-json unigram --tokenizer "$data/unigram/tokenizer.json"
check unigram-model unigram --tokenizer "$dir/xlmr"
check unigram-max12 unigram12 --tokenizer "$data/unigram" --max-len 12 --threads 2
echo "tokenize families ok: $(wc -l < "$dir/cases.txt") lines x 7"
