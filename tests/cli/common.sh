# Sourced by the CLI test scripts: a scratch directory (removed on exit) as the working
# directory, fail(), and the synthetic data the training tests start from.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
fail() { echo "FAIL: $*"; exit 1; }
# synth_data MODTRAIN TRAIN VALID VOCAB_SIZE -> data/{train,valid}-*.jsonl and vocab.txt
synth_data() {
  "$1" data synth --out data --train "$2" --valid "$3" > /dev/null
  "$1" tokenizer train --input 'data/train-*.jsonl' --vocab-size "$4" --out vocab.txt > /dev/null 2>&1
}
