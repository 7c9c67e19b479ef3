#!/usr/bin/env bash
# Same-run A/B of two modtrain binaries on `modtrain train` (samples/s from metrics.jsonl, the
# first window, which includes start-up, left out), alternated run by run so that the machine's
# drift falls on both. For a change whose cost is a throughput question (a wait moved, a kernel
# replaced). Build the "before" binary from the earlier commit and copy it aside first.
#
#   scripts/bench_ab.sh BEFORE_BIN AFTER_BIN OUT.json [--set key=value ...]
#   env: NP (ranks, default 2), REPEATS (pairs, default 3), CONFIG (default configs/tiny.yaml),
#        STEPS (default 120), EVERY (log window, default 40), LABEL (what differs, for the JSON)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 3 ]] || { echo "usage: scripts/bench_ab.sh BEFORE_BIN AFTER_BIN OUT.json [--set key=value ...]" >&2; exit 2; }
before=$(realpath "$1") after=$(realpath "$2") out=$3; shift 3
np=${NP:-2} repeats=${REPEATS:-3} config=${CONFIG:-configs/tiny.yaml} steps=${STEPS:-120} every=${EVERY:-40}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mt=$after
"$mt" data synth --out "$work/data" --train 20000 --valid 500 > /dev/null
"$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out "$work/vocab.txt" > /dev/null
cfg=(--config "$config" --set tokenizer.vocab=$work/vocab.txt --set data.prepared_dir=$work/prep
     --set "data.train=[$work/data/train-*.jsonl]" --set "data.valid=[]" --set train.max_steps=$steps
     --set log.every=$every --set checkpoint.every=0 "$@")
"$mt" data prepare "${cfg[@]}" > /dev/null
for i in $(seq 1 "$repeats"); do
  for side in before after; do
    bin=$before; [[ $side == after ]] && bin=$after
    mpiexec -np "$np" "$bin" train "${cfg[@]}" --set run.dir=$work/$side-$i > /dev/null
  done
done
python3 - "$work" "$out" "$repeats" "$np" "$config" "$*" "${LABEL:-}" "$before" "$after" <<'PY'
import json, statistics, sys
work, out, repeats, np, config, sets, label, before, after = sys.argv[1:]
def rate(run):
    rows = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl") if '"train"' in l]
    rows = rows[1:] or rows
    return sum(r["samples_per_s"] for r in rows) / len(rows)
res = {side: [rate(f"{side}-{i}") for i in range(1, int(repeats) + 1)] for side in ("before", "after")}
ratios = [a / b for a, b in zip(res["after"], res["before"])]
result = {"benchmark": "ab_train", "label": label, "config": config, "overrides": sets, "ranks": int(np),
          "before_bin": before, "after_bin": after,
          "before_samples_per_s": res["before"], "after_samples_per_s": res["after"],
          "after_over_before_per_pair": ratios, "after_over_before_median": statistics.median(ratios)}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
