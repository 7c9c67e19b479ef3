#!/usr/bin/python3
"""The PyTorch peer of bench/bench_peer.cpp: the same work in PyTorch eager, DDP over gloo at 2+ ranks.

The tiny BERT (2 layers, hidden 128, 2 heads, intermediate 512, vocab 30,522, 7 labels; the
Hugging Face BERT layout: word + position + type embeddings, post-LayerNorm layers, GELU, tanh
pooler), no dropout, 32 records x 64 tokens per rank, every token real, BCE with logits (mean),
backward, DDP's gradient average, clip to norm 1, AdamW (lr 1e-4, weight decay 0.01). One thread
per rank: torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=1 (set before torch loads; PyTorch in
Python otherwise leaves OpenBLAS at its own thread count). Debian's python3-torch.
Usage: pytorch_ddp.py --ranks R [--steps N] [--out FILE]
"""
import argparse
import json
import os
import sys
import time


def worker(rank, ranks, steps, port, queue):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    torch.set_num_threads(1)
    B, S, H, I, heads, layers, V, L = 32, 64, 128, 512, 2, 2, 30522, 7

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
            self.up, self.down = nn.Linear(H, I), nn.Linear(I, H)

        def forward(self, x, bias):
            def split(t):
                return t.view(B, S, heads, H // heads).transpose(1, 2)
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            p = torch.softmax(q @ k.transpose(-1, -2) / (H // heads) ** 0.5 + bias, dim=-1)
            ctx = (p @ v).transpose(1, 2).reshape(B, S, H)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.word, self.pos, self.types = nn.Embedding(V, H, padding_idx=0), nn.Embedding(512, H), nn.Embedding(2, H)
            self.ln = nn.LayerNorm(H, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.pool, self.head = nn.Linear(H, H), nn.Linear(H, L)

        def forward(self, ids, mask):
            positions = torch.arange(S).unsqueeze(0)
            x = self.ln(self.word(ids) + self.pos(positions) + self.types(torch.zeros_like(ids)))
            bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            for layer in self.layers:
                x = layer(x, bias)
            return self.head(torch.tanh(self.pool(x[:, 0])))

    torch.manual_seed(0)
    model = Bert()
    if ranks > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=ranks)
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    torch.manual_seed(1 + rank)
    ids = torch.randint(5, V, (B, S))
    mask = torch.ones(B, S, dtype=torch.long)
    labels = (torch.rand(B, L) < 0.1).float()
    loss_fn = nn.BCEWithLogitsLoss()
    start = 0.0
    for step in range(-3, steps):  # 3 warm-up steps
        if step == 0:
            if ranks > 1:
                dist.barrier()
            start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(ids, mask), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    if ranks > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if ranks > 1:
        dist.destroy_process_group()
    queue.put((rank, seconds, torch.__version__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=worker, args=(r, a.ranks, a.steps, port, queue)) for r in range(a.ranks)]
    for p in procs:
        p.start()
    import queue as queues
    results = []
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=1))
        except queues.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                sys.exit("pytorch_ddp: a rank failed")
    for p in procs:
        p.join()
    seconds = max(r[1] for r in results)
    samples_per_s = a.ranks * 32 * a.steps / seconds
    print("pytorch %s: %d rank(s), %.1f samples/s (%.1f ms per step)" % (results[0][2], a.ranks, samples_per_s, 1e3 * seconds / a.steps))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"benchmark": "peer_pytorch", "torch": results[0][2], "ranks": a.ranks, "steps": a.steps,
                       "samples_per_s": samples_per_s}, f)


if __name__ == "__main__":
    main()
