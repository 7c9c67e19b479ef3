#!/usr/bin/env python3
"""`modtrain serve` over HTTP on loopback (run by tests/cli/serve.sh, which trains the models one/
and two/ in WORKDIR). Prints what it compared; any failed check exits 1 with one FAIL line."""
import atexit
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

mt, work = sys.argv[1], sys.argv[2]
full = "--full" in sys.argv
os.chdir(work)
counts = {}


servers = []  # every server started, killed on the way out whatever happens


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    if threading.current_thread() is not threading.main_thread():  # sys.exit would end only this thread
        kill_servers()
        os._exit(1)
    sys.exit(1)


def unexpected(kind, value, tb):  # an exception (a refused connection, a timeout): one FAIL line and the servers' logs
    import traceback
    print("".join(traceback.format_exception(kind, value, tb))[-3000:])
    for server in servers:
        print(f"--- server on port {getattr(server, 'port', '?')}, its stderr:\n{server.stderr()[-2000:]}")
    print(f"FAIL: {kind.__name__}: {value}")
    kill_servers()
    os._exit(1)


sys.excepthook = unexpected


@atexit.register
def kill_servers():
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()


def check(cond, what, detail=""):
    counts[what] = counts.get(what, 0) + 1
    if not cond:
        fail(f"{what}: {detail}")


