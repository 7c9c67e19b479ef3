#!/usr/bin/env python3
"""The GPU peer of modtrain's training step (scripts/gpu/check.sh): Hugging Face
BertForSequenceClassification, BERT-base (12 x 768, vocab 30,522, 7 labels, multi-label BCE),
sequence 128, every token real, bf16 autocast, torch.optim.AdamW(fused=True), clip to norm 1,
eager mode; the same shapes and the same MFU formula as bench/bench_train.cpp (3 x forward matmul
FLOPs / step time / peak). Usage: hf_peer.py --batch B [--steps N] [--peak-tflops P] --out FILE
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertForSequenceClassification


def forward_flops(c, batch, seq):
    # as modtrain's bert_forward_flops: matmuls of the encoder, pooler and head (2 FLOPs per MAC)
    h, i, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    per_layer = 2 * batch * seq * (4 * h * h + 2 * h * i) + 2 * 2 * batch * seq * seq * h
    return layers * per_layer + 2 * batch * h * h + 2 * batch * h * c.num_labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-tflops", type=float, default=989)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    c = BertConfig(vocab_size=30522, num_labels=7, problem_type="multi_label_classification")
    model = BertForSequenceClassification(c).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    ids = torch.randint(5, c.vocab_size, (a.batch, a.seq), device="cuda")
    mask = torch.ones_like(ids)
    labels = (torch.rand(a.batch, 7, device="cuda") < 0.1).float()
    times = []
    for step in range(-3, a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 0:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    flops = 3 * forward_flops(c, a.batch, a.seq)
    r = {"benchmark": "hf_peer_train_step", "torch": torch.__version__, "attention": model.config._attn_implementation
         if hasattr(model.config, "_attn_implementation") else "eager", "batch": a.batch, "seq": a.seq,
         "step_ms": step_s * 1e3, "tokens_per_s": a.batch * a.seq / step_s,
         "mfu": flops / step_s / (a.peak_tflops * 1e12)}
    json.dump(r, open(a.out, "w"), indent=2)
    print("HF BertForSequenceClassification B=%d T=%d: step %.1f ms, %.0f tokens/s, MFU %.1f%% (attention: %s)" %
          (a.batch, a.seq, r["step_ms"], r["tokens_per_s"], 100 * r["mfu"], r["attention"]))


if __name__ == "__main__":
    main()
