"""Performance harness of mpmap (run it through bench/run.sh, which builds first).

Every figure is a ratio measured in this run: mpmap and its baseline run
alternately, several times, and the medians are compared. Results go to
results.md (the table), results.json (raw medians and samples) and PNG plots.

Every row also records the machine's load and the spread of its repetitions;
a row measured while other work shared the cores, or whose repetitions
disagree, is run again and then marked NOISY rather than PASS or FAIL
(verdict.py says how). --hog runs a busy process beside the bench to check
that the verdicts hold: results then go to OUT/hog and are compared with
OUT/results.json.

A benchmark whose app, program or Python package is missing gives an "n/a"
row with the reason. The exit code is 0 whatever the figures; 1 only when the
harness itself raised an unexpected error.
"""
import argparse
import json
import os
import platform
import re
import sys
import time
import traceback

# native_baselines.py (rows 12-13) and imbalance_rows.py (row 8) import their
# helpers from "harness": the same module object, also when this file runs as
# the main script.
sys.modules.setdefault("harness", sys.modules[__name__])

import machine  # noqa: E402
import verdict  # noqa: E402
from attempts import compare_with_quiet, run_benchmark  # noqa: E402
from plots import plot_all  # noqa: E402
from runner import (Settings, Skip, alternate, h5_attr, h5_data, json_line, median,  # noqa: E402
                    mpirun, need_python, python_baseline, range_values, record, run)
from table import fmt_rate, fmt_s, fmt_x, info_row, markdown, na_row, row  # noqa: E402

CORES = os.cpu_count() or 1


# ---------------------------------------------------------------- data

def kde_data(s):
    """10 000 x 2 standard normal samples, as HDF5 (/samples) and raw float64."""
    import h5py
    import numpy as np
    h5, raw = s.tmp("kde_data.h5"), s.tmp("kde_data.f64")
    if not (os.path.exists(h5) and os.path.exists(raw)):
        x = np.random.default_rng(20240601).standard_normal((10000, 2))
        with h5py.File(h5, "w") as f:
            f["samples"] = x
        x.astype("<f8").tofile(raw)
    return h5, raw, 10000, 2


def uniform_knn_file(s, name, points, queries, seed, dim=8):
    """An input for knn_query and its baselines: uniform points and queries
    in [0,1)^dim as /data and /queries, written once per bench run."""
    import h5py
    import numpy as np
    path = s.tmp(name)
    if not os.path.exists(path):
        rng = np.random.default_rng(seed)
        with h5py.File(path, "w") as f:
            f["data"] = rng.random((points, dim))
            f["queries"] = rng.random((queries, dim))
    return path


def knn_data(s):
    """200 000 uniform points and 100 000 uniform queries in 8-D."""
    return uniform_knn_file(s, "knn_data.h5", 200000, 100000, seed=7)


# ---------------------------------------------------------------- benchmarks

def bench_kde_pool(s):
    """1. Hypercube width sweep: kde_sweep vs Pool(2) of a plain Python loop."""
    exe = s.app("kde_sweep")
    out = s.tmp("kde_pool.h5")

    def mpmap():
        return run(mpirun(2, [exe, "--samples", 10000, "--widths", "1.0:1.2:100",
                              "--output", out, "--force", "--quiet"]), s)[0]

    def base():
        return python_baseline("kde_pool.py", ["--samples", 10000, "--widths", "1.0:1.2:100"], s)[0]

    r = alternate(s.reps, {"mpmap": mpmap, "baseline": base})
    m, b = median(r["mpmap"]), median(r["baseline"])
    raw = {"mpmap_s": m, "baseline_s": b, "samples": r}
    return [row("kde_pool", "1. KDE hypercube sweep, 100 widths (whole process)", fmt_s(m), fmt_s(b),
                fmt_x(b / m), ">= 5x", b / m >= 5, "baseline: Pool(2), Python loop")], raw


