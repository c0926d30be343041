"""Rows 12 and 13 of the harness: mpmap against compiled yardsticks.

12. knn_query -n 2 against nanoflann (bench/knn_nanoflann.cpp), a C++ KD-tree
    answering the same queries over the same HDF5 file with 2 threads; both
    must return the same neighbours.
13. mc_pi -n 1 against the Philox bound (bench/philox_bound.c): the fastest
    loop drawing the same Philox4x32-10 blocks and making the same in-circle
    test on one core; both must count the same hits.

Both compare whole processes net of start-up: every program also runs on a
problem so small that its run is all start-up (MPI, HDF5, reading, writing),
alternated with the real runs, and the median of those runs is subtracted
from the median of the real ones. What is left is the time the work costs
inside each program, which is what the targets are about.

The helpers come from harness.py (run through it, never on its own).
"""
import resource

from harness import (alternate, fmt_rate, fmt_s, fmt_x, h5_attr, h5_data, json_line, knn_data,
                     median, mpirun, row, run, uniform_knn_file)

KNN_K = 5
KNN_LEAF = 16  # nanoflann's leaf size: 16-32 within noise on this data, 8-12 slower
PI_SEED = 1
PI_TASKS = 1000


def net(samples, startup):
    """Median of the real runs minus the median start-up, never below a millisecond."""
    return max(median(samples) - median(startup), 1e-3)


