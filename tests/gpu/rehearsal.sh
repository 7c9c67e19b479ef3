#!/usr/bin/env bash
# The GPU check rehearsed on CPU (ctest gpu.rehearsal): scripts/gpu/check.sh --cpu runs
# every step with what needs a GPU replaced (MPI for NCCL, the CPU LibTorch, the [cuda] bodies'
# twins, the tiny model), then its time limits, its packing and its argument handling are checked.
# Usage: rehearsal.sh REPO BUILD_DIR
set -uo pipefail
repo=$1 build=$2
check=$repo/scripts/gpu/check.sh
work=$(mktemp -d)
trap 'pkill -9 -f modtrain-fake-hang 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "gpu rehearsal FAILED: $*"; exit 1; }
compared=0
files_in() { find "$1" -maxdepth 1 -type f | wc -l; }

# 1. The whole check on CPU: every step passes or is not applicable here, as few files as promised.
OUT=$work/full "$check" --cpu --build-dir "$build" --budget 600 > "$work/full.log" 2>&1
rc=$?
summary=$work/full/summary.md
[[ -f $summary ]] || { tail -20 "$work/full.log"; fail "no summary.md"; }
[[ $rc -eq 0 ]] || { cat "$summary"; tail -30 "$work/full.log"; fail "check.sh --cpu exited $rc"; }
head -1 "$summary" | grep -qx "# modtrain GPU check: PASS" || fail "first line: $(head -1 "$summary")"
sed -n 2,5p "$summary" | grep -q "^failed: none$" || fail "failures: $(sed -n 2,5p "$summary")"
sed -n 2,5p "$summary" | grep -q "^not run: none$" || fail "steps not run: $(sed -n 2,5p "$summary")"
[[ $(files_in "$work/full") -le 8 ]] || fail "$(files_in "$work/full") files in OUT (the device returns 8)"
[[ $(files_in "$work/full") -eq 3 ]] || fail "expected summary.md, summary.json, results.tar.gz: $(ls "$work/full")"
compared=$((compared + 1))
# Steps that need a GPU are not applicable here; every other one passed.
python3 - "$work/full/summary.json" <<'PY' || fail "summary.json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["verdict"] == "PASS" and j["mode"] == "cpu", j
steps = j["steps"]
assert list(steps) == ["deps", "configure", "build", "tests-cuda", "tests-model", "selftest", "cli-np1",
                       "serve", "allreduce", "bench-train", "bench-unpad"], steps
na = {s for s, v in steps.items() if v == "NA"}
assert na <= {"deps", "configure", "tests-model"}, steps
assert all(v == "PASS" for s, v in steps.items() if s not in na), steps
print("summary.json:", steps)
PY
compared=$((compared + 1))
# The figures each step promises are in the summary, and every step's log is in the tarball.
for want in "tests-cuda (\[twin\]): Passed [a-z]* [0-9]* test cases" "^selftest: PASS: mpi, 1 rank" "^cli np1: PASS (train -np 1 mpi fp32" \
            "^serve: model [0-9a-f]* from .* on cpu" "^serve: [0-9]* scores of [0-9]* posts .* equal to predict on CPU within 1e-06" \
            "^serve: 8 Python clients, 1 post a request, .* posts/s" \
            "mpi np1: 4-byte all_reduce launch" "^bench-train: modtrain [0-9]* tokens/s" "^bench-unpad: padding [0-9]*%"; do
  grep -q "$want" "$summary" || { cat "$summary"; fail "no '$want' in summary.md"; }
  compared=$((compared + 1))
done
tar -tzf "$work/full/results.tar.gz" > "$work/full.list" || fail "results.tar.gz unreadable"
for s in build tests-cuda selftest cli-np1 serve allreduce bench-train bench-unpad; do
  grep -qx "logs/$s.log" "$work/full.list" || fail "logs/$s.log not in results.tar.gz"
