#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, CLI, MPI under mpiexec) through
# ctest. Extra arguments go to ctest, e.g. `scripts/test.sh -L mpi` or `-R config`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Open MPI refuses root without these; the 2-core machines need oversubscription for 3+ ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd build
# Tests labelled nightly (the full sanitizer run, scripts/sanitize.sh: an instrumented build of
# everything, about 40 minutes cold on 2 cores) run only when asked for: scripts/test.sh -L nightly.
exclude=(-LE nightly)
for arg in "$@"; do [[ $arg == -L || $arg == --label-regex || ($arg == -L* && $arg != -LE*) ]] && exclude=(); done
ctest --output-on-failure -j "$(nproc)" "${exclude[@]}" "$@"
