"""Shared helpers of the end-to-end app tests (tests/apps/test_*.py).

Every app test runs a built app under mpirun and checks its HDF5 output
against values computed independently in NumPy. This module holds what they
all need:

  app_path(app)                 the built binary: $MPMAP_APPS_DIR/app, or the
                                directory given by --apps-dir DIR on the test
                                script's command line (see main), or
                                build/apps beside the source tree
  mpi_env(extra)                os.environ plus what Open MPI needs to run as
                                root with more ranks than cores
  run_app(app, nprocs, args, timeout, cwd, env)
                                -> (exit code, stdout, stderr); a run that
                                outlives timeout is killed (mpirun and every
                                rank) and fails the test instead of hanging it
  start_app(...) / stop_app(proc)
                                the same as a Popen, to signal it mid-run
  app_pids(proc, app)           pids of the rank processes under a mpirun
  run_many(calls, workers)      independent runs at the same time (most of a
                                failing run's time is mpirun waiting)
  app_lines / noise_free_lines / assert_one_line_error
                                stderr without Open MPI's banners
  read_h5(path)                 every dataset as a NumPy array, attributes
  same_bits(a, b)               bitwise equality of two arrays
  write_h5(path, datasets)      input files for the apps
  TempDirCase                   unittest.TestCase with self.tmp, removed after
  main()                        unittest.main that also takes --apps-dir

Open MPI facts the tests rely on (Open MPI 4.1):
  - when a rank exits non-zero, mpirun prints a banner between lines of
    dashes and returns that exit code;
  - when mpirun itself gets SIGTERM (or SIGINT) it forwards it to the ranks
    and returns 1, whatever the ranks returned; signal the ranks directly to
    see the app's own exit code;
  - that forwarding is late: the ranks get SIGCONT at once, SIGTERM only
    odls_base_sigkill_timeout (1 s) later and SIGKILL 1 s after that, and
    mpirun exits about 2 s after the signal. A test that signals mpirun must
    run a workload that lasts far longer (tens of seconds), never one that
    merely outlasts a fixed sleep; signals sent to the ranks arrive at once;
  - ranks run in their own process groups, so killing mpirun's group does
    not reach them.
"""
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))

DEFAULT_TIMEOUT = 120.0

# The apps' exit codes (apps/app_common.h).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 3

# Open MPI refuses to run as root, and to start more ranks than cores,
# unless told.
MPI_VARIABLES = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}

_apps_dir_override = None


class AppTimeout(AssertionError):
    """A run outlived its timeout (it was killed); fails the test."""


def apps_dir():
    if _apps_dir_override:
        return _apps_dir_override
    directory = os.environ.get("MPMAP_APPS_DIR")
    if directory:
        return directory
    return os.path.join(SOURCE_DIR, "build", "apps")


def app_path(app):
    return os.path.join(apps_dir(), app)


def mpirun():
    return os.environ.get("MPMAP_MPIEXEC") or shutil.which("mpirun") or "mpirun"


def mpi_env(extra=None):
    env = dict(os.environ)
    env.update(MPI_VARIABLES)
    if extra:
        env.update(extra)
    return env


def app_command(app, nprocs, args):
    return [mpirun(), "-n", str(nprocs), app_path(app)] + [str(a) for a in args]


def start_app(app, nprocs, args, cwd=None, env=None, stderr=subprocess.PIPE):
    """Starts mpirun -n nprocs app args; returns the Popen (text mode)."""
    path = app_path(app)
    if not os.access(path, os.X_OK):
        # A failure, not a skip: under ctest a missing binary is a broken build.
        raise AssertionError(f"{path} is not built (set MPMAP_APPS_DIR or --apps-dir)")
    return subprocess.Popen(app_command(app, nprocs, args), cwd=cwd,
                            env=env if env is not None else mpi_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, start_new_session=True)


def _parent_map():
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("latin-1")
        except OSError:
            continue
        # comm is in parentheses and may contain spaces; fields follow ')'.
        close = stat.rfind(")")
        comm = stat[stat.find("(") + 1:close]
        fields = stat[close + 2:].split()
        if len(fields) > 1:
            parents[int(entry)] = (int(fields[1]), comm, fields[0])
    return parents


def descendants(pid):
    """[(pid, comm)] of every live descendant of pid (zombies left out)."""
    parents = _parent_map()
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for child, (ppid, comm, state) in parents.items():
            if ppid == p:
                frontier.append(child)
                if state != "Z":
                    found.append((child, comm))
    return found


def app_pids(proc, app):
    """Pids of the rank processes of app under the mpirun proc."""
    return sorted(p for p, comm in descendants(proc.pid) if comm == app[:15])


def wait_for_ranks(proc, app, nprocs, timeout=30.0):
    """Waits until all nprocs ranks of app run under proc; returns their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = app_pids(proc, app)
        if len(pids) >= nprocs:
            return pids
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"{app}: {nprocs} ranks did not start (found {app_pids(proc, app)})")


def kill_tree(proc):
    """SIGKILL to the ranks, then to mpirun; reaps mpirun."""
    for pid, _ in descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def stop_app(proc, timeout=DEFAULT_TIMEOUT, command=None):
    """Waits for a started app; returns (exit code, stdout, stderr). On
    timeout kills everything and raises AppTimeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, err = proc.communicate()
        raise AppTimeout(f"timed out after {timeout:.0f} s (killed): "
                         f"{' '.join(command or proc.args)}\nstderr:\n{err}")
    return proc.returncode, out, err


