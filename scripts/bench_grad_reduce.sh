#!/usr/bin/env bash
# dist.grad_reduce_dtype: bf16 against fp32 on `modtrain train` (configs/tiny.yaml, 2 CPU ranks,
# MPI), three seeds each: bytes handed to the gradient collectives per step (from the timeline),
# the mean training loss over the last 100 steps, the final validation macro PR-AUC, and
# samples/s. The bars (issue 30): bf16's mean loss within 1% of fp32's; its PR-AUC within the
# seed-to-seed spread of fp32's. Writes bench/results/grad_reduce.json. Build first.
set -euo pipefail
cd "$(dirname "$0")/.."
mt=$PWD/build/modtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
steps=${STEPS:-400} seeds=${SEEDS:-"1 2 3"}
"$mt" data synth --out "$work/data" --train 20000 --valid 2000 > /dev/null
"$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out "$work/vocab.txt" > /dev/null
cfg=(--config configs/tiny.yaml --set tokenizer.vocab=$work/vocab.txt --set data.prepared_dir=$work/prep
     --set "data.train=[$work/data/train-*.jsonl]" --set "data.valid=[$work/data/valid-*.jsonl]"
     --set train.max_steps=$steps --set log.every=20 --set eval.every=0 --set checkpoint.every=0 --set dist.threads=1)
"$mt" data prepare "${cfg[@]}" > /dev/null
for seed in $seeds; do
  for dtype in fp32 bf16; do
    mpiexec -np 2 "$mt" train "${cfg[@]}" --set run.seed=$seed --set dist.grad_reduce_dtype=$dtype \
      --set run.dir=$work/$dtype-$seed --set dist.timeline=$work/tl-$dtype-$seed/t.json > /dev/null
  done
done
python3 - "$work" "$steps" "$seeds" <<'PY'
import json, statistics, sys
work, steps, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def run(dtype, seed):
    rows = [json.loads(l) for l in open(f"{work}/{dtype}-{seed}/metrics.jsonl")]
    train = [r for r in rows if r["event"] == "train"]
    last = [r["loss"] for r in train if r["step"] > steps - 100]
    ev = [r for r in rows if r["event"] == "eval"][-1]["metrics"]
    spans = [e for e in json.load(open(f"{work}/tl-{dtype}-{seed}/t-rank0.json"))["traceEvents"]
             if e.get("ph") == "X" and e["name"].startswith("all_reduce of gradient bucket")]
    return {"mean_loss_last_100": statistics.mean(last), "macro_pr_auc": ev["macro"]["pr_auc"],
            "bytes_per_step": sum(e["args"]["bytes"] for e in spans) / steps,
            "samples_per_s": statistics.mean(r["samples_per_s"] for r in train[1:])}
res = {d: {s: run(d, s) for s in seeds} for d in ("fp32", "bf16")}
def col(d, k): return [res[d][s][k] for s in seeds]
fp32_auc, bf16_auc = col("fp32", "macro_pr_auc"), col("bf16", "macro_pr_auc")
loss_gap = [abs(b / a - 1) for a, b in zip(col("fp32", "mean_loss_last_100"), col("bf16", "mean_loss_last_100"))]
out = {"benchmark": "grad_reduce", "config": "configs/tiny.yaml", "ranks": 2, "backend": "mpi", "steps": steps,
       "runs": res,
       "bytes_per_step": {d: col(d, "bytes_per_step")[0] for d in res},
       "bytes_ratio_bf16_over_fp32": col("bf16", "bytes_per_step")[0] / col("fp32", "bytes_per_step")[0],
       "mean_loss_relative_gap_per_seed": loss_gap, "mean_loss_within_1pct": max(loss_gap) < 0.01,
       "fp32_pr_auc_spread": [min(fp32_auc), max(fp32_auc)], "bf16_pr_auc": bf16_auc,
       "bf16_pr_auc_mean_within_fp32_spread": min(fp32_auc) <= statistics.mean(bf16_auc) <= max(fp32_auc),
       "samples_per_s_ratio_bf16_over_fp32": statistics.mean(col("bf16", "samples_per_s")) / statistics.mean(col("fp32", "samples_per_s"))}
json.dump(out, open("bench/results/grad_reduce.json", "w"), indent=2)
print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
PY
