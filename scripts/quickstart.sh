#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then runs the main job end to end
# on the embedded default (configs/tiny.yaml, synthetic tweets of the context task, 2 CPU ranks):
# data, tokenizer, training with checkpoints, evaluation, the TF-IDF + logistic regression baseline
# on the same split, export for Hugging Face and batch prediction. It prints each step as it runs it
# and ends with the model beside the baseline and the task's ceiling.
# For the ctest of this script: QUICKSTART_DIR=DIR puts the run elsewhere than runs/quickstart, and
# MODTRAIN=PATH uses that binary instead of installing and building.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n ${MODTRAIN:-} ]] || scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
mt=${MODTRAIN:-$PWD/build/modtrain}
work=${QUICKSTART_DIR:-runs/quickstart}
mkdir -p "$work"
cfg=(--config "$PWD/configs/tiny.yaml" --set run.dir=$work --set tokenizer.vocab=$work/vocab.txt
     --set data.prepared_dir=$work/prepared --set "data.train=[$work/data/train-*.jsonl]"
     --set "data.valid=[$work/data/valid-*.jsonl]")

step "what this binary is" "$mt" --version
step "validate configs/tiny.yaml on 2 MPI ranks (all ranks must resolve the same config)" \
  mpirun -np 2 "$mt" config check "${cfg[@]}"
step "synthetic tweets (the embedded default: labels decided by negation, stance, speaker and order)" \
  "$mt" data synth --out $work/data --train 100000 --valid 5000 --train-shards 4 --force
step "train a WordPiece vocabulary on them" \
  "$mt" tokenizer train --input "$work/data/train-*.jsonl" --vocab-size 4000 --out $work/vocab.txt
step "tokenize into prepared binary shards" "$mt" data prepare "${cfg[@]}"
step "what the prepared data holds" "$mt" data stats $work/prepared
rm -rf "$work/checkpoints" "$work/model" "$work/metrics.jsonl"  # a fresh run each time quickstart runs
start=$(date +%s)
step "train on 2 MPI ranks (data parallel, MPI all-reduce; checkpoints every 1000 steps)" mpirun -np 2 "$mt" train "${cfg[@]}"
train_s=$(( $(date +%s) - start ))
step "evaluate the trained model on the validation shards" "$mt" eval --model $work/model --data "$work/data/valid-*.jsonl"
"$mt" eval --model $work/model --data "$work/data/valid-*.jsonl" --json > $work/eval.json 2>/dev/null
if ! /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-sklearn > /dev/null
fi
step "the baseline a practitioner tries first: TF-IDF + logistic regression on the same split" \
  /usr/bin/python3 bench/peer/tfidf_baseline.py --train "$work/data/train-*.jsonl" --valid "$work/data/valid-*.jsonl" \
  --out $work/baseline.json
step "export for Hugging Face transformers / text-embeddings-inference" "$mt" export --checkpoint $work/model --out $work/hf
step "plots of the run (loss, learning rate, evaluation metrics, throughput)" scripts/plot_run.sh $work $work/plots
cp scripts/demo_posts.txt $work/posts.txt
step "score four posts (probabilities, labels flagged by the tuned thresholds)" "$mt" predict --model $work/model --input $work/posts.txt --output $work/predictions.jsonl
paste -d' ' <(sed 's/^/  /' $work/posts.txt) <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("-> flagged: " + (", ".join(r["flagged"]) or "nothing"))' $work/predictions.jsonl)

echo
echo "== done"
/usr/bin/python3 - "$work" "$train_s" <<'PY'
import json, sys
work, train_s = sys.argv[1], int(sys.argv[2])
model = json.load(open(f"{work}/eval.json"))["macro"]
base = json.load(open(f"{work}/baseline.json"))
ceil = json.load(open(f"{work}/data/ceiling.json"))
print(f"{'macro on ' + str(base['valid_records']) + ' validation posts':34s} {'PR-AUC':>7s} {'ROC-AUC':>8s}")
print(f"{'modtrain (tiny BERT, ' + str(train_s) + ' s of training)':34s} {model['pr_auc']:7.3f} {model['roc_auc']:8.3f}")
print(f"{'TF-IDF + logistic regression':34s} {base['macro_pr_auc']:7.3f} {base['macro_roc_auc']:8.3f}")
print(f"{'ceiling (Bayes-optimal scores)':34s} {ceil['macro_pr_auc']:7.3f} {ceil['macro_roc_auc']:8.3f}")
sd = base["noise"]["macro_pr_auc_sd"]
print(f"modtrain - baseline: {model['pr_auc'] - base['macro_pr_auc']:+.3f} PR-AUC (the split's noise: sd {sd:.3f})")
PY
cat <<TXT
Run directory: $work: config.yaml, metrics.jsonl, checkpoints/ (latest, best, step-NNNNNNN), model/
(model.safetensors, config.json, vocab.txt, modtrain.json with the tuned thresholds, eval.json),
hf/ (the Hugging Face export and its model card), eval.json and baseline.json (the figures above),
data/ceiling.json, plots/ (the run's curves).
Train your own: edit a copy of configs/tiny.yaml and run
  mpirun -np 2 build/modtrain train --config my.yaml
TXT
