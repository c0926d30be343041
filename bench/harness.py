"""Performance harness of mpmap (run it through bench/run.sh, which builds first).

Every figure is a ratio measured in this run: mpmap and its baseline run
alternately, several times, and the medians are compared. Results go to
results.md (the table), results.json (raw medians and samples) and PNG plots.

A benchmark whose app, program or Python package is missing gives an "n/a"
row with the reason. The exit code is 0 whatever the figures; 1 only when the
harness itself raised an unexpected error.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

# native_baselines.py (rows 12-13) imports its helpers from "harness": the
# same module object, also when this file runs as the main script.
sys.modules.setdefault("harness", sys.modules[__name__])

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = os.path.join(HERE, "baselines")
PYTHON = "/usr/bin/python3"


class Skip(Exception):
    """A benchmark cannot run here (missing app, package, failed run): its row says why."""


# ---------------------------------------------------------------- settings

class Settings:
    def __init__(self, args):
        self.quick = args.quick
        self.build = args.build
        self.progs = args.progs
        self.out = args.out
        self.work = args.work
        self.reps = 3 if args.quick else 5          # cheap benchmarks
        self.slow_reps = 2 if args.quick else 3     # benchmarks of tens of seconds
        self.timeout = 600 if args.quick else 1800  # one process

    def app(self, name):
        path = os.path.join(self.build, "apps", name)
        if not os.access(path, os.X_OK):
            raise Skip(f"n/a (app missing: {name})")
        return path

    def prog(self, name):
        path = os.path.join(self.progs, name)
        if not os.access(path, os.X_OK):
            raise Skip(f"n/a (program missing: {name}, see {self.progs}/build.log)")
        return path

    def tmp(self, name):
        return os.path.join(self.work, name)


# ---------------------------------------------------------------- running

def run(cmd, s, env=None):
    """Runs cmd, returns (wall seconds, stdout, stderr); a failure raises Skip."""
    cmd = [str(c) for c in cmd]
    full_env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    full_env.update(env or {})
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=s.timeout, env=full_env)
    except subprocess.TimeoutExpired:
        raise Skip(f"n/a ({os.path.basename(cmd[3] if cmd[0] == 'mpirun' else cmd[-1])} "
                   f"timed out after {s.timeout} s)")
    except OSError as e:
        raise Skip(f"n/a (cannot run {cmd[0]}: {e})")
    wall = time.perf_counter() - start
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or [""])[-1]
        raise Skip(f"n/a ({' '.join(os.path.basename(c) for c in cmd[:5])}... exited "
                   f"{p.returncode}: {last[:160]})")
    return wall, p.stdout, p.stderr


def mpirun(n, args):
    cmd = ["mpirun", "-n", str(n)]
    if n > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    return cmd + [str(a) for a in args]


def json_line(text):
    """The last line of stdout that is a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Skip(f"n/a (no JSON result in output: {text.strip()[-120:]!r})")


def python_baseline(script, args, s):
    wall, out, _ = run([PYTHON, os.path.join(BASELINES, script)] + [str(a) for a in args], s)
    return wall, json_line(out)


def alternate(reps, runners):
    """Runs each runner reps times, interleaved (a b a b ...), returns name -> list of results."""
    results = {name: [] for name in runners}
    for _ in range(reps):
        for name, fn in runners.items():
            results[name].append(fn())
    return results


def median(values):
    return statistics.median(values)


def need_python(*modules):
    for m in modules:
        try:
            __import__(m)
        except ImportError:
            raise Skip(f"n/a (Python package missing: {m})")


def h5_attr(path, name):
    import h5py
    with h5py.File(path, "r") as f:
        if name not in f.attrs:
            raise Skip(f"n/a (attribute {name} missing in {os.path.basename(path)})")
        return f.attrs[name]


def h5_data(path, name):
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        if name not in f:
            raise Skip(f"n/a (dataset {name} missing in {os.path.basename(path)})")
        return np.asarray(f[name])


def range_values(a, b, k):
    """The widths of A:B:K exactly as mpmap_cli_range_value computes them."""
    return [a if i == 0 else b if i == k - 1 else min(b, a + i * (b - a) / (k - 1)) for i in range(k)]


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# ---------------------------------------------------------------- rows

def row(bench, name, mpmap, baseline, ratio, target, ok, note=""):
    return {"bench": bench, "name": name, "mpmap": mpmap, "baseline": baseline, "ratio": ratio,
            "target": target, "status": "PASS" if ok else "FAIL", "note": note}


