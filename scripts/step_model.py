#!/usr/bin/env python3
"""The step at scale: step time = compute + exposed communication (docs/scaling.md, "A model of the
step at scale"). Prints the Markdown table the doc carries; `--check docs/scaling.md` exits 1 when
the doc's table is not this script's output (ctest lint.step_model).

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


if __name__ == "__main__":
    out = table() + "\n" + remedies()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        doc = open(sys.argv[2], encoding="utf-8").read()
        if out not in doc:
            print(f"{sys.argv[2]}: the step-model table differs from scripts/step_model.py's; paste its output")
            sys.exit(1)
        print(f"step model table ok ({out.count(chr(10)) - 2} rows)")
    else:
        print(out, end="")
