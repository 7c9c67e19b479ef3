# Sourced by the hostile-input suite (tests/cli/hostile/*.sh): what a hostile new user tries, one
# class of defect per script. Every case must end with the right exit code and exactly one clear
# `error:` line, within a time limit (no hangs), and lose no data.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cases=0
# expect_error CODE REGEX -- command...   (stdin is /dev/null unless the command redirects it)
expect_error() {
  local code=$1 regex=$2
  shift 3
  local rc=0
  timeout --kill-after=5 30 "$@" > out.txt 2> err.txt < /dev/null || rc=$?
  cases=$((cases + 1))
  [[ $rc -ne 124 && $rc -ne 137 ]] || fail "case $cases hung (killed after 30 s): $*"
  [[ $rc -eq $code ]] || fail "case $cases: exit $rc, expected $code: $* -- $(cat err.txt)"
  local n
  n=$(grep -c 'error:' err.txt || true)
  [[ $n -eq 1 ]] || fail "case $cases: $n error lines, expected 1: $* -- $(cat err.txt)"
  grep -Eq -- "$regex" err.txt || fail "case $cases: the error does not say '$regex': $(cat err.txt)"
  ! grep -Eq 'terminate called|what\(\)|filesystem error:|Segmentation|AddressSanitizer|runtime error:' err.txt ||
    fail "case $cases: raw crash or sanitizer text: $(cat err.txt)"
}
# expect_ok -- command...
expect_ok() {
  shift
  cases=$((cases + 1))
  timeout --kill-after=5 120 "$@" > out.txt 2> err.txt < /dev/null || fail "case $cases: exit $?: $* -- $(tail -3 err.txt)"
  ! grep -Eq 'AddressSanitizer|runtime error:' err.txt || fail "case $cases: a sanitizer reported: $(cat err.txt)"
}
# A small trained model in run/model (and its data, vocab and prepared shards) for the cases that need one.
trained_model() {
  synth_data "$1" 600 100 800
  cfg=(--config "$2/configs/tiny.yaml" --set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set run.dir=run
       --set train.max_steps=3 --set train.warmup_steps=1 --set eval.every=0 --set dist.threads=1 --set log.level=warn)
  "$1" data prepare "${cfg[@]}" > /dev/null
  "$1" train "${cfg[@]}" > train.txt 2>&1 || { cat train.txt; fail "training the fixture model"; }
}
