"""The emulated 3-node cluster the tests of test_cluster.py run on.

Starting a run: ClusterCase runs an app (or any MPI binary) through
mpirun_cluster.sh, which writes the hostfile, adds the nodes to /etc/hosts
and gives each node's orted and ranks a UTS namespace of its own (agent.sh);
and against it, under plain mpirun, for comparison. Finding what a run left:
its processes by the MPMAP_CLUSTER_RUN marker in their environment, the node
of a process by its UTS namespace, and the shared-memory files killed ranks
leave in /dev/shm. Comparing results: assert_same_results (bitwise, but for
provenance attributes). cannot_emulate() tells why a machine cannot host it.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "apps"))
import harness  # noqa: E402  (tests/apps/harness.py)

import numpy as np  # noqa: E402

CLUSTER = os.path.join(HERE, "mpirun_cluster.sh")
LAYOUT = (1, 2, 3)               # ranks on mpmap-n1, mpmap-n2, mpmap-n3
NODES = [f"mpmap-n{i + 1}" for i in range(len(LAYOUT))]
RUN_TIMEOUT = 120.0
SKIP = 77

# Root attributes that describe the run rather than the result.
PROVENANCE = re.compile(r"^(mpmap_.*|history)$")


def note(text):
    """What a test observed, on stderr (ctest --output-on-failure / -V)."""
    print(f"    observed: {text}", file=sys.stderr, flush=True)


# --- the machine -------------------------------------------------------------

def cannot_emulate():
    """None when this machine can run the emulated cluster, else the reason."""
    if not shutil.which("unshare"):
        return "unshare(1) not found (util-linux)"
    if not shutil.which(harness.mpirun()):
        return f"{harness.mpirun()} not found"
    probe = subprocess.run(["unshare", "--uts", "--", "/bin/sh", "-c", "hostname mpmap-probe"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return ("cannot create a UTS namespace and set its host name (needs root or "
                f"CAP_SYS_ADMIN): {probe.stderr.strip()}")
    unresolved = [n for n in NODES
                  if subprocess.run(["getent", "hosts", n], capture_output=True).returncode != 0]
    if unresolved and not os.access("/etc/hosts", os.W_OK):
        return f"{', '.join(unresolved)} do not resolve and /etc/hosts is not writable"
    return None


# --- processes of one run ----------------------------------------------------

def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def environ_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("latin-1")] = value.decode("latin-1")
    return env


def run_processes(marker):
    """{pid: environ} of the live processes of the cluster run `marker`
    (mpirun, orteds, ranks, --exec children)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        env = environ_of(entry)
        if env is not None and env.get("MPMAP_CLUSTER_RUN") == marker:
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except (OSError, IndexError):
                continue
            found[int(entry)] = env
    return found


def node_of(pid, cache=None):
    """Host name of the UTS namespace pid runs in (None when it is gone).
    cache: {namespace: host name} for the processes of one run (a namespace's
    inode number is reused once it is gone, so never across runs)."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/uts")
    except OSError:
        return None
    if cache is not None and ns in cache:
        return cache[ns]
    r = subprocess.run(["nsenter", "--uts", f"--target={pid}", "hostname"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    if cache is not None:
        cache[ns] = r.stdout.strip()
    return r.stdout.strip()


def kill_run(marker, jobids=None):
    """SIGKILL to everything left of the run (several passes: a dying orted
    may still be starting something), then removes the shared-memory files
    the killed ranks leave in /dev/shm (the vader BTL's and osc/sm's, named
    after the node and the job: Open MPI removes them only at a clean exit).
    jobids: Open MPI job ids of the run seen earlier (e.g. before a node was
    killed); the ones seen now are added."""
    jobids = set(jobids or ())
    for _ in range(5):
        pids = run_processes(marker)
        if not pids:
            break
        for pid, env in pids.items():
            if env.get("OMPI_MCA_ess_base_jobid", "").isdigit():
                jobids.add(int(env["OMPI_MCA_ess_base_jobid"]))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    remove_shm_files(jobids)


def remove_shm_files(jobids):
    if not jobids:
        return
    tags = {f".{j:x}." for j in jobids}
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return
    for name in names:
        if name.startswith(("vader_segment.mpmap-n", "osc_sm.mpmap-n")) and \
                any(tag in name for tag in tags):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except OSError:
                pass


def jobids_of(processes):
    return {int(env["OMPI_MCA_ess_base_jobid"]) for env in processes.values()
            if env.get("OMPI_MCA_ess_base_jobid", "").isdigit()}


def rank_pids(marker, app):
    """{rank: pid} of the app's ranks in the run."""
    exe = os.path.realpath(harness.app_path(app))
    ranks = {}
    for pid, env in run_processes(marker).items():
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/exe")) != exe:
                continue
        except OSError:
            continue
        if "OMPI_COMM_WORLD_RANK" in env:
            ranks[int(env["OMPI_COMM_WORLD_RANK"])] = pid
    return ranks