def info_row(bench, name, mpmap, baseline="", ratio="", note=""):
    return {"bench": bench, "name": name, "mpmap": mpmap, "baseline": baseline, "ratio": ratio,
            "target": "", "status": "info", "note": note}


def na_row(bench, name, reason):
    return {"bench": bench, "name": name, "mpmap": "", "baseline": "", "ratio": "", "target": "",
            "status": reason if reason.startswith("n/a") else f"n/a ({reason})", "note": ""}


def fmt_s(x):
    return f"{x:.3g} s"


def fmt_rate(x, unit):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}{unit}"
    return f"{x:.3g} {unit}"


def fmt_x(x):
    return f"{x:.3g}x"


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


def knn_data(s):
    """200 000 uniform points and 100 000 uniform queries in 8-D."""
    import h5py
    import numpy as np
    path = s.tmp("knn_data.h5")
    if not os.path.exists(path):
        rng = np.random.default_rng(7)
        with h5py.File(path, "w") as f:
            f["data"] = rng.random((200000, 8))
            f["queries"] = rng.random((100000, 8))
    return path


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


def bench_kde_gridsearch(s):
    """2. Gaussian CV bandwidth search: kde_sweep --cv 5 vs scikit-learn GridSearchCV."""
    need_python("sklearn", "h5py", "scipy")
    import numpy as np
    exe = s.app("kde_sweep")
    h5, _, _, _ = kde_data(s)
    # All 16 widths even with --quick: with fewer, mpirun's start-up would
    # dominate mpmap's side and the ratio would not be the one of the target.
    k = 16
    widths = range_values(0.05, 1.0, k)
    wfile = s.tmp("gridsearch_widths.json")
    with open(wfile, "w") as f:
        json.dump(widths, f)
    out = s.tmp("kde_cv.h5")
    sk = {}

    def mpmap():
        return run(mpirun(2, [exe, "--kernel", "gaussian", "--cv", 5, "--widths", f"0.05:1.0:{k}",
                              "--input", f"{h5}:/samples", "--output", out, "--force", "--quiet"]),
                   s)[0]

    def base():
        wall, res = python_baseline("kde_gridsearch.py", [f"{h5}:/samples", wfile, "--folds", 5,
                                                          "--jobs", 2], s)
        sk.update(res)
        return wall

    # The baseline takes about a minute a run: --quick runs it once.
    r = alternate(1 if s.quick else s.slow_reps, {"mpmap": mpmap, "baseline": base})
    m, b = median(r["mpmap"]), median(r["baseline"])
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
    raw = {"mpmap_s": m, "baseline_s": b, "samples": r, "widths": widths,
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
        row("kde_gridsearch", f"2. Gaussian 5-fold CV, {k} widths (whole process)", fmt_s(m), fmt_s(b),
            fmt_x(b / m), ">= 50x", b / m >= 50, "baseline: GridSearchCV(KernelDensity), n_jobs=2"),
        row("kde_gridsearch", "2. CV scores equal sklearn's (max rel. diff where sklearn is exact)",
            f"{rel_where_exact:.2g}", f"{int(sk_exact.sum())} of {k} widths", "", "<= 1e-6",
            bool(rel_where_exact <= 1e-6) and bool(rel_exact.max() <= 1e-6), note),
        row("kde_gridsearch", "2. same best bandwidth as GridSearchCV",
            f"{widths[int(np.argmax(ours))]:.4g}", f"{widths[int(np.argmax(theirs))]:.4g}", "",
            "equal", same_best),
        row("kde_gridsearch", "2. CV scores equal exact brute force (max rel. diff)",
            f"{rel_exact.max():.2g}", "numpy log-sum-exp", "", "<= 1e-6", rel_exact.max() <= 1e-6),
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
    spec = "0.05:1.0:16"
    out = s.tmp("kde_omp_cmp.h5")
    scores = {}

    def mpmap():
        run(mpirun(2, [exe, "--kernel", "gaussian", "--cv", 5, "--widths", spec, "--input",
                       f"{h5}:/samples", "--output", out, "--force", "--quiet"]), s)
        return float(h5_attr(out, "mpmap_wall_time"))

    def base():
        res = json_line(run([omp, f64, n, d, 5, spec], s, env={"OMP_NUM_THREADS": "2"})[1])
        scores["omp"] = res["scores"]
        return res["loop_seconds"]

    # Runs of about half a second on a shared 2-core machine vary by ~10%:
    # more of them than the other cheap benchmarks get.
    r = alternate(s.reps + 2, {"mpmap": mpmap, "baseline": base})
    m, b = median(r["mpmap"]), median(r["baseline"])
    diff = float(np.max(np.abs(h5_data(out, "/cv_score") - np.asarray(scores["omp"]))))
    raw = {"mpmap_s": m, "omp_s": b, "samples": r, "max_abs_score_diff": diff}
    return [row("omp", "5. Gaussian CV, 16 widths: OpenMP guided time / mpmap time (compute only)",
                fmt_s(m), fmt_s(b), fmt_x(b / m), ">= 0.95x", b / m >= 0.95,
                f"scores bitwise equal: {'yes' if diff == 0 else f'no (max diff {diff:.2g})'}")], raw


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
    })
    dyn = median([x["chunks_per_s"] for x in r["dynamic"]])
    gui = median([x["tasks_per_s"] for x in r["guided"]])
    pool = median([x["tasks_per_s"] for x in r["pool"]])
    rec = median([x["tasks_per_s"] for x in r["records"]])
    raw = {"dynamic_chunks_per_s": dyn, "guided_tasks_per_s": gui, "pool_tasks_per_s": pool,
           "guided_records_tasks_per_s": rec, "samples": r}
    return [
        row("dispatch", f"6a. dynamic, chunk 1, {n_dyn:.0e} empty tasks: chunks/s",
            fmt_rate(dyn, "/s"), fmt_rate(pool, "/s"), fmt_x(dyn / pool), ">= 300k chunks/s",
            dyn >= 3e5, "baseline: Pool(2).map(noop, chunksize=1)"),
        row("dispatch", "6b. guided, 1e9 empty tasks: tasks/s", fmt_rate(gui, "/s"),
            fmt_rate(pool, "/s"), fmt_x(gui / pool), ">= 50M tasks/s", gui >= 5e7,
            "no records: a chunk costs one call whatever its length"),
        row("dispatch", f"6c. guided, {n_rec:.0e} tasks, 8-byte records to rank 0 in order: tasks/s",
            fmt_rate(rec, "/s"), fmt_rate(pool, "/s"), fmt_x(rec / pool), ">= 50M tasks/s",
            rec >= 5e7, "every record sent, ordered and checked by a sink"),
    ], raw


