"""The dispatch simulator (sim_model.py) against the measured runs of
bench/scale_run.sh (bench/results/scale.json): `sim_dispatch.py --validate`.

Each measured case is simulated three ways:

* `simulated`: the model with this machine's calibration (sim_designs.
  machine_params) and no host term, as first validated;
* `simulated_host_from_static`: the same with the host's overhead at P
  ranks taken from the static run with the same tasks (a variant, kept for
  comparison);
* `simulated_host`: with the host term of sim_host.py, the 2 cores that the
  ranks share, with `c_event` fitted to the static and 8-rank rows only
  (`--fit-host`); every other row is a check, not a fit.

The summary table (cases within 5 points of the median, within the runs'
range +- 0.05, mean abs. error, per rank count) is what
bench/results/scale.md shows.
"""
import json
import statistics

from sim_designs import CAL_BATCH, machine_params
from sim_host import HOST_C_EVENT, HOST_CORES
from sim_model import simulate


def host_params(c_event=HOST_C_EVENT, cores=HOST_CORES):
    return {"host_cores": cores, "c_event": c_event}


def simulate_case(cal, c, host=None, **over):
    """Efficiency the model gives for measured case `c` (host: host_params())."""
    pure = c["schedule"].endswith("-pure")
    sched = c["schedule"].replace("-pure", "")
    prm = machine_params(cal, c["ranks"], c["overshoot_per_task"])
    if host:
        prm.update(host)
    prm.update(over)
    return simulate(c["ranks"], c["kind"], sched, 1, pure=pure, **prm)


def is_fit_row(c):
    """The rows the host term is fitted to: they measure the host, not
    dispatch (static hands out nothing after the start; 8 ranks hardly
    load 2 cores)."""
    return c["schedule"] == "static" or c["ranks"] == 8


def fit_host(summary_path, grid_us=(0, 5, 10, 12.5, 15, 17.5, 20, 22.5, 25, 30, 40),
             cores=(HOST_CORES,)):
    """c_event (and the cores, if given more than one) with the least RMS
    error over the fit rows."""
    with open(summary_path) as f:
        summ = json.load(f)
    cal = summ["calibration"]
    rows = [c for c in summ["cases"] if is_fit_row(c)]
    best = None
    for k in cores:
        for us in grid_us:
            host = host_params(us * 1e-6, k) if us > 0 else None
            d = [simulate_case(cal, c, host)["efficiency"] - c["efficiency"] for c in rows]
            rms = statistics.mean(x * x for x in d) ** 0.5
            print(f"c_event {us:>4} us, {k} cores: {len(rows)} fit rows, rms {rms:.4f}, "
                  f"mean abs {statistics.mean(map(abs, d)):.4f}", flush=True)
            if best is None or rms < best[0]:
                best = (rms, us, k)
    print(f"best: c_event {best[1]} us, {best[2]} cores (rms {best[0]:.4f})")
    return best


def validate(summary_path, out_json=None, host=None):
    host = host or host_params()
    with open(summary_path) as f:
        summ = json.load(f)
    cal = summ["calibration"]
    rows = []
    # The host's own overhead at P ranks (start-up, stragglers, CPU
    # contention: everything but dispatch) taken from the static schedule
    # with the same tasks, which dispatches nothing after the start.
    overhead = {}
    for c in summ["cases"]:
        if c["schedule"] == "static":
            r = simulate_case(cal, c, T0=0.0)
            overhead[(c["ranks"], c["kind"])] = max(0.0, c["wall_time"] - r["wall_time"])
    for c in summ["cases"]:
        r = simulate_case(cal, c)
        rh = simulate_case(cal, c, host)
        h = overhead.get((c["ranks"], c["kind"]))
        r2 = None
        if h is not None and c["schedule"] != "static":
            r2 = simulate_case(cal, c, T0=h)
        meas = c["efficiency"]
        rows.append({"kind": c["kind"], "schedule": c["schedule"], "ranks": c["ranks"],
                     "measured": meas, "measured_all": c["efficiency_all"],
                     "simulated": r["efficiency"], "diff": r["efficiency"] - meas,
                     "simulated_host": rh["efficiency"], "diff_host": rh["efficiency"] - meas,
                     "host_fit_row": is_fit_row(c),
                     "simulated_host_from_static": r2["efficiency"] if r2 else None,
                     "host_overhead_s": h,
                     "wake_ms": c["overshoot_per_task"] * 1e3,
                     "T0": machine_params(cal, c["ranks"], 0.0)["T0"], "load1": c["load1"]})
        print(f'{c["kind"]:>6} {c["schedule"]:>12} P={c["ranks"]:>4} measured {meas:.3f} '
              f'sim {r["efficiency"]:.3f} ({r["efficiency"] - meas:+.3f}) '
              f'host {rh["efficiency"]:.3f} ({rh["efficiency"] - meas:+.3f})', flush=True)
    print()
    print(summary_table(rows, "simulated"))
    print()
    print(summary_table(rows, "simulated_host"))
    print()
    print(summary_table(rows, "simulated_host", checks_only=True))
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"params": {"batch": CAL_BATCH, "machine_example_P128":
                                  machine_params(cal, 128, 0.0), "host": host},
                       "rows": rows}, f, indent=1)
    return rows


def summary(rows, key="simulated", checks_only=False):
    """Per rank count: cases, within 5 points, within the runs' range +- 0.05,
    mean abs. error of column `key`."""
    out = {}
    for P in sorted({r["ranks"] for r in rows}):
        rs = [r for r in rows if r["ranks"] == P and not (checks_only and r["host_fit_row"])]
        if not rs:
            continue
        d = [r[key] - r["measured"] for r in rs]
        rng = sum(1 for r in rs if min(r["measured_all"]) - 0.05 <= r[key]
                  <= max(r["measured_all"]) + 0.05)
        out[P] = {"cases": len(rs), "within5": sum(1 for x in d if abs(x) <= 0.05),
                  "within_range": rng, "mae": statistics.mean(abs(x) for x in d),
                  "bias": statistics.mean(d)}
    return out


def summary_table(rows, key="simulated", checks_only=False):
    lines = ["| ranks | cases | within 5 points of the median | sim within [min − 0.05, max + 0.05]"
             " of the runs | mean abs. error | mean error |", "|---|---|---|---|---|---|"]
    for P, s in summary(rows, key, checks_only).items():
        lines.append(f'| {P} | {s["cases"]} | {s["within5"]} | {s["within_range"]} | '
                     f'{s["mae"]:.3f} | {s["bias"]:+.3f} |')
    return "\n".join(lines)
