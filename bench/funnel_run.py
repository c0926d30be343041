#!/usr/bin/env python3
"""Rank 0's intake rate, and where one rank 0 stops keeping up with many ranks.

    bench/funnel_run.py [--build DIR] [--progs DIR] [--reps N] [--quick] [--writers-only]

Every result travels to rank 0, which puts it in task order and writes it
into the output. This measures

* intake: bench/funnel.c, records that cost nothing to compute, written
  through the app kit like every app's. At -n 1 rank 0 only writes; at -n 2
  the other rank produces and rank 0 receives, orders and writes (and
  computes its share). MB/s of records into the output, by mpmap_run's time;
* production: what one rank of a real app hands over per second of its own
  work: knn_query with k = 64 (1 KiB per query), kde_sweep (16 bytes per
  point per width), param_sweep's linear model with 1 MiB records;

and reports the crossover: ranks = intake / production per rank, the rank
count from which rank 0, not the computing, sets the pace;

* writers (funnel_writers.py): the same records with `--write rank0` (the
  funnel) and `--write ranks` (every rank pwrite()s its own rows into the
  output and fdatasync()s them before reporting a range) at 1, 2, 4, 8
  ranks, and the disk's own write and fdatasync rates as the yardstick.

Writes bench/results/funnel.json and funnel.md. --writers-only measures the
writers alone and keeps the other figures of funnel.json.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import funnel_writers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV, **kw)


def build(build_dir, progs):
    sh(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
        "-DMPMAP_BUILD_TESTS=OFF"])
    sh(["cmake", "--build", build_dir, "-j2", "--target", "mpmap_static", "mpmap_kit_static",
        "knn_query", "kde_sweep", "param_sweep"])
    h5 = sh(["pkg-config", "--cflags", "--libs", "hdf5-openmpi"]).stdout.split()
    os.makedirs(progs, exist_ok=True)
    exe = os.path.join(progs, "funnel")
    sh(["mpicc", "-std=c17", "-O3", "-DNDEBUG", "-Wall", "-Wextra", "-Werror",
        "-I" + os.path.join(ROOT, "include"), os.path.join(HERE, "funnel.c"),
        os.path.join(build_dir, "src", "kit", "libmpmap_kit.a"),
        os.path.join(build_dir, "src", "libmpmap.a"), *h5, "-lhdf5_hl", "-lm", "-o", exe])
    return exe


def wall_time(path):
    """mpmap_run's seconds, from the output's provenance (no start-up, no commit)."""
    out = sh(["/usr/bin/python3", "-c",
              "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['mpmap_wall_time'])",
              path]).stdout
    return float(out)


def run(np, argv, out):
    sh(["mpirun", "-n", str(np), "--bind-to", "none", *argv, "--output", out, "--force",
        "--quiet"])
    t = wall_time(out)
    size = os.path.getsize(out)
    os.remove(out)
    return t, size


def intake(exe, work, reps, total_mib):
    rows = []
    for kib in (1, 16, 1024):
        tasks = total_mib * 1024 // kib
        for np in (1, 2):
            times = [run(np, [exe, "--tasks", str(tasks), "--record-kib", str(kib)],
                         os.path.join(work, "f.h5"))[0] for _ in range(reps)]
            t = statistics.median(times)
            rows.append({"record_kib": kib, "ranks": np, "tasks": tasks, "seconds": times,
                         "mb_per_s": tasks * kib * 1024 / t / 1e6})
    return rows


def production(apps, work, reps):
    """Bytes of records one rank produces per second of mpmap_run (-n 1)."""
    cases = [
        ("knn_query k=64, 3-D, 200k points", "knn_query",
         ["--points", "200000", "--queries-count", "20000", "--dim", "3", "-k", "64"],
         20000, 64 * 16),
        ("knn_query k=64, 8-D, 200k points", "knn_query",
         ["--points", "200000", "--queries-count", "5000", "--dim", "8", "-k", "64"],
         5000, 64 * 16),
        ("kde_sweep, 10 000 samples, 1000 points", "kde_sweep",
         ["--samples", "10000", "--widths", "0.1:1:64"]
         + [x for i in range(1000) for x in ("--point", f"{i / 1000:.3f},0")], 64, 1000 * 16),
        ("param_sweep linear, 1 MiB records", "param_sweep",
         ["--model", "linear", "--length", "131072", "--param", "p1=0:1:200", "--param", "p2=1"],
         200, 131072 * 8),
    ]
    rows = []
    for name, app, args, ntasks, record in cases:
        nbytes = ntasks * record
        times = [run(1, [os.path.join(apps, app), *args], os.path.join(work, "p.h5"))[0]
                 for _ in range(reps)]
        t = statistics.median(times)
        rows.append({"case": name, "record_bytes": record, "seconds": times,
                     "mb_per_s_per_rank": nbytes / t / 1e6})
    return rows


def markdown(res):
    load = res["load"]
    lines = ["# Rank 0's intake and the funnel crossover", "",
             f"{res['date']}, {res['cores']} cores, load average {load[0]:.2f} -> "
             f"{res['load_end'][0]:.2f}; medians of {res['reps']} runs; mpmap_run's time "
             "(no start-up, no final commit). Produced by `bench/funnel_run.py`.", "",
             "## Intake: records that cost nothing, through the app kit into HDF5", "",
             "| record | ranks | records | MB/s into the output | runs (s) |",
             "| --- | --- | --- | --- | --- |"]
    for r in res["intake"]:
        lines.append(f"| {r['record_kib']} KiB | {r['ranks']} | {r['tasks']} | "
                     f"{r['mb_per_s']:.0f} | {', '.join(f'{x:.3f}' for x in r['seconds'])} |")
    lines += ["", "## Production per rank, and the crossover", "",
              "Crossover = rank 0's intake at `-n 2` with records of that size / one "
              "rank's production: from about that many ranks on, rank 0 sets the pace.", "",
              "| app | record | MB/s per rank | intake used | crossover (ranks) |",
              "| --- | --- | --- | --- | --- |"]
    for p in res["production"]:
        lines.append(f"| {p['case']} | {p['record_bytes']} B | {p['mb_per_s_per_rank']:.1f} | "
                     f"{p['intake_mb_per_s']:.0f} MB/s ({p['intake_record_kib']} KiB) | "
                     f"{p['crossover_ranks']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--progs", default=os.path.join(ROOT, "build", "bench-progs"),
                    help="where the funnel program is built")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="256 MiB per intake run, 64 MiB per writers run, fewer runs")
    ap.add_argument("--writers-only", action="store_true",
                    help="measure rank0 against ranks writing only; keep the other figures")
    a = ap.parse_args()
    reps = 2 if a.quick else a.reps
    exe = build(a.build, a.progs)
    apps = os.path.join(a.build, "apps")
    out = os.path.join(HERE, "results")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")) as work:
        if a.writers_only:
            with open(os.path.join(out, "funnel.json")) as f:
                res = json.load(f)
        else:
            res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "cores": os.cpu_count(), "load": load, "reps": reps,
                   "intake": intake(exe, work, reps, 256 if a.quick else 1024),
                   "production": production(apps, work, reps)}
            res["load_end"] = os.getloadavg()
        res["writers"] = funnel_writers.writers(sh, exe, work, 1 if a.quick else reps, a.quick)
    best = {r["record_kib"]: r["mb_per_s"] for r in res["intake"] if r["ranks"] == 2}
    for p in res["production"]:
        # Rank 0's intake measured with the record size nearest the app's.
        size = min(best, key=lambda kib: abs(math.log(kib * 1024 / p["record_bytes"])))
        p["intake_record_kib"] = size
        p["intake_mb_per_s"] = best[size]
        p["crossover_ranks"] = best[size] / p["mb_per_s_per_rank"]
    with open(os.path.join(out, "funnel.json"), "w") as f:
        json.dump(res, f, indent=1)
    text = markdown(res) + "\n" + funnel_writers.markdown(res["writers"])
    with open(os.path.join(out, "funnel.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