def bench_scaling(s):
    """7. Efficiency of the Gaussian CV sweep at -n 1, 2 and 8 (oversubscribed)."""
    exe = s.app("kde_sweep")
    h5, _, _, _ = kde_data(s)
    k = 32 if s.quick else 64
    widths = f"0.05:1.0:{k}"

    def at(n):
        def once():
            out = s.tmp(f"kde_scaling_{n}.h5")
            wall = run(mpirun(n, [exe, "--kernel", "gaussian", "--cv", 5, "--widths", widths,
                                  "--input", f"{h5}:/samples", "--output", out, "--force",
                                  "--quiet"]), s)[0]
            return {"whole": wall, "mpmap": float(h5_attr(out, "mpmap_wall_time"))}
        return once

    r = alternate(s.slow_reps, {1: at(1), 2: at(2), 8: at(8)})
    med = {n: {key: median([x[key] for x in r[n]]) for key in ("whole", "mpmap")} for n in r}
    sp = med[1]["mpmap"] / med[2]["mpmap"]
    over = med[2]["mpmap"] / med[8]["mpmap"]
    sp_whole = med[1]["whole"] / med[2]["whole"]
    over_whole = med[2]["whole"] / med[8]["whole"]
    raw = {"widths": k, "medians": {str(n): v for n, v in med.items()},
           "samples": {str(n): v for n, v in r.items()}}
    return [
        row("scaling", f"7a. CV sweep ({k} widths) speed-up -n 2 / -n 1 (mpmap_wall_time)",
            fmt_s(med[2]["mpmap"]), fmt_s(med[1]["mpmap"]), fmt_x(sp), ">= 1.85x", sp >= 1.85,
            f"whole process: {sp_whole:.3g}x"),
        row("scaling", "7b. throughput -n 8 (oversubscribed) / -n 2 (mpmap_wall_time)",
            fmt_s(med[8]["mpmap"]), fmt_s(med[2]["mpmap"]), fmt_x(over), ">= 0.85x", over >= 0.85,
            f"whole process: {over_whole:.3g}x"),
    ], raw


IMBALANCE_SCHEDULES = [("static", 1), ("dynamic", 20), ("guided", 1), ("factoring", 1)]
# Diagnostic variant: guided with one prefetched chunk per worker instead of two.
IMBALANCE_VARIANT = ("guided-prefetch1", "guided", 1, ["--prefetch=1"])


