#!/usr/bin/env bash
# samples/s of `modtrain train` on configs/tiny.yaml at 1 and 2 CPU ranks (from metrics.jsonl),
# and how much of the gradient all-reduce time is hidden behind backward (from the 2-rank
# timeline). Writes bench/results/train-ranks.json. Called by scripts/bench.sh (build first).
set -euo pipefail
cd "$(dirname "$0")/.."
mt=$PWD/build/modtrain
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$mt" data synth --out "$work/data" --train 20000 --valid 500 > /dev/null
"$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out "$work/vocab.txt" > /dev/null
cfg=(--config configs/tiny.yaml --set tokenizer.vocab=$work/vocab.txt --set data.prepared_dir=$work/prep
     --set "data.train=[$work/data/train-*.jsonl]" --set "data.valid=[]" --set train.max_steps=120 --set log.every=40)
"$mt" data prepare "${cfg[@]}" > /dev/null
"$mt" train "${cfg[@]}" --set run.dir=$work/r1 > /dev/null
mpiexec -np 2 "$mt" train "${cfg[@]}" --set run.dir=$work/r2 --set dist.timeline=$work/tl/timeline.json > /dev/null
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def rate(run):
    rows = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl") if '"train"' in l]
    rows = rows[1:] or rows  # the first window includes start-up
    return sum(r["samples_per_s"] for r in rows) / len(rows), sum(r["tokens_per_s"] for r in rows) / len(rows)
s1, t1 = rate("r1")
s2, t2 = rate("r2")
events = json.load(open(f"{work}/tl/timeline-rank0.json"))["traceEvents"]
spans = [e for e in events if e.get("ph") == "X"]
backward = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e["name"] == "backward"]
reduce = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e["name"].startswith("all_reduce of gradient bucket")]
total = sum(b - a for a, b in reduce)
hidden = sum(max(0, min(b, bb) - max(a, ba)) for a, b in reduce for ba, bb in backward)
wait = sum(e["dur"] for e in spans if e["name"] == "wait for gradients")
step = {n: sum(e["dur"] for e in spans if e["name"] == n) / max(1, len(backward)) / 1e3 for n in ("forward", "backward", "optimizer")}
result = {"benchmark": "train_ranks", "config": "configs/tiny.yaml", "samples_per_s": {"1": s1, "2": s2},
          "tokens_per_s": {"1": t1, "2": t2}, "scaling_2_ranks": s2 / s1,
          "allreduce_ms_per_step": total / max(1, len(backward)) / 1e3, "hidden_behind_backward": hidden / total if total else 0,
          "wait_ms_per_step": wait / max(1, len(backward)) / 1e3, "step_split_ms_rank0": step}
json.dump(result, open("bench/results/train-ranks.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
