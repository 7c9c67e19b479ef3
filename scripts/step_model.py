#!/usr/bin/env python3
"""The step at scale: step time = compute + exposed communication (docs/scaling.md, "A model of the
step at scale"). Prints the Markdown table the doc carries; `--check docs/scaling.md` exits 1 when
the doc's table is not this script's output (ctest lint.step_model). `--against SELFTEST.json
TIMELINE-rank0.json [FIT_ERROR EXPOSED_MS]` checks the model's all-reduce and exposure rule on a
measured job (the two-node rehearsal).

Inputs (each stated in the doc with its source):
- compute: BERT-base measured on one H200 (docs/gpu-results.md, batch 256 x 128 tokens, bf16:
  forward 31.5 ms, backward 43.4 ms); other models scaled by encoder parameters (the FLOPs of a
  step are ~6 x encoder parameters x tokens; embedding lookups are not matmuls);
- the optimiser: fused AdamW, 16 bytes read + 12 written per parameter at 3 TB/s (H100/H200 HBM),
  divided by W under ZeRO-1;
- all-reduce, alpha-beta: within a node NVLink (bus bandwidth 360 GB/s, alpha 3 us); across nodes
  one 400 Gb/s NIC per GPU (bus bandwidth 45 GB/s per GPU, alpha 8 us per hop); NCCL's ring below
  64 nodes, its double binary tree above (latency 2 log2(nodes) alpha instead of 2 (nodes-1) alpha);
- overlap: buckets of 25 MB reduce while backward runs; what does not fit in backward, plus the
  last bucket, is exposed. ZeRO-1: reduce-scatter (half an all-reduce) overlaps the same way; the
  parameter all-gather (fp32 weights) is exposed (step() returns with the parameters complete).
"""
import math
import sys

MODELS = {  # total parameters, encoder parameters (what the compute scales with)
    "BERT-base": (110e6, 86e6),
    "XLM-R-base": (278e6, 86e6),
    "XLM-R-large": (560e6, 303e6),
}
# BERT-base on one H200, sequence length 128, bf16 (docs/gpu-results.md): forward, backward (ms)
# at 256 and at 64 records per GPU; the 64-record figures are host-bound (kernel launches).
COMPUTE = {256: (31.5, 43.4), 64: (10.7, 15.1)}
BASE_ENCODER = 86e6
HBM_GBPS = 3000.0
NVLINK_BUSBW, NVLINK_ALPHA_US = 360.0, 3.0
NET_BUSBW, NET_ALPHA_US = 45.0, 8.0
GPUS_PER_NODE, BUCKET_MB = 8, 25.0


