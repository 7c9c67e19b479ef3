#!/usr/bin/env bash
# Evaluation at scale: one evaluation of a synthetic validation split of N records (7 labels, the
# context task's posts) at 1 and 2 ranks, with build/bench/modtrain_bench_eval (bench/bench_eval.cpp:
# per rank the seconds scoring its share, the seconds gathering and computing the figures, and the
# peak memory the evaluation added). Both world sizes must give the same macro PR-AUC (1 rank = 2
# ranks). Writes bench/results/eval_scale.json (docs/scaling.md, "Evaluation").
# Usage: scripts/bench_eval_scale.sh [N ...] (default 250000 1000000; build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(250000 1000000)
repo=$PWD mt=$PWD/build/modtrain bench=$PWD/build/bench/modtrain_bench_eval
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$mt" data synth --out vocab-data --train 20000 --valid 10 > /dev/null
"$mt" tokenizer train --input 'vocab-data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
echo "[" > runs.json
first=1
for n in "${sizes[@]}"; do
  rm -rf data prep && "$mt" data synth --out data --train 1000 --valid "$n" > /dev/null
  cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep
       --set data.shard_bytes=67108864)
  "$mt" data prepare "${cfg[@]}" > /dev/null 2>&1
  # glibc keeps freed heap memory of the forward passes (its mmap threshold rises after the first
  # large free), which the peak counts; the last run fixes the threshold to show the evaluation's
  # own memory (and costs scoring time: every large tensor is then a fresh mapping).
  for run in "1 default" "2 default" "2 mmap_threshold_64k"; do
    read -r world allocator <<< "$run"
    env=()
    [[ $allocator == default ]] || env=(-x MALLOC_MMAP_THRESHOLD_=65536 -x MALLOC_TRIM_THRESHOLD_=0)
    mpiexec -np $world --bind-to none "${env[@]}" "$bench" "${cfg[@]}" --out result.json > /dev/null
    [[ $first == 1 ]] || echo "," >> runs.json
    first=0
    python3 -c "import json, sys; r = json.load(open('result.json')); r['allocator'] = sys.argv[1]; print(json.dumps(r))" \
      "$allocator" >> runs.json
  done
done
echo "]" >> runs.json
python3 - "$repo" <<'PY'
import json, os, subprocess, sys
repo = sys.argv[1]
runs = json.load(open("runs.json"))
out = {"benchmark": "eval_scale", "machine": runs[0]["machine"],
       "work": "one evaluation (eval.calibrate on: temperatures, tuned thresholds, calibration, AUCs) of a synthetic "
               "validation split, 7 labels, a 1-layer hidden-32 classifier (the forward pass is O(share); this measures "
               "what grows with the split), 1 thread per rank, mpiexec on the 2-core machine",
       "runs": runs}
for n in sorted({r["records"] for r in runs}):
    rs = [r for r in runs if r["records"] == n]
    assert len(rs) == 3 and all(abs(r["macro_pr_auc"] - rs[0]["macro_pr_auc"]) < 1e-6 for r in rs), \
        (n, [r["macro_pr_auc"] for r in rs])  # 1 rank = 2 ranks
    for r in rs:
        for k in r["ranks"]:
            print("N=%d W=%d %s rank %d: scoring %.2f s, gather + figures %.2f s, evaluation %.2f s, peak added %.1f MB "
                  "(RssAnon after %.1f MB), scores held %d" %
                  (n, r["world"], r["allocator"], k["rank"], k["score_share_s"], k["gather_and_figures_s"],
                   k["evaluation_s"], k["peak_added_mb"], k["rss_anon_after_mb"], k["scores_held"]))
json.dump(out, open(f"{repo}/bench/results/eval_scale.json", "w"), indent=2)
PY