def run_app(app, nprocs, args, timeout=DEFAULT_TIMEOUT, cwd=None, env=None):
    """Runs mpirun -n nprocs app args; returns (exit code, stdout, stderr)."""
    proc = start_app(app, nprocs, args, cwd=cwd, env=env)
    return stop_app(proc, timeout)


def run_many(calls, workers=6):
    """Runs run_app(**call) for each dict in calls at the same time (at most
    `workers` at once); returns the results in the order of calls. An
    exception of a run (e.g. AppTimeout) is returned in its place."""
    def one(call):
        try:
            return run_app(**call)
        except Exception as e:  # reported by the test that reads it
            return e

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, calls))


# --- stderr ------------------------------------------------------------------

def _is_rule(line):
    s = line.strip()
    return len(s) >= 20 and set(s) == {"-"}


# Lines mpirun itself may print when ranks exit early: libevent's warnings
# ("[warn] Epoll MOD(1) on fd 24 failed ...") and the help aggregator
# ("[host:1234] 1 more process has sent help message ...").
_MPIRUN_CHATTER = re.compile(
    r"^\[(warn|msg|debug)\] "
    r"|^\[[^\]\s]+:\d+\] (\d+ more process|Set MCA parameter \"orte_base_help_aggregate\")")


def noise_free_lines(stderr):
    """Non-empty stderr lines outside Open MPI's dash-ruled banners, mpirun's
    own chatter left out."""
    lines, inside = [], False
    for line in stderr.splitlines():
        if _is_rule(line):
            inside = not inside
            continue
        if not inside and line.strip() and not _MPIRUN_CHATTER.match(line):
            lines.append(line)
    return lines


def app_lines(stderr, app):
    """The app's own messages ("APP: ..."), progress lines left out."""
    return [line for line in noise_free_lines(stderr)
            if line.startswith(app + ":") and not line.startswith(app + ": progress ")]


def assert_one_line_error(case, app, stderr, *needles):
    """Asserts that, Open MPI's banners and progress lines aside, stderr is
    exactly one line "APP: ..." containing every needle."""
    lines = [line for line in noise_free_lines(stderr)
             if not line.startswith(app + ": progress ")]
    case.assertEqual(len(lines), 1, f"expected one error line, got {lines!r}\nstderr:\n{stderr}")
    line = lines[0]
    case.assertTrue(line.startswith(app + ": "), f"error line does not name {app}: {line!r}")
    for needle in needles:
        case.assertIn(needle, line, f"error line does not mention {needle!r}: {line!r}")
    return line


# --- HDF5 --------------------------------------------------------------------

def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [_decode(v) for v in value.tolist()]
    return value


class H5Contents(dict):
    """Dataset path ("/density") -> NumPy array, plus:
    attrs     root attributes (strings decoded)
    ds_attrs  dataset path -> its attributes (dimension-scale plumbing left out)
    dims      dataset path -> per axis, the paths of the attached scales
    scales    paths of the datasets that are dimension scales"""

    def __init__(self):
        super().__init__()
        self.attrs = {}
        self.ds_attrs = {}
        self.dims = {}
        self.scales = set()


_SCALE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid",
                "_Netcdf4Coordinates"}


def read_h5(path):
    """Reads every dataset of an HDF5 file into memory."""
    result = H5Contents()
    with h5py.File(path, "r") as f:
        result.attrs = {k: _decode(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            key = "/" + name
            result[key] = obj[()]
            result.ds_attrs[key] = {k: _decode(v) for k, v in obj.attrs.items()
                                    if k not in _SCALE_ATTRS}
            result.dims[key] = [[scale.name for scale in obj.dims[i].values()]
                                for i in range(obj.ndim)]
            if h5py.h5ds.is_scale(obj.id):
                result.scales.add(key)

        f.visititems(visit)
    return result


def write_h5(path, datasets):
    """Writes {"/name": array} into a new HDF5 file."""
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)


def same_bits(a, b):
    """True when a and b have the same dtype, shape and bytes (so NaN == NaN
    and -0.0 != 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:
        # Variable-length strings (a labelled axis such as /field): their
        # bytes are pointers, so compare the values.
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --- unittest ----------------------------------------------------------------

class TempDirCase(unittest.TestCase):
    """TestCase with a fresh temporary directory self.tmp per test."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix=f"mpmap_{type(self).__name__}_")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)


def main():
    """unittest.main that also accepts --apps-dir DIR (before unittest's own
    arguments); prints the usual summary and exits non-zero on failure."""
    global _apps_dir_override
    argv = list(sys.argv)
    if "--apps-dir" in argv:
        i = argv.index("--apps-dir")
        if i + 1 >= len(argv):
            sys.exit("--apps-dir needs a directory")
        _apps_dir_override = argv[i + 1]
        del argv[i:i + 2]
    unittest.main(argv=argv, verbosity=2)
