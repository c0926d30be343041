"""--write rank0 (the funnel) against --write ranks (rows written in place).

funnel_run.py runs these with its funnel program. With --write rank0 every
record travels to rank 0, which orders it, appends it to the checkpoint and
writes it into the HDF5 file. With --write ranks every rank pwrite()s the
rows of its own chunks into the output at fixed offsets and fdatasync()s
them before it reports the range (the checkpoint then logs ranges only).

Measured at 1, 2, 4 and 8 ranks for a few record sizes, each way:

* mpmap_run's time from the output's provenance (no start-up, no commit);
* end to end: mpirun's elapsed time less the elapsed time of a run of one
  record per rank with the same ranks and mode (start-up, creating,
  committing), so the final fsync of the funnel's file, which mpmap_run's
  time leaves out, is counted;
* the ranges the run wrote (rows of /trace: one fdatasync each in ranks
  mode) and which ranks wrote them;

plus the disk's own rates (synced streaming writes, and one small write +
fdatasync) as the yardstick, and the fdatasync price: 1 KiB records in
ranges of 16 (dynamic, chunk 16), one fdatasync per 16 KiB.
"""
import json
import os
import statistics
import sys
import time

# Reads what one output says about its run (h5py lives in /usr/bin/python3).
INFO = r"""
import h5py, json, sys
with h5py.File(sys.argv[1], "r") as f:
    ranks = [int(r) for r in f["trace/rank"][...]] if "trace/rank" in f else []
    print(json.dumps({"wall": float(f.attrs["mpmap_wall_time"]),
                      "contiguous": f["block"].chunks is None,
                      "ranges": len(ranks), "writers": sorted(set(ranks))}))
"""

MODES = ("rank0", "ranks")


def one(sh, exe, work, np, mode, tasks, kib, extra=()):
    """(elapsed seconds of mpirun, what the output says) of one run."""
    out = os.path.join(work, "w.h5")
    start = time.monotonic()
    sh(["mpirun", "-n", str(np), "--bind-to", "none", exe, "--tasks", str(tasks),
        "--record-kib", str(kib), "--write", mode, *extra, "--output", out, "--force",
        "--quiet"])
    elapsed = time.monotonic() - start
    info = json.loads(sh(["/usr/bin/python3", "-c", INFO, out]).stdout)
    os.remove(out)
    if mode == "ranks" and not info["contiguous"]:
        raise RuntimeError(f"--write ranks gave a chunked field: not written in place ({info})")
    return elapsed, info


def startup(sh, exe, work, reps, ranks, kib):
    """Median elapsed time of a run of one record per rank: {(np, mode): s}."""
    base = {}
    for np in ranks:
        for mode in MODES:
            base[(np, mode)] = statistics.median(
                one(sh, exe, work, np, mode, np, kib)[0] for _ in range(reps))
    return base


def row(kib, np, mode, tasks, runs, base, label=""):
    nbytes = tasks * kib * 1024
    wall = statistics.median(r[1]["wall"] for r in runs)
    net = statistics.median(r[0] for r in runs) - base
    return {"record_kib": kib, "ranks": np, "mode": mode, "tasks": tasks, "case": label,
            "seconds": [r[1]["wall"] for r in runs], "elapsed": [r[0] for r in runs],
            "startup": base, "mb_per_s": nbytes / wall / 1e6,
            "mb_per_s_end": nbytes / net / 1e6 if net > 0 else float("nan"),
            "ranges": int(statistics.median(r[1]["ranges"] for r in runs)),
            "writers": runs[-1][1]["writers"]}


