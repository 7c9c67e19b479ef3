#!/usr/bin/env python3
"""Checkpoint cost as `modtrain train` sees it, for scripts/bench_checkpoint.sh.

One launch per case (ranks x train.zero x checkpoint.async) trains STEPS steps with a save every
EVERY steps and log.every=1, plus one launch per (ranks, zero) without periodic saves (the
baseline). From each launch:
  - waited_s: what the step loop waited per save (the snapshot and the commit; the whole save when
    sync), the first save (fresh host buffers) apart, from metrics.jsonl's checkpoint events, and
    snapshot_s, the copy into host buffers;
  - write_s, commit_s: rank 0's write (the model directory and its optimiser pieces: the busiest
    rank) and the commit (waiting for every rank, the index, the renames);
  - cost_per_save_s: (training seconds of the launch - the baseline's) / saves: blocking plus the
    slowdown of the steps that ran beside a background write (on 2 cores it competes with training);
  - max_rank_bytes: written by the busiest rank;
  - rss_anon_first_save_mb / rss_anon_later_saves_mb: rank 0's RssAnon after the commit minus
    before the snapshot (the first save allocates the host buffers, which are kept and reused);
  - load_s: a resume from the last checkpoint, as its "resumed from ... (loaded in S s)" line says;
and, at 1 rank zero 0 and 2 ranks zero 1, signal_to_exit_s: SIGUSR1 sent the step after a save
began (its write in flight) until the job has saved again and exited.
Usage: bench_checkpoint.py MODTRAIN OUT.json CONFIG_ARGS...  (env STEPS, EVERY, CASES, CORES)"""
import json, os, re, statistics, subprocess, sys

mt, out_path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
STEPS = int(os.environ.get("STEPS", "16"))
EVERY = int(os.environ.get("EVERY", "4"))
CORES = int(os.environ.get("CORES", str(os.cpu_count() or 1)))


