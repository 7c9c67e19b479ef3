#!/usr/bin/env bash
# Hostile: prepared data that no longer matches its sources or config. With data.prepare: check
# each is one error line saying what changed; with auto (the default) the data is prepared again
# and training sees the new records. A shard swapped for another is caught when it is opened.
# Usage: prepared.sh MODTRAIN REPO_DIR
set -euo pipefail
mt=$1 repo=$2
source "$(dirname "$0")/common.sh"
trained_model "$mt" "$repo"
check=("$mt" train "${cfg[@]}" --set data.prepare=check --set run.dir=r)
records() { python3 -c 'import json; print(json.load(open("prep/manifest.json"))["splits"]["train"]["records"])'; }

expect_ok -- "${check[@]}"  # fresh: trains
# raw data appended to after `data prepare`
echo '{"id": "new-1", "text": "a brand new post", "labels": {"hate": 1}}' >> data/train-00001.jsonl
expect_error 2 "stale: data/train-00001.jsonl changed since it was prepared \([0-9]+ -> [0-9]+ bytes, modified\)" -- "${check[@]}"
n=$(records)
expect_ok -- "$mt" train "${cfg[@]}" --set run.dir=r --set log.level=info
grep -q "data.prepare: auto: preparing prep again (data/train-00001.jsonl changed" out.txt || fail "auto did not say why: $(head -3 out.txt)"
[[ $(records) -eq $((n + 1)) ]] || fail "the appended record was not prepared"
# the same under mpiexec -np 2: rank 0 prepares again while rank 1 waits, then both train on it
echo '{"id": "new-2", "text": "another new post", "labels": {"spam": 1}}' >> data/train-00002.jsonl
expect_ok -- mpiexec --oversubscribe -np 2 "$mt" train "${cfg[@]}" --set run.dir=r2 --set log.level=info
grep -q "data.prepare: auto: preparing prep again (data/train-00002.jsonl changed" out.txt || fail "2 ranks: $(head -3 out.txt)"
[[ $(records) -eq $((n + 2)) ]] || fail "2 ranks: the appended record was not prepared"
grep -q "on 2 rank(s)" out.txt || fail "2 ranks did not train"
# data.train changed to fewer files, or to a glob that matches nothing
expect_error 2 "stale: data.train matches 3 file\(s\) now, it was prepared from 4" -- "${check[@]}" --set "data.train=[data/train-00000.jsonl, data/train-00001.jsonl, data/train-00002.jsonl]"
expect_error 2 "data.train: 'nothing-\*.jsonl' matches no file" -- "$mt" train "${cfg[@]}" --set "data.train=[nothing-*.jsonl]"
# data.max_len raised (records would stay cut at the old length), labels changed
expect_error 2 "stale: data.max_len is 128, it was prepared with 64" -- "${check[@]}" --set data.max_len=128
expect_error 2 "stale: data.labels is \[hate, spam\]" -- "${check[@]}" --set "data.labels=[hate, spam]"
# a shard replaced by a copy of another: caught by the size check before training, or (when the
# two happen to be of one size) when it is opened
cp prep/train-00001.bin saved.bin
cp prep/train-00002.bin prep/train-00001.bin
expect_error 2 "prep/train-00001.bin( has another size than the manifest says|: has .*, the manifest says)" -- "${check[@]}"
# ... and, the same size but other content, when the shard is opened (checksum against the manifest)
cp saved.bin prep/train-00001.bin
python3 - <<'PY'
import json
m = json.load(open("prep/manifest.json"))
m["splits"]["train"]["shards"][1]["checksum"] = "0123456789abcdef"
json.dump(m, open("prep/manifest.json", "w"), indent=2)
PY
expect_error 2 "prep/train-00001.bin: has checksum [0-9a-f]{16}, the manifest says 0123456789abcdef" -- "${check[@]}"
# the manifest's tamper-free state again by preparing; a version-1 manifest is stale, not trusted
expect_ok -- "$mt" data prepare "${cfg[@]}"
python3 -c '
import json; m = json.load(open("prep/manifest.json")); m["version"] = 1; json.dump(m, open("prep/manifest.json", "w"))'
expect_error 2 "stale: its manifest \(version 1\) does not record what it was made from" -- "${check[@]}"
# Under mpiexec -np 2 each rank checks its share of the source files (file i on rank i % 2): a
# change that only rank 1 sees is still the one answer, said once.
expect_ok -- "$mt" data prepare "${cfg[@]}"
echo '{"id": "new-3", "text": "one more post", "labels": {"spam": 1}}' >> data/train-00001.jsonl
expect_error 2 "stale: data/train-00001.jsonl changed since it was prepared" -- \
  mpiexec --oversubscribe -np 2 "${check[@]}"
# A block of a shard corrupted after prepare (same size, the manifest untouched): nothing checks it
# at start; the first rank to read one of its records stops the job with one line naming the shard
# and the block's records (the others do not go on with another sample order).
expect_ok -- "$mt" data prepare "${cfg[@]}"
python3 - <<'PY'
import struct
path = "prep/train-00001.bin"
b = bytearray(open(path, "rb").read())
version, = struct.unpack_from("<I", b, 8)
records, = struct.unpack_from("<Q", b, 16)
assert version == 3, version
tokens_at = 128 + 8 * ((records + 255) // 256) + 8 * (records + 1) + 8 * records
b[tokens_at + 2 * 5] ^= 0x01  # a token of the first records
open(path, "wb").write(bytes(b))
PY
for np in 1 2; do
  expect_error 2 "prep/train-00001.bin: corrupted shard \(checksum mismatch in records 0-[0-9]+\); run .modtrain data prepare. again" -- \
    mpiexec --oversubscribe -np $np "${check[@]}" --set run.dir=corrupt$np
done
echo "hostile prepared ok ($cases cases)"
