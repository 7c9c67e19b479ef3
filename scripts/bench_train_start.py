#!/usr/bin/env python3
"""2-rank `modtrain train` launches for scripts/bench_data_scale.sh: seconds from the launch to the
first step's log line, each rank's RssAnon and RssFile (MB, from /proc/PID/status) read when step 10
is logged (a few steps in: the loader has read its first batches, the sampler holds its window), and
the sampler's bytes from the run's metrics.jsonl. RssAnon varies by up to ~17 MB between launches of
the same job, so it launches LAUNCHES times (default 5) and prints the medians (of each launch's
larger rank) and every launch, as one JSON object.
Usage: bench_train_start.py MODTRAIN RUN_DIR CONFIG_ARGS... (env LAUNCHES)"""
import json, os, statistics, subprocess, sys, time

mt, run_base, args = sys.argv[1], sys.argv[2], sys.argv[3:]


def ranks(run_dir):  # the PIDs of this run's modtrain processes
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
            if os.path.basename(cmdline[0]) == "modtrain" and f"run.dir={run_dir}" in cmdline:
                out.append(pid)
        except OSError:
            pass
    return out


def status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024.0  # kB -> MB
    return fields


def launch(run_dir):
    cmd = ["mpiexec", "-np", "2", "--bind-to", "none", mt, "train", *args, "--set", f"run.dir={run_dir}",
           "--set", "train.max_steps=30", "--set", "train.warmup_steps=0", "--set", "eval.every=0",
           "--set", "checkpoint.every=0", "--set", "dist.threads=1", "--set", "log.every=1"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    first, memory, log = None, [], []
    for line in p.stdout:
        log.append(line)
        if line.startswith("step 1/") and first is None:
            first = time.monotonic() - t0
        if line.startswith("step 10/") and not memory:
            memory = [status(pid) for pid in ranks(run_dir)]
    rc = p.wait()
    if rc != 0 or first is None or len(memory) != 2:
        sys.exit("bench_train_start: train exited %d, first step %s, %d ranks measured:\n%s" %
                 (rc, first, len(memory), "".join(log[-20:])))
    sampler = [json.loads(l).get("sampler_bytes") for l in open(os.path.join(run_dir, "metrics.jsonl"))
               if '"event":"train"' in l.replace(" ", "")]
    sampler = [s for s in sampler if s is not None]
    if not sampler:
        sys.exit("bench_train_start: no sampler_bytes in metrics.jsonl")
    return {"start_to_first_step_s": round(first, 3), "rss_anon_mb_max": round(max(m["RssAnon"] for m in memory), 1),
            "rss_file_mb_max": round(max(m["RssFile"] for m in memory), 1), "sampler_bytes": max(sampler),
            "ranks": memory}


runs = [launch(f"{run_base}-{i}") for i in range(int(os.environ.get("LAUNCHES", "5")))]
out = {k: statistics.median(r[k] for r in runs)
       for k in ("start_to_first_step_s", "rss_anon_mb_max", "rss_file_mb_max", "sampler_bytes")}
out["launches"] = runs
print(json.dumps(out))