def disk(work, mib):
    """The disk under the output, without MPI or HDF5: MB/s of 1 MiB writes
    synced once at the end, and the milliseconds of a 16 KiB write +
    fdatasync (what ranks mode pays per range)."""
    path = os.path.join(work, "disk.bin")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        block = b"\x5a" * (1 << 20)
        start = time.perf_counter()
        for i in range(mib):
            os.pwrite(fd, block, i << 20)
        os.fdatasync(fd)
        stream = mib * (1 << 20) / (time.perf_counter() - start) / 1e6
        small, lat = b"\xa5" * 16384, []
        for i in range(400):
            start = time.perf_counter()
            os.pwrite(fd, small, i * 16384)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.remove(path)
    lat.sort()
    return {"stream_mb_per_s": stream, "sync_ms_median": lat[len(lat) // 2] * 1e3,
            "sync_ms_p90": lat[len(lat) * 9 // 10] * 1e3}


def writers(sh, exe, work, reps, quick):
    """Every row: each record size x rank count x mode, the runs of one
    configuration taken back to back with the two modes alternating, so a
    change of load hits both alike."""
    total_mib = 64 if quick else 1024
    ranks = (1, 2, 8) if quick else (1, 2, 4, 8)
    sizes = (1, 64, 1024)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
           "load": os.getloadavg(), "reps": reps, "total_mib": total_mib,
           "disk": disk(work, total_mib), "rows": [], "sync": []}
    for kib in sizes:
        base = startup(sh, exe, work, reps, ranks, kib)
        tasks = total_mib * 1024 // kib
        for np in ranks:
            runs = {m: [] for m in MODES}
            for _ in range(reps):
                for mode in MODES:
                    runs[mode].append(one(sh, exe, work, np, mode, tasks, kib))
            for mode in MODES:
                res["rows"].append(row(kib, np, mode, tasks, runs[mode], base[(np, mode)]))
            res["load_max"] = max(res.get("load_max", 0.0), os.getloadavg()[0])
            sys.stderr.write(f"funnel writers: {kib} KiB, {np} ranks done\n")
    # The fdatasync price: small records in small ranges.
    tasks = (16 if quick else 64) * 1024
    base = startup(sh, exe, work, reps, (2, 8), 1)
    for np in (2, 8):
        runs = {m: [] for m in MODES}
        for _ in range(reps):
            for mode in MODES:
                runs[mode].append(one(sh, exe, work, np, mode, tasks, 1,
                                      ["--schedule", "dynamic", "--chunk", "16"]))
        for mode in MODES:
            res["sync"].append(row(1, np, mode, tasks, runs[mode], base[(np, mode)],
                                   "dynamic, chunk 16"))
    res["load_end"] = os.getloadavg()
    res["crossover"] = crossover(res["rows"])
    return res


def crossover(rows):
    """Per record size: the fewest ranks at which ranks mode writes faster
    than the funnel (by mpmap_run's time and end to end), None if never."""
    out = {}
    for kib in sorted({r["record_kib"] for r in rows}):
        by = {(r["ranks"], r["mode"]): r for r in rows if r["record_kib"] == kib}
        found = {}
        for key in ("mb_per_s", "mb_per_s_end"):
            found[key] = next((np for np in sorted({n for n, _ in by})
                               if by[(np, "ranks")][key] > by[(np, "rank0")][key]), None)
        out[str(kib)] = found
    return out


def fmt_runs(xs):
    return ", ".join(f"{x:.3f}" for x in xs)


def markdown(w):
    d = w["disk"]
    lines = [
        "## The funnel against in-place writing (`--write rank0` vs `--write ranks`)", "",
        f"{w['date']}, {w['cores']} cores, load average {w['load'][0]:.2f} -> "
        f"{w['load_end'][0]:.2f} (highest seen between configurations "
        f"{w.get('load_max', float('nan')):.2f}); medians of {w['reps']} runs of "
        f"{w['total_mib']} MiB each. "
        "Produced by `bench/funnel_run.py` (`bench/funnel_writers.py`).", "",
        "MB/s of records into the output, all ranks together. *run*: by mpmap_run's time "
        "(the output's provenance: no start-up, no final commit). *end to end*: by mpirun's "
        "elapsed time less that of a run of one record per rank in the same mode and rank "
        "count, so the commit's fsync of the funnel's file is counted too. *ranges*: rows of "
        "`/trace`, each one fdatasync() in ranks mode; *writers*: the ranks that ran them.", "",
        f"Yardstick, the disk alone (Python, no MPI, no HDF5): {d['stream_mb_per_s']:.0f} MB/s "
        f"of 1 MiB writes synced once at the end; a 16 KiB write + fdatasync "
        f"{d['sync_ms_median']:.2f} ms (median; p90 {d['sync_ms_p90']:.2f} ms).", "",
        "| record | ranks | mode | records | MB/s run | MB/s end to end | ranges | writers | "
        "runs (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in w["rows"]:
        lines.append(f"| {r['record_kib']} KiB | {r['ranks']} | {r['mode']} | {r['tasks']} | "
                     f"{r['mb_per_s']:.0f} | {r['mb_per_s_end']:.0f} | {r['ranges']} | "
                     f"{len(r['writers'])} | {fmt_runs(r['seconds'])} |")
    lines += ["", "Crossover (fewest ranks at which `--write ranks` writes faster than the "
              "funnel; '-' = not within the rank counts measured):", "",
              "| record | by run time | end to end |", "| --- | --- | --- |"]
    for kib, c in w["crossover"].items():
        lines.append(f"| {kib} KiB | {c['mb_per_s'] or '-'} | {c['mb_per_s_end'] or '-'} |")
    lines += ["", "The fdatasync price: 1 KiB records in ranges of 16 records "
              "(`--schedule dynamic --chunk 16`), one fdatasync per 16 KiB in ranks mode.", "",
              "| ranks | mode | records | ranges | MB/s run | MB/s end to end | runs (s) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in w["sync"]:
        lines.append(f"| {r['ranks']} | {r['mode']} | {r['tasks']} | {r['ranges']} | "
                     f"{r['mb_per_s']:.0f} | {r['mb_per_s_end']:.0f} | "
                     f"{fmt_runs(r['seconds'])} |")
    lines += ["", *reading(w)]
    return "\n".join(lines) + "\n"


def ratio(rows, np, kib, key="mb_per_s"):
    by = {r["mode"]: r[key] for r in rows if r["ranks"] == np and r["record_kib"] == kib}
    return by["ranks"] / by["rank0"]


def reading(w):
    """What the figures say, and what a 2-core machine with one disk cannot say."""
    top = max(r["ranks"] for r in w["rows"])
    sizes = sorted({r["record_kib"] for r in w["rows"]})
    one_rank = ", ".join(f"{ratio(w['rows'], 1, k):.1f}x ({k} KiB)" for k in sizes)
    most = ", ".join(f"{ratio(w['rows'], top, k):.1f}x ({k} KiB)" for k in sizes)
    sync = ", ".join(f"{ratio(w['sync'], r['ranks'], 1):.2f}x at {r['ranks']} ranks"
                     for r in w["sync"] if r["mode"] == "ranks")
    per_range = []
    for r in (r for r in w["sync"] if r["mode"] == "ranks"):
        funnel = next(f for f in w["sync"] if f["mode"] == "rank0" and f["ranks"] == r["ranks"])
        extra = statistics.median(r["seconds"]) - statistics.median(funnel["seconds"])
        per_range.append(f"{extra / r['ranges'] * 1e3:.3f} ms at {r['ranks']} ranks")
    best = max((r for r in w["rows"] if r["mode"] == "ranks"), key=lambda r: r["mb_per_s"])
    noisy = []
    if max(w["load"][0], w["load_end"][0], w.get("load_max", 0.0)) > 3:
        noisy = ["* The load average passed 3 during these runs (other work on the machine, "
                 "2 cores): single runs vary by up to 2x (the *runs* column); read the ratios "
                 "to a factor of about 2, not to the digit."]
    return [
        "### Reading", "", *noisy,
        f"* Ranks mode against the funnel, by run time: {one_rank} at 1 rank; {most} at "
        f"{top} ranks. At one rank the difference is the funnel's own work per byte: it "
        "appends every record to the checkpoint and writes it into the HDF5 file (each byte "
        "written twice, CRC'd once), where ranks mode writes each byte once with pwrite() "
        "and logs ranges only.",
        f"* The fdatasync per range, with 16 KiB ranges: ranks mode writes {sync} the "
        f"funnel's rate (below 1: slower): {', '.join(per_range)} more per range than the "
        f"funnel, against {w['disk']['sync_ms_median']:.3f} ms for a 16 KiB write + "
        "fdatasync on this disk alone. With the default guided schedule ranges are "
        "large and few (the *ranges* column), and the syncs do not show.",
        f"* The best in-place aggregate, {best['mb_per_s']:.0f} MB/s ({best['record_kib']} KiB "
        f"records, {best['ranks']} ranks), against the yardstick's "
        f"{w['disk']['stream_mb_per_s']:.0f} MB/s: this is a virtual disk whose syncs return "
        "once the host holds the data, so no figure here is bound by a physical disk. The "
        "funnel's rate falls as ranks are added here, most likely because its rank 0 "
        "shares 2 CPUs with the producers.",
        "* What 2 cores and one local disk can show: the per-byte cost on rank 0 of the "
        "funnel against writing in place, and the price of a sync per range. What they "
        "cannot: more than 2 ranks share 2 CPUs, one page cache and one virtual disk, so "
        "the 4- and 8-rank rows measure contention, not added bandwidth; the funnel's "
        "records travel through shared memory here, not through rank 0's network link, "
        "which caps the funnel on a real cluster; a parallel file system's aggregate "
        "bandwidth, which grows with the nodes writing in place, is not here to measure. "
        "This disk's fdatasync returns in a fraction of a millisecond (the yardstick "
        "above); on a spinning disk or a parallel file system it costs milliseconds, so the "
        "price of small ranges is a lower bound.",
    ]
