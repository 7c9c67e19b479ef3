#!/usr/bin/env bash
# Applies .clang-format to every C++ file in the repository (scripts/format.sh), or checks that
# they are formatted without changing them (scripts/format.sh --check, the ctest `format` test:
# it lists each file that drifts and exits 1). Uses Debian 12's clang-format 14, which setup.sh
# installs; other versions format some constructs differently.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[[ ${1:-} == --check ]] && check=1
tool=$(command -v clang-format-14 || command -v clang-format || true)
[[ -n $tool ]] || { echo "format: clang-format not found (scripts/setup.sh installs it: apt-get install clang-format)"; exit 2; }
version=$("$tool" --version | grep -o 'version [0-9]*' | grep -o '[0-9]*')
[[ $version == 14 ]] || echo "format: warning: $tool is version $version; .clang-format is kept with version 14" >&2
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.h' '*.cu' '*.cuh')
else
  mapfile -t files < <(find include src tests bench -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
fi
if [[ $check -eq 0 ]]; then
  "$tool" -i --style=file "${files[@]}"
  echo "format: ${#files[@]} files formatted"
  exit 0
fi
drift=()
for f in "${files[@]}"; do
  "$tool" --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || drift+=("$f")
done
if [[ ${#drift[@]} -gt 0 ]]; then
  echo "format: ${#drift[@]} file(s) differ from .clang-format: ${drift[*]}"
  echo "format: run scripts/format.sh to apply it"
  exit 1
fi
echo "format: ${#files[@]} files ok"
