#!/usr/bin/env bash
# The optimiser benchmark (issue: step efficiency): per-tensor AdamW (LibTorch's torch::optim::AdamW
# + clip_grad_norm_, what modtrain used before) vs modtrain's flat AdamW with zero 0 and with ZeRO-1,
# on the same work (bench/bench_peer.cpp), tiny and BERT-base-sized, at 1, 2 and 3 ranks, one
# thread per rank, runs alternating. Per configuration: the median step and optimiser time, the
# optimiser's share of the step (the update, and under ZeRO-1 the wait for the parameter
# all-gather, also on their own), the ATen operators its update dispatches (counted) and its state
# bytes per rank. Writes bench/results/optimizer.json.
# Usage: scripts/bench_optimizer.sh [REPEATS] (build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
run() {  # run PRESET RANKS VARIANT REP: variant per_tensor | zero0 | zero1
  local preset=$1 ranks=$2 variant=$3 rep=$4 args=()
  case $variant in
    per_tensor) args=(--optimizer per_tensor) ;;
    zero0) args=(--optimizer flat --zero 0) ;;
    zero1) args=(--optimizer flat --zero 1) ;;
  esac
  if [[ $preset == base ]]; then args+=(--batch 2 --seq 32 --steps 4); else args+=(--steps 30); fi
  mpiexec -np "$ranks" build/bench/modtrain_bench_peer --preset "$preset" "${args[@]}" \
    --out "$work/$preset-$ranks-$variant-$rep.json" > /dev/null
}
for rep in $(seq "$repeats"); do
  for preset in tiny base; do
    for ranks in 1 2 3; do
      for variant in per_tensor zero0 zero1; do
        [[ $ranks == 3 && $preset == tiny && $variant == per_tensor ]] && continue
        run "$preset" "$ranks" "$variant" "$rep"
      done
    done
  done
done
/usr/bin/python3 - "$work" <<'PY'
import glob, json, os, statistics, sys
work = sys.argv[1]
rows = []
for preset in ("tiny", "base"):
    for ranks in (1, 2, 3):
        for variant in ("per_tensor", "zero0", "zero1"):
            runs = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/{preset}-{ranks}-{variant}-*.json"))]
            if not runs:
                continue
            med = lambda k: statistics.median(r[k] for r in runs)
            row = {"preset": preset, "ranks": ranks, "optimizer": variant, "repeats": len(runs),
                   "step_ms": med("step_ms"), "optimizer_ms": med("optimizer_ms"),
                   "optimizer_share": med("optimizer_share"), "samples_per_s": med("samples_per_s"),
                   "update_ms": med("update_ms"), "gather_ms": med("gather_ms"),
                   "optimizer_ops": runs[0]["optimizer_ops"], "flat_buffers": runs[0]["flat_buffers"],
                   "tensors": runs[0]["tensors"], "state_bytes_per_rank": runs[0]["optimizer_state_bytes_per_rank"],
                   "batch": runs[0]["batch"], "seq": runs[0]["seq"]}
            rows.append(row)
            print("%-4s %d rank(s) %-10s step %8.1f ms  optimiser %7.2f ms (%4.1f%%; update %7.2f, all-gather wait %6.2f)"
                  "  %5d ops  state %7.1f MB/rank" %
                  (preset, ranks, variant, row["step_ms"], row["optimizer_ms"], 100 * row["optimizer_share"],
                   row["update_ms"], row["gather_ms"], row["optimizer_ops"], row["state_bytes_per_rank"] / 1e6))
machine = json.load(open(glob.glob(f"{work}/tiny-1-zero0-*.json")[0]))["machine"]
os.makedirs("bench/results", exist_ok=True)
json.dump({"benchmark": "optimizer", "machine": machine,
           "work": "bench_peer's step (tiny: 32 x 64 tokens per rank; base: 2 x 32), clip 1, AdamW; 1 thread per rank",
           "rows": rows}, open("bench/results/optimizer.json", "w"), indent=2)
PY
