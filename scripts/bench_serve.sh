#!/usr/bin/env bash
# Load test of `modtrain serve` against its peer, the same model in PyTorch eager behind FastAPI +
# uvicorn (bench/peer/serve_fastapi.py: its own BERT, the model's weights and tokenization; its
# scores are checked against `modtrain predict` first). wrk (Debian's) posts real-length posts
# (data synth's length distribution) to POST /v1/moderate on loopback: 1 post per request at 1, 8
# and 64 connections, and 32 posts per request at 8 connections, for the tiny model and a
# BERT-base-sized one (12 layers, 768 hidden, 12 heads). Pinned alike: each server on core 1
# (taskset), one compute thread (serve.threads=1; the peer's torch.set_num_threads(1), and its
# FastAPI thread pool on the same core), wrk (one thread) on core 0; the peer is also run with 2
# torch threads (still on core 1), with modtrain's malloc thresholds, and with those and its linear
# layers in oneDNN (torch.utils.mkldnn.to_mkldnn; modtrain's inference GEMMs are oneDNN's), and its
# best figure kept. Then modtrain's max_wait trade-off
# (tiny, 64 connections, max_wait_ms 0-20). Writes bench/results/serve.json.
#   scripts/bench_serve.sh                 the comparison (about 6 minutes)
#   scripts/bench_serve.sh --soak SECONDS  also a soak of modtrain (tiny, 1 post per request) at 70%
#                                          of its measured peak (8 connections): RSS every 10 s, errors
set -euo pipefail
cd "$(dirname "$0")/.."
soak=0
[[ ${1:-} == --soak ]] && soak=${2:?--soak SECONDS}
repo=$PWD mt=$PWD/build/modtrain py=/usr/bin/python3 seconds=${BENCH_SECONDS:-8}
command -v wrk > /dev/null || { echo "bench_serve: needs wrk (apt install wrk)"; exit 2; }
$py -c "import fastapi, uvicorn, torch" 2> /dev/null ||
  { echo "bench_serve: the peer needs python3-fastapi python3-uvicorn python3-torch (apt)"; exit 2; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
peer_malloc=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824  # = modtrain's mallopt
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
"$mt" data synth --out data --train 20000 --valid 2000 > /dev/null
"$mt" tokenizer train --input 'data/train-*.jsonl' --vocab-size 8000 --out vocab.txt > /dev/null 2>&1
common=(--set tokenizer.vocab=vocab.txt --set data.prepared_dir=prep --set eval.every=0 --set checkpoint.every=0
        --set dist.threads=1 --set log.level=warn)
"$mt" data prepare --config "$repo/configs/tiny.yaml" "${common[@]}" > /dev/null
"$mt" train --config "$repo/configs/tiny.yaml" "${common[@]}" --set run.dir=tiny --set train.max_steps=300 \
  --set train.warmup_steps=30 > /dev/null
"$mt" data prepare --config "$repo/configs/base.yaml" "${common[@]}" --set data.prepared_dir=prep-base > /dev/null
"$mt" train --config "$repo/configs/base.yaml" "${common[@]}" --set data.prepared_dir=prep-base --set run.dir=base \
  --set train.max_steps=2 --set train.warmup_steps=1 --set train.micro_batch=8 --set train.precision=fp32 > /dev/null
# request bodies: real-length posts from the validation split, 1 and 32 per request
$py - << 'PY'
import glob, json
posts = [json.loads(l)["text"] for f in sorted(glob.glob("data/valid-*.jsonl")) for l in open(f)]
with open("one.txt", "w") as f:
    for i, p in enumerate(posts):
        f.write(json.dumps({"posts": [{"id": i, "text": p}]}) + "\n")
with open("many.txt", "w") as f:
    for i in range(0, len(posts) - 32, 32):
        f.write(json.dumps({"posts": [{"id": i + k, "text": posts[i + k]} for k in range(32)]}) + "\n")
with open("check.jsonl", "w") as f:
    for i, p in enumerate(posts[:200]):
        f.write(json.dumps({"id": str(i), "text": p}) + "\n")
PY
port_free() {  # port_free PORT: a server left from an earlier run would take the load (or part of it)
  if curl -s -o /dev/null "http://127.0.0.1:$1/health" 2> /dev/null; then
    echo "bench_serve: port $1 already answers (a server left from an earlier run?); stop it first"; exit 1
  fi
}
wait_up() {  # wait_up PORT: until GET /health answers, from the process just started
  for _ in $(seq 1 200); do
    kill -0 "${pids[-1]}" 2> /dev/null || { echo "bench_serve: the server for port $1 exited"; exit 1; }
    curl -sf "http://127.0.0.1:$1/health" > /dev/null 2>&1 && return 0; sleep 0.1
  done
  echo "bench_serve: no server on port $1"; exit 1
}
start_modtrain() {  # start_modtrain MODEL PORT [--set ...]
  local model=$1 port=$2; shift 2
  port_free "$port"
  taskset -c 1 "$mt" serve --model "$model/model" --port "$port" --set serve.threads=1 --set serve.http_threads=128 \
    --set serve.max_batch_tokens="${batch_tokens[$model]}" "$@" > /dev/null 2> "serve-$port.log" &
  pids+=($!)
  wait_up "$port"
}
start_peer() {  # start_peer MODEL PORT THREADS [GLIBC_TUNABLES [--onednn]]
  port_free "$2"
  GLIBC_TUNABLES=${4:-} taskset -c 1 $py "$repo/bench/peer/serve_fastapi.py" --model "$1/model" --port "$2" \
    --threads "$3" ${5:-} > /dev/null 2> "peer-$2.log" &
  pids+=($!)
  wait_up "$2"
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done; pids=(); }
load() {  # load PORT CONNECTIONS BODIES -> one JSON line
  BODIES=$3 taskset -c 0 wrk -t1 -c "$2" -d "${seconds}s" --timeout 60s -s "$repo/bench/serve_wrk.lua" \
    "http://127.0.0.1:$1" | tail -1
}
# The server's own forward-pass seconds and posts (/metrics), before and after a run: the forward
# pass's share of the time, and the throughput a server with no HTTP, JSON or tokenizing cost could reach.
forward_totals() {  # forward_totals PORT -> "SECONDS POSTS"
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^modtrain_serve_forward_seconds_sum / {s = $2} /^modtrain_serve_batch_posts_sum / {p = $2} END {print s + 0, p + 0}'
}
forward_json() {  # forward_json "S0 P0" "S1 P1" -> '"forward": {...},'
  $py -c "
s0, p0 = map(float, '$1'.split()); s1, p1 = map(float, '$2'.split())
print('\"forward\": {\"seconds\": %.4f, \"posts\": %d, \"ms_per_post\": %.4f},' % (s1 - s0, p1 - p0, 1e3 * (s1 - s0) / max(1, p1 - p0)))"
}
echo "[" > runs.json
first=1
record() {  # record SERVER MODEL CONNECTIONS POSTS_PER_REQUEST EXTRA_JSON RESULT_JSON
  [[ $first == 1 ]] || echo "," >> runs.json
  first=0
  echo "{\"server\": \"$1\", \"model\": \"$2\", \"connections\": $3, \"posts_per_request\": $4, $5 \"wrk\": $6}" >> runs.json
  echo "$1 $2 c=$3 posts/request=$4 $5: $6"
}
# A forward pass of BERT-base on one core is ~0.1 s per post: its batches are kept to ~25 posts
# (1024 tokens) so that one batch is seconds, not minutes; it is measured for longer.
declare -A batch_tokens=([tiny]=8192 [base]=1024)
declare -A model_seconds=([tiny]=$seconds [base]=$((seconds * 3)))
for model in tiny base; do
  seconds_saved=$seconds
  seconds=${model_seconds[$model]}
  # the peer's scores equal modtrain's (its tokenization and model are the same computation)
  "$mt" predict --model "$model/model" --input check.jsonl --output ref.jsonl 2> /dev/null
  $py "$repo/bench/peer/serve_fastapi.py" --model "$model/model" --check check.jsonl > peer.jsonl
  $py - "$model" << 'PY'
import json, sys
ref = {r["id"]: r["scores"] for r in map(json.loads, open("ref.jsonl"))}
peer = {r["id"]: r["scores"] for r in map(json.loads, open("peer.jsonl"))}
worst = max(abs(ref[k][l] - peer[k][l]) for k in ref for l in ref[k])
print(f"{sys.argv[1]}: the peer's scores are within {worst:.1e} of modtrain predict's over {len(ref)} posts")
assert worst < 1e-4, worst
json.dump({"posts": len(ref), "max_abs_diff": worst}, open(f"parity-{sys.argv[1]}.json", "w"))
PY
  # the peer's own costs without HTTP: score() and the forward pass alone, batch 1, on core 1
  taskset -c 1 $py "$repo/bench/peer/serve_fastapi.py" --model "$model/model" --time check.jsonl > "peer-cost-$model.json"
  start_modtrain "$model" 18080
  for c in 1 8 64; do
    before=$(forward_totals 18080); result=$(load 18080 "$c" one.txt)
    record modtrain "$model" "$c" 1 "$(forward_json "$before" "$(forward_totals 18080)")" "$result"
  done
  before=$(forward_totals 18080); result=$(load 18080 8 many.txt)
  record modtrain "$model" 8 32 "$(forward_json "$before" "$(forward_totals 18080)")" "$result"
  stop_all
  # the peer four ways (its best kept per row): 1 and 2 torch threads, 1 thread with modtrain's
  # malloc thresholds (core/cpu_runtime.h) given to it through glibc's tunables, and that with its
  # linear layers in oneDNN (torch.utils.mkldnn.to_mkldnn, as modtrain's inference GEMMs)
  for variant in 1 2 1m 1md; do
    threads=${variant:0:1} tunables="" onednn="" extra="\"threads\": ${variant:0:1},"
    [[ $variant == *m* ]] && tunables=$peer_malloc extra="$extra \"malloc_tuned\": true,"
    [[ $variant == *d ]] && onednn=--onednn extra="$extra \"onednn\": true,"
    start_peer "$model" 18081 "$threads" "$tunables" "$onednn"
    for c in 1 8 64; do record fastapi "$model" "$c" 1 "$extra" "$(load 18081 "$c" one.txt)"; done
    record fastapi "$model" 8 32 "$extra" "$(load 18081 8 many.txt)"
    stop_all
  done
  seconds=$seconds_saved
done
for wait_ms in 0 2 5 10 20; do
  start_modtrain tiny 18080 --set serve.max_wait_ms=$wait_ms
  record modtrain tiny 64 1 "\"max_wait_ms\": $wait_ms," "$(load 18080 64 one.txt)"
  stop_all
done
echo "]" >> runs.json
soak_json=null
if [[ $soak -gt 0 ]]; then
  peak=$($py -c "
import json
r = [x for x in json.load(open('runs.json')) if x['server'] == 'modtrain' and x['model'] == 'tiny' and x['connections'] == 8 and x['posts_per_request'] == 1 and 'max_wait_ms' not in x][0]['wrk']
print(r['requests'] / r['seconds'])")
  # A fixed offered load of 70% of that peak: C connections, each pausing DELAY_MS between requests
  # (wrk's delay() counts whole milliseconds, so the rate is set by C at a 20 ms pause). C is
  # calibrated by short runs until the measured rate is within 3% of the target.
  delay=20
  conns=$($py -c "print(max(1, round(0.7 * $peak * ($delay + 1) / 1000)))")
  start_modtrain tiny 18080
  for _ in 1 2 3 4 5; do
    rate=$(DELAY_MS=$delay BODIES=one.txt taskset -c 0 wrk -t1 -c "$conns" -d 8s --timeout 60s \
             -s "$repo/bench/serve_wrk.lua" http://127.0.0.1:18080 | tail -1 |
             $py -c "import json, sys; w = json.load(sys.stdin); print(w['requests'] / w['seconds'])")
    echo "soak calibration: $conns connections, $delay ms pauses: $rate requests/s (target $($py -c "print(round(0.7 * $peak))"))"
    next=$($py -c "r, t, c = $rate, 0.7 * $peak, $conns; print(c if abs(r / t - 1) < 0.03 else max(1, min(120, round(c * t / r))))")
    [[ $next == "$conns" ]] && break
    conns=$next
  done
  stop_all
  start_modtrain tiny 18080
  server=${pids[-1]}
  (while kill -0 "$server" 2> /dev/null; do
     echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$server/status)" >> rss.txt; sleep 10; done) &
  sampler=$!
  DELAY_MS=$delay BODIES=one.txt taskset -c 0 wrk -t1 -c "$conns" -d "${soak}s" --timeout 60s -s "$repo/bench/serve_wrk.lua" \
    http://127.0.0.1:18080 | tail -1 > soak.json
  kill $sampler 2> /dev/null || true
  soak_json=$($py -c "
import json
w = json.load(open('soak.json'))
rss = [int(l.split()[1]) for l in open('rss.txt') if len(l.split()) == 2]
settled = rss[len(rss) // 10:] or rss  # after the first tenth (allocator warm-up)
print(json.dumps({'seconds': $soak, 'peak_rate': $peak, 'target_rate': 0.7 * $peak, 'connections': $conns,
                  'delay_ms': $delay, 'offered_fraction_of_peak': w['requests'] / w['seconds'] / $peak, 'wrk': w,
                  'rss_kb': rss, 'rss_growth_after_warmup': (max(settled) - min(settled)) / min(settled)}))")
  echo "soak: $soak_json" | cut -c1-400
  stop_all
fi
$py - "$repo" "$soak_json" << 'PY'
import json, os, subprocess, sys
repo, soak = sys.argv[1], json.loads(sys.argv[2])
runs = json.load(open("runs.json"))
for r in runs:
    w = r["wrk"]
    r["posts_per_s"] = w["requests"] / w["seconds"] * r["posts_per_request"]
out = {"benchmark": "serve", "machine": {"cores": os.cpu_count(), "modtrain_cpu": subprocess.run(
           [repo + "/build/modtrain", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1],
       "commit": subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()},
       "work": "POST /v1/moderate on loopback, real-length synthetic posts; each server pinned to core 1 with 1 "
               "compute thread (the peer also with 2 torch threads, with modtrain's malloc thresholds, and with those and "
               "oneDNN linear layers; its best kept), "
               "wrk -t1 pinned to core 0; OPENBLAS_CORETYPE as the environment sets it, the same for both",
       "parity": {m: json.load(open(f"parity-{m}.json")) for m in ("tiny", "base")},
       "peer_costs_no_http": {m: json.load(open(f"peer-cost-{m}.json")) for m in ("tiny", "base")}, "runs": runs, "soak": soak}
rows = []
for model in ("tiny", "base"):
    for c, ppr in ((1, 1), (8, 1), (64, 1), (8, 32)):
        mine = [r for r in runs if r["server"] == "modtrain" and r["model"] == model and r["connections"] == c
                and r["posts_per_request"] == ppr and "max_wait_ms" not in r][0]
        peers = [r for r in runs if r["server"] == "fastapi" and r["model"] == model and r["connections"] == c
                 and r["posts_per_request"] == ppr]
        peer = max(peers, key=lambda r: r["posts_per_s"])
        rows.append({"model": model, "connections": c, "posts_per_request": ppr, "modtrain": mine, "peer": peer,
                     "ratio": mine["posts_per_s"] / peer["posts_per_s"] if peer["posts_per_s"] else None})
        l, p = mine["wrk"]["latency_us"], peer["wrk"]["latency_us"]
        print(f"{model} c={c} posts/req={ppr}: modtrain {mine['posts_per_s']:.0f} posts/s p50/p99/p99.9 "
              f"{l['p50']/1e3:.1f}/{l['p99']/1e3:.1f}/{l['p999']/1e3:.1f} ms, peer ({peer['threads']} threads{', malloc tuned' if peer.get('malloc_tuned') else ''}{', oneDNN' if peer.get('onednn') else ''}) "
              f"{peer['posts_per_s']:.0f} posts/s {p['p50']/1e3:.1f}/{p['p99']/1e3:.1f}/{p['p999']/1e3:.1f} ms: "
              + (f"{mine['posts_per_s'] / peer['posts_per_s']:.2f}x" if peer["posts_per_s"] else "the peer finished none")
              + f"; modtrain's forward pass {mine['forward']['ms_per_post']:.3f} ms/post")
out["table"] = rows
json.dump(out, open(f"{repo}/bench/results/serve.json", "w"), indent=2)
PY