def exact_cv_scores(x, widths, folds):
    """Brute-force K-fold CV log-likelihood (log-sum-exp), the reference for both."""
    import numpy as np
    from scipy.special import logsumexp
    n, d = x.shape
    scores = np.zeros(len(widths))
    for idx in np.array_split(np.arange(n), folds):
        mask = np.ones(n, bool)
        mask[idx] = False
        train, test = x[mask], x[idx]
        d2 = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
        for i, h in enumerate(widths):
            ll = logsumexp(-d2 / (2 * h * h), axis=1) - np.log(len(train)) \
                - d / 2 * np.log(2 * np.pi * h * h)
            scores[i] += ll.sum()
    return scores / folds


def kde_tiny(s):
    """48 x 2 standard normal samples: a CV run that is all start-up."""
    import h5py
    import numpy as np
    h5 = s.tmp("kde_tiny.h5")
    if not os.path.exists(h5):
        with h5py.File(h5, "w") as f:
            f["samples"] = np.random.default_rng(20240602).standard_normal((48, 2))
    return h5


def bench_kde_gridsearch(s):
    """2. Gaussian CV bandwidth search: kde_sweep --cv 5 vs scikit-learn GridSearchCV,
    whole processes net of start-up (each side also runs the same search on 48 rows,
    a run that is all start-up: MPI or Python, imports, worker pools, reading, writing)."""
    need_python("sklearn", "h5py", "scipy")
    import numpy as np
    exe = s.app("kde_sweep")
    h5, _, _, _ = kde_data(s)
    tiny = kde_tiny(s)
    # All 16 widths even with --quick: the same search as the baseline's.
    k = 16
    widths = range_values(0.05, 1.0, k)
    wfile = s.tmp("gridsearch_widths.json")
    with open(wfile, "w") as f:
        json.dump(widths, f)
    out, scratch = s.tmp("kde_cv.h5"), s.tmp("kde_cv_tiny.h5")
    sk = {}

    def mpmap(data, dest):
        return lambda: run(mpirun(2, [exe, "--kernel", "gaussian", "--cv", 5, "--widths",
                                      f"0.05:1.0:{k}", "--input", f"{data}:/samples", "--output",
                                      dest, "--force", "--quiet"]), s)[0]

    def base(data, keep):
        def once():
            wall, res = python_baseline("kde_gridsearch.py", [f"{data}:/samples", wfile, "--folds",
                                                              5, "--jobs", 2], s)
            if keep:
                sk.update(res)
            return wall
        return once

    # The baseline takes about 20 s a run: --quick runs it once, mpmap's
    # side (a fraction of a second) as often as the other rows.
    rm = alternate(s.reps, {"mpmap": mpmap(h5, out), "mpmap_startup": mpmap(tiny, scratch)})
    rb = alternate(1 if s.quick else s.slow_reps, {"baseline": base(h5, True),
                                                   "baseline_startup": base(tiny, False)})
    r = {**rm, **rb}
    m = max(median(r["mpmap"]) - median(r["mpmap_startup"]), 1e-3)
    b = max(median(r["baseline"]) - median(r["baseline_startup"]), 1e-3)
    whole = median(r["baseline"]) / median(r["mpmap"])
    ours = h5_data(out, "/cv_score")
    theirs = np.asarray(sk["mean_test_score"])
    exact = exact_cv_scores(h5_data(h5, "/samples"), widths, 5)
    rel_sk = np.abs(ours - theirs) / np.abs(theirs)
    rel_exact = np.abs(ours - exact) / np.abs(exact)
    rel_sk_exact = np.abs(theirs - exact) / np.abs(exact)
    # scikit-learn's tree-based KDE can lose most of the density of an
    # isolated held-out row at small widths (its node bounds prune terms that
    # matter when every term is tiny: scikit-learn issues #7492 and #27186).
    # Scores are compared with sklearn's wherever sklearn agrees with the
    # brute-force sum; where it does not, mpmap must agree with brute force.
    sk_exact = rel_sk_exact <= 1e-6
    rel_where_exact = rel_sk[sk_exact].max() if sk_exact.any() else float("nan")
    sk_off = [widths[i] for i in np.flatnonzero(~sk_exact)]
    same_best = int(np.argmax(ours)) == int(np.argmax(theirs))
    raw = {"mpmap_s": m, "baseline_s": b, "whole_process_ratio": whole,
           "startup_s": {"mpmap": median(r["mpmap_startup"]),
                         "baseline": median(r["baseline_startup"])},
           "samples": r, "widths": widths,
           "cv_score_mpmap": ours.tolist(), "cv_score_sklearn": theirs.tolist(),
           "cv_score_exact": exact.tolist(), "max_rel_diff_sklearn": float(rel_sk.max()),
           "max_rel_diff_sklearn_where_exact": float(rel_where_exact),
           "max_rel_diff_exact": float(rel_exact.max()),
           "max_rel_diff_sklearn_vs_exact": float(rel_sk_exact.max()),
           "widths_where_sklearn_is_off": sk_off, "same_best_width": same_best}
    if sk_off:
        note = (f"sklearn's own error vs brute force reaches {rel_sk_exact.max():.2g} at "
                f"h={', '.join(f'{w:.4g}' for w in sk_off)} (scikit-learn #7492, #27186); "
                f"there mpmap equals brute force")
    else:
        note = "sklearn equals brute force at every width"
    return [
        row("kde_gridsearch", f"2. Gaussian 5-fold CV, {k} widths (whole process net of start-up)",
            fmt_s(m), fmt_s(b), fmt_x(b / m), ">= 100x", b / m >= 100,
            f"baseline: GridSearchCV(KernelDensity), n_jobs=2; start-up mpmap "
            f"{median(r['mpmap_startup']):.3g} s, sklearn {median(r['baseline_startup']):.3g} s; "
            f"whole process {whole:.3g}x", series=["mpmap", "baseline"]),
        row("kde_gridsearch", "2. CV scores equal sklearn's (max rel. diff where sklearn is exact)",
            f"{rel_where_exact:.2g}", f"{int(sk_exact.sum())} of {k} widths", "", "<= 1e-6",
            bool(rel_where_exact <= 1e-6) and bool(rel_exact.max() <= 1e-6), note),
        row("kde_gridsearch", "2. same best bandwidth as GridSearchCV",
            f"{widths[int(np.argmax(ours))]:.4g}", f"{widths[int(np.argmax(theirs))]:.4g}", "",
            "equal", same_best),
        row("kde_gridsearch", "2. CV scores equal exact brute force (max rel. diff)",
            f"{rel_exact.max():.2g}", "numpy log-sum-exp", "", "<= 1e-12", rel_exact.max() <= 1e-12),
    ], raw


