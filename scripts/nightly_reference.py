#!/usr/bin/python3
"""The nightly's reference workload, timed just before the training run on the same machine.

The matrix products of one training step of configs/tiny.yaml (2 layers, hidden 128, 2 heads,
intermediate 512, 32 records x 64 tokens; forward and the two backward products of every linear
layer, attention per head) in NumPy on the same BLAS, one thread per process, one process per rank
started together, as `mpirun -np 2 modtrain train` runs. The nightly divides modtrain's training
samples/s by this workload's samples/s: a slower or busier machine slows both, the ratio stays, and
the verdict judges the code, not the machine. Prints one JSON object.
Usage: nightly_reference.py [--ranks 2] [--seconds 4]
"""
import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np
B, S, H, I, heads, layers = 32, 64, 128, 512, 2, 2
T, d = B * S, H // heads
rng = np.random.default_rng(0)
x = rng.standard_normal((T, H), dtype=np.float32)
w = {k: rng.standard_normal(s, dtype=np.float32) * 0.02
     for k, s in {"qkv": (H, 3 * H), "out": (H, H), "up": (H, I), "down": (I, H)}.items()}
def linear(a, weight):  # forward, and the backward's input and weight gradients
    y = a @ weight
    return y, y @ weight.T, a.T @ y
def step():
    h = x
    for _ in range(layers):
        qkv, _, _ = linear(h, w["qkv"])
        q = qkv[:, :H].reshape(B, S, heads, d).transpose(0, 2, 1, 3)
        k = qkv[:, H:2 * H].reshape(B, S, heads, d).transpose(0, 2, 1, 3)
        v = qkv[:, 2 * H:].reshape(B, S, heads, d).transpose(0, 2, 1, 3)
        p = q @ k.transpose(0, 1, 3, 2)               # [B, heads, S, S]
        ctx = (p @ v).transpose(0, 2, 1, 3).reshape(T, H)
        _ = p @ v, p.transpose(0, 1, 3, 2) @ ctx.reshape(B, S, heads, d).transpose(0, 2, 1, 3)  # backward of the two
        a, _, _ = linear(ctx, w["out"])
        u, _, _ = linear(a, w["up"])
        h, _, _ = linear(np.maximum(u, 0), w["down"])
        h = h / (np.abs(h).max() + 1)                  # keep the numbers tame
for _ in range(3): step()                               # warm-up
seconds = float(sys.argv[1])
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < seconds:
    step()
    steps += 1
print(json.dumps({"steps": steps, "seconds": time.perf_counter() - start}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    a = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(a.seconds)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(a.ranks)]
    results = [json.loads(p.communicate()[0]) for p in procs]
    if any(p.returncode for p in procs):
        sys.exit("nightly_reference: a worker failed")
    samples_per_s = sum(32 * r["steps"] / r["seconds"] for r in results)
    print(json.dumps({"workload": "tiny-step-gemms-numpy", "ranks": a.ranks, "threads_per_rank": 1,
                      "samples_per_s": round(samples_per_s, 1), "per_rank": results}))


if __name__ == "__main__":
    main()
