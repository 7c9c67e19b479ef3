#!/usr/bin/env bash
# Prepares a device run of the GPU check on this (apt-equipped) machine, then rehearses it here on
# CPU up to the point where a GPU is needed:
#  1. .deps/: the Debian packages the bare GPU machine lacks (../shared/device/collect-debs.sh:
#     Open MPI, yaml-cpp, CLI11, Catch2, utf8proc, nlohmann-json, libcsv, plus OpenSSL's headers
#     and cpp-httplib with Brotli),
#     checked to hold every file the build needs; .deps/COMMIT names the commit (no git there);
#  2. what the run carries, and its size against the 64 MiB limit;
#  3. scripts/gpu/check.sh --cpu on BUILD_DIR (default build/), with the .deps unpacking step run
#     for real into a scratch prefix;
#  4. the exact device call to make (docs/gpu-results.md says the same).
# Usage: scripts/gpu/prepare.sh [BUILD_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$repo/build}
cd "$repo"
collect=${COLLECT_DEBS:-$repo/../shared/device/collect-debs.sh}
if ! ls .deps/*.deb > /dev/null 2>&1 || ! ls .deps/libssl-dev_*.deb .deps/libcpp-httplib-dev_*.deb > /dev/null 2>&1; then
  [[ -x $collect || -f $collect ]] || { echo "prepare.sh: $collect not found (set COLLECT_DEBS)" >&2; exit 1; }
  # OpenSSL's headers (checkpoint digests); cpp-httplib and its Brotli for `modtrain serve` (found
  # without pkg-config under the unpacked prefix: CMakeLists.txt)
  bash "$collect" "$repo/.deps" libssl-dev libssl3 libcpp-httplib-dev libcpp-httplib0.11 libbrotli1 | grep -v "^Get:"
fi
git check-ignore -q .deps || { echo "prepare.sh: .deps/ is not git-ignored; add /.deps/ to .gitignore" >&2; exit 1; }
git rev-parse --short=12 HEAD > .deps/COMMIT
[[ -z $(git status --porcelain --untracked-files=no) ]] ||
  echo "prepare.sh: warning: uncommitted changes; the device runs the working tree, .deps/COMMIT says $(cat .deps/COMMIT)+changes"
echo "prepare: $(ls .deps/*.deb | wc -l) packages in .deps ($(du -sh .deps | cut -f1))"
# What travels: the tracked and untracked-but-not-ignored files, and the carried .deps.
tree_kb=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
deps_kb=$(du -sk .deps | cut -f1)
echo "prepare: the run carries the working tree (${tree_kb} KiB) and .deps (${deps_kb} KiB): $(( (tree_kb + deps_kb) / 1024 )) MiB of 64"
(( tree_kb + deps_kb < 60 * 1024 )) || { echo "prepare.sh: over the 64 MiB a run may carry" >&2; exit 1; }
# The rehearsal: every step with MPI for NCCL and the CPU LibTorch; deps unpacked for real.
OUT=${OUT:-$repo/gpu-out-rehearsal} "$repo/scripts/gpu/check.sh" --cpu --build-dir "$build"
cat <<CALL

The device call (one command, about 8 minutes at most; see docs/gpu-results.md):
  run(command="OUT=\$OUT scripts/gpu/check.sh", carry=[".deps"], timeout_s=480)
then give_back, and copy summary.md's figures into docs/gpu-results.md.
CALL