def bench_imbalance(s):
    """8. Pareto(1.5) task costs, 20 000 tasks: makespan of each schedule vs the lower bound
    max(serial time / 2, largest task), the serial time measured in this run at -n 1."""
    exe = s.prog("imbalance")
    total = 4.0

    def sched(label, name, chunk, extra=()):
        def once():
            trace = s.tmp(f"imbalance_{label}.csv")
            return json_line(run(mpirun(2, [exe, *extra, name, chunk, 20000, total, 42, 1.5, trace]),
                                 s)[1])
        return once

    runners = {name: sched(name, name, c) for name, c in IMBALANCE_SCHEDULES}
    label, name, chunk, extra = IMBALANCE_VARIANT
    runners[label] = sched(label, name, chunk, extra)
    # The tasks' costs measured serially, in the same conditions (a shared
    # machine stretches short spins): one rank runs them all.
    runners["serial"] = lambda: json_line(run(mpirun(1, [exe, "static", 1, 20000, total, 42, 1.5]),
                                              s)[1])
    r = alternate(s.slow_reps, runners)
    nominal = r["guided"][0]["lower_bound"]
    largest = r["guided"][0]["max"]
    serial = median([x["wall_time"] for x in r.pop("serial")])
    bound = max(serial / 2, largest)
    med = {name: median([x["wall_time"] for x in r[name]]) for name in r}
    raw = {"lower_bound_s": bound, "nominal_lower_bound_s": nominal, "serial_s": serial,
           "total_s": r["guided"][0]["total"], "max_task_s": largest, "makespan_s": med,
           "chunks": {n: r[n][0]["chunks"] for n in r}, "samples": r}
    rows = []
    for name, chunk in IMBALANCE_SCHEDULES:
        ratio = bound / med[name]
        label = f"8. Pareto tasks, {name} (chunk {chunk}): lower bound / makespan"
        note = f"{raw['chunks'][name]} chunks; nominal LB {nominal:.3g} s: {nominal / med[name]:.3g}x"
        if name == "guided":
            rows.append(row("imbalance", label, fmt_s(med[name]), f"LB {fmt_s(bound)}", fmt_x(ratio),
                            ">= 0.95x", ratio >= 0.95, note))
        else:
            rows.append(info_row("imbalance", label, fmt_s(med[name]), f"LB {fmt_s(bound)}",
                                 fmt_x(ratio), note))
    label = IMBALANCE_VARIANT[0]
    rows.append(info_row("imbalance", "8. Pareto tasks, guided with prefetch 1 (diagnostic)",
                         fmt_s(med[label]), f"LB {fmt_s(bound)}", fmt_x(bound / med[label]),
                         f"{raw['chunks'][label]} chunks; default prefetch is 2"))
    return rows, raw


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
                     note=f"load {c['load1'][0]:.0f}; see scale.md")
            for c in summary["cases"] if c["kind"] == "10ms" or c["schedule"] == "guided"]
    return rows, summary