def node_of_rank(rank):
    """Node index (0-based) the layout puts a rank on."""
    first = 0
    for i, n in enumerate(LAYOUT):
        if rank < first + n:
            return i
        first += n
    raise ValueError(rank)


def first_rank(node):
    return sum(LAYOUT[:node])


# --- HDF5 --------------------------------------------------------------------

def same_values(a, b):
    """Bitwise equality (harness.same_bits); variable-length strings (NumPy
    object arrays, whose bytes are pointers) compare by value and dtype."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    return harness.same_bits(a, b)


def assert_same_results(case, got_path, want_path, what):
    """Every dataset outside /trace bitwise equal, the same datasets, and the
    same attributes but provenance."""
    got, want = harness.read_h5(got_path), harness.read_h5(want_path)
    result_sets = lambda h5: sorted(k for k in h5 if not k.startswith("/trace/"))
    case.assertEqual(result_sets(got), result_sets(want), f"{what}: datasets differ")
    case.assertTrue(result_sets(want), f"{what}: no datasets")
    for key in result_sets(want):
        case.assertTrue(same_values(got[key], want[key]),
                        f"{what}: {key} differs from the single-node run")
        case.assertEqual(got.ds_attrs[key], want.ds_attrs[key], f"{what}: attributes of {key}")
    for attrs in (got.attrs, want.attrs):
        for k in [k for k in attrs if PROVENANCE.match(k)]:
            del attrs[k]
    case.assertEqual(set(got.attrs), set(want.attrs), f"{what}: root attributes")
    for k in want.attrs:
        case.assertTrue(same_values(got.attrs[k], want.attrs[k]),
                        f"{what}: root attribute {k}: {got.attrs[k]!r} != {want.attrs[k]!r}")


# --- runs --------------------------------------------------------------------

class ClusterCase(harness.TempDirCase):

    def session_env(self, extra=None, drop=()):
        """The MPI environment with a session directory of this run's own:
        Open MPI's session directories (/tmp/ompi.HOST.UID/...) are shared by
        every mpirun of the machine, and concurrent runs race on creating and
        removing them ("orte_session_dir failed")."""
        # One per run (concurrent runs of a test too), short: Open MPI puts
        # its Unix sockets there (at most 107 bytes of path).
        base = tempfile.mkdtemp(prefix="mpmap-ompi-")
        self.addCleanup(shutil.rmtree, base, True)
        env = {"OMPI_MCA_orte_tmpdir_base": base}
        env.update(extra or {})
        env = harness.mpi_env(env)
        for name in drop:
            env.pop(name, None)
        return env

    # Variables a test wants out of the runs' environment.
    DROP_ENV = ()

    def cluster_env(self):
        marker = uuid.uuid4().hex
        self.addCleanup(kill_run, marker)
        return marker, self.session_env({"MPMAP_CLUSTER_RUN": marker}, self.DROP_ENV)

    def cluster_command(self, app, args, layout=LAYOUT):
        return [CLUSTER, str(len(layout)), ",".join(map(str, layout)),
                harness.app_path(app)] + [str(a) for a in args]

    def start_cluster(self, app, args, layout=LAYOUT):
        """Starts the app on the cluster; returns (Popen, marker). stderr is
        left to the caller (a pipe)."""
        if not os.access(harness.app_path(app), os.X_OK):
            raise AssertionError(f"{harness.app_path(app)} is not built")
        marker, env = self.cluster_env()
        proc = subprocess.Popen(self.cluster_command(app, args, layout), cwd=self.tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        return proc, marker

    def run_cluster(self, app, args, layout=LAYOUT, timeout=RUN_TIMEOUT):
        """(exit code, stdout, stderr) of the app on the cluster."""
        proc, marker = self.start_cluster(app, args, layout)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_run(marker)
            out, err = proc.communicate()
            raise harness.AppTimeout(f"cluster run timed out after {timeout:.0f} s: "
                                     f"{' '.join(proc.args)}\nstderr:\n{err}")
        kill_run(marker)
        return proc.returncode, out, err

    def run_single(self, app, nprocs, args):
        return harness.run_app(app, nprocs, args, cwd=self.tmp, timeout=RUN_TIMEOUT,
                               env=self.session_env(drop=self.DROP_ENV))

    def assert_ok(self, result, what):
        if isinstance(result, Exception):
            raise result
        rc, out, err = result
        self.assertEqual(rc, 0, f"{what} failed (exit {rc})\nstdout:\n{out}\nstderr:\n{err}")
