#!/usr/bin/env bash
# `config show` output fed back in resolves to the same config (byte-identical second dump),
# including --set overrides of every value type.
set -euo pipefail
mt=$1 config=$2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
"$mt" config show --config "$config" --set train.lr=3e-4 --set 'data.labels=[hate, "spam mail", "yes"]' \
  --set eval.thresholds=precision_at:0.9 --set log.all_ranks=true > "$dir/a.yaml"
"$mt" config show --config "$dir/a.yaml" > "$dir/b.yaml"
diff -u "$dir/a.yaml" "$dir/b.yaml"
grep -q 'lr: 0.0003' "$dir/a.yaml"
grep -q 'precision_at:0.9' "$dir/a.yaml"
grep -q '"spam mail"' "$dir/a.yaml"
echo "round trip ok"
