#!/usr/bin/python3
"""Plots of a run's metrics.jsonl (what `modtrain train` writes): loss.png (training loss, and
the evaluation loss), lr.png (learning rate), eval.png (macro/micro F1, macro ROC-AUC, macro
PR-AUC; under train.objective mlm the masked-token accuracy and perplexity), throughput.png
(samples/s and tokens/s over all ranks). Only the latest run in the
file counts (after its last "start" event); a step logged twice (a run resumed from a checkpoint
older than where it was killed) keeps its last record.

Usage: plot_run.py RUN_DIR [OUT_DIR]   (OUT_DIR defaults to RUN_DIR/plots); prints the files.
Also importable: load_events(path) -> (train, eval) lists of dicts, for the nightly report.
"""
import json
import os
import sys


def load_events(path):
    events = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit("%s:%d: not JSON (%s)" % (path, number, e))
    starts = [i for i, e in enumerate(events) if e.get("event") == "start"]
    if starts:
        events = events[starts[-1]:]
    train, evals = {}, {}
    for e in events:
        if e.get("event") == "train":
            train[e["step"]] = e
        elif e.get("event") == "eval":
            evals[e["step"]] = e
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)]


def plot(run_dir, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(metrics):
        sys.exit("error: %s not found: pass a run directory (run.dir) of `modtrain train`" % metrics)
    train, evals = load_events(metrics)
    if not train:
        sys.exit("error: %s holds no training events yet" % metrics)
    os.makedirs(out_dir, exist_ok=True)
    steps = [e["step"] for e in train]
    written = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [e["loss"] for e in train], label="train loss (mean over ranks)")
    if evals:
        mlm = "mlm_loss" in evals[0]["metrics"]
        ax.plot([e["step"] for e in evals], [e["metrics"]["mlm_loss" if mlm else "loss"] for e in evals], "o-",
                label="eval masked-token loss" if mlm else "eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, "loss.png")

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(steps, [e["lr"] for e in train])
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate")
    ax.grid(alpha=0.3)
    save(fig, "lr.png")

    if evals and "mlm_loss" in evals[0]["metrics"]:  # train.objective mlm
        fig, ax = plt.subplots(figsize=(7, 4))
        es = [e["step"] for e in evals]
        ax.plot(es, [e["metrics"]["mlm_accuracy"] for e in evals], "o-", color="tab:blue")
        ax.set_ylabel("masked-token accuracy", color="tab:blue")
        ax.set_ylim(0, 1)
        ax2 = ax.twinx()
        ax2.plot(es, [e["metrics"]["perplexity"] for e in evals], "s--", color="tab:orange")
        ax2.set_yscale("log")
        ax2.set_ylabel("perplexity", color="tab:orange")
        ax.set_xlabel("step")
        ax.set_title("Evaluation (masked tokens)")
        ax.grid(alpha=0.3)
        save(fig, "eval.png")
    elif evals:
        fig, ax = plt.subplots(figsize=(7, 4))
        es = [e["step"] for e in evals]
        for key, sub, label in [("macro", "roc_auc", "macro ROC-AUC"), ("macro", "pr_auc", "macro PR-AUC"),
                                ("macro", "f1", "macro F1"), ("micro", "f1", "micro F1")]:
            values = [e["metrics"][key][sub] for e in evals]
            ax.plot(es, [float("nan") if v is None else v for v in values], "o-", label=label)
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.set_title("Evaluation")
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "eval.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, [e["samples_per_s"] for e in train], color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("samples/s (all ranks)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, [e["tokens_per_s"] for e in train], color="tab:orange")
    ax2.set_ylabel("tokens/s (all ranks)", color="tab:orange")
    ax.set_title("Throughput")
    ax.grid(alpha=0.3)
    save(fig, "throughput.png")
    return written


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    run_dir = sys.argv[1]
    for path in plot(run_dir, sys.argv[2] if len(sys.argv) == 3 else os.path.join(run_dir, "plots")):
        print(path)
