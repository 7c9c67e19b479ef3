#!/usr/bin/env bash
# Data at scale: `modtrain data prepare` seconds for synthetic datasets of N training records, one
# process with 1 thread, 2 MPI ranks with 1 thread each (the distributed path: chunks split
# between the ranks), and one process with 2 threads (every core, one reader), runs alternating;
# the 2-rank output must equal the 1-process output (manifest and every shard). Then, on that data,
# `modtrain train` on 2 ranks of 1 thread: seconds from the launch to the first step's log line,
# and each rank's heap (RssAnon) and mapped-file pages (RssFile) read from /proc when step 10 is
# logged (the median of 5 launches: RssAnon varies by up to ~17 MB between launches), with the
# sampler's bytes from metrics.jsonl; and the seconds of a one-step train on 1
# rank (start-up, one step, the final evaluation of 1000 records, the model's save).
# Writes bench/results/data_scale.json (the table in docs/performance.md).
# Usage: scripts/bench_data_scale.sh [N ...] (default 100000 1000000 5000000; build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(100000 1000000 5000000)
repo=$PWD mt=$PWD/build/modtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$mt" data synth --out vocab-data --train 20000 --valid 10 > /dev/null
"$mt" tokenizer train --input 'vocab-data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
seconds() {  # seconds CMD...: wall seconds of a command that must succeed
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 3))"
}
echo "[" > results.json
first=1
for n in "${sizes[@]}"; do
  rm -rf data && "$mt" data synth --out data --train "$n" --valid 1000 --train-shards 8 > /dev/null
  cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.shard_bytes=67108864)
  bytes=$(cat data/train-*.jsonl | wc -c)
  for rep in 1 2; do
    one=$(seconds "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=one --threads 1)
    two=$(seconds mpiexec -np 2 --bind-to none "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=two --threads 1)
    threads=$(seconds "$mt" data prepare "${cfg[@]}" --set data.prepared_dir=threads --threads 2)
    for f in one/*; do cmp -s "$f" "two/$(basename "$f")" || { echo "2 ranks differ from 1 process: $f" >&2; exit 1; }; done
    train=$(seconds "$mt" train "${cfg[@]}" --set data.prepared_dir=one --set run.dir=run$rep --set train.max_steps=1 \
      --set train.warmup_steps=0 --set eval.every=0 --set checkpoint.every=0 --set dist.threads=1)
    start=$(python3 "$repo/scripts/bench_train_start.py" "$mt" "run-start$rep" "${cfg[@]}" --set data.prepared_dir=one)
    echo "N=$n rep $rep: 1 process x 1 thread ${one} s, 2 ranks x 1 thread ${two} s, 1 process x 2 threads ${threads} s; one-step train ${train} s; 2-rank train: $start"
    [[ $first == 1 ]] || echo "," >> results.json
    first=0
    echo "{\"records\": $n, \"raw_bytes\": $bytes, \"rep\": $rep, \"one_process_1_thread_s\": $one, \"two_ranks_1_thread_s\": $two, \"one_process_2_threads_s\": $threads, \"one_step_train_s\": $train, \"train_2_ranks\": $start}" >> results.json
  done
done
echo "]" >> results.json
python3 - "$repo" <<'PY'
import json, os, platform, statistics, subprocess, sys
repo = sys.argv[1]
rows = json.load(open("results.json"))
out = {"benchmark": "data_scale/prepare", "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
       "commit": subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()},
       "work": "data synth (8 train files, the context task's lengths), tiny.yaml, vocab 8000, data.shard_bytes 64 MiB; seconds of `modtrain data prepare`, median of the repeats",
       "runs": rows, "sizes": {}}
for n in sorted({r["records"] for r in rows}):
    rs = [r for r in rows if r["records"] == n]
    med = {k: statistics.median(r[k] for r in rs) for k in ("one_process_1_thread_s", "two_ranks_1_thread_s", "one_process_2_threads_s", "one_step_train_s")}
    for k in ("start_to_first_step_s", "rss_anon_mb_max", "rss_file_mb_max", "sampler_bytes"):
        med[k] = statistics.median(r["train_2_ranks"][k] for r in rs)
    med["two_ranks_speedup"] = med["one_process_1_thread_s"] / med["two_ranks_1_thread_s"]
    med["two_ranks_vs_2_threads"] = med["one_process_2_threads_s"] / med["two_ranks_1_thread_s"]
    med["records_per_s_two_ranks"] = n / med["two_ranks_1_thread_s"]
    out["sizes"][str(n)] = med
    print("N=%d: 2 ranks %.2fx one process (1 thread each), %.2fx one process with 2 threads; %.0f records/s; one-step train %.2f s;"
          " 2-rank train: first step after %.2f s, per rank RssAnon %.1f MB, RssFile %.1f MB, sampler %d bytes" %
          (n, med["two_ranks_speedup"], med["two_ranks_vs_2_threads"], med["records_per_s_two_ranks"], med["one_step_train_s"],
           med["start_to_first_step_s"], med["rss_anon_mb_max"], med["rss_file_mb_max"], med["sampler_bytes"]))
small, large = min(out["sizes"], key=int), max(out["sizes"], key=int)
if small != large:
    a, b = out["sizes"][small], out["sizes"][large]
    out["growth"] = {"from": int(small), "to": int(large),
                     "start_ratio": b["start_to_first_step_s"] / a["start_to_first_step_s"],
                     "rss_anon_mb_delta": b["rss_anon_mb_max"] - a["rss_anon_mb_max"],
                     "rss_file_mb_delta": b["rss_file_mb_max"] - a["rss_file_mb_max"]}
    print("N=%s against N=%s: start %.2fx, RssAnon %+.1f MB, RssFile %+.1f MB per rank" %
          (large, small, out["growth"]["start_ratio"], out["growth"]["rss_anon_mb_delta"], out["growth"]["rss_file_mb_delta"]))
os.makedirs(f"{repo}/bench/results", exist_ok=True)
json.dump(out, open(f"{repo}/bench/results/data_scale.json", "w"), indent=2)
PY