def bench_mc_pi(s):
    """3. Monte Carlo pi: mc_pi vs a Pool of numpy chunks, samples per second."""
    exe = s.app("mc_pi")
    out = s.tmp("mc_pi.h5")
    n_mpmap = 2e9
    n_base = 5e7 if s.quick else 4e8

    def mpmap():
        wall = run(mpirun(2, [exe, "--samples", f"{n_mpmap:.0e}", "--tasks", 1000, "--seed", 1,
                              "--output", out, "--force", "--quiet"]), s)[0]
        return n_mpmap / wall

    def base():
        wall, _ = python_baseline("mc_pi_numpy.py", ["--samples", n_base, "--processes", 2], s)
        return n_base / wall

    r = alternate(s.reps, {"mpmap": mpmap, "baseline": base})
    m, b = median(r["mpmap"]), median(r["baseline"])
    pi = float(h5_attr(out, "pi"))
    raw = {"mpmap_samples_per_s": m, "baseline_samples_per_s": b, "samples": r, "pi": pi}
    return [row("mc_pi", "3. Monte Carlo pi, samples/s (whole process)", fmt_rate(m, "/s"),
                fmt_rate(b, "/s"), fmt_x(m / b), ">= 10x", m / b >= 10,
                f"pi = {pi:.6f}; baseline: Pool(2) of numpy chunks")], raw


