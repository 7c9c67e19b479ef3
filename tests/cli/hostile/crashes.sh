#!/usr/bin/env bash
# Hostile: whatever goes wrong, the CLI never ends with an uncaught exception. An exception on a
# worker thread reaches the main thread; one that is not a std::exception still gives one line and
# exit 1; std::terminate gives one line, exit 1, and under MPI stops every rank instead of leaving
# one waiting. MODTRAIN_FAULT=<point>:unknown|terminate injects them (src/core/fault.cpp).
# Usage: crashes.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
synth_data "$mt" 300 50 400
cfg=(--config "$repo/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set run.dir=run
     --set train.max_steps=2 --set train.warmup_steps=1 --set eval.every=0 --set dist.threads=1 --set log.level=warn)

# An exception of unknown type on a prepare worker thread (2 threads: one is not the main thread)
expect_error 1 "^error: internal error: an exception of unknown type \(a modtrain bug" -- \
  env MODTRAIN_FAULT=prepare-worker:unknown "$mt" data prepare "${cfg[@]}" --threads 2
# The last resort: std::terminate on a worker thread
expect_error 1 "^error: internal error: std::terminate was called with no exception \(a modtrain bug" -- \
  env MODTRAIN_FAULT=prepare-worker:terminate "$mt" data prepare "${cfg[@]}" --threads 2
[[ ! -e prep/manifest.json ]] || fail "a failed prepare left a manifest"

# Under MPI every rank prepares its share (data.prepare auto); a failure on rank 1 alone stops both,
# reported once: an exception by rank 0 after the step's gather, std::terminate by rank 1 itself.
mpi=(mpirun -np 2 --bind-to none "$mt" train "${cfg[@]}" --set data.prepare=auto)
rank1=(mpirun -np 1 --bind-to none "$mt" train "${cfg[@]}" --set data.prepare=auto : -np 1 env)  # + FAULT, the job
job=("$mt" train "${cfg[@]}" --set data.prepare=auto)
expect_error 1 "\[rank 0\] error: rank 1: internal error: an exception of unknown type" -- \
  "${rank1[@]}" MODTRAIN_FAULT=prepare-worker:unknown "${job[@]}"
expect_error 1 "\[rank 1\] error: internal error: std::terminate was called .*; stopping every rank" -- \
  "${rank1[@]}" MODTRAIN_FAULT=prepare-worker:terminate "${job[@]}"
# and the same job without the fault trains (the cases above failed for the fault, not the setup)
expect_ok -- "${mpi[@]}"
[[ -e run/checkpoints/latest ]] || fail "the control run wrote no checkpoint"
echo "hostile crashes ok ($cases cases)"
