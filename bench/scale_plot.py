#!/usr/bin/env python3
"""Summarises bench/scale_run.sh output: scale.json (medians per case) and
scale.png (efficiency vs ranks, one line per schedule and task kind).

    scale_plot.py RESULTS.jsonl [--out DIR]
"""
import argparse
import json
import os
import statistics


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def summarise(rows):
    calib = {"pingpong": [], "empty": {}}
    groups = {}
    for r in rows:
        if "pingpong" in r:
            calib["pingpong"].append(r)
        elif r.get("kind") == "empty":
            key = f'{r["schedule"]}:{r["tasks"]}:{r["ranks"]}'
            calib["empty"].setdefault(key, []).append(r)
        else:
            sched = r["schedule"] + ("-pure" if r.get("pure") else "")
            groups.setdefault((r["kind"], sched, r["ranks"]), []).append(r)
    cases = []
    for (kind, sched, ranks), rs in sorted(groups.items()):
        # efficiency against what the tasks actually slept (sleep overshoot
        # on a loaded 2-core machine removed): the dispatch's own share
        eff_act = [max(r["slept"] / r["ranks"], r["max_task"]) / r["wall_time"] for r in rs]
        cases.append({
            "kind": kind, "schedule": sched, "ranks": ranks, "runs": len(rs),
            "tasks": rs[0]["tasks"], "ideal": rs[0]["ideal"],
            "efficiency": statistics.median(r["efficiency"] for r in rs),
            "efficiency_all": [round(r["efficiency"], 4) for r in rs],
            "efficiency_actual": statistics.median(eff_act),
            "wall_time": statistics.median(r["wall_time"] for r in rs),
            "chunks": statistics.median(r["chunks"] for r in rs),
            "chunks_per_s": statistics.median(r["chunks_per_s"] for r in rs),
            "overshoot_per_task": statistics.median(r["overshoot_per_task"] for r in rs),
            "load1": [r["load1"] for r in rs],
        })
    cal = {
        "pingpong_one_way_s": statistics.median(r["one_way_latency"] for r in calib["pingpong"])
        if calib["pingpong"] else None,
        # "SCHEDULE:TASKS:RANKS" of empty tasks: dynamic = dispatch rate,
        # static with one task per rank = fixed cost of a run (T0)
        "empty": {k: {"chunks_per_s": statistics.median(r["chunks_per_s"] for r in rs),
                      "wall_time": statistics.median(r["wall_time"] for r in rs),
                      "all_wall": [round(r["wall_time"], 5) for r in rs],
                      "load1": [r["load1"] for r in rs]}
                  for k, rs in calib["empty"].items()},
    }
    return {"calibration": cal, "cases": cases}


def plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = sorted({c["kind"] for c in summary["cases"]})
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.8), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for sched in ("guided", "dynamic", "factoring", "static", "guided-pure", "dynamic-pure"):
            pts = sorted((c["ranks"], c["efficiency"]) for c in summary["cases"]
                         if c["kind"] == kind and c["schedule"] == sched)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=sched)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{kind} tasks")
        ax.legend(fontsize=7)
        ax.set_xlabel("ranks (sleeping tasks, 2-core machine)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("efficiency = ideal / makespan")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_predictions(pred_path, out_png):
    """Simulated efficiency at 1k-16k ranks (bench/sim_dispatch.py --predict)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(pred_path) as f:
        rows = json.load(f)["rows"]
    panels = [(k, s) for k in ("10ms", "1ms", "pareto") for s in ("guided", "dynamic")
              if any(r["kind"] == k and r["schedule"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    designs = []
    for r in rows:
        if r["design"] not in designs:
            designs.append(r["design"])
    for ax, (kind, sched) in zip(axes[0], panels):
        for d in designs:
            pts = sorted((r["ranks"], r["efficiency"]) for r in rows
                         if r["kind"] == kind and r["schedule"] == sched and r["design"] == d)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=d)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{kind}, {sched} (simulated)", fontsize=9)
        ax.set_xlabel("ranks")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("efficiency")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl", nargs="?")
    ap.add_argument("--predictions", help="plot sim_dispatch.py --predict output instead")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)) + "/results")
    a = ap.parse_args()
    if a.predictions:
        plot_predictions(a.predictions, os.path.join(a.out, "scale_predictions.png"))
        return
    s = summarise(load(a.jsonl))
    quick = a.jsonl.endswith("_quick.jsonl")
    name = "scale_quick" if quick else "scale"
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(s, f, indent=1)
    plot(s, os.path.join(a.out, name + ".png"))
    for c in s["cases"]:
        print(f'{c["kind"]:>6} {c["schedule"]:>9} P={c["ranks"]:>4}  eff {c["efficiency"]:.3f} '
              f'{c["efficiency_all"]} (vs slept {c["efficiency_actual"]:.3f})  '
              f'{c["chunks_per_s"]:.0f} chunks/s  load {c["load1"]}')


if __name__ == "__main__":
    main()
