"""Running the benchmarks' programs: processes, repetitions, their series, HDF5 results."""
import contextlib
import contextvars
import json
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = os.path.join(HERE, "baselines")
PYTHON = "/usr/bin/python3"

# The series of the benchmark being run (recording()); None outside one.
_series = contextvars.ContextVar("mpmap_bench_series", default=None)


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
        self.hog_pids = ()  # the hog's process: other work, not the bench's own

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


def alternate(reps, runners, figure=None):
    """Runs each runner reps times, interleaved (a b a b ...), returns name -> list of results.

    Inside recording(), each result's timed figure also joins its series (the noise
    figures of the benchmark): figure(name, result) when given, else the result itself
    when it is a number, or its first element when it is a tuple (wall, cpu)."""
    results = {name: [] for name in runners}
    series = _series.get()
    for _ in range(reps):
        for name, fn in runners.items():
            x = fn()
            results[name].append(x)
            if series is not None:
                v = figure(name, x) if figure else _default_figure(x)
                if v is not None:
                    series.setdefault(str(name), []).append(float(v))
    return results


def _default_figure(x):
    if isinstance(x, tuple) and x:
        x = x[0]
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


@contextlib.contextmanager
def recording():
    """Collects the series of every alternate() inside it: yields name -> list of figures.
    A context variable rather than a parameter, so the benchmarks' calls stay as they are."""
    series = {}
    token = _series.set(series)
    try:
        yield series
    finally:
        _series.reset(token)


def record(name, values):
    """Adds figures measured elsewhere (e.g. by a script's own repetitions) to a series."""
    series = _series.get()
    if series is not None:
        series.setdefault(str(name), []).extend(float(v) for v in values)


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
