#!/usr/bin/env bash
# Padding-free training (model.unpad; docs/performance.md): real (non-pad) tokens per second of `modtrain
# train` padded vs unpadded on the same records (the realistic synthetic lengths of `data synth`),
# at data.max_len 64 and 128, tiny and BERT-base-sized, CPU, 1 and 2 ranks, one thread per rank,
# the two paths alternating, with the padding fraction of the padded batches (`data stats`).
# Tokens/s is what the trainer logs (real tokens of the step / wall time of the logging window),
# taken after the first window (warm-up). Writes bench/results/unpad.json.
# Usage: scripts/bench_unpad.sh [REPEATS] (build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-2}
repo=$PWD mt=$PWD/build/modtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$mt" data synth --out data --train 6000 --valid 100 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
common=(--set tokenizer.vocab=vocab.txt --set data.valid=[] --set eval.every=0 --set checkpoint.every=0
        --set dist.threads=1 --set dist.blas_threads=1 --set train.warmup_steps=1 --set data.group_by_length=false)
for len in 64 128; do
  "$mt" data prepare --config "$repo/configs/tiny.yaml" "${common[@]}" --set data.max_len=$len \
    --set data.prepared_dir=prep$len > /dev/null
  "$mt" data stats prep$len --json > stats$len.json
done
run() {  # run PRESET LEN RANKS UNPAD REP
  local preset=$1 len=$2 ranks=$3 unpad=$4 rep=$5 args=(--config "$repo/configs/tiny.yaml")
  if [[ $preset == base ]]; then
    args=(--config "$repo/configs/base.yaml" --set train.precision=fp32 --set train.micro_batch=16
          --set train.max_steps=6 --set log.every=2)
  else
    args+=(--set train.micro_batch=32 --set train.max_steps=60 --set log.every=20)
  fi
  local dir=run-$preset-$len-$ranks-$unpad-$rep
  mpiexec -np "$ranks" "$mt" train "${args[@]}" "${common[@]}" --set data.max_len=$len \
    --set data.prepared_dir=prep$len --set model.unpad=$unpad --set run.dir=$dir > $dir.log 2>&1 ||
    { cat $dir.log; exit 1; }
}
for rep in $(seq "$repeats"); do
  for preset in tiny base; do
    for len in 64 128; do
      for ranks in 1 2; do
        for unpad in false true; do run $preset $len $ranks $unpad $rep; done
      done
    done
  done
done
/usr/bin/python3 - "$work" "$repo/bench/results/unpad.json" <<'PY'
import glob, json, os, statistics, sys
work, out = sys.argv[1], sys.argv[2]
def rate(d):  # real tokens/s over the logging windows after the first
    ev = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
    tps = [e["tokens_per_s"] for e in ev if e.get("event") == "train"][1:]
    return statistics.median(tps)
rows = []
for preset in ("tiny", "base"):
    for length in (64, 128):
        stats = json.load(open(os.path.join(work, f"stats{length}.json")))["train"]
        for ranks in (1, 2):
            r = {}
            for unpad in ("false", "true"):
                runs = [d for d in glob.glob(os.path.join(work, f"run-{preset}-{length}-{ranks}-{unpad}-*")) if os.path.isdir(d)]
                r[unpad] = statistics.median(rate(d) for d in runs)
            rows.append({"preset": preset, "max_len": length, "ranks": ranks,
                         "padding_fraction": stats["padding_fraction"]["shuffled"],
                         "tokens_per_record": stats["tokens"] / stats["records"],
                         "truncated": stats["truncated"], "records": stats["records"],
                         "padded_real_tokens_per_s": r["false"], "unpadded_real_tokens_per_s": r["true"],
                         "speedup": r["true"] / r["false"]})
            print("%-4s max_len %3d, %d rank(s): padding %.0f%%, real tokens/s padded %.0f, unpadded %.0f: %.2fx" % (
                preset, length, ranks, 100 * rows[-1]["padding_fraction"], r["false"], r["true"], rows[-1]["speedup"]))
with open(out, "w") as f:
    json.dump({"benchmark": "unpad", "machine": os.uname().nodename, "cores": os.cpu_count(),
               "note": "real (non-pad) tokens/s of modtrain train, padded vs model.unpad, same records; medians over repeats",
               "rows": rows}, f, indent=2)
    f.write("\n")
PY