def launch(ranks, run_dir, extra):
    cmd = (["mpiexec", "-np", str(ranks), "--bind-to", "none"] if ranks > 1 else []) + [
        mt, "train", *args, "--set", f"run.dir={run_dir}", "--set", "log.every=1",
        "--set", f"dist.threads={max(1, CORES // ranks)}", *extra]  # the cores split evenly over the ranks
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("bench_checkpoint: %s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:]))
    events = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return p.stdout, events


def train_seconds(events):
    train = [e for e in events if e.get("event") == "train"]
    return train[-1]["elapsed_s"] if train else None


def case(ranks, zero, mode):
    name = f"np{ranks}-zero{zero}-{mode}"
    base = ["--set", f"train.zero={zero}", "--set", f"train.max_steps={STEPS}"]
    run_dir = f"bench-ckpt-{name}"
    subprocess.run(["rm", "-rf", run_dir])
    saving = base + ["--set", f"checkpoint.every={EVERY}", "--set",
                     f"checkpoint.async={'true' if mode == 'async' else 'false'}"]
    log, events = launch(ranks, run_dir, saving)
    saves = [e for e in events if e.get("event") == "checkpoint"]
    periodic = [e for e in saves if e["step"] < STEPS]
    # RssAnon of rank 0 around each save: the first allocates the host buffers (kept), later ones reuse them
    rss_first = periodic[0]["rss_anon_after_mb"] - periodic[0]["rss_anon_before_mb"] if periodic else None
    rss_later = [e["rss_anon_after_mb"] - e["rss_anon_before_mb"] for e in periodic[1:]]
    # load: a resume from the last checkpoint (its log line says how long loading took)
    resume_log, _ = launch(ranks, run_dir, base + ["--set", "checkpoint.every=0", "--set",
                                                        f"train.max_steps={STEPS + 1}", "--resume", "auto"])
    loaded = re.search(r"resumed from \S+ at step \d+ of \d+ \(loaded in ([0-9.]+) s\)", resume_log)
    if not loaded:
        sys.exit("bench_checkpoint: the resume did not resume:\n" + resume_log[-2000:])
    result = {
        "ranks": ranks, "zero": zero, "mode": mode, "saves": len(saves), "periodic_saves": len(periodic),
        "first_waited_s": round(periodic[0]["waited_s"], 3) if periodic else None,
        "waited_s": round(statistics.median(e["waited_s"] for e in periodic[1:]), 3) if len(periodic) > 1 else None,
        "snapshot_s": round(statistics.median(e["snapshot_s"] for e in periodic), 3) if periodic else None,
        "write_s": round(statistics.median(e["write_s"] for e in periodic), 3) if periodic else None,
        "commit_s": round(statistics.median(e["commit_s"] for e in periodic), 3) if periodic else None,
        "max_rank_bytes": saves[-1].get("max_rank_bytes"),
        "train_s": train_seconds(events),
        "rss_anon_first_save_mb": round(rss_first, 1) if rss_first is not None else None,
        "rss_anon_later_saves_mb": round(max(rss_later), 1) if rss_later else None,
        "load_s": float(loaded.group(1)),
    }
    subprocess.run(["rm", "-rf", run_dir])
    return name, result


def stop_while_saving(ranks, zero):
    """SIGUSR1 (Slurm's --signal; SIGTERM behaves the same at the ranks) while a background save
    runs: the seconds from the signal to the job's exit, which must fit Slurm's KillWait (30 s)."""
    import signal, time
    run_dir = f"bench-ckpt-stop-np{ranks}-zero{zero}"
    subprocess.run(["rm", "-rf", run_dir])
    cmd = (["mpiexec", "-np", str(ranks), "--bind-to", "none"] if ranks > 1 else []) + [
        mt, "train", *args, "--set", f"run.dir={run_dir}", "--set", "log.every=1", "--set",
        f"dist.threads={max(1, CORES // ranks)}", "--set", f"train.zero={zero}", "--set", f"train.max_steps={STEPS * 4}",
        "--set", f"checkpoint.every={EVERY}", "--set", "checkpoint.async=true"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # the step after a save began: its write is in flight
        try:
            if any(json.loads(l).get("event") == "train" and json.loads(l).get("step") == EVERY + 1
                   for l in open(metrics)):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    t0 = time.monotonic()
    p.send_signal(signal.SIGUSR1)
    out, _ = p.communicate()
    seconds = time.monotonic() - t0
    if p.returncode != 0 or "stopped after step" not in out:
        sys.exit("bench_checkpoint: the stop did not stop cleanly (exit %d):\n%s" % (p.returncode, out[-3000:]))
    events = [json.loads(l) for l in open(metrics)]
    subprocess.run(["rm", "-rf", run_dir])
    return {"ranks": ranks, "zero": zero, "signal_to_exit_s": round(seconds, 2),
            "saves_committed": sum(e.get("event") == "checkpoint" for e in events)}


results = {}
cases = os.environ.get("CASES", "1:0,1:1,2:0,2:1").split(",")
for c in cases:
    ranks, zero = (int(x) for x in c.split(":"))
    run_dir = f"bench-ckpt-np{ranks}-zero{zero}-none"
    subprocess.run(["rm", "-rf", run_dir])
    _, events = launch(ranks, run_dir, ["--set", f"train.zero={zero}", "--set", f"train.max_steps={STEPS}",
                                              "--set", "checkpoint.every=0"])
    baseline = train_seconds(events)
    subprocess.run(["rm", "-rf", run_dir])
    for mode in ("sync", "async"):
        name, r = case(ranks, zero, mode)
        r["baseline_train_s"] = baseline
        if r["periodic_saves"]:
            r["cost_per_save_s"] = round((r["train_s"] - baseline) / r["periodic_saves"], 3)
        results[name] = r
        print(name, json.dumps(r), flush=True)

stops = [stop_while_saving(1, 0), stop_while_saving(2, 1)]
for st in stops:
    print("stop while saving", json.dumps(st), flush=True)
json.dump({"benchmark": "checkpoint_train", "steps": STEPS, "every": EVERY, "args": args, "cases": results,
           "stop_while_saving": stops},
          open(out_path, "w"), indent=1)
print("->", out_path)
