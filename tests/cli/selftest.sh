#!/usr/bin/env bash
# `modtrain dist selftest`: passes at 1, 2 and 3 ranks over MPI and with ZeRO-1, writes
# its JSON, and fails (exit 1, FAIL line) when an all-reduce leaves one rank's contribution out.
# Usage: selftest.sh MODTRAIN REPO
set -uo pipefail
mt=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fail() { echo "selftest FAILED: $*"; exit 1; }
compared=0
for np in 1 2 3; do
  out=$(timeout 120 mpiexec --oversubscribe -np $np "$mt" dist selftest --max-mb 1 --json st$np.json 2>&1) ||
    { echo "$out" | tail -5; fail "np $np exited non-zero"; }
  line=$(echo "$out" | grep "^selftest: ")
  [[ $(echo "$line" | wc -l) -eq 1 ]] || fail "np $np: not one summary line: $out"
  echo "$line" | grep -q "^selftest: PASS: mpi, $np rank(s) on 1 node(s): collectives \([0-9]*\)/\1 equal" ||
    fail "np $np: $line"
  python3 - st$np.json $np <<'PY' || fail "np $np: JSON"
import json, sys
j = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert j["pass"] and j["ranks"] == n and j["collective_failures"] == 0 and j["collective_checks"] >= 37 * n, j
assert j["train_weights_compared"] > 20000 and j["train_max_abs_diff"] <= 1e-5, j
assert [r["bytes"] for r in j["bandwidth"]] == [1024, 4096, 16384, 65536, 262144, 1048576], j["bandwidth"]
assert all(r["busbw_GBps"] > 0 for r in j["bandwidth"]) == (n > 1), j["bandwidth"]
PY
  compared=$((compared + 1))
done
# ZeRO-1: the reduce-scatter, the sliced AdamW and the grouped all-gather against one process
out=$(timeout 120 mpiexec --oversubscribe -np 2 "$mt" dist selftest --max-mb 0.01 --set train.zero=1 2>&1) ||
  { echo "$out" | tail -3; fail "ZeRO-1 np 2"; }
echo "$out" | grep -q "^selftest: PASS: .*3 training steps (ZeRO-1) equal to one process" || fail "ZeRO-1: $out"
compared=$((compared + 1))
# A nominal figure no link reaches: the bandwidth verdict fails the run
out=$(timeout 120 mpiexec --oversubscribe -np 2 "$mt" dist selftest --max-mb 0.01 --nominal-busbw 100000 2>&1)
rc=$?
[[ $rc -eq 1 ]] && echo "$out" | grep -q "^selftest: FAIL: .*% of nominal 100000.0 GB/s (below --min-fraction)" ||
  fail "an unreachable nominal busbw passed (exit $rc): $out"
compared=$((compared + 1))
# A broken all-reduce (the last rank's contribution left out): FAIL, exit 1, the failures named
out=$(MODTRAIN_FAULT=all-reduce:corrupt timeout 120 mpiexec --oversubscribe -np 2 "$mt" dist selftest --max-mb 0.01 2>&1)
rc=$?
[[ $rc -eq 1 ]] || fail "a corrupt all-reduce exited $rc: $out"
echo "$out" | grep -q "^selftest: FAIL: mpi, 2 rank(s)" || fail "no FAIL line: $out"
echo "$out" | grep -q "rank 1 on .*: all_reduce sum Float x 1000 differs from its closed form" || fail "the failing collective is not named: $out"
echo "$out" | grep -q "^selftest: FAIL: .*3 training steps DIFFER from one process" || fail "the training check passed a broken reduction: $out"
compared=$((compared + 1))
# Usage errors: one line, exit 2
out=$(timeout 30 "$mt" dist selftest --steps 0 2>&1)
[[ $? -eq 2 ]] || fail "--steps 0 accepted"
compared=$((compared + 1))
[[ $compared -eq 7 ]] || fail "compared $compared cases, expected 7"
echo "selftest ok ($compared cases)"
