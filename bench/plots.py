"""The PNG plots of a harness run, from its rows and raw results."""
import os
import sys


def save_figure(fig, s, name):
    """Writes fig to the results folder as NAME; returns NAME for the table's links."""
    fig.tight_layout()
    fig.savefig(os.path.join(s.out, name), dpi=110)
    return name


def plot_all(rows, raw, s):
    """Writes the PNGs it has data for; returns their names."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    for fn in (plot_speedups, plot_imbalance, plot_gantt, plot_scaling):
        try:
            name = fn(plt, rows, raw, s)
        except Exception as e:  # a plot never breaks the table
            print(f"harness: plot {fn.__name__} failed: {e}", file=sys.stderr)
            name = None
        finally:
            plt.close("all")
        if name:
            made.append(name)
    return made


def plot_speedups(plt, rows, raw, s):
    bars = []
    specs = [("kde_pool", "KDE sweep\nvs Pool", 5, lambda r: r["baseline_s"] / r["mpmap_s"]),
             ("kde_gridsearch", "Gaussian CV\nvs sklearn", 50, lambda r: r["baseline_s"] / r["mpmap_s"]),
             ("mc_pi", "mc_pi\nvs numpy", 10,
              lambda r: r["mpmap_samples_per_s"] / r["baseline_samples_per_s"]),
             ("knn", "kNN\nvs cKDTree", 1, lambda r: r["baseline_s"] / r["mpmap_s"]),
             ("omp", "CV compute\nvs OpenMP", 0.95, lambda r: r["omp_s"] / r["mpmap_s"]),
             ("dispatch", "dispatch dyn.\nvs Pool", None,
              lambda r: r["dynamic_chunks_per_s"] / r["pool_tasks_per_s"])]
    for key, label, target, f in specs:
        if key in raw:
            bars.append((label, f(raw[key]), target))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = range(len(bars))
    colors = ["tab:green" if t is None or v >= t else "tab:red" for _, v, t in bars]
    ax.bar(xs, [v for _, v, _ in bars], color=colors)
    for x, (_, v, t) in zip(xs, bars):
        ax.text(x, v, f"{v:.3g}x", ha="center", va="bottom", fontsize=9)
        if t:
            ax.plot([x - 0.4, x + 0.4], [t, t], "k--", lw=1)
    ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    ax.set_yscale("log")
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_ylabel("mpmap speed-up over baseline (log)")
    ax.set_title("mpmap vs baselines, same run (dashed: target)")
    return save_figure(fig, s, "speedups.png")


def plot_imbalance(plt, rows, raw, s):
    if "imbalance" not in raw:
        return None
    r = raw["imbalance"]
    # Quiet cores (the schedules, then the diagnostic variant), then the runs
    # with a core shared for part of the time, each over its own bound.
    bars = [(n, r["makespan_s"][n], r["lower_bound_s"], r["chunks"][n],
             "tab:gray" if n == names_last(r["makespan_s"]) else "tab:blue")
            for n in r["makespan_s"]]
    steal = r.get("steal")
    if steal:
        bars += [(f"{n}\nshared core", m, steal["lower_bound_s"], steal["chunks"][n], "tab:orange")
                 for n, m in steal["makespan_s"].items()]
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = range(len(bars))
    ax.bar(xs, [m / b for _, m, b, _, _ in bars], color=[c for *_, c in bars])
    ax.set_xticks(list(xs), [n for n, *_ in bars], fontsize=7)
    for i, (_, m, b, chunks, _) in enumerate(bars):
        ax.text(i, m / b, f"{m:.2f} s\n{chunks} ch.", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="k", ls="--", label="lower bound (serial/2, measured)")
    ax.axhline(1.02, color="tab:red", ls=":", label="bound + 2%")
    ax.set_ylim(0.9, max(m / b for _, m, b, _, _ in bars) * 1.08)
    ax.set_ylabel("makespan / lower bound")
    ax.set_title(f"20 000 Pareto(1.5) tasks, {r['total_s']:.1f} s of work, -n 2 "
                 "(orange: another thread on rank 0's core for 1 s)")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, s, "imbalance.png")


def names_last(d):
    return list(d)[-1]


def plot_gantt(plt, rows, raw, s):
    import csv
    if "imbalance" not in raw:
        return None
    names = list(raw["imbalance"]["makespan_s"])
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.4 * len(names) + 1), sharex=True)
    for ax, name in zip(axes, names):
        path = s.tmp(f"imbalance_{name}.csv")
        with open(path) as f:
            chunks = list(csv.DictReader(f))
        for i, c in enumerate(chunks):
            start, finish = float(c["start"]), float(c["finish"])
            ax.broken_barh([(start, finish - start)], (int(c["rank"]) - 0.4, 0.8),
                           facecolors="tab:blue" if i % 2 == 0 else "tab:orange", edgecolor="k",
                           linewidth=0.3)
        ax.set_yticks([0, 1], ["rank 0", "rank 1"])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("seconds since the run started (each box: one chunk)")
    fig.suptitle("Chunks of the imbalanced job per rank and schedule (last repetition)")
    return save_figure(fig, s, "imbalance_gantt.png")


def plot_scaling(plt, rows, raw, s):
    if "scaling" not in raw:
        return None
    med = raw["scaling"]["medians"]
    ns = sorted(int(n) for n in med)
    k = raw["scaling"]["widths"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("mpmap", "mpmap_wall_time"), ("whole", "whole process")):
        ax.plot(ns, [k / med[str(n)][key] for n in ns], "o-", label=label)
    one = k / med["1"]["mpmap"]
    ax.plot([1, 2, 8], [one, 2 * one, 2 * one], "k:", label="ideal on 2 cores")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("ranks (-n), 2 cores")
    ax.set_ylabel("widths per second")
    ax.set_title(f"Gaussian 5-fold CV sweep, {k} widths")
    ax.legend(fontsize=8)
    return save_figure(fig, s, "scaling.png")
