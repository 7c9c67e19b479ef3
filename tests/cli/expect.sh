#!/usr/bin/env bash
# Runs a command and checks its exit code, output and duration; used by ctest for CLI and
# MPI-job behaviour. Usage:
#   expect.sh [--exit N|nonzero] [--match ERE]... [--no-match ERE]... [--lines N]
#             [--error-lines N] [--within SECONDS] -- command args...
# --lines counts non-empty output lines (stdout+stderr); --error-lines counts lines with "error:".
set -u
want_exit=0 lines="" error_lines="" within=60
matches=() no_matches=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  case $1 in
    --exit) want_exit=$2; shift 2 ;;
    --match) matches+=("$2"); shift 2 ;;
    --no-match) no_matches+=("$2"); shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --error-lines) error_lines=$2; shift 2 ;;
    --within) within=$2; shift 2 ;;
    *) echo "expect.sh: unknown option $1" >&2; exit 99 ;;
  esac
done
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
timeout --kill-after=5 "$within" "$@" >"$out" 2>&1 </dev/null
rc=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
fail=0
report() { echo "FAIL: $*"; fail=1; }
echo "--- command: $*"
echo "--- exit code $rc after ${elapsed}s; output:"
cat "$out"
echo "---"
if [[ $rc -eq 124 || $rc -eq 137 ]]; then report "timed out after ${within}s"; fi
if [[ $want_exit == nonzero ]]; then
  [[ $rc -ne 0 ]] || report "expected a non-zero exit code, got 0"
elif [[ $rc -ne $want_exit ]]; then
  report "expected exit code $want_exit, got $rc"
fi
for re in "${matches[@]+"${matches[@]}"}"; do grep -Eq -e "$re" "$out" || report "output does not match: $re"; done
for re in "${no_matches[@]+"${no_matches[@]}"}"; do grep -Eq -e "$re" "$out" && report "output should not match: $re"; done
if [[ -n $lines ]]; then
  n=$(grep -c . "$out"); [[ $n -eq $lines ]] || report "expected $lines output line(s), got $n"
fi
if [[ -n $error_lines ]]; then
  n=$(grep -c 'error:' "$out"); [[ $n -eq $error_lines ]] || report "expected $error_lines 'error:' line(s), got $n"
fi
[[ $fail -eq 0 ]] && echo "PASS"
exit $fail
