#!/usr/bin/env python3
"""The GPU check's `serve` step: `modtrain serve` on the device the check runs on.

    serve_check.py MODTRAIN MODEL_DIR TEXTS PREDICTIONS MODE

MODEL_DIR, TEXTS and PREDICTIONS are what cli_np1.sh left: the exported model, the texts it
scored and `modtrain predict`'s JSONL for them (predict runs on CPU). The server starts with
serve.device=auto, which must pick cuda:0 on the GPU machine (MODE gpu) and the CPU in the
rehearsal (MODE cpu). Checks, each counted:
  - /ready answers with the model's id;
  - every text, sent from 8 threads in requests of 1 to 7 posts (they share batches), gets the
    labels in the model's order and scores equal to predict's: 1e-6 on CPU, 1e-4 on the GPU
    (cuBLAS sums in another order than OpenBLAS; the largest difference is printed); flags equal
    wherever predict's score is further than that tolerance from the threshold;
  - a short load (8 threads, one post a request, 4 s): posts/s and p50/p99 as FIGURE lines;
  - SIGTERM: exit 0 within 30 s.
Only the standard library: the device machine's Python has no third-party HTTP client we rely on.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

mt, model, texts_path, pred_path, mode = sys.argv[1:6]
tolerance = 1e-4 if mode == "gpu" else 1e-6
texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
reference = [json.loads(line) for line in open(pred_path, encoding="utf-8")]
meta = json.load(open(os.path.join(model, "modtrain.json")))
labels, thresholds = meta["labels"], meta["thresholds"]
if len(reference) != len(texts) or not texts:
    sys.exit(f"error: {pred_path} has {len(reference)} predictions for {len(texts)} texts in {texts_path}")

log = open("serve.log", "w+")
proc = subprocess.Popen([mt, "serve", "--model", model, "--port", "0", "--set", "serve.device=auto",
                         "--set", "serve.max_wait_ms=2"], stdout=subprocess.PIPE, stderr=log, text=True)


def fail(why):
    log.flush()
    log.seek(0)
    print(f"error: serve: {why}\n--- serve's stderr:\n{log.read()[-3000:]}", flush=True)
    proc.kill()
    os._exit(1)  # also from a client thread


line = proc.stdout.readline()
if not line.startswith("modtrain serve: listening on http://127.0.0.1:"):
    fail(f"did not start: {line!r}")
port = int(line.strip().rsplit(":", 1)[1])


def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        fail(f"{method} {path}: not JSON ({r.status}): {data[:200]!r}")


status, ready = call("GET", "/ready")
if status != 200 or ready.get("ready") is not True:
    fail(f"/ready: {status} {ready}")
log.flush()
log.seek(0)
started = [l for l in log.read().splitlines() if l.startswith("serve: model ")]
want_device = "cuda" if mode == "gpu" else "cpu"
if not started or f" on {want_device}" not in started[0]:
    fail(f"serve.device=auto should have put the model on {want_device}: {started}")
print(f"FIGURE: serve: {started[0][len('serve: '):]}")

# ---- parity with predict --------------------------------------------------------------------------
results, lock = {}, threading.Lock()
chunks, i, n = [], 0, 1
while i < len(texts):
    chunks.append([{"id": str(j), "text": texts[j]} for j in range(i, min(i + n, len(texts)))])
    i, n = i + n, n % 7 + 1


def send(chunk_list):
    for chunk in chunk_list:
        status, body = call("POST", "/v1/moderate", {"posts": chunk})
        if status != 200 or body.get("labels") != labels or [r["id"] for r in body["results"]] != [p["id"] for p in chunk]:
            fail(f"/v1/moderate: {status} {str(body)[:300]}")
        with lock:
            for r in body["results"]:
                results[r["id"]] = r


threads = [threading.Thread(target=send, args=(chunks[k::8],)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
compared = flags = near = 0
worst = 0.0
for j, ref in enumerate(reference):
    got = results.get(str(j))
    if got is None:
        fail(f"no answer for text {j}")
    if list(got["scores"]) != labels:
        fail(f"text {j}: score keys {list(got['scores'])} are not the model's labels {labels}")
    for k, label in enumerate(labels):
        diff = abs(got["scores"][label] - ref["scores"][label])
        worst = max(worst, diff)
        if diff > tolerance:
            fail(f"text {j} {label}: serve {got['scores'][label]} vs predict {ref['scores'][label]} (tolerance {tolerance})")
        compared += 1
        if meta.get("problem") != "multi_class" and abs(ref["scores"][label] - thresholds[k]) <= tolerance:
            near += 1  # within the tolerance of the threshold: either flag is right
            continue
        if meta.get("problem") != "multi_class" and ((label in got["flagged"]) != (label in ref["flagged"])):
            fail(f"text {j} {label}: flagged differs from predict ({got['flagged']} vs {ref['flagged']})")
        flags += 1
if compared != len(texts) * len(labels) or compared == 0:
    fail(f"compared {compared} scores, expected {len(texts) * len(labels)}")
print(f"FIGURE: serve: {compared} scores of {len(texts)} posts in {len(chunks)} concurrent requests equal to predict "
      f"on CPU within {tolerance:g} (largest difference {worst:.2e}); {flags} flags equal, {near} within the tolerance "
      f"of a threshold")

# ---- a short load: 8 clients, one post a request ----------------------------------------------------
latencies, stop_at = [], time.monotonic() + 4.0


def load(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine, j = [], k
    while time.monotonic() < stop_at:
        body = json.dumps({"posts": [{"id": "x", "text": texts[j % len(texts)]}]})
        t0 = time.perf_counter()
        c.request("POST", "/v1/moderate", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            fail(f"load: status {r.status}")
        mine.append(time.perf_counter() - t0)
        j += 8
    c.close()
    with lock:
        latencies.extend(mine)


t0 = time.monotonic()
threads = [threading.Thread(target=load, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - t0
latencies.sort()
if not latencies:
    fail("the load run answered nothing")
pct = lambda q: 1e3 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"FIGURE: serve: 8 Python clients, 1 post a request, {elapsed:.1f} s: {len(latencies) / elapsed:.0f} posts/s, "
      f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms (the clients share the machine's CPUs)")

# ---- graceful shutdown ------------------------------------------------------------------------------
proc.send_signal(signal.SIGTERM)
try:
    rc = proc.wait(30)
except subprocess.TimeoutExpired:
    fail("did not exit within 30 s of SIGTERM")
if rc != 0:
    fail(f"exit {rc} after SIGTERM")
print(f"serve: PASS ({compared} scores compared, {len(latencies)} load requests, SIGTERM exit 0)")