def allreduce_ms(nbytes, world):
    """Ring/tree all-reduce of nbytes over `world` GPUs: the slowest link's share plus latency."""
    if world == 1:
        return 0.0
    nodes = max(1, world // GPUS_PER_NODE)
    busbw = NVLINK_BUSBW if nodes == 1 else NET_BUSBW
    bandwidth = 2 * (world - 1) / world * nbytes / (busbw * 1e9)
    if nodes == 1:
        latency = 2 * (world - 1) * NVLINK_ALPHA_US
    elif nodes < 64:
        latency = 2 * (nodes - 1) * NET_ALPHA_US + 2 * (GPUS_PER_NODE - 1) * NVLINK_ALPHA_US
    else:
        latency = 2 * math.log2(nodes) * NET_ALPHA_US + 2 * (GPUS_PER_NODE - 1) * NVLINK_ALPHA_US
    return 1e3 * bandwidth + 1e-3 * latency


def step(model, world, grad_bytes, zero, batch, accum=1):
    """(collective ms per optimiser step, exposed ms per micro-step, step ms per micro-step, compute share)."""
    params, encoder = MODELS[model]
    fwd, bwd = (ms * encoder / BASE_ENCODER for ms in COMPUTE[batch])
    opt = 1e3 * 28 * params / (HBM_GBPS * 1e9) / (world if zero else 1)
    buckets = max(1, math.ceil(params * 4 / (BUCKET_MB * 1e6)))
    per_bucket_latency = allreduce_ms(0, world)  # alpha terms are paid per collective
    comm = allreduce_ms(params * grad_bytes, world) + (buckets - 1) * per_bucket_latency
    if zero:
        comm /= 2  # reduce-scatter: half an all-reduce's traffic
    exposed = max(comm - bwd, 0.0) + comm / buckets  # what backward cannot hide, and the last bucket
    if zero:
        exposed += allreduce_ms(params * 4, world) / 2  # the fp32 weights' all-gather
    # With accumulation the collectives and the update run once per `accum` micro-steps.
    total = fwd + bwd + (opt + exposed) / accum
    return comm, exposed / accum, total, (fwd + bwd + opt / accum) / total


def table():
    rows = ["| model | GPUs | reduce | ZeRO-1 | gradient collectives (ms) | exposed, 256 / 64 records (ms) | "
            "step, 256 records (ms) | step, 64 records (ms) | compute share, 256 / 64 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model in MODELS:
        for world in (8, 64, 512, 4096):
            for dtype, nbytes in (("fp32", 4), ("bf16", 2)):
                for zero in (False, True):
                    comm, e256, t256, s256 = step(model, world, nbytes, zero, 256)
                    _, e64, t64, s64 = step(model, world, nbytes, zero, 64)
                    rows.append(f"| {model} | {world} | {dtype} | {'on' if zero else 'off'} | {comm:.1f} | "
                                f"{e256:.1f} / {e64:.1f} | {t256:.1f} | {t64:.1f} | {100 * s256:.0f}% / {100 * s64:.0f}% |")
    return "\n".join(rows) + "\n"


def remedies():
    """The cases where communication does not hide, and what each fix gives (64 records per GPU)."""
    rows = ["| case (64 records per GPU) | exposed (ms) | step (ms) | compute share |", "|---|---|---|---|"]
    for model, world in (("BERT-base", 64), ("XLM-R-base", 64), ("XLM-R-large", 512)):
        for label, nbytes, zero, accum in (("fp32", 4, False, 1), ("bf16", 2, False, 1), ("fp32, accum 4", 4, False, 4),
                                           ("bf16, accum 4", 2, False, 4), ("fp32, ZeRO-1", 4, True, 1),
                                           ("bf16, ZeRO-1, accum 4", 2, True, 4)):
            _, exposed, total, share = step(model, world, nbytes, zero, 64, accum)
            rows.append(f"| {model}, {world} GPUs, {label} | {exposed:.1f} | {total:.1f} | {100 * share:.0f}% |")
    return "\n".join(rows) + "\n"


def against(selftest_path, timeline_path, max_fit_error, max_exposed_error_ms):
    """The model's two pieces against a measured job (the two-node rehearsal, tests/cli/two_nodes.sh):
    1. the alpha-beta all-reduce, t(n) = alpha + n / B', fitted to `dist selftest`'s times over the
       same ranks and links (least squares on relative error), at every measured size;
    2. the exposure rule, exposed = max(sum of the bucket all-reduces - backward, 0) + the last
       bucket, against the step's measured wait for gradients (timeline span "wait for gradients"),
       with the bucket all-reduces predicted from the fit and from the timeline's bucket sizes.
    Exits 1 when a fitted size is off by more than max_fit_error (relative) or the median exposed
    time by more than max_exposed_error_ms; prints every comparison (what the docs quote)."""
    import json
    import statistics
    sel = json.load(open(selftest_path))
    points = [(p["bytes"], p["time_us"]) for p in sel["bandwidth"]]
    # t = a + c n, weighted so that every size counts by its relative error
    sw = sum(1 / t ** 2 for _, t in points)
    sn = sum(n / t ** 2 for n, t in points)
    snn = sum(n * n / t ** 2 for n, t in points)
    st = sum(1 / t for _, t in points)
    snt = sum(n / t for n, t in points)
    c = (sw * snt - sn * st) / (sw * snn - sn * sn)
    a = (st - c * sn) / sw
    print(f"alpha-beta fit over {len(points)} sizes, {sel['ranks']} ranks on {sel['nodes']} nodes ({sel['backend']}): "
          f"alpha {a:.1f} us, bus bandwidth {2 * (sel['ranks'] - 1) / sel['ranks'] / c / 1e3:.2f} GB/s")
    worst = 0.0
    for n, t in points:
        model = a + c * n
        worst = max(worst, abs(model - t) / t)
        print(f"  {n:>10} bytes: measured {t:9.1f} us, model {model:9.1f} us ({100 * (model - t) / t:+.0f}%)")
    def spans_of(path):
        tl = json.load(open(path))
        return [e for e in (tl["traceEvents"] if isinstance(tl, dict) else tl) if e.get("ph") == "X"]

    def backward_of(spans_):
        return sorted((e for e in spans_ if e["name"] == "backward"), key=lambda e: e["ts"])

    spans = spans_of(timeline_path)
    backward = backward_of(spans)
    # The other ranks' timelines (FILE-rank<R>.json beside rank 0's; one clock on one machine):
    # how much later than rank 0 the slowest rank ends each backward. A collective cannot end
    # before its last rank joins, so rank 0 waits for that skew too; the step model has no term for it.
    import glob
    others = [backward_of(spans_of(p)) for p in sorted(glob.glob(timeline_path.replace("rank0", "rank*")))
              if p != timeline_path]
    waits = sorted((e for e in spans if e["name"] == "wait for gradients"), key=lambda e: e["ts"])
    buckets = [e for e in spans if e["name"].startswith("all_reduce of gradient bucket")]
    rows = []
    for i, b in enumerate(backward[2:-1], start=2):  # the first steps warm up; the last has no next backward
        end = backward[i + 1]["ts"] if i + 1 < len(backward) else float("inf")
        mine = sorted((e for e in buckets if b["ts"] <= e["ts"] < end), key=lambda e: e["ts"])
        wait = [w for w in waits if b["ts"] <= w["ts"] < end]
        if not mine or not wait:
            continue
        comm = sum(a + c * e["args"]["bytes"] for e in mine)
        exposed = max(comm - b["dur"], 0.0) + a + c * mine[-1]["args"]["bytes"]
        measured_comm = sum(e["dur"] for e in mine)
        # the rule alone, fed with the all-reduce times measured in the step
        rule = max(measured_comm - b["dur"], 0.0) + mine[-1]["dur"]
        ends = [o[i]["ts"] + o[i]["dur"] for o in others if i < len(o)]
        skew = max([e - (b["ts"] + b["dur"]) for e in ends] + [0.0])
        rows.append((b["dur"], comm, measured_comm, exposed, wait[0]["dur"], rule, skew))
    if not rows:
        print("no training step with backward, bucket all-reduces and a wait in the timeline")
        return 1
    med = [statistics.median(r[k] for r in rows) for k in range(7)]
    skewed_rule = statistics.median(r[5] + r[6] for r in rows)
    print(f"training step, median of {len(rows)} steps: backward {med[0] / 1e3:.2f} ms; bucket all-reduces "
          f"model {med[1] / 1e3:.2f} ms, measured {med[2] / 1e3:.2f} ms ({med[2] / med[1]:.1f}x the idle-link model); "
          f"exposed: model {med[3] / 1e3:.2f} ms, the rule on the measured all-reduces {med[5] / 1e3:.2f} ms, "
          f"plus the slowest rank's later end of backward ({med[6] / 1e3:.2f} ms, {len(others) + 1} timelines) "
          f"{skewed_rule / 1e3:.2f} ms; measured wait for gradients {med[4] / 1e3:.2f} ms")
    # What is checked: the fit (the alpha-beta form) and the rule given the step's own all-reduce
    # times; the all-reduces' slowdown under compute (cores shared here) is reported, not bounded.
    bad = worst > max_fit_error or abs(skewed_rule - med[4]) / 1e3 > max_exposed_error_ms
    if bad:
        print(f"the model is off: worst fitted size {100 * worst:.0f}% (limit {100 * max_fit_error:.0f}%), the rule's "
              f"exposed time plus skew {abs(skewed_rule - med[4]) / 1e3:.2f} ms from the measured wait "
              f"(limit {max_exposed_error_ms} ms)")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--against":
        limits = [float(x) for x in sys.argv[4:6]] if len(sys.argv) >= 6 else [1.0, 50.0]
        sys.exit(against(sys.argv[2], sys.argv[3], *limits))
    out = table() + "\n" + remedies()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        doc = open(sys.argv[2], encoding="utf-8").read()
        if out not in doc:
            print(f"{sys.argv[2]}: the step-model table differs from scripts/step_model.py's; paste its output")
            sys.exit(1)
        print(f"step model table ok ({out.count(chr(10)) - 2} rows)")
    else:
        print(out, end="")
