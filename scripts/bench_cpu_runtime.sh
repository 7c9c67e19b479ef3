#!/usr/bin/env bash
# What core/cpu_runtime.h's malloc thresholds buy, same binary, same run: MODTRAIN_CPU_TUNING=off
# (glibc's defaults: every block over 128 KiB mmap'd and handed back when freed) against the default,
# alternated run by run, each pinned to one core with one thread. Two workloads users run:
# `modtrain predict` over 20k real-length posts (batch 64) and `modtrain train` of the tiny model
# (200 steps). Wall and the kernel's share (sys) from /usr/bin/time. Writes bench/results/cpu_runtime.json.
#   scripts/bench_cpu_runtime.sh [REPEATS (default 3)]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD mt=$PWD/build/modtrain repeats=${1:-3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$mt" data synth --out data --train 20000 --valid 2000 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set eval.every=0
     --set checkpoint.every=0 --set dist.threads=1 --set log.level=warn --set train.warmup_steps=20)
"$mt" data prepare "${cfg[@]}" > /dev/null
"$mt" train "${cfg[@]}" --set run.dir=model --set train.max_steps=50 > /dev/null
python3 -c "
import glob, json
posts = [json.loads(l)['text'] for f in sorted(glob.glob('data/train-*.jsonl')) for l in open(f)][:20000]
with open('posts.jsonl', 'w') as f:
    for i, p in enumerate(posts): f.write(json.dumps({'id': str(i), 'text': p}) + '\n')"
timed() {  # timed NAME TUNING CMD...: appends {"name", "tuning", "wall_s", "user_s", "sys_s"} to runs.txt
  local name=$1 tuning=$2; shift 2
  MODTRAIN_CPU_TUNING=$tuning /usr/bin/time -f "%e %U %S" -o t.txt taskset -c 1 "$@" > /dev/null 2>&1
  read -r wall user sys < t.txt
  echo "{\"workload\": \"$name\", \"tuning\": \"$tuning\", \"wall_s\": $wall, \"user_s\": $user, \"sys_s\": $sys}" >> runs.txt
  echo "$name tuning=$tuning: ${wall} s (user $user, sys $sys)"
}
for i in $(seq 1 "$repeats"); do
  for tuning in off on; do
    timed predict "$tuning" "$mt" predict --model model/model --input posts.jsonl --output "out-$tuning.jsonl"
    rm -rf "run-$tuning"
    timed train "$tuning" "$mt" train "${cfg[@]}" --set run.dir="run-$tuning" --set train.max_steps=200
  done
done
cmp out-off.jsonl out-on.jsonl  # the same scores, byte for byte: only where memory comes from differs
# Single-core sgemm by OpenBLAS kernel set (numpy's matmul: the same libopenblas), at the tiny
# model's and BERT-base's layer shapes: what an OPENBLAS_CORETYPE in the environment costs.
for core in Haswell ""; do
  how=(env -u OPENBLAS_CORETYPE)  # "": OpenBLAS's own choice for this CPU
  [[ -n $core ]] && how=(env OPENBLAS_CORETYPE="$core")
  picked=$("${how[@]}" OPENBLAS_VERBOSE=2 /usr/bin/python3 -c "import numpy" 2>&1 | sed -n 's/^Core: //p')
  "${how[@]}" taskset -c 1 /usr/bin/python3 -c "
import json, sys, time, numpy as np
rows = []
for m, k, n in [(2048, 128, 512), (256, 128, 384), (40, 768, 768), (1024, 768, 3072)]:
    a, b = np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)
    for _ in range(3): a @ b
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0: a @ b; runs += 1
    rows.append({'m': m, 'k': k, 'n': n, 'gflops': round(2 * m * k * n * runs / (time.perf_counter() - start) / 1e9, 1)})
print(json.dumps({'OPENBLAS_CORETYPE': sys.argv[1], 'core': sys.argv[2], 'shapes': rows}))" "$core" "$picked" >> gemm.txt
  tail -1 gemm.txt
done
python3 - "$repo" << 'PY'
import json, os, statistics, subprocess, sys
repo = sys.argv[1]
runs = [json.loads(l) for l in open("runs.txt")]
summary = {}
for w in ("predict", "train"):
    med = {t: statistics.median(r["wall_s"] for r in runs if r["workload"] == w and r["tuning"] == t) for t in ("off", "on")}
    sys_s = {t: statistics.median(r["sys_s"] for r in runs if r["workload"] == w and r["tuning"] == t) for t in ("off", "on")}
    summary[w] = {"wall_s_median": med, "sys_s_median": sys_s, "speedup": med["off"] / med["on"]}
    print(f"{w}: {med['off']:.2f} s -> {med['on']:.2f} s ({med['off'] / med['on']:.2f}x); sys {sys_s['off']:.2f} -> {sys_s['on']:.2f} s")
out = {"benchmark": "cpu_runtime", "machine": {"cores": os.cpu_count(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
       "commit": subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()},
       "work": "predict: 20k real-length posts, batch 64; train: tiny model, 200 steps, micro-batch 32; one core (taskset -c 1), "
               "one thread; MODTRAIN_CPU_TUNING=off vs on alternated; predictions byte-identical",
       "runs": runs, "summary": summary, "sgemm_by_core": [json.loads(l) for l in open("gemm.txt")]}
json.dump(out, open(f"{repo}/bench/results/cpu_runtime.json", "w"), indent=2)
PY
