#!/usr/bin/env bash
# modtrain against its PyTorch peer on the same work (bench/bench_peer.cpp vs bench/peer/pytorch_ddp.py:
# the tiny BERT, 32 x 64 tokens per rank, no dropout, clip, AdamW; DDP over gloo vs modtrain's
# reducer over MPI), at 1 and 2 ranks, one thread per rank and OpenBLAS at one thread in both,
# runs alternating; the verdict is the ratio of the medians measured in this one run. Both with the
# malloc thresholds `modtrain` sets (core/cpu_runtime.h): modtrain_bench_peer sets them itself, the
# PyTorch peer gets the same through GLIBC_TUNABLES.
# Writes bench/results/peer.json. Needs Debian's python3-torch (installed here when missing).
# Usage: scripts/bench_peer.sh [REPEATS] (build first: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
if ! /usr/bin/python3 -c "import torch" 2> /dev/null; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-torch > /dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for rep in $(seq "$repeats"); do
  for ranks in 1 2; do
    mpiexec -np "$ranks" build/bench/modtrain_bench_peer --steps 30 --out "$work/modtrain-$ranks-$rep.json"
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
      /usr/bin/python3 bench/peer/pytorch_ddp.py --ranks "$ranks" --steps 30 --out "$work/pytorch-$ranks-$rep.json"
  done
done
/usr/bin/python3 - "$work" "$repeats" <<'PY'
import glob, json, os, statistics, sys
work, repeats = sys.argv[1], int(sys.argv[2])
def rates(name, ranks):
    return [json.load(open(p))["samples_per_s"] for p in sorted(glob.glob(f"{work}/{name}-{ranks}-*.json"))]
rows = {}
for ranks in (1, 2):
    m, p = rates("modtrain", ranks), rates("pytorch", ranks)
    rows[str(ranks)] = {"modtrain_samples_per_s": m, "pytorch_samples_per_s": p,
                        "ratio_of_medians": statistics.median(m) / statistics.median(p)}
    print("%d rank(s): modtrain %s, PyTorch %s samples/s -> modtrain / PyTorch = %.3f" %
          (ranks, [round(x) for x in m], [round(x) for x in p], rows[str(ranks)]["ratio_of_medians"]))
torch_version = json.load(open(glob.glob(f"{work}/pytorch-1-*.json")[0]))["torch"]
machine = json.load(open(glob.glob(f"{work}/modtrain-1-*.json")[0]))["machine"]
os.makedirs("bench/results", exist_ok=True)
json.dump({"benchmark": "peer", "work": "tiny BERT, 32 x 64 tokens per rank, no dropout, clip 1, AdamW; 1 thread per rank",
           "torch": torch_version, "peer": "PyTorch eager, DDP over gloo, glibc malloc thresholds as modtrain's (GLIBC_TUNABLES)", "repeats": repeats, "machine": machine,
           "ranks": rows}, open("bench/results/peer.json", "w"), indent=2)
PY
