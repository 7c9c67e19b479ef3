#!/usr/bin/env bash
# Installs the Debian packages modtrain needs (only the missing ones; apt-get update runs once,
# and only then), then configures and builds Release into build/. Idempotent and fast when
# everything is already there. Usage: scripts/setup.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build git bc ccache
  libtorch-dev libopenblas0-pthread          # LibTorch; OpenBLAS (pthread) instead of reference BLAS: ~13x faster
  libdnnl-dev                                # oneDNN's API (LibTorch's own oneDNN): inference GEMMs with laid-out weights
  libopenmpi-dev openmpi-bin                 # MPI ranks and the CPU all-reduce backend
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libutf8proc-dev libcsv-dev libssl-dev
  catch2
  clang-format                               # scripts/format.sh and the ctest `format` check
  python3-numpy                              # the float64 reference BERT that checks exported logits (tests)
  python3-sklearn                            # the TF-IDF + logistic regression baseline (bench/peer, quickstart, tests)
  iproute2                                   # the two-node rehearsal's namespaces and veth pair (tests/cli/two_nodes.sh)
  libcpp-httplib-dev pkg-config              # modtrain serve's HTTP server (found through pkg-config)
  wrk                                        # the serve test's short load run and scripts/bench_serve.sh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ccache makes rebuilds from a clean clone fast; these settings let it cache precompiled headers.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true  # hits across clones in other folders (CI)
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >build.configure.log 2>&1 ||
  { cat build.configure.log; echo "setup: cmake configure failed (log above)"; exit 1; }
rm -f build.configure.log
cmake --build build -j "$jobs"
echo "setup: built build/modtrain"
