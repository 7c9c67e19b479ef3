#!/usr/bin/python3
"""The nightly verdict and report (called by scripts/nightly.sh): checks the bars in the
baseline file against the run's figures, renders the plots, writes OUT/report.json and
OUT/REPORT.md, and exits 0 when every bar holds, 1 otherwise."""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_run  # noqa: E402


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def reliability_plot(ev, path):
    """The reliability diagram of the final evaluation: per label, the positive rate of each score
    bin (15 equal-width bins, `eval --json`'s reliability) against its mean score."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for label, r in ev["labels"].items():
        rel = r.get("reliability")
        if not rel:
            continue
        points = [(s, p) for c, s, p in zip(rel["counts"], rel["mean_score"], rel["positive_rate"]) if c > 0]
        if points:
            ax.plot([s for s, _ in points], [p for _, p in points], "o-", markersize=3,
                    label="%s (ECE %.3f)" % (label, r["ece"] if r.get("ece") is not None else float("nan")))
    ax.set_xlabel("mean score in the bin")
    ax.set_ylabel("positive rate in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability (final evaluation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def subgroup_plot(ev, path):
    """The bias figures of the moderation run: per identity subgroup, the lowest subgroup, BPSN and
    BNSP AUC over the labels (bars), with the worst-subgroup floor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = ev["bias"]["subgroups"]
    kinds = [("subgroup_auc", "subgroup AUC"), ("bpsn_auc", "BPSN AUC"), ("bnsp_auc", "BNSP AUC")]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    width = 0.26
    for k, (key, name) in enumerate(kinds):
        values = []
        for g in groups:
            vs = [b["subgroups"][g][key] for b in ev["bias"]["labels"].values()
                  if b["subgroups"][g]["reported"] and b["subgroups"][g][key] is not None]
            values.append(min(vs) if vs else float("nan"))
        ax.bar([i + (k - 1) * width for i in range(len(groups))], values, width, label=name + " (lowest over labels)")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_title("Identity subgroups (moderation run): worst AUC %.3f" % ev["bias"]["worst_subgroup_auc"])
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--update-baseline", action="store_true")
    a = ap.parse_args()

    checks = read_jsonl(os.path.join(a.out, "checks.jsonl"))
    stages = read_jsonl(os.path.join(a.out, "stages.jsonl"))
    with open(a.baseline) as f:
        baseline = json.load(f)
    figures = {}

    def check(name, ok, value, bar, detail=""):
        checks.append({"name": name, "ok": bool(ok), "value": value, "bar": bar, "detail": detail})

    # ---- quality: the final evaluation (`modtrain eval --json` on the trained model) ----
    eval_path = os.path.join(a.out, "eval.json")
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            ev = json.load(f)
        figures["eval"] = {"records": ev["records"], "loss": ev["loss"], "macro": ev["macro"], "micro": ev["micro"]}
        try:
            figures["reliability_plot"] = os.path.relpath(reliability_plot(ev, os.path.join(a.out, "plots", "reliability.png")), a.out)
        except Exception as e:  # noqa: BLE001 - a plot must not hide the verdict
            check("plots", False, "reliability diagram not rendered", "rendered", str(e))
        for metric, floor in sorted(baseline["quality_floor"].items()):
            value = ev["macro"][metric]
            check("quality_macro_" + metric, value is not None and value >= floor, "%.4f" % (value or float("nan")),
                  ">= %.4f" % floor, "final evaluation on %d validation records" % ev["records"])

    # ---- against the bag-of-words baseline and the task's ceiling ----
    base_path, ceil_path = os.path.join(a.out, "baseline.json"), os.path.join(a.out, "ceiling.json")
    if os.path.exists(base_path) and os.path.exists(ceil_path) and os.path.exists(eval_path):
        with open(base_path) as f:
            base = json.load(f)
        with open(ceil_path) as f:
            ceil = json.load(f)
        ours = base["compared"]["modtrain"]
        noise = ours["pr_auc_minus_baseline_sd"]
        figures["versus"] = {"modtrain": {"pr_auc": ev["macro"]["pr_auc"], "roc_auc": ev["macro"]["roc_auc"]},
                             "baseline": {"pr_auc": base["macro_pr_auc"], "roc_auc": base["macro_roc_auc"],
                                          "scorer": base["scorer"]},
                             "ceiling": {"pr_auc": ceil["macro_pr_auc"], "roc_auc": ceil["macro_roc_auc"]},
                             "noise_sd": noise, "bootstrap": base["noise"]["bootstrap"]}
        margin = ev["macro"]["pr_auc"] - base["macro_pr_auc"]
        check("beats_baseline", margin >= -noise, "%+.4f" % margin, ">= -%.4f (the noise)" % noise,
              "macro PR-AUC modtrain %.4f vs TF-IDF + LR %.4f (ceiling %.4f); sd of the paired bootstrap difference" %
              (ev["macro"]["pr_auc"], base["macro_pr_auc"], ceil["macro_pr_auc"]))
        check("below_ceiling", ev["macro"]["pr_auc"] <= ceil["macro_pr_auc"] + 3 * base["noise"]["macro_pr_auc_sd"],
              "%.4f" % ev["macro"]["pr_auc"], "<= ceiling %.4f + 3 sd" % ceil["macro_pr_auc"],
              "a model above the Bayes-optimal scores would mean a leak between the splits")
    elif os.path.exists(eval_path):
        check("beats_baseline", False, "not measured", "measured", "see logs/baseline.log")

    # ---- throughput: median of the logged windows (the first one includes start-up) ----
    run_dir = os.path.join(a.work, "run")
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        train, _ = plot_run.load_events(metrics)
        windows = [e["samples_per_s"] for e in train[1:]] or [e["samples_per_s"] for e in train]
        if windows:
            sps = statistics.median(windows)
            tps = statistics.median([e["tokens_per_s"] for e in train[1:]] or [e["tokens_per_s"] for e in train])
            figures["train"] = {"samples_per_s_median": sps, "tokens_per_s_median": tps, "windows": len(windows),
                                "final_loss": train[-1]["loss"], "steps": train[-1]["step"], "elapsed_s": train[-1]["elapsed_s"]}
            # The code is judged, not the machine: training samples/s over the samples/s of a fixed
            # reference workload of the same shapes timed just before on this machine
            # (scripts/nightly_reference.py), against the same ratio stored for this CPU model.
            ref_path = os.path.join(a.work, "reference.json")
            if os.path.exists(ref_path):
                with open(ref_path) as f:
                    ref_sps = json.load(f)["samples_per_s"]
                ratio = sps / ref_sps
                figures["train"].update({"reference_samples_per_s": ref_sps, "train_per_reference": ratio})
                machines = baseline["throughput"]["by_machine"]
                here = cpu_model()
                source = here if here in machines else baseline["throughput"]["default_machine"]
            if os.path.exists(ref_path) and source not in machines:
                check("throughput", False, "%.3f x the reference" % ratio, "a stored ratio",
                      "no throughput baseline yet: run scripts/nightly.sh --update-baseline")
            elif os.path.exists(ref_path):
                bar = baseline["throughput"]["min_fraction"] * machines[source]["train_per_reference"]
                figures["train"]["baseline_machine"] = source
                check("throughput", ratio >= bar,
                      "%.3f x the reference (%.0f / %.0f samples/s)" % (ratio, sps, ref_sps),
                      ">= %.3f (%.0f%% of %.3f measured on %s%s)" % (
                          bar, 100 * baseline["throughput"]["min_fraction"], machines[source]["train_per_reference"], source,
                          "" if source == here else "; no baseline for this CPU model yet"),
                      "2 MPI ranks, configs/tiny.yaml; median of %d logging windows" % len(windows))
        try:
            figures["plots"] = [os.path.relpath(p, a.out) for p in plot_run.plot(run_dir, os.path.join(a.out, "plots"))]
        except SystemExit as e:
            check("plots", False, "not rendered", "rendered", str(e))

    # ---- export: scores equal to the checkpoint's, logits equal to the reference's ----
    pred_export = read_jsonl(os.path.join(a.work, "pred_export.jsonl"))
    pred_ckpt = read_jsonl(os.path.join(a.work, "pred_ckpt.jsonl"))
    if pred_export and pred_ckpt:
        worst = max(abs(p["scores"][k] - q["scores"][k]) for p, q in zip(pred_export, pred_ckpt) for k in p["scores"])
        same_flags = all(p["flagged"] == q["flagged"] for p, q in zip(pred_export, pred_ckpt))
        check("export_equals_checkpoint", len(pred_export) == len(pred_ckpt) and worst == 0 and same_flags,
              "max abs(dp) = %.1e over %d records" % (worst, len(pred_export)), "identical scores and flags",
              "`predict` on the export vs on the run's model directory")
        figures["predict_records"] = len(pred_export)
    ref = read_jsonl(os.path.join(a.work, "ref_logits.jsonl"))
    if ref and pred_export:
        with open(os.path.join(a.work, "hf", "config.json")) as f:
            id2label = json.load(f)["id2label"]
        labels = [id2label[str(i)] for i in range(len(id2label))]
        worst = max(abs(1 / (1 + math.exp(-logit)) - p["scores"][label]) for r, p in zip(ref, pred_export) for label, logit in zip(labels, r))
        check("reference_logits", len(ref) == len(pred_export) and worst < 2e-5, "max abs(dp) = %.1e over %d records" % (worst, len(ref)),
              "< 2e-05", "float64 NumPy BERT (tests/reference/bert_numpy.py) on the export's files")
    # ---- domain-adaptive pretraining (tests/cli/pretrain.sh): MLM, then 5% of the labels ----
    pretrain_path = os.path.join(a.out, "pretrain", "pretrain.json")
    if os.path.exists(pretrain_path):
        with open(pretrain_path) as f:
            figures["pretrain"] = json.load(f)
        try:
            figures.setdefault("plots", [])
            figures["plots"] += [os.path.relpath(p, a.out) for p in plot_run.plot(
                os.path.join(a.out, "pretrain", "run"), os.path.join(a.out, "plots", "pretrain"))]
        except SystemExit as e:
            check("plots", False, "not rendered", "rendered", str(e))
    # ---- moderation-grade evaluation (tests/cli/moderation.sh): bias floor, calibration ----
    moderation_path = os.path.join(a.out, "moderation", "moderation.json")
    if os.path.exists(moderation_path):
        with open(moderation_path) as f:
            figures["moderation"] = m = json.load(f)
        floor = baseline["bias_floor"]["worst_subgroup_auc"]
        check("bias_worst_subgroup_auc", m["worst_subgroup_auc"] >= floor, "%.4f" % m["worst_subgroup_auc"],
              ">= %.4f" % floor, "lowest subgroup / BPSN / BNSP AUC over 7 labels x 6 identity subgroups (soft labels, 2 ranks)")
        check("calibration_lowers_ece", m["ece_after"] < m["ece_before"], "%.4f -> %.4f" % (m["ece_before"], m["ece_after"]),
              "lower after temperature scaling", "macro ECE on the validation split (15 bins)")
        try:
            with open(os.path.join(a.out, "moderation", "eval.json")) as f:
                figures["subgroup_plot"] = os.path.relpath(subgroup_plot(json.load(f), os.path.join(a.out, "plots", "subgroups.png")), a.out)
        except Exception as e:  # noqa: BLE001 - a plot must not hide the verdict
            check("plots", False, "subgroup plot not rendered", "rendered", str(e))
    for required in ("resume_exact", "export_equals_checkpoint", "reference_logits", "throughput", "finetune_roberta",
                     "finetune_twhin", "pretrain_beats_scratch", "bias_worst_subgroup_auc", "calibration_lowers_ece"):
        if not any(c["name"] == required for c in checks):
            check(required, False, "not measured", "measured", "an earlier stage failed")

    passed = all(c["ok"] for c in checks)
    report = {"verdict": "PASS" if passed else "FAIL", "commit": a.commit,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "checks": checks, "stages": stages, "figures": figures, "baseline": baseline}
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    md = ["# Nightly report: %s" % report["verdict"], "",
          "commit `%s`, %s, %s (%d cores)" % (a.commit, report["date"], report["machine"]["cpu"], report["machine"]["cores"]), "",
          "| check | result | value | bar | detail |", "|---|---|---|---|---|"]
    for c in checks:
        md.append("| %s | %s | %s | %s | %s |" % (c["name"], "pass" if c["ok"] else "**FAIL**", c["value"], c["bar"], c["detail"]))
    md += ["", "## Stages", "", "| stage | seconds | exit |", "|---|---|---|"]
    md += ["| %s | %.1f | %d |" % (s["stage"], s["seconds"], s["exit"]) for s in stages]
    md += ["", "Total: %.0f s. Logs: `logs/`." % sum(s["seconds"] for s in stages)]
    if "eval" in figures:
        e = figures["eval"]
        md += ["", "## Final evaluation", "",
               "%d records, loss %.4f; macro ROC-AUC %.4f, macro PR-AUC %.4f, macro F1 %.4f; micro F1 %.4f" %
               (e["records"], e["loss"], e["macro"]["roc_auc"], e["macro"]["pr_auc"], e["macro"]["f1"], e["micro"]["f1"])]
        if e["macro"].get("ece") is not None:
            md += ["", "Calibration: macro ECE %.4f (15 bins), macro Brier %.4f." % (e["macro"]["ece"], e["macro"]["brier"])]
        if "reliability_plot" in figures:
            md += ["", "![reliability](%s)" % figures["reliability_plot"]]
    if "versus" in figures:
        v = figures["versus"]
        md += ["", "## Against the baseline and the ceiling", "",
               "| scorer | macro PR-AUC | macro ROC-AUC |", "|---|---|---|",
               "| modtrain (configs/tiny.yaml) | %.4f | %.4f |" % (v["modtrain"]["pr_auc"], v["modtrain"]["roc_auc"]),
               "| %s | %.4f | %.4f |" % (v["baseline"]["scorer"], v["baseline"]["pr_auc"], v["baseline"]["roc_auc"]),
               "| ceiling: Bayes-optimal scores of the generator | %.4f | %.4f |" % (v["ceiling"]["pr_auc"], v["ceiling"]["roc_auc"]),
               "", "The split's noise: sd %.4f of the PR-AUC difference over %d paired bootstrap resamples." %
               (v["noise_sd"], v["bootstrap"])]
    if "train" in figures:
        t = figures["train"]
        md += ["", "## Training", "", "%d steps in %.1f s; final loss %.4f; median %.0f samples/s, %.0f tokens/s over 2 ranks" %
               (t["steps"], t["elapsed_s"], t["final_loss"], t["samples_per_s_median"], t["tokens_per_s_median"])]
        if "train_per_reference" in t:
            md += ["", "Reference workload (the step's matrix products in NumPy, 1 thread per rank, timed just before): "
                   "%.0f samples/s; training / reference = %.3f; throughput baseline from: %s; this machine: %s." %
                   (t["reference_samples_per_s"], t["train_per_reference"], t.get("baseline_machine", "none yet"), report["machine"]["cpu"])]
    if "pretrain" in figures:
        p = figures["pretrain"]
        md += ["", "## Domain-adaptive pretraining", "",
               "Masked-LM pretraining on %d unlabelled posts for %d steps: masked-token loss %.3f, accuracy %.3f, "
               "perplexity %.2f. Fine-tuned on %d labelled records (5%%) for %d steps: macro PR-AUC %.4f from the "
               "pretrained encoder, %.4f from scratch." %
               (p["train_records"], p["pretrain_steps"], p["mlm_loss"], p["mlm_accuracy"], p["perplexity"],
                p["labelled_records"], p["finetune_steps"], p["macro_pr_auc_pretrained"], p["macro_pr_auc_scratch"])]
    if "moderation" in figures:
        m = figures["moderation"]
        md += ["", "## Moderation-grade evaluation", "",
               "Soft labels from 5 simulated annotators, identity mentions of 6 invented groups (mostly benign), "
               "temperature scaling: worst subgroup AUC %.4f; bias scores %s; macro ECE %.4f -> %.4f after "
               "temperature scaling; macro PR-AUC %.4f." %
               (m["worst_subgroup_auc"], ", ".join("%s %.3f" % (k, v) for k, v in m["bias_scores"].items() if v is not None),
                m["ece_before"], m["ece_after"], m["macro_pr_auc"])]
        if "subgroup_plot" in figures:
            md += ["", "![subgroups](%s)" % figures["subgroup_plot"]]
    for p in figures.get("plots", []):
        md += ["", "![%s](%s)" % (os.path.splitext(os.path.basename(p))[0], p)]
    with open(os.path.join(a.out, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    if a.update_baseline and "train_per_reference" in figures.get("train", {}):
        t = figures["train"]
        if not baseline["throughput"].get("default_machine"):
            baseline["throughput"]["default_machine"] = report["machine"]["cpu"]
        baseline["throughput"]["by_machine"][report["machine"]["cpu"]] = {
            "train_per_reference": round(t["train_per_reference"], 4), "train_samples_per_s": round(t["samples_per_s_median"], 1),
            "reference_samples_per_s": t["reference_samples_per_s"], "commit": a.commit, "date": report["date"],
            "cores": report["machine"]["cores"]}
        with open(a.baseline, "w") as f:
            json.dump(baseline, f, indent=2)
            f.write("\n")
        print("baseline updated: %s" % a.baseline)

    for c in checks:
        print("%-26s %-5s %s (bar: %s)" % (c["name"], "pass" if c["ok"] else "FAIL", c["value"], c["bar"]))
    print("nightly: %s; report: %s" % (report["verdict"], os.path.join(a.out, "REPORT.md")))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