def bench_knn(s):
    """4. k nearest neighbours: knn_query vs scipy cKDTree (build + query, workers=2)."""
    need_python("scipy", "h5py")
    import numpy as np
    exe = s.app("knn_query")
    data = knn_data(s)
    out, npy = s.tmp("knn.h5"), s.tmp("knn_ckdtree.npy")

    def mpmap():
        return run(mpirun(2, [exe, "--data", f"{data}:/data", "--queries", f"{data}:/queries",
                              "-k", 5, "--output", out, "--force", "--quiet"]), s)[0]

    def base():
        return python_baseline("knn_ckdtree.py", [f"{data}:/data", f"{data}:/queries", "-k", 5,
                                                  "--workers", 2, "--output", npy], s)[0]

    r = alternate(s.reps, {"mpmap": mpmap, "baseline": base})
    m, b = median(r["mpmap"]), median(r["baseline"])
    ours, theirs = h5_data(out, "/index").astype(np.int64), np.load(npy)
    mismatched = int((ours != theirs).any(axis=1).sum()) if ours.shape == theirs.shape else -1
    raw = {"mpmap_s": m, "baseline_s": b, "samples": r, "rows_with_other_indices": mismatched}
    return [
        row("knn", "4. kNN 100k queries, 200k points, 8-D, k=5 (whole process)", fmt_s(m), fmt_s(b),
            fmt_x(b / m), ">= 1x", b / m >= 1, "baseline: cKDTree build + query, workers=2"),
        row("knn", "4. same indices as cKDTree (queries that differ)",
            "shape differs" if mismatched < 0 else str(mismatched), "", "", "0", mismatched == 0),
    ], raw


def bench_omp(s):
    """5. Same CV kernel under OpenMP guided vs mpmap on one node, compute time only."""
    import numpy as np
    exe = s.app("kde_sweep")
    omp = s.prog("omp_kde_cv")
    h5, f64, n, d = kde_data(s)
    # 64 widths: with 16 the compute took ~0.17 s and its run-to-run spread
    # (5-8%) was larger than the margin the 1.00 target asks to resolve.
    spec = "0.05:1.0:64"
    out = s.tmp("kde_omp_cmp.h5")
    scores = {}

    def mpmap():
        run(mpirun(2, [exe, "--kernel", "gaussian", "--cv", 5, "--widths", spec, "--input",
                       f"{h5}:/samples", "--output", out, "--force", "--quiet"]), s)
        return float(h5_attr(out, "mpmap_wall_time"))

    def base(schedule):
        def once():
            res = json_line(run([omp, f64, n, d, 5, spec], s,
                                env={"OMP_NUM_THREADS": "2", "OMP_SCHEDULE": schedule})[1])
            scores[schedule] = res["scores"]
            return res["loop_seconds"]
        return once

    # Runs of about half a second on a shared 2-core machine vary by ~10%:
    # more of them than the other cheap benchmarks get. OpenMP's dynamic,1
    # shows what the best OpenMP loop does here (a width's cost depends on
    # the width, which guided's large first chunk does not see).
    r = alternate(s.reps + 2, {"mpmap": mpmap, "baseline": base("guided"),
                               "omp_dynamic": base("dynamic,1")})
    m, b, bd = median(r["mpmap"]), median(r["baseline"]), median(r["omp_dynamic"])
    ours = h5_data(out, "/cv_score")
    diff = max(float(np.max(np.abs(ours - np.asarray(v)))) for v in scores.values())
    raw = {"mpmap_s": m, "omp_s": b, "omp_dynamic_s": bd, "samples": r,
           "max_abs_score_diff": diff}
    same = f"scores bitwise equal: {'yes' if diff == 0 else f'no (max diff {diff:.2g})'}"
    return [row("omp", "5. Gaussian CV, 64 widths: OpenMP guided time / mpmap time (compute only)",
                fmt_s(m), fmt_s(b), fmt_x(b / m), ">= 1x", b / m >= 1.0,
                f"{same}; mpmap caps a chunk at 1/16 of the widths at -n 2",
                series=["mpmap", "baseline"]),
            info_row("omp", "5. same, OpenMP dynamic,1 time / mpmap time (compute only)",
                     fmt_s(m), fmt_s(bd), fmt_x(bd / m), same, series=["mpmap", "omp_dynamic"])], raw


