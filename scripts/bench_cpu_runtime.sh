#!/usr/bin/env bash
# What core/cpu_runtime.h's malloc thresholds buy, same binary, same run: MODTRAIN_CPU_TUNING=off
# (glibc's defaults: every block over 128 KiB mmap'd and handed back when freed) against the default,
# alternated run by run, each pinned to one core with one thread. Two workloads users run:
# `modtrain predict` over 20k real-length posts (batch 64) and `modtrain train` of the tiny model
# (200 steps). Wall and the kernel's share (sys) from /usr/bin/time. Then the inference GEMMs the
# same way: MODTRAIN_CPU_GEMM=blas (OpenBLAS) against the default (oneDNN), `predict` with the tiny
# model (20k posts) and a BERT-base-sized one (300 posts), scores compared.
# Writes bench/results/cpu_runtime.json.
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
# a BERT-base-sized classifier (12 x 768, untrained weights are as costly as trained ones)
base=(--config "$repo/configs/base.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep-base --set eval.every=0
      --set checkpoint.every=0 --set dist.threads=1 --set log.level=error)
"$mt" data prepare "${base[@]}" > /dev/null
"$mt" train "${base[@]}" --set run.dir=base --set train.max_steps=2 --set train.warmup_steps=1 --set train.micro_batch=8 \
  --set train.precision=fp32 > /dev/null
python3 -c "
import glob, json
posts = [json.loads(l)['text'] for f in sorted(glob.glob('data/train-*.jsonl')) for l in open(f)][:20000]
with open('posts.jsonl', 'w') as f:
    for i, p in enumerate(posts): f.write(json.dumps({'id': str(i), 'text': p}) + '\n')
with open('posts-base.jsonl', 'w') as f:
    for i, p in enumerate(posts[:300]): f.write(json.dumps({'id': str(i), 'text': p}) + '\n')"
timed() {  # timed NAME TUNING GEMM CMD...: appends {"workload", "tuning", "gemm", "wall_s", "user_s", "sys_s"} to runs.txt
  local name=$1 tuning=$2 gemm=$3; shift 3
  MODTRAIN_CPU_TUNING=$tuning MODTRAIN_CPU_GEMM=$gemm /usr/bin/time -f "%e %U %S" -o t.txt taskset -c 1 "$@" > /dev/null 2>&1
  read -r wall user sys < t.txt
  echo "{\"workload\": \"$name\", \"tuning\": \"$tuning\", \"gemm\": \"$gemm\", \"wall_s\": $wall, \"user_s\": $user, \"sys_s\": $sys}" >> runs.txt
  echo "$name tuning=$tuning gemm=$gemm: ${wall} s (user $user, sys $sys)"
}
for i in $(seq 1 "$repeats"); do
  for tuning in off on; do
    timed predict "$tuning" onednn "$mt" predict --model model/model --input posts.jsonl --output "out-$tuning.jsonl"
    rm -rf "run-$tuning"
    timed train "$tuning" onednn "$mt" train "${cfg[@]}" --set run.dir="run-$tuning" --set train.max_steps=200
  done
  for gemm in blas onednn; do
    timed predict_gemm on "$gemm" "$mt" predict --model model/model --input posts.jsonl --output "gemm-$gemm.jsonl"
    timed predict_base_gemm on "$gemm" "$mt" predict --model base/model --input posts-base.jsonl --output "gemm-base-$gemm.jsonl"
  done
done
cmp out-off.jsonl out-on.jsonl  # the same scores, byte for byte: only where memory comes from differs
python3 - << 'PY' > gemm-parity.json  # oneDNN's scores against OpenBLAS's: rounding only
import json
out = {}
for name, a, b in (("tiny", "gemm-blas.jsonl", "gemm-onednn.jsonl"), ("base", "gemm-base-blas.jsonl", "gemm-base-onednn.jsonl")):
    x, y = [json.loads(l) for l in open(a)], [json.loads(l) for l in open(b)]
    diffs = [abs(p["scores"][k] - q["scores"][k]) for p, q in zip(x, y) for k in p["scores"]]
    assert len(x) == len(y) and diffs and max(diffs) < 1e-5, (name, len(x), len(y), max(diffs or [1]))
    out[name] = {"posts": len(x), "scores_compared": len(diffs), "max_abs_diff": max(diffs),
                 "flag_differences": sum(p["flagged"] != q["flagged"] for p, q in zip(x, y))}
print(json.dumps(out))
PY
cat gemm-parity.json
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
for w, key, (before, after) in (("predict", "tuning", ("off", "on")), ("train", "tuning", ("off", "on")),
                                ("predict_gemm", "gemm", ("blas", "onednn")), ("predict_base_gemm", "gemm", ("blas", "onednn"))):
    med = {t: statistics.median(r["wall_s"] for r in runs if r["workload"] == w and r[key] == t) for t in (before, after)}
    sys_s = {t: statistics.median(r["sys_s"] for r in runs if r["workload"] == w and r[key] == t) for t in (before, after)}
    summary[w] = {"compares": key, "wall_s_median": med, "sys_s_median": sys_s, "speedup": med[before] / med[after]}
    print(f"{w} ({key} {before} -> {after}): {med[before]:.2f} s -> {med[after]:.2f} s ({med[before] / med[after]:.2f}x); "
          f"sys {sys_s[before]:.2f} -> {sys_s[after]:.2f} s")
out = {"benchmark": "cpu_runtime", "machine": {"cores": os.cpu_count(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
       "modtrain_cpu": subprocess.run([repo + "/build/modtrain", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1],
       "commit": subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()},
       "work": "predict: 20k real-length posts, batch 64; train: tiny model, 200 steps, micro-batch 32; one core (taskset -c 1), "
               "one thread; MODTRAIN_CPU_TUNING=off vs on alternated (oneDNN GEMMs), predictions byte-identical; "
               "predict_gemm / predict_base_gemm: MODTRAIN_CPU_GEMM=blas vs onednn (malloc tuning on), the tiny model "
               "on 20k posts and a BERT-base-sized one on 300",
       "gemm_parity": json.load(open("gemm-parity.json")),
       "runs": runs, "summary": summary, "sgemm_by_core": [json.loads(l) for l in open("gemm.txt")]}
json.dump(out, open(f"{repo}/bench/results/cpu_runtime.json", "w"), indent=2)
PY