done
grep -q "^results/selftest-np1.json$" "$work/full.list" || fail "selftest JSON not packed"
grep -q "^results/cli-np1/train2.log$" "$work/full.list" || fail "cli-np1 logs not packed"
grep -q "^results/serve.log$" "$work/full.list" || fail "serve's log not packed"
compared=$((compared + 1))

# 2. The time limit: a step that hangs is killed at its limit and recorded; the steps after it
#    that no longer fit are recorded as not run; the summary and the tarball are still written.
start=$SECONDS
GPU_CHECK_FAKE_HANG=selftest OUT=$work/hang "$check" --cpu --build-dir "$build" --budget 40 \
  --only selftest,cli-np1,allreduce > "$work/hang.log" 2>&1
rc=$?
took=$((SECONDS - start))
[[ $rc -ne 0 ]] || fail "a hanging step passed the check"
(( took <= 45 )) || fail "the check took $took s on a 40 s budget"
head -1 "$work/hang/summary.md" | grep -qx "# modtrain GPU check: FAIL" || fail "hang: $(head -1 "$work/hang/summary.md")"
grep -qx "timed out: selftest" "$work/hang/summary.md" || { cat "$work/hang/summary.md"; fail "the hang is not recorded as timed out"; }
grep -qx "not run: cli-np1 allreduce" "$work/hang/summary.md" || { cat "$work/hang/summary.md"; fail "the steps after it are not recorded as not run"; }
grep -q "| cli-np1 | NOT RUN | *| needs about" "$work/hang/summary.md" || fail "no reason given for a step not run"
# Listed to a file first: tar writes one entry per write(), so under pipefail `tar -t | grep -q` fails
# whenever grep exits before tar's last entry (SIGPIPE), which a loaded CI machine made happen.
tar -tzf "$work/hang/results.tar.gz" > "$work/hang.list" || fail "hang: results.tar.gz unreadable"
grep -qx "logs/selftest.log" "$work/hang.list" || fail "the killed step's log is not packed: $(tr '\n' ' ' < "$work/hang.list")"
pgrep -f modtrain-fake-hang > /dev/null && fail "the hanging step's process outlived its time limit"
compared=$((compared + 1))

# 3. Killed from outside (the device's own limit): what was written before says which step ran.
GPU_CHECK_FAKE_HANG=cli-np1 OUT=$work/killed setsid "$check" --cpu --build-dir "$build" --budget 300 --only selftest,cli-np1 \
  > "$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "running when this was written: cli-np1" "$work/killed/summary.md" 2>/dev/null && break; sleep 0.3; done
kill -9 -- -"$pid" 2>/dev/null
pkill -9 -f "check.sh --run-step cli-np1" 2>/dev/null
pkill -9 -f modtrain-fake-hang 2>/dev/null  # orphaned by the kill, as on a machine taken back
wait "$pid" 2> /dev/null || true  # killed on purpose
head -1 "$work/killed/summary.md" | grep -q "^# modtrain GPU check: INCOMPLETE (killed while running cli-np1?)" ||
  { cat "$work/killed/summary.md"; fail "a run killed mid-step does not say so"; }
grep -qx "passed: selftest" "$work/killed/summary.md" || fail "the step finished before the kill is not recorded"
[[ -f $work/killed/results.tar.gz ]] || fail "no tarball after a kill"
compared=$((compared + 1))

# 4. Arguments: one line and exit 2.
for bad in "--budget 5" "--only bogus" "--bogus"; do
  # shellcheck disable=SC2086
  err=$("$check" --cpu --build-dir "$build" $bad 2>&1 >/dev/null)
  rc=$?
  [[ $rc -eq 2 && $(echo "$err" | wc -l) -eq 1 && $err == check.sh:* ]] || fail "'$bad': exit $rc, '$err'"
  compared=$((compared + 1))
done
[[ $("$check" --list | wc -l) -eq 11 ]] || fail "--list"
compared=$((compared + 1))
[[ $compared -eq 18 ]] || fail "compared $compared cases, expected 18"
echo "gpu rehearsal ok ($compared checks; full CPU check in $(grep -o '[0-9]* s of a 600 s budget' "$summary"))"
