#!/usr/bin/env python3
"""Discrete-event simulator of mpmap's dispatch protocol (src/core/manager.c,
src/core/worker.c, src/schedule/*.c), pure Python: the command line.

The model is sim_model.py (events, worker, manager and sub-manager loops,
simulate(); what it models is said there), with sim_schedules.py (task
costs, schedules) and sim_state.py (parameters, the ranks' state);
sim_designs.py holds the calibration to this machine, the cluster
assumptions and the designs compared.

    sim_dispatch.py --ranks 128 --kind 10ms --schedule guided [--pure] ...
    sim_dispatch.py --validate SCALE.json [OUT.json]   measured runs against the model
    sim_dispatch.py --predict OUT.json                 1k-16k ranks, every design
    python3 -c 'import sim_dispatch; ...'   (see simulate())
"""
import argparse
import json
import sys

from sim_designs import CAL_BATCH, DESIGNS, cluster_params, machine_params
from sim_model import simulate


# ---- validation, predictions -------------------------------------------------

def validate(summary_path, out_json=None):
    with open(summary_path) as f:
        summ = json.load(f)
    cal = summ["calibration"]
    rows = []
    # Second view: the host's own overhead at P ranks (start-up, stragglers,
    # CPU contention: everything but dispatch) taken from the static
    # schedule with the same tasks, which dispatches nothing after the start.
    host = {}
    for c in summ["cases"]:
        if c["schedule"] == "static":
            prm = machine_params(cal, c["ranks"], c["overshoot_per_task"])
            prm["T0"] = 0.0
            r = simulate(c["ranks"], c["kind"], "static", 1, **prm)
            host[(c["ranks"], c["kind"])] = max(0.0, c["wall_time"] - r["wall_time"])
    for c in summ["cases"]:
        pure = c["schedule"].endswith("-pure")
        sched = c["schedule"].replace("-pure", "")
        prm = machine_params(cal, c["ranks"], c["overshoot_per_task"])
        r = simulate(c["ranks"], c["kind"], sched, 1, pure=pure, **prm)
        h = host.get((c["ranks"], c["kind"]))
        r2 = None
        if h is not None and sched != "static":
            prm["T0"] = h
            r2 = simulate(c["ranks"], c["kind"], sched, 1, pure=pure, **prm)
        rows.append({"kind": c["kind"], "schedule": c["schedule"], "ranks": c["ranks"],
                     "measured": c["efficiency"], "measured_all": c["efficiency_all"],
                     "simulated": r["efficiency"], "diff": r["efficiency"] - c["efficiency"],
                     "simulated_host_from_static": r2["efficiency"] if r2 else None,
                     "host_overhead_s": h,
                     "wake_ms": c["overshoot_per_task"] * 1e3, "T0": prm["T0"],
                     "load1": c["load1"]})
        print(f'{c["kind"]:>6} {c["schedule"]:>12} P={c["ranks"]:>4} measured {c["efficiency"]:.3f} '
              f'sim {r["efficiency"]:.3f} diff {r["efficiency"] - c["efficiency"]:+.3f}'
              + (f' | T0 from static: sim {r2["efficiency"]:.3f} diff '
                 f'{r2["efficiency"] - c["efficiency"]:+.3f}' if r2 else ''),
              flush=True)
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"params": {"batch": CAL_BATCH, "machine_example_P128":
                                  machine_params(cal, 128, 0.0)}, "rows": rows}, f, indent=1)
    return rows


def predict(out_path, ranks=(1024, 4096, 16384), kinds=("10ms", "1ms", "pareto"),
            schedules=("guided", "factoring", "dynamic"), designs=tuple(DESIGNS), **over):
    import time
    rows = []
    for P in ranks:
        for kind in kinds:
            for sched in schedules:
                if sched == "dynamic" and (kind == "1ms" or P > 4096):
                    continue  # chunk-1 runs of 10^6..10^7 chunks: too slow to simulate here
                for d in designs:
                    kw, pover = DESIGNS[d]
                    prm = cluster_params(P, **{**pover, **over})
                    t = time.time()
                    r = simulate(P, kind, sched, 1, **kw, **prm)
                    r.update(kind=kind, schedule=sched, design=d, sim_seconds=time.time() - t)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
                    with open(out_path, "w") as f:
                        json.dump({"params": cluster_params(P, **over), "rows": rows}, f, indent=1)
    return rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--predict":
        predict(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--validate":
        validate(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=128)
    ap.add_argument("--kind", default="10ms", choices=["1ms", "10ms", "100ms", "pareto", "empty"])
    ap.add_argument("--schedule", default="guided")
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--ntasks", type=int)
    ap.add_argument("--target", type=float, default=1.0)
    ap.add_argument("--pure", action="store_true", help="design (a): rank 0 only manages")
    ap.add_argument("--nodes-of", type=int, default=0, help="design (b): ranks per node")
    ap.add_argument("--sub-pure", action="store_true")
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE (see Params)")
    a = ap.parse_args()
    params = {}
    for kv in a.param:
        k, v = kv.split("=", 1)
        params[k] = float(v)
    if "prefetch" in params:
        params["prefetch"] = int(params["prefetch"])
    r = simulate(a.ranks, a.kind, a.schedule, a.chunk, a.pure, a.target, a.nodes_of, a.sub_pure,
                 a.ntasks, **params)
    print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