def bench_dispatch(s):
    """6. Dispatch overhead: empty tasks, dynamic chunk 1 and guided; Pool(2) for scale."""
    exe = s.prog("dispatch")
    n_dyn = 5e5 if s.quick else 2e6
    n_pool = 20000 if s.quick else 50000
    n_rec = 1e8 if s.quick else 3e8
    r = alternate(s.reps, {
        "dynamic": lambda: json_line(run(mpirun(2, [exe, "dynamic", 1, f"{n_dyn:.0f}"]), s)[1]),
        "guided": lambda: json_line(run(mpirun(2, [exe, "guided", 1, "1e9"]), s)[1]),
        "records": lambda: json_line(run(mpirun(2, [exe, "guided", 1, f"{n_rec:.0f}", "--records"]),
                                         s)[1]),
        "pool": lambda: python_baseline("pool_dispatch.py", ["--tasks", n_pool], s)[1],
    }, figure=lambda name, x: x["chunks_per_s" if name == "dynamic" else "tasks_per_s"])
    dyn = median([x["chunks_per_s"] for x in r["dynamic"]])
    gui = median([x["tasks_per_s"] for x in r["guided"]])
    pool = median([x["tasks_per_s"] for x in r["pool"]])
    rec = median([x["tasks_per_s"] for x in r["records"]])
    raw = {"dynamic_chunks_per_s": dyn, "guided_tasks_per_s": gui, "pool_tasks_per_s": pool,
           "guided_records_tasks_per_s": rec, "samples": r}
    return [
        row("dispatch", f"6a. dynamic, chunk 1, {n_dyn:.0e} empty tasks: chunks/s",
            fmt_rate(dyn, "/s"), fmt_rate(pool, "/s"), fmt_x(dyn / pool), ">= 1M chunks/s",
            dyn >= 1e6, "baseline: Pool(2).map(noop, chunksize=1)", series=["dynamic"]),
        row("dispatch", "6b. guided, 1e9 empty tasks: tasks/s", fmt_rate(gui, "/s"),
            fmt_rate(pool, "/s"), fmt_x(gui / pool), ">= 50M tasks/s", gui >= 5e7,
            "no records: a chunk costs one call whatever its length", series=["guided"]),
        row("dispatch", f"6c. guided, {n_rec:.0e} tasks, 8-byte records to rank 0 in order: tasks/s",
            fmt_rate(rec, "/s"), fmt_rate(pool, "/s"), fmt_x(rec / pool), ">= 50M tasks/s",
            rec >= 5e7, "every record sent, ordered and checked by a sink", series=["records"]),
    ], raw


def speedup_bound(ranks, base):
    """The most that ranks can do over base ranks on this machine's cores."""
    return min(ranks, CORES) / min(base, CORES)


