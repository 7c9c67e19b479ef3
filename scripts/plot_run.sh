#!/usr/bin/env bash
# Renders a run's metrics.jsonl into PNG plots (loss, learning rate, evaluation metrics,
# throughput). Usage: scripts/plot_run.sh RUN_DIR [OUT_DIR]   (default RUN_DIR/plots)
# Needs Debian's python3-matplotlib (installed when missing).
set -euo pipefail
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: scripts/plot_run.sh RUN_DIR [OUT_DIR]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
if ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  echo "plot_run: installing python3-matplotlib" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-matplotlib >&2
fi
exec /usr/bin/python3 "$here/plot_run.py" "$@"
