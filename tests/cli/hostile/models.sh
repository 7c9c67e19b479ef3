#!/usr/bin/env bash
# Hostile: model directories and checkpoints. Non-finite weights are never served or exported, an
# export validates what it reads and what it wrote, metadata is validated on load (thresholds,
# labels), resume refuses a NaN optimiser state, pointer files are printed escaped.
# Usage: models.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
trained_model "$mt" "$repo"
# poison FILE TENSOR VALUE: one number of a tensor in a safetensors file
poison() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, name, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
b = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
start = json.loads(b[8:8 + n])[name]["data_offsets"][0] + 8 + n
b[start:start + 4] = struct.pack("<f", value)
open(path, "wb").write(b)
PY
}

# NaN / Inf weights: predict, eval and export refuse them, naming the tensor
cp -r run/model nan && poison nan/model.safetensors classifier.weight nan
expect_error 2 "nan/model.safetensors: tensor 'classifier.weight' holds 1 non-finite" -- "$mt" predict --model nan --input data/valid-00000.jsonl --output p.jsonl
[[ ! -e p.jsonl ]] || fail "predict wrote an output from NaN weights"
expect_error 2 "tensor 'classifier.weight' holds 1 non-finite" -- "$mt" eval --model nan --data 'data/valid-*.jsonl'
expect_error 2 "tensor 'classifier.weight' holds 1 non-finite" -- "$mt" export --checkpoint nan --out nan-hf
[[ ! -e nan-hf/model.safetensors ]] || fail "export copied NaN weights"
cp -r run/model inf && poison inf/model.safetensors bert.embeddings.word_embeddings.weight inf
expect_error 2 "word_embeddings.weight' holds 1 non-finite" -- "$mt" predict --model inf --input data/valid-00000.jsonl --output p.jsonl

# a truncated or corrupt model.safetensors is not exported byte for byte
cp -r run/model cut && head -c 5000 run/model/model.safetensors > cut/model.safetensors
expect_error 2 "cut/model.safetensors: malformed safetensors" -- "$mt" export --checkpoint cut --out cut-hf
cp -r run/model junk && dd if=/dev/urandom of=junk/model.safetensors bs=1k count=64 status=none
expect_error 2 "junk/model.safetensors: malformed safetensors" -- "$mt" export --checkpoint junk --out junk-hf
expect_ok -- "$mt" export --checkpoint run/model --out hf
expect_ok -- "$mt" predict --model hf --input data/valid-00000.jsonl --output hf.jsonl

# metadata: thresholds outside (0, 1], labels out of step with config.json, a wrong problem
meta() { cp -r run/model "$1" && python3 -c "
import json, sys; p = '$1/' + sys.argv[1]; j = json.load(open(p)); exec(sys.argv[2]); json.dump(j, open(p, 'w'))" "$2" "$3"; }
meta t15 modtrain.json 'j["thresholds"][2] = 1.5'
expect_error 2 "t15/modtrain.json: the threshold of 'threat' is 1.5" -- "$mt" predict --model t15 --input data/valid-00000.jsonl --output p.jsonl
meta t0 modtrain.json 'j["thresholds"][0] = 0'
expect_error 2 "the threshold of 'hate' is 0" -- "$mt" eval --model t0 --data 'data/valid-*.jsonl'
meta tneg modtrain.json 'j["thresholds"][0] = -0.5'
expect_error 2 "the threshold of 'hate' is -0.5" -- "$mt" export --checkpoint tneg --out tneg-hf
meta swap config.json 'j["id2label"]["0"], j["id2label"]["1"] = j["id2label"]["1"], j["id2label"]["0"]'
expect_error 2 "label 0 is 'hate' but config.json's id2label says 'harassment'" -- "$mt" predict --model swap --input data/valid-00000.jsonl --output p.jsonl
meta dup modtrain.json 'j["labels"][1] = j["labels"][0]'
expect_error 2 "label 'hate' appears twice" -- "$mt" predict --model dup --input data/valid-00000.jsonl --output p.jsonl
meta prob modtrain.json 'j["problem"] = "regression"'
expect_error 2 "problem is 'regression'" -- "$mt" predict --model prob --input data/valid-00000.jsonl --output p.jsonl

# resume from a checkpoint whose optimiser state holds NaN
ck=run/checkpoints/$(cat run/checkpoints/latest)
# (a piece of a sharded checkpoint: first with the index's checksum left as written, then updated
# as a writer with NaN state would have recorded it)
cp -r "$ck" saved_ck
poison_piece() {  # poison_piece CKPT TENSOR VALUE FIX_CHECKSUM
  python3 - "$@" <<'PY'
import json, struct, sys
ck, tensor, value, fix = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
index = json.load(open(ck + "/index.json"))
piece = index["tensors"][tensor]["pieces"][0]
path = ck + "/" + piece["file"]
b = bytearray(open(path, "rb").read())
b[piece["offset"]:piece["offset"] + 4] = struct.pack("<f", value)
open(path, "wb").write(b)
def checksum64(data):  # io/checksum.h
    M = (1 << 64) - 1
    h = 0x9E3779B97F4A7C15 ^ len(data)
    i = 0
    while i + 8 <= len(data):
        w = int.from_bytes(data[i:i + 8], "little")
        h ^= (w * 0xC2B2AE3D27D4EB4F) & M
        h = ((((h << 31) | (h >> 33)) & M) * 0x9E3779B97F4A7C15) & M
        i += 8
    while i < len(data):
        h = ((h ^ data[i]) * 0x100000001B3) & M
        i += 1
    return h ^ (h >> 29)
if fix:
    n = (piece["end"] - piece["begin"]) * 4
    piece["checksum"] = "%016x" % checksum64(bytes(b[piece["offset"]:piece["offset"] + n]))
    json.dump(index, open(ck + "/index.json", "w"))
PY
}
poison_piece "$ck" exp_avg.classifier.weight nan 0
expect_error 2 "\(written by rank 0\): piece exp_avg\.classifier\.weight\[0:[0-9]+\] fails its checksum" -- "$mt" train "${cfg[@]}" --set train.max_steps=6 --resume auto
poison_piece "$ck" exp_avg.classifier.weight nan 1
expect_error 2 "optimiser state exp_avg.classifier.weight holds non-finite numbers" -- "$mt" train "${cfg[@]}" --set train.max_steps=6 --resume auto
rm -rf "$ck" && mv saved_ck "$ck"

# a pointer file with binary content is printed escaped, never raw
printf '\x01\x1b[31mred\xff' > run/checkpoints/latest
expect_error 2 "naming '\\\\x01\\\\x1b\[31mred\\\\xff'" -- "$mt" predict --model run/checkpoints/latest --input data/valid-00000.jsonl --output p.jsonl
! grep -q $'\x1b' err.txt || fail "an escape sequence reached the terminal"
echo "hostile models ok ($cases cases)"
