#!/usr/bin/env python3
"""Discrete-event simulator of mpmap's dispatch protocol (src/core/manager.c,
src/core/worker.c, src/schedule/*.c), pure Python: the command line.

The model is sim_model.py (events, worker, manager and sub-manager loops,
simulate(); what it models is said there), with sim_schedules.py (task
costs, schedules) and sim_state.py (parameters, the ranks' state);
sim_designs.py holds the calibration to this machine, the cluster
assumptions and the designs compared; sim_host.py the host term (ranks
sharing this machine's 2 cores: validation only, never the cluster
predictions); sim_validate.py the validation.

    sim_dispatch.py --ranks 128 --kind 10ms --schedule guided [--pure] ...
    sim_dispatch.py --validate SCALE.json [OUT.json]   measured runs against the model
    sim_dispatch.py --fit-host SCALE.json [CORES,..]   fit the host term (static, 8-rank rows)
    sim_dispatch.py --predict OUT.json                 1k-16k ranks, every design
    python3 -c 'import sim_dispatch; ...'   (see simulate())
"""
import argparse
import json
import sys

from sim_designs import DESIGNS, cluster_params
from sim_model import simulate
from sim_validate import fit_host, host_params, validate


# ---- predictions (the validation is sim_validate.py) ---------------------------

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
    if len(sys.argv) > 1 and sys.argv[1] == "--fit-host":
        cores = tuple(float(x) for x in sys.argv[3].split(",")) if len(sys.argv) > 3 else (2,)
        fit_host(sys.argv[2], cores=cores)
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
    ap.add_argument("--host", action="store_true",
                    help="host term: the ranks share this machine's 2 cores (sim_host.py)")
    a = ap.parse_args()
    params = {}
    for kv in a.param:
        k, v = kv.split("=", 1)
        params[k] = float(v)
    if a.host:
        params = {**host_params(), **params}
    if "prefetch" in params:
        params["prefetch"] = int(params["prefetch"])
    r = simulate(a.ranks, a.kind, a.schedule, a.chunk, a.pure, a.target, a.nodes_of, a.sub_pure,
                 a.ntasks, **params)
    print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