def bench_scaling(s):
    """7. Efficiency of the Gaussian CV sweep at -n 1, 2 and 8 (oversubscribed)."""
    exe = s.app("kde_sweep")
    h5, _, _, _ = kde_data(s)
    # A sweep of about a second at -n 1 (a few at -n 8): its last chunk, one
    # width of ~11 ms, is then a small part of the run.
    k = 128 if s.quick else 256
    widths = f"0.05:1.0:{k}"

    def at(n):
        def once():
            out = s.tmp(f"kde_scaling_{n}.h5")
            wall = run(mpirun(n, [exe, "--kernel", "gaussian", "--cv", 5, "--widths", widths,
                                  "--input", f"{h5}:/samples", "--output", out, "--force",
                                  "--quiet"]), s)[0]
            return {"whole": wall, "mpmap": float(h5_attr(out, "mpmap_wall_time"))}
        return once

    r = alternate(s.slow_reps, {1: at(1), 2: at(2), 8: at(8)}, figure=lambda n, x: x["mpmap"])
    med = {n: {key: median([x[key] for x in r[n]]) for key in ("whole", "mpmap")} for n in r}
    sp = med[1]["mpmap"] / med[2]["mpmap"]
    over = med[2]["mpmap"] / med[8]["mpmap"]
    sp_whole = med[1]["whole"] / med[2]["whole"]
    over_whole = med[2]["whole"] / med[8]["whole"]
    raw = {"widths": k, "medians": {str(n): v for n, v in med.items()},
           "samples": {str(n): v for n, v in r.items()}}
    return [
        row("scaling", f"7a. CV sweep ({k} widths) speed-up -n 2 / -n 1 (mpmap_wall_time)",
            fmt_s(med[2]["mpmap"]), fmt_s(med[1]["mpmap"]), fmt_x(sp), ">= 1.9x", sp >= 1.90,
            f"whole process: {sp_whole:.3g}x", series=[1, 2], bound=speedup_bound(2, 1)),
        row("scaling", "7b. throughput -n 8 (oversubscribed) / -n 2 (mpmap_wall_time)",
            fmt_s(med[8]["mpmap"]), fmt_s(med[2]["mpmap"]), fmt_x(over), ">= 0.95x", over >= 0.95,
            f"whole process: {over_whole:.3g}x", series=[2, 8], bound=speedup_bound(8, 2),
            bound_loaded=8 / 2),
    ], raw


def bench_memory(s):
    """9. mc_pi with 1e8 tasks: the largest resident set of any rank."""
    exe = s.app("mc_pi")
    if not os.access("/usr/bin/time", os.X_OK):
        raise Skip("n/a (/usr/bin/time missing: apt-get install time)")
    out = s.tmp("mc_pi_memory.h5")
    _, _, err = run(mpirun(2, ["/usr/bin/time", "-f", "maxrss_kb=%M", exe, "--samples", "1e9",
                               "--tasks", "1e8", "--output", out, "--force", "--quiet"]), s)
    rss = [int(line.split("=", 1)[1]) for line in err.splitlines() if line.startswith("maxrss_kb=")]
    if len(rss) != 2:
        raise Skip(f"n/a (expected 2 RSS figures from /usr/bin/time, got {len(rss)})")
    mb = max(rss) / 1024
    return [row("memory", "9. mc_pi --tasks 1e8 -n 2: max RSS of a rank", f"{mb:.0f} MB",
                ", ".join(f"{x / 1024:.0f}" for x in rss) + " MB", "", "<= 256 MB", mb <= 256)], \
        {"rss_kb": rss}


def bench_scale(s):
    """10. Dispatch at scale: sleeping tasks on 8..128 ranks (bench/scale_run.sh, see
    bench/results/scale.md). The script builds its own `scale` program in --build and writes
    bench/results/scale[_quick].{jsonl,json,png} next to itself."""
    here = os.path.dirname(os.path.abspath(__file__))
    run([os.path.join(here, "scale_run.sh")] + (["--quick"] if s.quick else []), s,
        env={"MPMAP_SCALE_BUILD": s.build})
    with open(os.path.join(here, "results", "scale_quick.json" if s.quick else "scale.json")) as f:
        summary = json.load(f)
    rows = [info_row("scale", f"10. {c['kind']} sleeping tasks, {c['schedule']}, {c['ranks']} ranks: "
                     "ideal / makespan", f"{c['efficiency']:.2f}", f"{c['chunks_per_s']:.0f} chunks/s",
                     note=f"load {c['load1'][0]:.0f}; see scale.md", bound=1.0)
            for c in summary["cases"] if c["kind"] == "10ms" or c["schedule"] == "guided"]
    return rows, summary


