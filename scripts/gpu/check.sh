#!/usr/bin/env bash
# GPU check, for a CUDA machine without Debian's packages (the device machine: CUDA, PyTorch,
# no apt, no network). Carries its dependencies in .deps/ (../shared/device/collect-debs.sh plus
# libcsv3 libcsv-dev libssl-dev libssl3), builds modtrain against the LibTorch inside PyTorch and
# NCCL from the nvidia-nccl package, runs the CUDA-tagged tests (NCCL at one rank and its stream
# ordering, the Trainer on the NCCL path at world size 1, SDPA on the GPU, bf16/fp16 training
# steps), the CLI on the NCCL path at -np 1 through export and transformers (cli_np1.sh: also the
# clean NCCL shutdown and the timeline's CUDA-event lanes), a 4-byte all-reduce's launch latency, and
# measures a BERT-base-sized training step at sequence 128 against Hugging Face + fused AdamW in the
# same run (tokens/s, MFU), and the padding-free path padded vs unpadded. Writes logs and summary.md to $OUT (or ./gpu-out). Usage: scripts/gpu/check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
summary=$out/summary.md
log() { echo "$*" | tee -a "$summary"; }
t0=$(date +%s)
log "# modtrain GPU check ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/GPU: /' | tee -a "$summary"

# 1. Dependencies from the carried .deb files, unpacked into a prefix.
deps=/opt/deps
mkdir -p $deps
for f in .deps/*.deb; do dpkg -x "$f" $deps; done
export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:$deps/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
export OPAL_PREFIX=$deps/usr PATH=$deps/usr/bin:$PATH
export OMPI_MCA_mca_base_component_path=$deps/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nccl_home=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
[[ -n $nccl_home && ! -e $nccl_home/lib/libnccl.so && -e $nccl_home/lib/libnccl.so.2 ]] && ln -sf libnccl.so.2 "$nccl_home/lib/libnccl.so"
export LD_LIBRARY_PATH=$nccl_home/lib:$LD_LIBRARY_PATH
log "torch $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)'), NCCL from $nccl_home"
mpi=$deps/usr/lib/x86_64-linux-gnu/openmpi

# 2. Build (Release, NCCL on, all cores): the CLI, the unit tests and the training benchmark.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DMODTRAIN_WITH_NCCL=ON \
  -DCMAKE_PREFIX_PATH="$deps/usr;$torch_prefix" -DNCCL_HOME="$nccl_home" -DCUDA_HOME=/usr/local/cuda \
  -DOPENSSL_ROOT_DIR=$deps/usr -DMPI_CXX_SKIP_MPICXX=ON -DMPI_CXX_LIB_NAMES=mpi \
  -DMPI_mpi_LIBRARY=$deps/usr/lib/x86_64-linux-gnu/libmpi.so.40 -DMPI_CXX_HEADER_DIR=$mpi/include \
  -DMPI_CXX_ADDITIONAL_INCLUDE_DIRS=$mpi/include/openmpi -DMPIEXEC_EXECUTABLE=$deps/usr/bin/mpiexec \
  > build-gpu.configure.log 2>&1 || { cp build-gpu.configure.log "$out/"; tail -40 "$out/build-gpu.configure.log"; log "configure FAILED"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target modtrain_cli modtrain_unit_tests modtrain_bench_train modtrain_bench_allreduce > build-gpu.build.log 2>&1 ||
  { cp build-gpu.build.log "$out/"; grep -m 20 -B2 -A6 'error' build-gpu.build.log; log "build FAILED"; exit 1; }
log "build: ok in $(( $(date +%s) - t0 )) s"
build-gpu/modtrain --version | tee -a "$summary"

# 3. The CUDA-tagged tests, then the model tests (SDPA vs plain on LibTorch 2.x), each group on
#    its own so that one crash does not hide the others.
rc=0
run_tests() {  # name, Catch2 filter
  build-gpu/tests/modtrain_unit_tests "$2" -r compact > "$out/tests-$1.tmp" 2>&1
  local r=$?
  log "tests $1 ($2): $([[ $r -eq 0 ]] && echo PASS || echo "FAIL rc=$r") - $(tail -1 "$out/tests-$1.tmp")"
  { echo "== $1 ($2)"; cat "$out/tests-$1.tmp"; } >> "$out/tests.log"
  rm -f "$out/tests-$1.tmp"
  [[ $r -eq 0 ]] || rc=1
  return $r
}
run_tests cuda "[cuda]"   # includes [cuda][unpad] (padding-free vs padded) and [cuda][varlen] (flash varlen)
run_tests model "[model]~[safetensors]"
if ! run_tests safetensors "[safetensors]" && command -v cuda-gdb >/dev/null; then
  timeout 120 cuda-gdb -batch -ex run -ex bt --args build-gpu/tests/modtrain_unit_tests "[safetensors]" > "$out/gdb.log" 2>&1
  grep -A25 "SIGSEGV" "$out/gdb.log" | head -40 | tee -a "$summary"
fi

# 4. The multi-GPU path on this one GPU through the CLI (dist.backend=nccl at mpiexec -np 1: what an
#    8-GPU job runs), checkpoint + resume, export, predict, and the export in the GPU image's transformers.
scripts/gpu/cli_np1.sh "$PWD/build-gpu/modtrain" "$PWD" /tmp/modtrain-cli-np1 > "$out/cli-np1.log" 2>&1
r=$?
grep "^cli np1:" "$out/cli-np1.log" | tee -a "$summary"
mkdir -p "$out/cli-np1" && cp /tmp/modtrain-cli-np1/*.log "$out/cli-np1/" 2>/dev/null
[[ $r -eq 0 ]] || rc=1

# 4b. What one collective launch costs at world size 1 (issue 19: blocking NCCL communicator, no
#     launch thread, no ncclInProgress polling): 4-byte all-reduce, launch and launch-to-completion.
mpiexec --oversubscribe -np 1 build-gpu/bench/modtrain_bench_allreduce --backend nccl \
  --out "$out/allreduce-nccl-np1.json" > "$out/allreduce-nccl-np1.log" 2>&1 || { log "allreduce bench FAILED"; rc=1; }
grep "4-byte" "$out/allreduce-nccl-np1.log" | sed 's/^/nccl np1: /' | tee -a "$summary"

# 5. BERT-base-sized training step at sequence length 128 (bf16 autocast; peak = H200 dense bf16
#    989 TFLOP/s), side by side in this run: modtrain's step (flat AdamW: LibTorch's fused kernel
#    where >= 2.1), modtrain with the per-tensor torch::optim::AdamW it replaced, and Hugging Face
#    BertForSequenceClassification with torch.optim.AdamW(fused=True) in eager mode (hf_peer.py).
log ""
log "| batch | modtrain tokens/s | MFU | per-tensor AdamW tokens/s | HF + fused AdamW tokens/s | MFU | modtrain / HF |"
log "|---|---|---|---|---|---|---|"
for b in 32 64 256; do
  steps=20; [[ $b -eq 256 ]] && steps=10
  build-gpu/bench/modtrain_bench_train --preset base --device cuda --precision bf16 --batch $b --seq 128 --steps $steps \
    --peak-tflops 989 --out "$out/train-base-cuda-bf16-b$b.json" >> "$out/bench.log" 2>&1
  build-gpu/bench/modtrain_bench_train --preset base --device cuda --precision bf16 --batch $b --seq 128 --steps $steps \
    --peak-tflops 989 --optimizer per_tensor --out "$out/train-base-cuda-bf16-b$b-per-tensor.json" >> "$out/bench.log" 2>&1
  python3 scripts/gpu/hf_peer.py --batch $b --seq 128 --steps $steps --peak-tflops 989 \
    --out "$out/hf-peer-b$b.json" >> "$out/bench.log" 2>&1
  python3 - "$out" $b <<'PY' | tee -a "$summary"
import json, sys
out, b = sys.argv[1], sys.argv[2]
def get(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except Exception:
        return None
m, p, h = get(f"train-base-cuda-bf16-b{b}.json"), get(f"train-base-cuda-bf16-b{b}-per-tensor.json"), get(f"hf-peer-b{b}.json")
f = lambda r, k, s="%.0f": (s % r[k]) if r and k in r else "failed"
ratio = "%.2f" % (m["tokens_per_s"] / h["tokens_per_s"]) if m and h else "n/a"
print(f"| {b} | {f(m, 'tokens_per_s')} | {f(m, 'mfu', '%.3f')} | {f(p, 'tokens_per_s')} | {f(h, 'tokens_per_s')} | "
      f"{f(h, 'mfu', '%.3f')} | {ratio} |")
PY
done
grep -E "^(base|HF)" "$out/bench.log" | tee -a "$summary"

# 5b. The padding-free path (issue 14): BERT-base, bf16, T 128, post-like lengths (log-normal,
#     median 26 tokens), padded to T vs model.unpad (variable-length flash attention), real tokens/s.
log ""
log "| batch | padding | padded real tokens/s | unpadded real tokens/s | speed-up |"
log "|---|---|---|---|---|"
for b in 64 256; do
  for u in 0 1; do
    build-gpu/bench/modtrain_bench_train --preset base --device cuda --precision bf16 --batch $b --seq 128 --steps 20 \
      --lengths skewed --unpad $u --out "$out/train-base-cuda-bf16-b$b-skewed-unpad$u.json" >> "$out/bench-unpad.log" 2>&1
  done
  python3 - "$out" $b <<'PY' | tee -a "$summary"
import json, sys
out, b = sys.argv[1], sys.argv[2]
def get(u):
    try:
        return json.load(open(f"{out}/train-base-cuda-bf16-b{b}-skewed-unpad{u}.json"))
    except Exception:
        return None
p, u = get(0), get(1)
f = lambda r: "%.0f" % r["tokens_per_s"] if r else "failed"
pad = "%.0f%%" % (100 * p["padding_fraction"]) if p else "n/a"
print(f"| {b} | {pad} | {f(p)} | {f(u)} | {'%.2fx' % (u['tokens_per_s'] / p['tokens_per_s']) if p and u else 'n/a'} |")
PY
done
grep -h "variable-length flash" "$out/bench-unpad.log" | sort -u | tee -a "$summary"
log "total: $(( $(date +%s) - t0 )) s"
exit $rc