class Server:
    def __init__(self, *args, model="one/model"):
        self.log = open(f"serve-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen([mt, "serve", "--model", model, "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        servers.append(self)
        line = self.proc.stdout.readline()
        if not line.startswith("modtrain serve: listening on http://127.0.0.1:"):
            self.log.seek(0)
            fail(f"serve did not start: {line!r} {self.log.read()[-2000:]}")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        status, h, data = self.request(method, path, body, headers)
        try:
            return status, h, json.loads(data)
        except ValueError:
            fail(f"{method} {path}: not JSON ({status}): {data[:200]!r}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("serve did not exit after SIGTERM")

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


labels = json.load(open("one/model/modtrain.json"))["labels"]
# ---- 1. the same scores and flags as `modtrain predict` -------------------------------------------
posts = []
with open(sorted(p for p in os.listdir("data") if p.startswith("valid"))[0] and
          "data/" + sorted(p for p in os.listdir("data") if p.startswith("valid"))[0]) as f:
    for i, line in enumerate(f):
        posts.append({"id": f"v{i}", "text": json.loads(line)["text"]})
posts += [{"id": "long", "text": "word " * 400}, {"id": 7, "text": "numeric id"},
          {"id": "emoji", "text": "you are 🤡🤡 &amp; @someone https://t.co/x"}]
with open("posts.jsonl", "w") as f:
    for p in posts:
        f.write(json.dumps({"id": str(p["id"]), "text": p["text"]}) + "\n")
subprocess.run([mt, "predict", "--model", "one/model", "--input", "posts.jsonl", "--output", "predict.jsonl"],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
reference = {r["id"]: r for r in map(json.loads, open("predict.jsonl"))}

s = Server("--set", "serve.max_posts_per_request=64", "--set", "serve.max_wait_ms=2")
status, h, body = s.json("GET", "/ready")
check(status == 200 and body["ready"] is True, "ready", body)
model_id = body["model"]
check(h.get("X-Model-Id") == model_id and len(model_id) == 16, "model id header", h)
status, _, body = s.json("GET", "/health")
check(status == 200 and body == {"status": "ok"}, "health", body)
# a second server on a port in use is refused (no SO_REUSEPORT: the kernel would split the clients)
second = subprocess.run([mt, "serve", "--model", "one/model", "--port", str(s.port)], capture_output=True, text=True,
                        timeout=60)
errors = [l for l in second.stderr.splitlines() if "error:" in l]
check(second.returncode != 0 and len(errors) == 1 and f"cannot listen on 127.0.0.1:{s.port}" in errors[0],
      "a second server on the same port is one error", (second.returncode, second.stderr[-500:]))

compared = 0
results = {}
lock = threading.Lock()


def send(chunk):
    status, h, body = s.json("POST", "/v1/moderate", {"posts": chunk})
    with lock:
        check(status == 200, "moderate 200", (status, body))
        check(body["model"] == model_id and h["X-Model-Id"] == model_id, "moderate model id", body.get("model"))
        check(body["labels"] == labels, "labels in the model's order", body["labels"])
        check([r["id"] for r in body["results"]] == [p["id"] for p in chunk], "answers in request order")
        for r in body["results"]:
            results[str(r["id"])] = r


# requests of 1 to 17 posts from 8 threads at once: their posts share batches
chunks, i, n = [], 0, 1
while i < len(posts):
    chunks.append(posts[i:i + n])
    i, n = i + n, n % 17 + 1
threads = [threading.Thread(target=lambda c=c: send(c)) for c in chunks]
for t in threads:
    t.start()
for t in threads:
    t.join()
for pid, ref in reference.items():
    r = results[pid]
    check(list(r["scores"]) == labels, "score keys in the model's order")
    for label in labels:
        got, want = r["scores"][label], ref["scores"][label]
        check(abs(got - want) <= 1e-6, "score equal to predict within 1e-6", f"{pid} {label}: {got} vs {want}")
        compared += 1
    check(sorted(r["flagged"]) == sorted(ref["flagged"]), "flags equal to predict", f"{pid}: {r['flagged']} vs {ref['flagged']}")
check(compared == len(posts) * len(labels) and compared > 700, "compared every score", compared)
print(f"parity: {compared} scores of {len(posts)} posts in {len(chunks)} concurrent requests equal to predict (1e-6)")

# ---- 1b. oneDNN's inference GEMMs (the default where LibTorch has oneDNN) against OpenBLAS's ----------
gemm_line = subprocess.run([mt, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
onednn = gemm_line.endswith("inference GEMMs: oneDNN")
check("inference GEMMs: " + ("oneDNN" if onednn else "OpenBLAS") in s.stderr(), "serve's CPU line names the GEMMs",
      gemm_line)
subprocess.run([mt, "predict", "--model", "one/model", "--input", "posts.jsonl", "--output", "predict-blas.jsonl"],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "MODTRAIN_CPU_GEMM": "blas"})
blas = {r["id"]: r for r in map(json.loads, open("predict-blas.jsonl"))}
gemm_compared, worst = 0, 0.0
for pid, ref in reference.items():
    for label in labels:
        d = abs(blas[pid]["scores"][label] - ref["scores"][label])
        check(d <= 1e-5, "oneDNN and OpenBLAS scores within 1e-5", f"{pid} {label}: {d}")
        worst, gemm_compared = max(worst, d), gemm_compared + 1
check(gemm_compared == len(posts) * len(labels), "compared every GEMM score", gemm_compared)
check(worst > 0 or not onednn, "MODTRAIN_CPU_GEMM=blas ran other kernels (some score differs)", worst)
print(f"inference GEMMs ({gemm_line.split('inference GEMMs: ')[-1]}): {gemm_compared} scores within {worst:.1e} of OpenBLAS's")

# ---- 2. TEI's /predict ------------------------------------------------------------------------------
text = posts[0]["text"]
want = reference["v0"]["scores"]
status, _, one = s.json("POST", "/predict", {"inputs": text})
check(status == 200 and isinstance(one, list) and len(one) == len(labels), "TEI single", one)
check([p["score"] for p in one] == sorted((p["score"] for p in one), reverse=True), "TEI sorted by score")
check(all(abs(p["score"] - want[p["label"]]) <= 1e-6 for p in one), "TEI scores are modtrain's", one)
status, _, listed = s.json("POST", "/predict", {"inputs": [text]})
check(status == 200 and listed == one, "TEI [text] is one input", listed)
status, _, batch = s.json("POST", "/predict", {"inputs": [[text], [posts[1]["text"]]]})
check(status == 200 and len(batch) == 2 and batch[0] == one, "TEI batch", batch)
status, _, raw = s.json("POST", "/predict", {"inputs": text, "raw_scores": True})
meta = json.load(open("one/model/modtrain.json"))
temperatures = meta.get("temperatures") or [1.0] * len(labels)
check(status == 200 and len(raw) == len(labels), "TEI raw scores", raw)
for p in raw:  # logits: the probability is sigmoid(logit / T)
    T = temperatures[labels.index(p["label"])]
    check(abs(1 / (1 + math.exp(-p["score"] / T)) - want[p["label"]]) <= 1e-5, "TEI raw scores are the logits", p)
status, _, err = s.json("POST", "/predict", {"inputs": ["a", "b"]})
check(status == 422 and "pairs" in err["error"] and err["error_type"] == "Validation", "TEI pair refused", err)

# ---- 3. bad input: one line, the right status, and the server stays up ----------------------------
bad = [
    ("POST", "/v1/moderate", "{not json", 400, "invalid JSON"),
    ("POST", "/v1/moderate", "[]", 400, "object with \"posts\""),
    ("POST", "/v1/moderate", {"posts": "x"}, 400, "must be an array"),
    ("POST", "/v1/moderate", {"posts": [{"id": 1}]}, 400, "posts[0] has no \"text\""),
    ("POST", "/v1/moderate", {"posts": [{"text": "ok"}, {"text": 5}]}, 400, "posts[1].text must be a string, not number"),
    ("POST", "/v1/moderate", {"posts": [{"text": "ok", "id": {"a": 1}}]}, 400, "posts[0].id must be a string or a number"),
    ("POST", "/v1/moderate", {"posts": [{"text": "ok"}, {"text": " \n"}]}, 400, "posts[1].text is empty"),
    ("POST", "/v1/moderate", {"posts": [{"text": "x"}] * 65}, 413, "65 posts in one request; serve.max_posts_per_request is 64"),
    ("POST", "/v1/moderate", "[" * 100 + "]" * 100, 400, "nests deeper than"),
    ("POST", "/v1/moderate", '{"posts": [{"text": "x"}], "n": 1e400}', 400, "invalid JSON"),
    ("POST", "/v1/moderate", "x" * (2 << 20), 413, "larger than serve.max_body_bytes"),
    ("GET", "/nope", None, 404, "no route GET /nope"),
    ("POST", "/predict", {"inputs": 5}, 422, "\"inputs\" must be"),
]
for method, path, body, want_status, want_text in bad:
    status, _, data = s.request(method, path, body)
    try:
        msg = json.loads(data)["error"]
    except (ValueError, KeyError):
        fail(f"{method} {path} -> {status}: no JSON error: {data[:200]!r}")
    check(status == want_status, "bad input status", f"{path} {str(body)[:40]!r}: {status} {msg}")
    check(want_text in msg and "\n" not in msg, "bad input one line naming it", f"{msg!r} lacks {want_text!r}")
# invalid UTF-8 is repaired (as predict repairs it) and counted
status, _, data = s.request("POST", "/v1/moderate", b'{"posts": [{"id": "u", "text": "bad \xff\xfe bytes"}]}')
check(status == 200, "invalid UTF-8 repaired", data)
status, _, metrics = s.request("GET", "/metrics")
metrics = metrics.decode()
repairs = [l for l in metrics.splitlines() if l.startswith("modtrain_serve_utf8_repairs_total ")]
check(len(repairs) == 1 and int(repairs[0].split()[1]) >= 1, "repairs counted", repairs)
for name in ("modtrain_serve_requests_total{route=\"/v1/moderate\",status=\"200\"}",
             "modtrain_serve_request_seconds_bucket{route=\"/v1/moderate\",le=\"+Inf\"}",
             "modtrain_serve_batch_posts_count", "modtrain_serve_batch_tokens_count", "modtrain_serve_queue_seconds_count",
             "modtrain_serve_forward_seconds_count",
             "modtrain_serve_queue_posts 0", f"modtrain_serve_model_info{{id=\"{model_id}\"", "modtrain_serve_model_load_seconds"):
    check(name in metrics, "metric present", name)
print(f"bad input: {len(bad) + 1} classes answered with their status and one line; metrics present")
# serve.device = cuda on a machine without a usable GPU: one line naming the fix, exit 2, nothing served
if "CUDA:     available" not in subprocess.run([mt, "--version"], capture_output=True, text=True).stdout:
    gpu = subprocess.run([mt, "serve", "--model", "one/model", "--port", "0", "--set", "serve.device=cuda"],
                         capture_output=True, text=True, timeout=120)
    lines = gpu.stderr.strip().splitlines()
    check(gpu.returncode == 2 and len(lines) == 1 and "serve.device = cuda" in lines[0] and "serve.device=auto" in lines[0],
          "serve.device=cuda without a GPU: one line, exit 2", (gpu.returncode, gpu.stderr[-300:]))

# ---- 4. fuzz: malformed requests for a bounded time; every answer is a 2xx/4xx, never a crash ------
rng = random.Random(1234)
valid = json.dumps({"posts": [{"id": "a", "text": "hello there"}, {"id": 2, "text": "you idiot"}]}).encode()
deadline = time.monotonic() + (60 if full else 8)
sent = 0
statuses = {}
while time.monotonic() < deadline:
    kind = rng.randrange(5)
    if kind == 4:  # a whole request whose client goes away before the answer
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            body = json.dumps({"posts": posts[:20]}).encode()
            sock.sendall(b"POST /v1/moderate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        sent += 1
        continue
    if kind == 0:  # random bytes
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    elif kind == 1:  # a valid body with bytes flipped, cut or repeated
        b = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            op, at = rng.randrange(3), rng.randrange(len(b))
            if op == 0:
                b[at] = rng.randrange(256)
            elif op == 1:
                del b[at:]
                if not b:
                    break
            else:
                b[at:at] = b[at:at + rng.randrange(1, 10)]
        body = bytes(b)
    elif kind == 2:  # well-formed JSON of the wrong shape
        value = rng.choice([None, 1, -1e308, "s", [], {}, [[]], {"posts": None}, {"posts": [None]}, {"posts": [[]]},
                            {"posts": [{"text": None}]}, {"posts": [{"text": ["x"]}]}, {"inputs": [[]]},
                            {"inputs": [["a", "b", "c"]]}, {"inputs": {"a": 1}}])
        body = json.dumps(value).encode()
    else:  # a raw socket that sends part of a request and goes away
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/moderate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"posts\": [")
        sent += 1
        continue
    path = rng.choice(["/v1/moderate", "/predict", "/admin/reload"])
    status, _, _ = s.request("POST", path, body)
    statuses[status] = statuses.get(status, 0) + 1
    sent += 1
check(set(statuses) <= {200, 400, 404, 413, 422}, "fuzz statuses", statuses)
check(sent > 50, "fuzz sent enough requests", sent)
status, _, body = s.json("POST", "/v1/moderate", {"posts": posts[:3]})
check(status == 200 and s.proc.poll() is None, "alive after the fuzz", status)
time.sleep(0.3)
status, _, metrics = s.request("GET", "/metrics")
check("modtrain_serve_queue_posts 0" in metrics.decode(), "nothing left queued after the fuzz and the hang-ups")
print(f"fuzz: {sent} malformed requests and hang-ups in {60 if full else 8} s: statuses {statuses}; still serving")
# ---- a short bounded load run: wrk, 16 connections, 3 s, real posts; every answer 200, nothing left queued
with open("bodies.txt", "w") as f:
    for p in posts:
        f.write(json.dumps({"posts": [p]}) + "\n")
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = subprocess.run(["wrk", "-t1", "-c16", "-d3s", "--timeout", "10s", "-s", f"{repo}/bench/serve_wrk.lua",
                      f"http://127.0.0.1:{s.port}"], env={**os.environ, "BODIES": "bodies.txt"}, capture_output=True,
                     text=True, timeout=60)
load = json.loads(out.stdout.strip().splitlines()[-1])
check(load["requests"] > 100 and sum(load["errors"].values()) == 0, "load run: answered, no errors", load)
time.sleep(0.2)
status, _, metrics = s.request("GET", "/metrics")
check("modtrain_serve_queue_posts 0" in metrics.decode(), "nothing queued after the load run")
print(f"load: {load['requests']} requests in {load['seconds']:.1f} s at 16 connections, no errors, p99 "
      f"{load['latency_us']['p99'] / 1e3:.1f} ms")
check(s.stop() == 0, "exit 0 after SIGTERM")

# ---- 5. a full queue answers 503 with Retry-After ---------------------------------------------------
q = Server("--set", "serve.max_queue_posts=4", "--set", "serve.max_wait_ms=2000")
holder = threading.Thread(target=lambda: q.request("POST", "/v1/moderate", {"posts": posts[:3]}))
holder.start()
time.sleep(0.5)  # 3 posts wait in the queue for max_wait_ms
status, h, data = q.request("POST", "/v1/moderate", {"posts": posts[3:5]})
check(status == 503 and h.get("Retry-After") == "1" and b"serve.max_queue_posts = 4" in data, "queue full: 503",
      (status, h, data))
holder.join()
status, _, _ = q.request("POST", "/v1/moderate", {"posts": posts[3:5]})
check(status == 200, "room again once the queue drains", status)
check(q.stop() == 0, "exit 0 after SIGTERM")
print("overload: a request that does not fit the queue gets 503 with Retry-After, and succeeds once it drains")

# ---- 6. reload: refused without the token, a bad model keeps the old one, a good one switches ------
with open("token", "w") as f:
    f.write("0123456789abcdef0123456789abcdef\n")
r = Server("--admin-token-file", "token")
auth = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
status, _, body = r.json("POST", "/admin/reload", {"model": "two/model"})
check(status == 401, "reload needs the token", body)
os.makedirs("broken", exist_ok=True)
for f in os.listdir("one/model"):
    data = open(f"one/model/{f}", "rb").read()
    open(f"broken/{f}", "wb").write(data[:100] if f == "model.safetensors" else data)
status, _, body = r.json("POST", "/admin/reload", {"model": "broken"}, auth)
check(status == 422 and "keeps serving" in body["error"], "a bad model is refused", body)
status, h, body = r.json("POST", "/v1/moderate", {"posts": posts[:2]})
check(status == 200 and body["model"] == model_id, "the old model still answers", body.get("model"))
# requests in flight during the reload finish on the model they started on
answers = []
streamer = threading.Thread(target=lambda: [answers.append(r.json("POST", "/v1/moderate", {"posts": posts[:4]})[2]["model"])
                                            for _ in range(30)])
streamer.start()
status, _, body = r.json("POST", "/admin/reload", {"model": "two/model"}, auth)
streamer.join()
new_id = body.get("model")
check(status == 200 and body["previous"] == model_id and new_id != model_id, "reload to a new model", body)
check(set(answers) <= {model_id, new_id} and answers[-1] == new_id, "every answer from one model", set(answers))
status, h, body = r.json("POST", "/v1/moderate", {"posts": posts[:2]})
check(body["model"] == new_id and h["X-Model-Id"] == new_id, "the new model answers", body["model"])
r.proc.send_signal(signal.SIGHUP)  # SIGHUP reloads the current directory (two/model: the same id)
time.sleep(1.5)
check("SIGHUP: reloading" in r.stderr() and r.proc.poll() is None, "SIGHUP reload", r.stderr()[-500:])
status, _, metrics = r.request("GET", "/metrics")
check(f"modtrain_serve_model_info{{id=\"{new_id}\"" in metrics.decode() and
      "modtrain_serve_reloads_total{outcome=\"refused\"} 1" in metrics.decode(), "reloads in /metrics")
# Under load: 6 clients post without pause while the model is swapped 6 times (two -> one -> two ...).
# Every answer is a 200 from one of the two models, and its scores are that model's `predict` scores:
# a request never mixes the models, whichever it started on.
subprocess.run([mt, "predict", "--model", "two/model", "--input", "posts.jsonl", "--output", "predict-two.jsonl"],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
by_model = {model_id: reference, new_id: {x["id"]: x for x in map(json.loads, open("predict-two.jsonl"))}}
loaded, stop_load, answered, swaps = [], threading.Event(), {model_id: 0, new_id: 0}, 0
load_compared = 0


def client(k):
    global load_compared
    chunk = posts[k * 3:k * 3 + 3]
    while not stop_load.is_set():
        status, h, body = r.json("POST", "/v1/moderate", {"posts": chunk})
        with lock:
            check(status == 200 and body["model"] in by_model and h["X-Model-Id"] == body["model"],
                  "a 200 from one of the two models during reloads", (status, body.get("model")))
            ref = by_model[body["model"]]
            for p, res in zip(chunk, body["results"]):
                for label in labels:
                    check(abs(res["scores"][label] - ref[str(p["id"])]["scores"][label]) <= 1e-6,
                          "scores of the model that answered, during reloads", (body["model"], p["id"], label))
                    load_compared += 1
            answered[body["model"]] += 1


clients = [threading.Thread(target=client, args=(k,)) for k in range(6)]
for t in clients:
    t.start()
for target in ["one/model", "two/model"] * 3:
    time.sleep(0.3)
    status, _, body = r.json("POST", "/admin/reload", {"model": target}, auth)
    check(status == 200, "a reload under load", body)
    swaps += 1
time.sleep(0.3)
stop_load.set()
for t in clients:
    t.join()
check(swaps == 6 and min(answered.values()) > 0 and load_compared > 0, "both models answered under load",
      (swaps, answered, load_compared))
check(r.stop() == 0, "exit 0 after SIGTERM")
print(f"reload: refused without the token, a truncated model refused (old model kept), {model_id} -> {new_id} "
      f"with {len(answers)} requests in flight, SIGHUP; under load: {swaps} swaps, {sum(answered.values())} "
      f"requests ({answered[model_id]} / {answered[new_id]} by model), {load_compared} scores equal to their "
      f"model's predict")

# ---- 7. SIGTERM: the request in flight finishes, new ones are refused, exit 0 -----------------------
d = Server("--set", "serve.max_wait_ms=1500", "--set", "serve.drain_s=20")
out = {}
inflight = threading.Thread(target=lambda: out.update(r=d.json("POST", "/v1/moderate", {"posts": posts[:2]})))
inflight.start()
time.sleep(0.4)
d.proc.send_signal(signal.SIGTERM)
inflight.join()
check(out["r"][0] == 200 and len(out["r"][2]["results"]) == 2, "the request in flight finished", out["r"][0])
code = d.proc.wait(30)
check(code == 0 and "drained" in d.stderr(), "exit 0 after the drain", (code, d.stderr()[-300:]))
try:
    d.request("GET", "/health", timeout=2)
    fail("the server accepted a connection after it exited")
except (ConnectionRefusedError, OSError):
    pass
print("drain: SIGTERM let the request in flight finish (200) and exited 0")
print(f"serve ok: {sum(counts.values())} checks ({len(counts)} kinds)")