def bench_wordcount(s):
    """11. Keyed map-reduce: word_count against MR-MPI's wordfreq (Debian libmrmpi-dev) on the
    same Zipf corpus and ranks (bench/wordcount_bench.py), alternated; CPU time of all ranks,
    which a shared machine disturbs less than wall time."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = s.tmp("wordcount.json")
    run(["/usr/bin/python3", os.path.join(here, "wordcount_bench.py"), "--word-count",
         s.app("word_count"), "--megabytes", "100" if s.quick else "400", "--reps",
         "2" if s.quick else "3", "--ranks", "2", "--json", out], s)
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


import native_baselines  # noqa: E402 (needs the helpers above)

BENCHMARKS = [
    ("kde_pool", "1. KDE hypercube sweep vs Pool", bench_kde_pool),
    ("kde_gridsearch", "2. Gaussian CV vs scikit-learn", bench_kde_gridsearch),
    ("mc_pi", "3. mc_pi vs numpy Pool", bench_mc_pi),
    ("knn", "4. knn_query vs cKDTree", bench_knn),
    ("omp", "5. mpmap vs OpenMP guided", bench_omp),
    ("dispatch", "6. dispatch overhead", bench_dispatch),
    ("scaling", "7. efficiency -n 1/2/8", bench_scaling),
    ("imbalance", "8. imbalanced tasks", bench_imbalance),
    ("memory", "9. memory of mc_pi, 1e8 tasks", bench_memory),
    ("scale", "10. dispatch at scale (sleeping tasks, 8..128 ranks)", bench_scale),
    ("wordcount", "11. keyed map-reduce vs MR-MPI", bench_wordcount),
    ("knn_nanoflann", "12. knn_query vs nanoflann", native_baselines.bench_knn_nanoflann),
    ("philox_bound", "13. mc_pi vs the Philox bound", native_baselines.bench_philox_bound),
]


# ---------------------------------------------------------------- plots

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
    names = [n for n, _ in IMBALANCE_SCHEDULES] + [IMBALANCE_VARIANT[0]]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, [r["makespan_s"][n] for n in names],
           color=["tab:blue"] * (len(names) - 1) + ["tab:gray"])
    for i, n in enumerate(names):
        ax.text(i, r["makespan_s"][n], f"{r['makespan_s'][n]:.2f} s\n{r['chunks'][n]} chunks",
                ha="center", va="bottom", fontsize=8)
    ax.axhline(r["lower_bound_s"], color="k", ls="--",
               label=f"lower bound (serial/2, measured) {r['lower_bound_s']:.2f} s")
    ax.axhline(r["nominal_lower_bound_s"], color="grey", ls="-.",
               label=f"nominal bound (costs/2) {r['nominal_lower_bound_s']:.2f} s")
    ax.axhline(r["lower_bound_s"] * 1.05, color="tab:red", ls=":", label="bound + 5%")
    ax.set_ylabel("makespan (s)")
    ax.set_title(f"20 000 Pareto(1.5) tasks, {r['total_s']:.1f} s of work, -n 2")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, s, "imbalance.png")


def plot_gantt(plt, rows, raw, s):
    import csv
    if "imbalance" not in raw:
        return None
    names = [n for n, _ in IMBALANCE_SCHEDULES] + [IMBALANCE_VARIANT[0]]
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


# ---------------------------------------------------------------- report

def markdown(rows, meta, plots):
    lines = [
        "# mpmap benchmarks",
        "",
        f"{meta['date']} on {meta['host']} ({meta['cores']} cores), "
        f"{'--quick' if meta['quick'] else 'full'} run, {meta['elapsed_s']:.0f} s; "
        f"load average before/after: {fmt_load(meta['load_start'])} / {fmt_load(meta['load_end'])}.",
        "Every ratio compares runs of this session, alternated, medians of several repetitions.",
        "",
        "Load: the 1-minute load average when the benchmark started (2 cores; above 2, other",
        "processes shared the machine and every figure is noisier).",
        "",
        "| benchmark | mpmap | baseline | ratio | target | result | load | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [str(r[k]) for k in ("name", "mpmap", "baseline", "ratio", "target", "status")]
        cells.append("" if r.get("load") is None else f"{r['load']:.1f}")
        cells.append(str(r["note"]))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots)]
    return "\n".join(lines) + "\n"


def fmt_load(load):
    return "?" if not load else f"{load[0]:.2f}"


def run_benchmarks(s, only):
    rows, raw, broken = [], {}, False
    for key, title, fn in BENCHMARKS:
        if only and key not in only:
            continue
        print(f"harness: {title} ...", flush=True)
        t0, load = time.perf_counter(), loadavg()
        try:
            got, data = fn(s)
            for r in got:
                r["load"] = load[0] if load else None
            rows += got
            raw[key] = data
            data["load_before"] = load
        except Skip as e:
            rows.append(na_row(key, title, str(e)))
        except Exception as e:  # the harness's own bug: keep going, but say so
            traceback.print_exc()
            rows.append(na_row(key, title, f"harness error: {type(e).__name__}: {e}"))
            broken = True
        print(f"harness:   {time.perf_counter() - t0:.1f} s", flush=True)
    return rows, raw, broken


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller problems")
    ap.add_argument("--build", required=True, help="Release build tree (apps/ inside)")
    ap.add_argument("--progs", required=True, help="where run.sh put the benchmark programs")
    ap.add_argument("--out", required=True, help="results directory")
    ap.add_argument("--work", required=True, help="scratch directory for data and outputs")
    ap.add_argument("--only", default="", help="comma-separated benchmark keys (debugging)")
    s = Settings(ap.parse_args())
    os.makedirs(s.out, exist_ok=True)
    os.makedirs(s.work, exist_ok=True)
    only = {k for k in ap.parse_args().only.split(",") if k}
    start, load_start = time.perf_counter(), loadavg()
    rows, raw, broken = run_benchmarks(s, only)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
            "cores": os.cpu_count(), "quick": s.quick, "elapsed_s": time.perf_counter() - start,
            "load_start": load_start, "load_end": loadavg()}
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
