#!/usr/bin/python3
"""Follow a running kde_sweep or param_sweep started with --live: plots the
results delivered so far and refreshes the plot until the run ends.

    mpirun -n 8 kde_sweep --cv 5 --widths 0.05:1:400 --live &
    tools/plot_live.py kde_sweep.h5              # a window, or kde_sweep.live.png
    tools/plot_live.py kde_sweep.h5 --once snap.png

INPUT is the output's name (OUT) or OUT.partial. While the run goes on the
tool reads OUT.partial in HDF5's SWMR mode (no environment variable
needed); its /tasks_delivered says how many leading tasks are final, and
only those are plotted. Once the run has committed OUT (no .partial any
more) the whole result is plotted and the tool stops. Without a display the
plot goes to a PNG (-o), rewritten at every refresh.
"""
import argparse
import os
import sys
import time

import numpy as np

from mpmap_plot import fail, plt

# h5py raises OSError while the writer holds the file for itself (before the
# run starts, and for a moment before the commit); the tool then tries again.
RETRY_ERRORS = (OSError, KeyError, RuntimeError, ValueError)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", help="the output (OUT) or its OUT.partial")
    p.add_argument("--once", metavar="PNG",
                   help="write one snapshot of what is there now and exit")
    p.add_argument("-o", "--output", help="PNG rewritten at each refresh when there is no "
                   "display (default: OUT's name with .live.png)")
    p.add_argument("--interval", type=float, default=2.0,
                   help="seconds between refreshes (default 2)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the file to appear (default 60)")
    p.add_argument("--field", help="param_sweep: record field to show (name or index; default "
                   "the first)")
    p.add_argument("--dpi", type=int, default=120, help="resolution (default 120)")
    args = p.parse_args()
    if not args.interval > 0:
        fail("--interval: expected a number > 0")
    return args


def names(path):
    """(final, partial) names of the output path given either."""
    if path.endswith(".partial"):
        return path[: -len(".partial")], path
    return path, path + ".partial"


def open_live(final, partial):
    """(h5py.File, finished) for the partial file if it is there, else the
    final one; None when neither can be opened now."""
    import h5py

    for path, finished in ((partial, False), (final, True)):
        if not os.path.exists(path):
            continue
        try:
            # swmr=True also opens a finished file; a file another program
            # writes without SWMR is refused (OSError) and tried again later.
            return h5py.File(path, "r", swmr=True), finished
        except OSError:
            if finished:
                try:
                    return h5py.File(path, "r"), True
                except OSError:
                    pass
    return None


def snapshot(f):
    """Reads what is final now: a dict of arrays and the delivered count."""
    live = f.swmr_mode  # then refresh: read the file, not what was cached
    if "tasks_delivered" in f:
        counter = f["tasks_delivered"]
        if live:
            counter.refresh()
        delivered = int(counter[()])
    else:
        delivered = None  # a committed file: everything is final
    data = {}
    for name in ("width", "density", "cv_score", "reference_density", "result", "status"):
        if name in f:
            ds = f[name]
            if live:
                ds.refresh()
            data[name] = ds[()]
    data["attrs"] = dict(f.attrs)
    if "result" in f:
        result = f["result"]
        data["axes"] = [result.dims[i][0].name.lstrip("/") for i in range(result.ndim - 1)]
        for axis in data["axes"]:
            data[axis] = f[axis][()]
    return data, delivered


def plot_kde(fig, data, n, finished):
    width = data["width"]
    rows = 2 if "cv_score" in data else 1
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    density = data["density"]
    for j in range(density.shape[1]):
        axes[0].plot(width[:n], density[:n, j], label=f"point {j}")
    for j, ref in enumerate(data.get("reference_density", [])):
        axes[0].axhline(ref, ls="--", color="grey", lw=1, label="true density" if j == 0 else None)
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize="small")
    if "cv_score" in data:
        cv = data["cv_score"][:n]
        axes[1].plot(width[:n], cv)
        if n > 0 and np.isfinite(cv).any():
            best = int(np.nanargmax(cv))
            axes[1].plot(width[best], cv[best], "o", color="C1",
                         label=f"best {'width' if finished else 'so far'} {width[best]:.4g}")
            axes[1].legend(fontsize="small")
        axes[1].set_ylabel("CV log-likelihood")
    axes[-1].set_xlim(width[0], width[-1])  # the whole sweep, filled as it goes
    axes[-1].set_xlabel("width h")
    return axes[0]