def with_cpu(fn):
    """Runs fn() and returns (its result, CPU seconds of the processes it ran and waited for).
    On a shared machine a one-core program's CPU time varies far less than its wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tiny_knn_data(s):
    """16 points and 4 queries in 8-D: a knn run that is all start-up."""
    return uniform_knn_file(s, "knn_tiny.h5", 16, 4, seed=11)


def compare_neighbours(ours_h5, theirs_h5, data_h5):
    """(rows identical, rows differing only in tie order, rows really different).

    A row may differ only where points are equally distant: nanoflann admits a
    point to a full result set only when it is strictly nearer than the k-th,
    so on an exact tie at the k-th place it keeps the row it met first in tree
    order, where knn_query keeps the lower row. Such a row must have bitwise
    the same distances, the same rows strictly nearer than the k-th distance,
    and nanoflann's extra rows must really lie at their reported distance.
    """
    import numpy as np
    oi, od = h5_data(ours_h5, "/index"), h5_data(ours_h5, "/distance")
    ti, td = h5_data(theirs_h5, "/index"), h5_data(theirs_h5, "/distance")
    if oi.shape != ti.shape or od.shape != td.shape:
        return 0, 0, -1
    differ = np.flatnonzero((oi != ti).any(axis=1) | (od != td).any(axis=1))
    if differ.size == 0:
        return len(oi), 0, 0
    data, queries = h5_data(data_h5, "/data"), h5_data(data_h5, "/queries")
    ties = 0
    for q in differ:
        kth = od[q, -1]
        same_dist = np.array_equal(od[q], td[q])
        same_inner = set(oi[q][od[q] < kth]) == set(ti[q][td[q] < kth])
        real = np.sqrt(((data[ti[q]] - queries[q]) ** 2).sum(axis=1))
        genuine = np.allclose(real, td[q], rtol=1e-12, atol=0)
        ties += bool(same_dist and same_inner and genuine)
    return len(oi) - differ.size, ties, differ.size - ties


def bench_knn_nanoflann(s):
    """12. knn_query -n 2 vs nanoflann with 2 threads, same file, net of start-up."""
    exe, nano = s.app("knn_query"), s.prog("knn_nanoflann")
    data, tiny = knn_data(s), tiny_knn_data(s)
    out, nano_out = s.tmp("knn_mpmap.h5"), s.tmp("knn_nanoflann.h5")
    scratch = s.tmp("knn_tiny_out.h5")
    times = {}

    def mpmap(src, dest):
        return lambda: run(mpirun(2, [exe, "--data", f"{src}:/data", "--queries", f"{src}:/queries",
                                      "-k", KNN_K, "--output", dest, "--force", "--quiet"]), s)[0]

    def nanoflann(src, dest):
        def once():
            wall, stdout, _ = run([nano, f"{src}:/data", f"{src}:/queries", KNN_K, dest, 2,
                                   KNN_LEAF], s)
            if src == data:
                times.update(json_line(stdout))
            return wall
        return once

    r = alternate(s.reps, {"mpmap": mpmap(data, out), "mpmap_startup": mpmap(tiny, scratch),
                           "nanoflann": nanoflann(data, nano_out),
                           "nanoflann_startup": nanoflann(tiny, scratch)})
    m, b = net(r["mpmap"], r["mpmap_startup"]), net(r["nanoflann"], r["nanoflann_startup"])
    whole = median(r["nanoflann"]) / median(r["mpmap"])
    same, ties, wrong = compare_neighbours(out, nano_out, data)
    raw = {"mpmap_net_s": m, "nanoflann_net_s": b, "samples": r, "nanoflann_phases_s": times,
           "rows_identical": same, "rows_tie_order": ties, "rows_different": wrong,
           "k": KNN_K, "leaf_size": KNN_LEAF}
    points, queries = times.get("points", 0), times.get("queries", 0)
    return [
        row("knn_nanoflann", f"12. kNN {queries / 1e3:.0f}k queries, {points / 1e3:.0f}k points, "
            f"8-D, k={KNN_K}: -n 2 vs nanoflann 2 threads (whole process net of start-up)",
            fmt_s(m), fmt_s(b), fmt_x(b / m), ">= 1x", b / m >= 1,
            f"nanoflann 1.4.3, leaf {KNN_LEAF}, L2_Simple, g++ -O3 -march=native; "
            f"tree {times.get('build_s', 0):.3g} s + queries {times.get('query_s', 0):.3g} s; "
            f"start-up mpmap {median(r['mpmap_startup']):.3g} s, nanoflann "
            f"{median(r['nanoflann_startup']):.3g} s; whole process {whole:.3g}x"),
        row("knn_nanoflann", "12. same neighbours as nanoflann (queries that differ)",
            "shape differs" if wrong < 0 else str(wrong), f"{ties} tie-order rows", "", "0",
            wrong == 0, "indices and distances bitwise; a tie-order row differs only in which "
            "equally distant points fill the last places"),
    ], raw


def bench_philox_bound(s):
    """13. mc_pi -n 1 samples/s net of start-up, as a fraction of the Philox bound's."""
    exe, bound = s.app("mc_pi"), s.prog("philox_bound")
    n = 3e9 if s.quick else 1e10
    out, scratch = s.tmp("mc_pi_bound.h5"), s.tmp("mc_pi_startup.h5")
    found = {}

    def mpmap(samples, dest):
        cmd = mpirun(1, [exe, "--samples", f"{samples:.0f}", "--tasks", PI_TASKS, "--seed",
                         PI_SEED, "--output", dest, "--force", "--quiet"])
        return lambda: with_cpu(lambda: run(cmd, s)[0])

    def loop():
        res, cpu = with_cpu(lambda: json_line(run([bound, f"{n:.0f}", PI_TASKS, PI_SEED], s)[1]))
        found.update(res)
        return res["loop_seconds"], cpu

    # The start-up run keeps the 1000 tasks (one point each): the same
    # dispatch and /hits output, no sampling to speak of. Every run gives
    # (wall seconds, CPU seconds); the bound's wall time is its loop's.
    r = alternate(s.reps, {"mpmap": mpmap(n, out), "mpmap_startup": mpmap(PI_TASKS, scratch),
                           "bound": loop})
    wall = {k: [x[0] for x in v] for k, v in r.items()}
    cpu = {k: [x[1] for x in v] for k, v in r.items()}
    m = n / net(wall["mpmap"], wall["mpmap_startup"])
    b = n / median(wall["bound"])
    frac = m / b
    # The same fraction in CPU seconds: mc_pi's net of its start-up run's,
    # the bound's whole process (its start-up is a few milliseconds).
    frac_cpu = median(cpu["bound"]) / net(cpu["mpmap"], cpu["mpmap_startup"])
    hits = int(h5_attr(out, "hits"))
    inner = n / float(h5_attr(out, "mpmap_wall_time"))
    path = h5_attr(out, "kernel_path")
    path = path.decode() if isinstance(path, bytes) else str(path)
    raw = {"samples": n, "mpmap_samples_per_s": m, "bound_samples_per_s": b, "fraction": frac,
           "fraction_cpu": frac_cpu, "mpmap_inner_samples_per_s": inner, "wall_s": wall,
           "cpu_s": cpu, "hits_mpmap": hits,
           "hits_bound": found.get("hits"), "paths": [path, found.get("path")]}
    return [
        row("philox_bound", f"13. mc_pi -n 1, {n:.0e} samples: samples/s (whole process net of "
            "start-up) / Philox bound on one core", fmt_rate(m, "/s"), fmt_rate(b, "/s"),
            fmt_x(frac), ">= 0.9x", frac >= 0.9,
            f"kernel {path} vs bound {found.get('path')}; in CPU seconds {frac_cpu:.3g}x; "
            f"by mpmap_wall_time {inner / b:.3g}x; start-up {median(wall['mpmap_startup']):.3g} s"),
        row("philox_bound", "13. same hit count as the Philox bound (same random numbers)",
            str(hits), str(found.get("hits")), "", "equal", hits == found.get("hits")),
    ], raw
