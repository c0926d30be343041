#!/usr/bin/python3
"""Gantt chart of an mpmap run's /trace: which rank ran which chunk when,
coloured by task index, to see load balance and idle time.

    tools/plot_trace.py kde_sweep.h5 -o trace.png
"""
import numpy as np

from mpmap_plot import fail, open_h5, parser, plt, save


def main():
    args = parser(__doc__.splitlines()[0], "trace.png").parse_args()
    f = open_h5(args.input)
    if "trace" not in f:
        fail(f"'{args.input}' has no /trace")
    t = f["trace"]
    begin, end = t["begin"][()], t["end"][()]
    rank, start, finish = t["rank"][()], t["start"][()], t["finish"][()]
    if len(begin) == 0:
        fail(f"'{args.input}' has an empty /trace")
    ranks = int(rank.max()) + 1
    fig, ax = plt.subplots(figsize=(9, 1 + 0.45 * ranks))
    cmap = plt.get_cmap("viridis")
    ntasks = max(int(end.max()), 1)
    for r in range(ranks):
        sel = rank == r
        bars = [(s, max(e - s, 1e-6)) for s, e in zip(start[sel], finish[sel])]
        colours = [cmap(b / ntasks) for b in begin[sel]]
        ax.broken_barh(bars, (r - 0.4, 0.8), facecolors=colours, edgecolor="black", linewidth=0.3)
    busy = np.array([np.sum((finish - start)[rank == r]) for r in range(ranks)])
    span = finish.max() - start.min()
    ax.set_yticks(range(ranks))
    ax.set_yticklabels([f"rank {r} ({100 * b / span:.0f}% busy)" for r, b in enumerate(busy)])
    ax.set_xlabel("seconds since the run started")
    sched = f.attrs.get("mpmap_schedule", "?")
    ax.set_title(f"{len(begin)} chunks, {sched} schedule, makespan {span:.3g} s")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, ntasks))
    fig.colorbar(sm, ax=ax, label="first task of the chunk")
    save(fig, args)


if __name__ == "__main__":
    main()