def field_index(data, wanted):
    fields = data["attrs"].get("fields", "")
    if isinstance(fields, bytes):
        fields = fields.decode()
    labels = fields.split(",") if isinstance(fields, str) and fields else []
    if wanted is None:
        return 0, labels[0] if labels else "field 0"
    if wanted in labels:
        return labels.index(wanted), wanted
    if wanted.isdigit() and int(wanted) < data["result"].shape[-1]:
        return int(wanted), wanted
    fail(f"--field: unknown field '{wanted}' (have: {', '.join(labels)})")


def plot_param(fig, data, n, wanted):
    result = data["result"]
    index, label = field_index(data, wanted)
    grid = result.shape[:-1]
    values = result[..., index].astype(float).reshape(-1)
    values[n:] = np.nan  # not delivered yet: not shown
    if "status" in data:
        values[data["status"].reshape(-1) != 0] = np.nan
    values = values.reshape(grid)
    ax = fig.subplots()
    axes = data["axes"]
    if len(grid) == 1:
        ax.plot(data[axes[0]], values, "o-")
        ax.set_xlabel(axes[0])
        ax.set_ylabel(label)
    else:
        # Further parameters at their first value: the grid's first slice.
        values = values[(slice(None), slice(None)) + (0,) * (len(grid) - 2)]
        mesh = ax.pcolormesh(data[axes[1]], data[axes[0]], np.ma.masked_invalid(values),
                             shading="nearest")
        fig.colorbar(mesh, ax=ax, label=label)
        ax.set_xlabel(axes[1])
        ax.set_ylabel(axes[0])
    return ax


def delivered_of(delivered, total):
    """Tasks to show: all of a finished file; a count read while the writer
    ends its live phase may be stale or garbled, and all tasks are final
    then anyway, so it is kept within the task range."""
    return total if delivered is None else max(0, min(delivered, total))


def draw(fig, data, delivered, field):
    fig.clear()
    if "width" in data and "density" in data:
        total = len(data["width"])
        n = delivered_of(delivered, total)
        top = plot_kde(fig, data, n, delivered is None)
        app, what = "kde_sweep", "widths"
    elif "result" in data:
        total = int(np.prod(data["result"].shape[:-1]))
        n = delivered_of(delivered, total)
        top = plot_param(fig, data, n, field)
        app, what = "param_sweep", "points"
    else:
        fail("not a kde_sweep or param_sweep output (no /density or /result)")
    state = "finished" if delivered is None else "running"
    top.set_title(f"{app} {state}: {n}/{total} {what}")
    fig.tight_layout()
    return delivered is None


def main():
    args = parse_args()
    final, partial = names(args.input)
    interactive = args.once is None and bool(os.environ.get("DISPLAY"))
    if interactive:
        try:
            plt.switch_backend("TkAgg")
            plt.ion()
        except Exception:
            interactive = False
    png = args.once or args.output or os.path.splitext(final)[0] + ".live.png"
    fig = plt.figure(figsize=(7, 6))
    deadline = time.monotonic() + args.wait
    opened = None
    while True:
        if opened is None:
            opened = open_live(final, partial)
            if opened is None:
                if time.monotonic() > deadline:
                    fail(f"cannot open '{partial}' or '{final}'")
                time.sleep(0.2)
                continue
        f, finished = opened
        try:
            data, delivered = snapshot(f)
        except RETRY_ERRORS:
            # The writer is leaving SWMR mode or has renamed the file:
            # open again, the committed file if it is there.
            f.close()
            opened = None
            time.sleep(0.2)
            continue
        if finished:
            delivered = None
        done = draw(fig, data, delivered, args.field)
        if interactive:
            plt.pause(0.01)
        else:
            fig.savefig(png, dpi=args.dpi)
        if args.once:
            print(f"wrote {png}")
            return
        if done:
            print(f"the run has finished; wrote {png}" if not interactive else "the run has finished")
            if interactive:
                plt.ioff()
                plt.show()
            return
        # The committed file replaces the partial one: switch to it.
        if not os.path.exists(partial) and os.path.exists(final):
            f.close()
            opened = None
            continue
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
