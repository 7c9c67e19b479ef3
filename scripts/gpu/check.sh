#!/usr/bin/env bash
# The GPU check: one bounded command for the device machine (a bare CUDA box: PyTorch + CUDA, NCCL,
# transformers and nvcc, no network, no Debian packages), rehearsed on CPU in every CI run.
#
#   scripts/gpu/check.sh [--cpu] [--build-dir DIR] [--budget SECONDS] [--only STEP,...] [--list]
#
# Steps, in order (each under `timeout`, each told its limit in GPU_CHECK_SECONDS_LEFT; a step that cannot finish before
# the deadline is not started and is reported as not run, never cut off without a record):
#   deps        unpack the carried Debian packages (.deps/*.deb, scripts/gpu/prepare.sh) into a prefix
#   configure   CMake against PyTorch's LibTorch and NCCL (CPU: the existing build directory)
#   build       only what the check runs: the CLI, modtrain_gpu_tests ([cuda], [twin], [model]), two benchmarks
#   tests-cuda  the [cuda] unit tests (CPU: their device-independent twins, tag [twin])
#   tests-model the [model] tests on LibTorch 2.x (SDPA against the plain path)       (GPU only)
#   selftest    `modtrain dist selftest` at -np 1 (NCCL; CPU: MPI)
#   cli-np1     scripts/gpu/cli_np1.sh: train over NCCL at -np 1, stop + resume, clean NCCL
#               shutdown, timeline lanes, export, predict, transformers (CPU: MPI, fp32, no transformers)
#   serve       scripts/gpu/serve_check.py: `modtrain serve` with serve.device=auto on cli-np1's export:
#               on cuda:0, scores equal to predict's (CPU) within 1e-4, a 4 s load, SIGTERM exit 0
#               (CPU: on the CPU, within 1e-6)
#   allreduce   the launch latency of a 4-byte all-reduce (NCCL; CPU: MPI)
#   bench-train BERT-base step at batch 64, seq 128, bf16: modtrain vs its per-tensor AdamW vs
#               Hugging Face + fused AdamW (CPU: the tiny preset, no Hugging Face)
#   bench-unpad BERT-base, post-like lengths: padded vs padding-free real tokens/s (CPU: tiny)
# --only runs the named steps (deps, configure and build are added on a GPU machine, which starts
# bare): the second, shorter command that reruns what failed.
#
# Output ($OUT, default ./gpu-out): at most 3 files, rewritten after every step so that even a run
# killed from outside returns them: summary.md (its first lines say what passed, failed, timed out
# and did not run, then the figures), summary.json, and results.tar.gz (every step's log and JSON).
# Budget: --budget or CHECK_BUDGET_S (default 450 s: the 8-minute command less a margin for the
# machine to return the files). Exit 0 only when every step that ran passed and none was skipped.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
self="$repo/scripts/gpu/check.sh"
all_steps=(deps configure build tests-cuda tests-model selftest cli-np1 serve allreduce bench-train bench-unpad)
# Seconds a step needs at least to be worth starting, and at most (its own timeout), on the H100/H200.
declare -A need=([deps]=5 [configure]=20 [build]=60 [tests-cuda]=60 [tests-model]=10 [selftest]=10 [cli-np1]=70 [serve]=20
                 [allreduce]=10 [bench-train]=60 [bench-unpad]=40)
declare -A limit=([deps]=60 [configure]=120 [build]=240 [tests-cuda]=180 [tests-model]=60 [selftest]=60
                  [cli-np1]=200 [serve]=60 [allreduce]=60 [bench-train]=150 [bench-unpad]=120)
reserve=10  # seconds kept for the final packing

