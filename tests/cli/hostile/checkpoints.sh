#!/usr/bin/env bash
# Hostile: checkpoint writes that fail. A save that fails (disk full) removes its partial
# .tmp-step-N/ directory; a save killed mid-way leaves one, which the next run removes at start-up.
# Usage: checkpoints.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
trained_model "$mt" "$repo"
run=("$mt" train "${cfg[@]}" --set run.dir=r --set train.max_steps=4 --set checkpoint.every=2)

# a full disk in the middle of a save: a real one (a 1 MiB tmpfs) where mounting is allowed, else
# the same error injected at the same point (MODTRAIN_FAULT=...:enospc)
mkdir -p small
if mount -t tmpfs -o size=1m tmpfs small 2> /dev/null; then
  trap 'umount "$PWD/small" 2> /dev/null; rm -rf "$dir"' EXIT
  expect_error 1 "cannot write .*No space left on device" -- "$mt" train "${cfg[@]}" --set run.dir=small/r --set train.max_steps=4 --set checkpoint.every=2
  ! ls -a small/r/checkpoints | grep -q '^\.tmp' || fail "a failed save left $(ls -a small/r/checkpoints | grep tmp)"
  echo "disk full: a 1 MiB tmpfs"
else
  echo "disk full: injected (mount not permitted here)"
fi
MODTRAIN_FAULT=checkpoint-mid-save:enospc expect_error 1 "No space left on device" -- "${run[@]}"
! ls -a r/checkpoints | grep -q '^\.tmp' || fail "a failed save left $(ls -a r/checkpoints | grep tmp)"

# a save killed in the middle leaves .tmp-step-N; the next run removes it and says so
rm -rf r
MODTRAIN_FAULT=checkpoint-mid-save "${run[@]}" > killed.txt 2>&1 && fail "the fault point did not fire"
ls -a r/checkpoints | grep -q '^\.tmp-step-0000002$' || fail "the killed save left no .tmp directory: $(ls -a r/checkpoints)"
expect_ok -- "${run[@]}" --set log.level=info
grep -q "removed 1 unfinished checkpoint file(s) in r/checkpoints" out.txt || fail "start-up did not clean: $(head -3 out.txt)"
! ls -a r/checkpoints | grep -q '^\.tmp' || fail "stale temporary left: $(ls -a r/checkpoints)"
echo "hostile checkpoints ok ($cases cases)"
