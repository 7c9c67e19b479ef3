#!/usr/bin/env bash
# The sanitizers' full form (the nightly's, through `scripts/test.sh -L nightly`): the
# whole product built with AddressSanitizer + UndefinedBehaviorSanitizer in build-sanitize/, then
# the unit tests and the hostile-input CLI suite (tests/cli/hostile) run under it. LibTorch, MPI and
# the other libraries are not instrumented. A first build takes about 40 minutes on 2 cores (ccache
# makes the next ones short); the runs about 10. CI runs the short form (ctest sanitize.short).
# Exit 0 when no sanitizer reported anything and every check passed.
# Usage: scripts/sanitize.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-build-sanitize}")
launcher=()
if command -v ccache > /dev/null; then
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODTRAIN_SANITIZE=address,undefined \
  -DMODTRAIN_BUILD_BENCH=OFF "${launcher[@]}" > "$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; echo "sanitize: cmake configure failed"; exit 1; }
rm -f "$dir.configure.log"
cmake --build "$dir" --target modtrain_cli modtrain_unit_tests -j "$(nproc)"
# Leaks: LibTorch's and Open MPI's process-lifetime allocations are not ours to report.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
status=0
# Unit tests: [slow] ones (multi-minute training runs) are left to the plain build.
"$dir/tests/modtrain_unit_tests" "~[slow]" > "$log/unit.txt" 2>&1 || { tail -40 "$log/unit.txt"; status=1; }
tail -2 "$log/unit.txt"
for suite in tests/cli/hostile/*.sh; do
  name=$(basename "$suite" .sh)
  [[ $name == common ]] && continue
  if bash "$suite" "$dir/modtrain" "$PWD" > "$log/$name.txt" 2>&1; then
    tail -1 "$log/$name.txt"
  else
    tail -20 "$log/$name.txt"
    status=1
  fi
done
if grep -l "ERROR: AddressSanitizer\|runtime error:" "$log"/*.txt 2> /dev/null; then
  echo "sanitize: a sanitizer reported an error (above)"
  status=1
fi
[[ $status -eq 0 ]] && echo "sanitize ok"
exit $status
