#!/usr/bin/env bash
# `modtrain tokenize` gives Hugging Face's ids on the golden single-line cases (the texts without
# line breaks), uncased and cased.  Usage: tokenize_parity.sh MODTRAIN DATA_DIR
set -euo pipefail
mt=$1 data=$2/tokenizer
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
python3 - "$data" "$dir" <<'PY'
import json, sys
data, out = sys.argv[1], sys.argv[2]
cases = [json.loads(l) for l in open(f"{data}/cases.jsonl", encoding="utf-8")]
for name in ("uncased", "cased"):
    gold = open(f"{data}/golden-{name}.jsonl").read().splitlines()
    keep = [i for i, c in enumerate(cases) if not any(ch in c for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")]
    with open(f"{out}/{name}.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(cases[i] + "\n" for i in keep))
    with open(f"{out}/{name}.expected", "w") as f:
        f.write("".join(json.dumps(json.loads(gold[i]), separators=(",", ":")) + "\n" for i in keep))
PY
"$mt" tokenize --vocab "$data/vocab-uncased.txt" < "$dir/uncased.txt" > "$dir/uncased.got"
"$mt" tokenize --vocab "$data/vocab-cased.txt" --cased --threads 2 < "$dir/cased.txt" > "$dir/cased.got"
diff "$dir/uncased.expected" "$dir/uncased.got"
diff "$dir/cased.expected" "$dir/cased.got"
echo "tokenize parity ok: $(wc -l < "$dir/uncased.got") lines"