def bench_wordcount(s):
    """11. Keyed map-reduce: word_count against MR-MPI's wordfreq (Debian libmrmpi-dev) on the
    same Zipf corpus and ranks (bench/wordcount_bench.py), alternated; CPU time of all ranks,
    which a shared machine disturbs less than wall time."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = s.tmp("wordcount.json")
    _, stdout, _ = run(["/usr/bin/python3", os.path.join(here, "wordcount_bench.py"), "--word-count",
                        s.app("word_count"), "--megabytes", "100" if s.quick else "400", "--reps",
                        "2" if s.quick else "3", "--ranks", "2", "--json", out], s)
    # Its repetitions ("rep 0: NAME: 1.23 s, CPU 2.34 s, ...") give the noise figures.
    for name in ("mpmap word_count -n 2", "MR-MPI wordfreq -n 2"):
        pattern = rf"^rep \d+: {re.escape(name)}: [\d.]+ s, CPU ([\d.]+) s"
        record(name, [float(m) for m in re.findall(pattern, stdout, re.M)])
    with open(out) as f:
        r = json.load(f)
    mine = r["programs"].get("mpmap word_count -n 2")
    theirs = r["programs"].get("MR-MPI wordfreq -n 2")
    if not mine or not theirs:
        raise Skip("n/a (MR-MPI not installed: apt-get install libmrmpi-dev)")
    ratio = theirs["cpu"] / mine["cpu"]
    mb = r["megabytes"]
    return [row("wordcount", f"11. word_count vs MR-MPI wordfreq, {mb:.0f} MB, -n 2 (MB per CPU s)",
                f"{mb / mine['cpu']:.1f} MB/s", f"{mb / theirs['cpu']:.1f} MB/s", f"{ratio:.2f}x",
                ">= 2x", ratio >= 2.0,
                note=f"max RSS of a rank {mine['rss_mb']:.0f} vs {theirs['rss_mb']:.0f} MB"),
            row("wordcount", "11. same (count, word) list as MR-MPI", r["check"], "", "",
                "identical", r["identical"])], r


import imbalance_rows  # noqa: E402 (needs the helpers above)
import native_baselines  # noqa: E402

# Per benchmark, what its rows do not say themselves (verdict.py): "rows" are
# defaults for its timed rows (bound, series), the other keys override the
# verdict policy (spread_limit, others_limit, max_attempts).
BENCHMARKS = [
    ("kde_pool", "1. KDE hypercube sweep vs Pool", bench_kde_pool, {}),
    ("kde_gridsearch", "2. Gaussian CV vs scikit-learn", bench_kde_gridsearch, {}),
    ("mc_pi", "3. mc_pi vs numpy Pool", bench_mc_pi, {}),
    ("knn", "4. knn_query vs cKDTree", bench_knn, {}),
    ("omp", "5. mpmap vs OpenMP guided", bench_omp, {}),
    ("dispatch", "6. dispatch overhead", bench_dispatch, {}),
    ("scaling", "7. efficiency -n 1/2/8", bench_scaling, {}),
    ("imbalance", "8. imbalanced tasks", imbalance_rows.bench_imbalance, {}),
    ("memory", "9. memory of mc_pi, 1e8 tasks", bench_memory, {}),
    # Minutes of 8..128 ranks for information rows: flagged, never repeated.
    ("scale", "10. dispatch at scale (sleeping tasks, 8..128 ranks)", bench_scale,
     {"max_attempts": 1}),
    ("wordcount", "11. keyed map-reduce vs MR-MPI", bench_wordcount, {}),
    # The start-up runs of rows 12-13 are short and subtracted: their jitter
    # moves the net figure by a fraction of itself, so the real runs decide.
    ("knn_nanoflann", "12. knn_query vs nanoflann", native_baselines.bench_knn_nanoflann,
     {"rows": {"series": ["mpmap", "nanoflann"]}}),
    ("philox_bound", "13. mc_pi vs the Philox bound", native_baselines.bench_philox_bound,
     {"rows": {"series": ["mpmap", "bound"], "bound": 1.0}}),
]


def run_benchmarks(s, only):
    rows, raw, broken = [], {}, False
    for key, title, fn, opts in BENCHMARKS:
        if only and key not in only:
            continue
        print(f"harness: {title} ...", flush=True)
        t0 = time.perf_counter()
        try:
            got, raw[key] = run_benchmark(s, fn, opts)
            rows += got
        except Skip as e:
            rows.append(na_row(key, title, str(e)))
        except Exception as e:  # the harness's own bug: keep going, but say so
            traceback.print_exc()
            rows.append(na_row(key, title, f"harness error: {type(e).__name__}: {e}"))
            broken = True
        print(f"harness:   {time.perf_counter() - t0:.1f} s", flush=True)
    return rows, raw, broken


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller problems")
    ap.add_argument("--build", required=True, help="Release build tree (apps/ inside)")
    ap.add_argument("--progs", required=True, help="where run.sh put the benchmark programs")
    ap.add_argument("--out", required=True, help="results directory")
    ap.add_argument("--work", required=True, help="scratch directory for data and outputs")
    ap.add_argument("--only", default="", help="comma-separated benchmark keys (debugging)")
    ap.add_argument("--hog", action="store_true",
                    help="run a busy process beside the bench; results go to OUT/hog and are "
                         "compared with OUT/results.json")
    d = verdict.Policy()
    ap.add_argument("--spread-limit", type=float, default=d.spread_limit,
                    help="largest (max-min)/median of a row's repetitions (default %(default)s)")
    ap.add_argument("--others-limit", type=float, default=d.others_limit,
                    help="most runnable tasks of other work on average (default %(default)s)")
    ap.add_argument("--attempts", type=int, default=d.max_attempts,
                    help="runs of a benchmark whose rows are noisy (default %(default)s)")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds to wait at most for other work to stop before an attempt "
                         "(default %(default)s)")
    args = ap.parse_args()
    s = Settings(args)
    s.policy = verdict.Policy(spread_limit=args.spread_limit, others_limit=args.others_limit,
                              max_attempts=max(1, args.attempts), decisive=d.decisive)
    s.settle = args.settle
    quiet_json = os.path.join(args.out, "results.json")
    if args.hog:
        s.out = os.path.join(args.out, "hog")
    os.makedirs(s.out, exist_ok=True)
    os.makedirs(s.work, exist_ok=True)
    only = {k for k in args.only.split(",") if k}
    hog = machine.start_hog() if args.hog else None
    try:
        if hog:
            s.hog_pids = (hog.pid,)
            print(f"harness: CPU hog running beside the bench (pid {hog.pid})", flush=True)
        start, load_start = time.perf_counter(), os.getloadavg()
        rows, raw, broken = run_benchmarks(s, only)
    finally:
        machine.stop_hog(hog)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
            "cores": CORES, "quick": s.quick, "elapsed_s": time.perf_counter() - start,
            "load_start": list(load_start), "load_end": list(os.getloadavg()), "hog": bool(hog),
            "policy": s.policy.__dict__, "spread_measure": verdict.SPREAD_MEASURE}
    if hog:
        meta["disagreements_with_quiet_run"] = compare_with_quiet(rows, quiet_json)
    plots = plot_all(rows, raw, s)
    with open(os.path.join(s.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "raw": raw}, f, indent=1, default=str)
    table = markdown(rows, meta, plots)
    with open(os.path.join(s.out, "results.md"), "w") as f:
        f.write(table)
    print()
    print(table)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