# ---- one step, in its own process (called by the runner below under `timeout`) -------------------
run_step() {
  local name=$1
  if [[ -n ${GPU_CHECK_FAKE_HANG:-} && $GPU_CHECK_FAKE_HANG == "$name" && $MODE == cpu ]]; then
    echo "GPU_CHECK_FAKE_HANG: $name hangs (a rehearsal of the time limit)"
    exec -a modtrain-fake-hang sleep 100000
  fi
  local mt=$BUILD/modtrain tests=$BUILD/tests/modtrain_gpu_tests bench=$BUILD/bench
  local np1=(mpiexec --oversubscribe -np 1)
  local backend=nccl precision=bf16
  [[ $MODE == cpu ]] && backend=mpi precision=fp32
  case $name in
    deps)
      if [[ $MODE == cpu && ! -d $repo/.deps ]]; then
        echo "NA: no .deps here (scripts/gpu/prepare.sh makes it); the CPU rehearsal uses the system's packages"
        return 0
      fi
      ls "$repo"/.deps/*.deb > /dev/null || { echo "no .deps/*.deb: run scripts/gpu/prepare.sh before the device run"; return 1; }
      mkdir -p "$DEPS"
      for f in "$repo"/.deps/*.deb; do dpkg -x "$f" "$DEPS" || return 1; done
      # dpkg -x runs no maintainer scripts: mpiexec and mpirun are update-alternatives links that
      # openmpi-bin's postinst would make (found by this rehearsal: without them no mpiexec ran).
      ln -sf orterun "$DEPS/usr/bin/mpiexec"
      ln -sf orterun "$DEPS/usr/bin/mpirun"
      local missing=0 lib=usr/lib/x86_64-linux-gnu
      # The carried OpenSSL is for the build to link against: its runtime libraries leave the
      # library path (LD_LIBRARY_PATH holds $DEPS/$lib), so that the machine's Python keeps its own
      # libssl (a newer one than Debian's would miss symbols) and modtrain loads the machine's.
      mkdir -p "$DEPS/openssl-link"
      for l in libssl.so.3 libcrypto.so.3; do
        [[ -e $DEPS/$lib/$l ]] && mv "$DEPS/$lib/$l" "$DEPS/openssl-link/"
      done
      ln -sf "$DEPS/openssl-link/libssl.so.3" "$DEPS/$lib/libssl.so"
      ln -sf "$DEPS/openssl-link/libcrypto.so.3" "$DEPS/$lib/libcrypto.so"
      for p in usr/bin/mpiexec usr/include/yaml-cpp/yaml.h usr/include/CLI/CLI.hpp usr/include/catch2/catch.hpp \
               usr/include/utf8proc.h usr/include/nlohmann/json.hpp usr/include/csv.h usr/include/openssl/sha.h \
               $lib/libmpi.so.40 $lib/openmpi/include/mpi.h $lib/openmpi/lib/openmpi3 $lib/libcrypto.so $lib/libyaml-cpp.so \
               usr/include/httplib.h $lib/libcpp-httplib.so $lib/libbrotlidec.so.1; do
        [[ -e $DEPS/$p ]] || { echo "error: missing after unpacking: $p"; missing=1; }
      done
      # The unpacked Open MPI must start a process from its prefix (the environment the runner sets).
      local ran
      ran=$(OPAL_PREFIX=$DEPS/usr PATH=$DEPS/usr/bin:$PATH OMPI_MCA_mca_base_component_path=$DEPS/$lib/openmpi/lib/openmpi3 \
        LD_LIBRARY_PATH=$DEPS/$lib:$DEPS/$lib/openmpi/lib:${LD_LIBRARY_PATH:-} timeout 30 "$DEPS/usr/bin/mpiexec" -np 1 echo mpi-from-prefix 2>&1)
      [[ $ran == *mpi-from-prefix* ]] || { echo "error: the carried mpiexec does not start a process: $ran"; missing=1; }
      # ... and its libraries link and load (the relocated OpenSSL included), before the build needs them.
      printf '%s\n' '#include <openssl/sha.h>' '#include <yaml-cpp/yaml.h>' '#include <utf8proc.h>' '#include <csv.h>' \
        'int main() { unsigned char d[32]; SHA256((const unsigned char*)"x", 1, d);' \
        '  return YAML::Load("a: 1")["a"].as<int>() == 1 && utf8proc_version() && csv_strerror(0) ? 0 : 1; }' > "$WORK/link.cpp"
      if c++ -std=c++17 "$WORK/link.cpp" -o "$WORK/link" -I"$DEPS/usr/include" -L"$DEPS/$lib" -lcrypto -lyaml-cpp -lutf8proc -lcsv \
           -Wl,-rpath-link,"$DEPS/openssl-link" > "$WORK/link.log" 2>&1 && LD_LIBRARY_PATH=$DEPS/$lib:${LD_LIBRARY_PATH:-} "$WORK/link"; then
        echo "FIGURE: deps: the carried yaml-cpp, OpenSSL, utf8proc and libcsv link and run"
      else
        echo "error: a program linked against the carried libraries failed:"; cat "$WORK/link.log"; missing=1
      fi
      echo "FIGURE: deps: $(ls "$repo"/.deps/*.deb | wc -l) packages unpacked into $DEPS; its mpiexec runs"
      return $missing ;;
    configure)
      local dir=$BUILD torch_prefix="" nccl_home="" mpi=$DEPS/usr/lib/x86_64-linux-gnu/openmpi
      if [[ $MODE == cpu ]]; then
        [[ -f $BUILD/CMakeCache.txt ]] || { echo "no CMake build in $BUILD"; return 1; }
        if [[ ! -e $DEPS/usr/bin/mpiexec ]]; then
          echo "NA: the CPU rehearsal reuses the configured build in $BUILD (no unpacked .deps to configure against)"
          return 0
        fi
        # With .deps unpacked (scripts/gpu/prepare.sh): the device's configure command for real,
        # against the carried packages and this machine's LibTorch, into a scratch directory.
        dir=$WORK/configure-rehearsal
      else
        torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
        nccl_home=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
        [[ -n $nccl_home && ! -e $nccl_home/lib/libnccl.so && -e $nccl_home/lib/libnccl.so.2 ]] &&
          ln -sf libnccl.so.2 "$nccl_home/lib/libnccl.so"
        echo "FIGURE: torch $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)'), NCCL from ${nccl_home:-?}"
      fi
      cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMODTRAIN_WITH_NCCL=ON \
        -DCMAKE_PREFIX_PATH="$DEPS/usr${torch_prefix:+;$torch_prefix}" ${nccl_home:+-DNCCL_HOME="$nccl_home"} \
        -DCUDA_HOME=/usr/local/cuda -DOPENSSL_ROOT_DIR="$DEPS/usr" -DMPI_CXX_SKIP_MPICXX=ON -DMPI_CXX_LIB_NAMES=mpi \
        -DMPI_mpi_LIBRARY="$DEPS/usr/lib/x86_64-linux-gnu/libmpi.so.40" -DMPI_CXX_HEADER_DIR="$mpi/include" \
        -DMPI_CXX_ADDITIONAL_INCLUDE_DIRS="$mpi/include/openmpi" -DMPIEXEC_EXECUTABLE="$DEPS/usr/bin/mpiexec" \
        2>&1 | tee "$RESULTS/configure.txt"
      [[ ${PIPESTATUS[0]} -eq 0 ]] || return 1
      # every carried package must be the one found, not a copy the machine happens to have
      local c=$dir/CMakeCache.txt
      grep -q "^yaml-cpp_DIR:PATH=$DEPS" "$c" && grep -q "^MPIEXEC_EXECUTABLE:.*=$DEPS" "$c" &&
        grep -q "^CLI11_DIR:PATH=$DEPS" "$c" ||
        { echo "error: the configure did not pick the carried packages:"; grep -E "^(yaml-cpp_DIR|MPIEXEC_EXECUTABLE|CLI11_DIR)" "$c"; return 1; }
      echo "FIGURE: configure: $(grep -m1 -o 'NCCL backend .*' "$RESULTS/configure.txt"); carried packages found in $DEPS" ;;
    build)
      local t0=$SECONDS
      if [[ $MODE == cpu && ${GPU_CHECK_NO_BUILD:-0} == 1 ]]; then
        # Under ctest the build is ctest's own (it is up to date): rebuilding here would relink
        # executables other tests are running. The binaries the check runs must be there.
        local missing=0
        for b in "$mt" "$tests" "$bench/modtrain_bench_train" "$bench/modtrain_bench_allreduce"; do
          [[ -x $b ]] || { echo "error: $b is not built"; missing=1; }
        done
        echo "NA-PART: build: not rebuilt (GPU_CHECK_NO_BUILD=1, under ctest); the four binaries are there"
        return $missing
      fi
      # the whole output to a file first: a pipe into `head` could kill the build with SIGPIPE
      cmake --build "$BUILD" -j "$(nproc)" --target modtrain_cli modtrain_gpu_tests modtrain_bench_train \
        modtrain_bench_allreduce > "$RESULTS/build.txt" 2>&1
      local rc=$?
      grep -E "error|FAILED|^ninja: " "$RESULTS/build.txt" | head -60
      [[ $rc -eq 0 ]] && echo "FIGURE: build: $(( SECONDS - t0 )) s; $("$mt" --version | head -1)"
      return $rc ;;
    tests-cuda|tests-model)
      local filter="[cuda]"
      [[ $name == tests-model ]] && filter="[model]"
      if [[ $MODE == cpu ]]; then
        [[ $name == tests-model ]] && { echo "NA: the [model] tests run in every CI build; on the GPU machine they cover LibTorch 2.x's SDPA"; return 0; }
        filter="[twin]"  # the [cuda] bodies' device-independent twins
      fi
      "$tests" "$filter" -r compact -d yes --warn NoTests > "$RESULTS/$name.txt" 2>&1
      local rc=$?
      cat "$RESULTS/$name.txt"
      local count
      count=$(grep -E "^(Passed|Failed|No tests ran)" "$RESULTS/$name.txt" | tail -1)
      echo "FIGURE: $name ($filter): ${count:-no summary line (crashed?)}"
      # the tests' own figures (WARN lines: max |dw|, run-to-run differences, flash checks)
      grep -E "\.cpp:[0-9]+: (warning|failed)" "$RESULTS/$name.txt" | grep -vi "no cuda device" | head -30 | sed 's/^/FIGURE:   /'
      # a filter that matched nothing, or tests that all returned early (no GPU), compared nothing
      grep -qE "No test cases matched|No tests ran|no CUDA device: skipped" "$RESULTS/$name.txt" && { echo "no test ran, or one skipped itself"; return 1; }
      return $rc ;;
    selftest)
      "${np1[@]}" "$mt" dist selftest --set dist.backend=$backend --set dist.timeout_s=45 --max-mb 64 \
        --json "$RESULTS/selftest-np1.json"
      local rc=$?
      return $rc ;;
    cli-np1)
      CLI_NP1_BACKEND=$backend CLI_NP1_PRECISION=$precision CLI_NP1_TRANSFORMERS=$([[ $MODE == gpu ]] && echo 1 || echo 0) \
        "$repo/scripts/gpu/cli_np1.sh" "$mt" "$repo" "$WORK/cli-np1"
      local rc=$?
      mkdir -p "$RESULTS/cli-np1" && cp "$WORK"/cli-np1/*.log "$RESULTS/cli-np1/" 2>/dev/null
      return $rc ;;
    serve)
      local d=$WORK/cli-np1
      [[ -s $d/hf/model.safetensors && -s $d/pred.jsonl ]] ||
        { echo "error: cli-np1 left no export and predictions in $d (it must run first: --only cli-np1,serve)"; return 1; }
      mkdir -p "$WORK/serve" && cd "$WORK/serve" || return 1
      python3 "$repo/scripts/gpu/serve_check.py" "$mt" "$d/hf" "$d/texts.txt" "$d/pred.jsonl" "$MODE"
      local rc=$?
      cp serve.log "$RESULTS/serve.log" 2>/dev/null
      return $rc ;;
    allreduce)
      "${np1[@]}" "$bench/modtrain_bench_allreduce" --backend $backend --out "$RESULTS/allreduce-$backend-np1.json" || return 1
      python3 - "$RESULTS/allreduce-$backend-np1.json" $backend <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["latency"]
print("FIGURE: %s np1: 4-byte all_reduce launch %.1f us (p99 %.1f), to completion %.1f us (p99 %.1f)" % (
    sys.argv[2], r["launch_us_median"], r["launch_us_p99"], r["round_trip_us_median"], r["round_trip_us_p99"]))
PY
      ;;
    bench-train)
      local args=(--preset base --device cuda --precision bf16 --batch 64 --seq 128 --steps 20 --peak-tflops 989)
      [[ $MODE == cpu ]] && args=(--preset tiny --device cpu --precision fp32 --batch 8 --seq 64 --steps 3)
      "$bench/modtrain_bench_train" "${args[@]}" --out "$RESULTS/train.json" || return 1
      if (( ${GPU_CHECK_SECONDS_LEFT:-999} >= 100 )); then  # the first thing to trim when time is short
        "$bench/modtrain_bench_train" "${args[@]}" --optimizer per_tensor --out "$RESULTS/train-per-tensor.json" || return 1
      else
        echo "NA-PART: per-tensor AdamW variant trimmed (${GPU_CHECK_SECONDS_LEFT} s left for this step)"
      fi
      if [[ $MODE == gpu ]]; then
        python3 "$repo/scripts/gpu/hf_peer.py" --batch 64 --seq 128 --steps 20 --peak-tflops 989 --out "$RESULTS/hf-peer.json" || return 1
      else
        echo "NA-PART: Hugging Face peer (no PyTorch here)"
      fi
      python3 - "$RESULTS" <<'PY'
import json, os, sys
d = sys.argv[1]
get = lambda n: json.load(open(os.path.join(d, n))) if os.path.exists(os.path.join(d, n)) else None
m, p, h = get("train.json"), get("train-per-tensor.json"), get("hf-peer.json")
line = "bench-train: modtrain %.0f tokens/s (MFU %s), per-tensor AdamW %s" % (m["tokens_per_s"], "%.3f" % m["mfu"] if m.get("mfu") else "n/a",
    "%.0f" % p["tokens_per_s"] if p else "not run")
if h: line += ", HF + fused AdamW %.0f tokens/s: modtrain / HF = %.2f" % (h["tokens_per_s"], m["tokens_per_s"] / h["tokens_per_s"])
print("FIGURE: " + line)
PY
      ;;
    bench-unpad)
      local args=(--preset base --device cuda --precision bf16 --batch 64 --seq 128 --steps 20 --lengths skewed)
      [[ $MODE == cpu ]] && args=(--preset tiny --device cpu --precision fp32 --batch 8 --seq 64 --steps 3 --lengths skewed)
      for u in 0 1; do
        "$bench/modtrain_bench_train" "${args[@]}" --unpad $u --out "$RESULTS/train-unpad$u.json" > "$RESULTS/train-unpad$u.log" 2>&1 ||
          { cat "$RESULTS/train-unpad$u.log"; return 1; }
        cat "$RESULTS/train-unpad$u.log"
      done
      grep -h "variable-length flash" "$RESULTS"/train-unpad*.log | sort -u | sed 's/^/FIGURE:   /'
      python3 - "$RESULTS" <<'PY'
import json, sys
p, u = (json.load(open(f"{sys.argv[1]}/train-unpad{i}.json")) for i in (0, 1))
print("FIGURE: bench-unpad: padding %.0f%%: padded %.0f, padding-free %.0f real tokens/s (%.2fx)" % (
    100 * p["padding_fraction"], p["tokens_per_s"], u["tokens_per_s"], u["tokens_per_s"] / p["tokens_per_s"]))
PY
      ;;
    *) echo "unknown step $name"; return 2 ;;
  esac
}

if [[ ${1:-} == --run-step ]]; then
  run_step "$2"
  exit $?
fi

# ---- the runner ----------------------------------------------------------------------------------
MODE=gpu BUILD="" only="" budget=${CHECK_BUDGET_S:-450}
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpu) MODE=cpu ;;
    --build-dir) BUILD=$2; shift ;;
    --budget) budget=$2; shift ;;
    --only) only=$2; shift ;;
    --list) printf '%s\n' "${all_steps[@]}"; exit 0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $budget =~ ^[0-9]+$ && $budget -ge 20 ]] || { echo "check.sh: --budget must be a whole number of seconds >= 20, not '$budget'" >&2; exit 2; }
steps=("${all_steps[@]}")
if [[ -n $only ]]; then
  IFS=, read -ra wanted <<< "$only"
  for s in "${wanted[@]}"; do
    [[ " ${all_steps[*]} " == *" $s "* ]] || { echo "check.sh: --only: no step '$s' (steps: ${all_steps[*]})" >&2; exit 2; }
  done
  [[ $MODE == gpu ]] && wanted=(deps configure build "${wanted[@]}")  # a fresh machine must build first
  steps=()
  for s in "${all_steps[@]}"; do [[ " ${wanted[*]} " == *" $s "* ]] && steps+=("$s"); done
fi
[[ -z $BUILD ]] && BUILD=$([[ $MODE == gpu ]] && echo "$repo/build-gpu" || echo "$repo/build")
[[ $BUILD = /* ]] || BUILD=$PWD/$BUILD
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT" || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/modtrain-gpu-check.XXXXXX")
RESULTS=$WORK/results DEPS=${GPU_CHECK_DEPS:-$WORK/deps}
[[ $MODE == gpu ]] && DEPS=${GPU_CHECK_DEPS:-/opt/deps}
mkdir -p "$RESULTS" "$WORK/logs"
export MODE BUILD WORK RESULTS DEPS
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if [[ $MODE == gpu ]]; then  # the unpacked packages, before anything runs mpiexec
  export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
  export OPAL_PREFIX=$DEPS/usr PATH=$DEPS/usr/bin:$PATH
  export OMPI_MCA_mca_base_component_path=$DEPS/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
  nccl_home=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null)
  [[ -n $nccl_home ]] && export LD_LIBRARY_PATH=$nccl_home/lib:$LD_LIBRARY_PATH
  export CUBLAS_WORKSPACE_CONFIG=:4096:8
fi
start=$SECONDS
declare -A status seconds note
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || cat "$repo/.deps/COMMIT" 2>/dev/null || echo unknown)
gpu=$( (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU (CPU rehearsal)") | head -1)

# summary.md / summary.json / results.tar.gz, rewritten whole (then renamed) after every change
write_summary() {
  local running=${1:-} verdict=PASS s
  local -a passed=() failed=() timed=() notrun=() na=()
  for s in "${steps[@]}"; do
    case ${status[$s]:-} in
      PASS) passed+=("$s") ;;
      FAIL) failed+=("$s"); verdict=FAIL ;;
      TIMEOUT) timed+=("$s"); verdict=FAIL ;;
      NA) na+=("$s") ;;
      RUNNING) ;;
      *) notrun+=("$s"); verdict=FAIL ;;
    esac
  done
  [[ -n $running ]] && verdict="INCOMPLETE (killed while running $running?)"
  {
    echo "# modtrain GPU check: $verdict"
    echo "passed: ${passed[*]:-none}"
    echo "failed: ${failed[*]:-none}"
    echo "timed out: ${timed[*]:-none}"
    echo "not run: ${notrun[*]:-none}"
    [[ ${#na[@]} -gt 0 ]] && echo "not applicable in $MODE mode: ${na[*]}"
    [[ -n $running ]] && echo "running when this was written: $running"
    echo
    echo "mode $MODE; commit $commit; $(date -u +%Y-%m-%dT%H:%M:%SZ); GPU: $gpu; $(( SECONDS - start )) s of a $budget s budget"
    echo
    echo "| step | status | seconds | note |"
    echo "|---|---|---|---|"
    for s in "${steps[@]}"; do echo "| $s | ${status[$s]:-NOT RUN} | ${seconds[$s]:-} | ${note[$s]:-} |"; done
    echo
    echo "## Figures"
    for s in "${steps[@]}"; do
      [[ -f $WORK/logs/$s.log ]] && grep -h "^FIGURE: \|^cli np1\|^selftest: \|^NA-PART: " "$WORK/logs/$s.log" | sed 's/^FIGURE: //'
    done
    echo
    echo "Every step's log and JSON: results.tar.gz (logs/<step>.log, results/)."
  } > "$OUT/summary.md.tmp" && mv "$OUT/summary.md.tmp" "$OUT/summary.md"
  {
    printf '{"verdict": "%s", "mode": "%s", "commit": "%s", "seconds": %d, "steps": {' "$verdict" "$MODE" "$commit" $(( SECONDS - start ))
    local sep=""
    for s in "${steps[@]}"; do printf '%s"%s": "%s"' "$sep" "$s" "${status[$s]:-NOT RUN}"; sep=", "; done
    printf '}}\n'
  } > "$OUT/summary.json.tmp" && mv "$OUT/summary.json.tmp" "$OUT/summary.json"
  tar -czf "$OUT/results.tar.gz.tmp" -C "$WORK" logs results 2>/dev/null && mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz"
}

echo "GPU check ($MODE mode), budget $budget s, steps: ${steps[*]}; output in $OUT"
stop_rest=""
for s in "${steps[@]}"; do
  left=$(( budget - (SECONDS - start) - reserve ))
  if [[ -n $stop_rest ]]; then
    status[$s]="NOT RUN"; note[$s]=$stop_rest; write_summary; continue
  fi
  if (( left < ${need[$s]} )); then
    status[$s]="NOT RUN"; note[$s]="needs about ${need[$s]} s, $left s left"
    echo "== $s: not run (${note[$s]})"; write_summary; continue
  fi
  t=$(( left < ${limit[$s]} ? left : ${limit[$s]} ))
  status[$s]=RUNNING; write_summary "$s"
  echo "== $s (limit $t s, $left s left)"
  t0=$SECONDS
  GPU_CHECK_SECONDS_LEFT=$t timeout -k 5 "$t" "$self" --run-step "$s" > "$WORK/logs/$s.log" 2>&1
  rc=$?
  seconds[$s]=$(( SECONDS - t0 ))
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    status[$s]=TIMEOUT; note[$s]="killed at its limit of $t s"
  elif [[ $rc -ne 0 ]]; then
    status[$s]=FAIL; note[$s]="exit $rc: $(grep -v '^FIGURE' "$WORK/logs/$s.log" | grep -iE 'error|fail' | tail -1 | cut -c1-160 | tr '|' '/')"
  elif grep -q "^NA: " "$WORK/logs/$s.log"; then
    status[$s]=NA; note[$s]=$(grep -m1 "^NA: " "$WORK/logs/$s.log" | cut -c5-160)
  else
    status[$s]=PASS
  fi
  echo "== $s: ${status[$s]} in ${seconds[$s]} s"
  # Without a build nothing else can run: say so instead of failing every later step.
  if [[ ${status[$s]} != PASS && ${status[$s]} != NA && $s =~ ^(deps|configure|build)$ ]]; then
    stop_rest="not started: $s did not pass"
    tail -20 "$WORK/logs/$s.log"
  fi
  write_summary
done
write_summary
head -6 "$OUT/summary.md"
echo "total: $(( SECONDS - start )) s; $(ls "$OUT" | wc -l) files in $OUT"
rm -rf "$WORK"
grep -q "^# modtrain GPU check: PASS" "$OUT/summary.md"
