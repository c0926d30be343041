#!/usr/bin/env python3
"""The apps on an emulated multi-node cluster on this one machine.

mpirun_cluster.sh starts Open MPI with a hostfile of made-up nodes
(mpmap-n1, mpmap-n2, ...) and agent.sh as the rsh launch agent: each node's
orted and ranks run in a UTS namespace of their own whose host name is the
node's, so Open MPI treats them as separate nodes (MPI_COMM_TYPE_SHARED splits
by node, shared memory only inside a node, TCP over loopback between nodes).
Every test uses uneven nodes: 1 + 2 + 3 ranks.

  ClusterEqualsSingleTest   every app's datasets (and its non-provenance
                            attributes) on the cluster are bitwise equal to
                            the same app under plain `mpirun -n 1`
  NodeSharedInputTest       the node-shared input is one shared-memory segment
                            per node, mapped by every rank of that node
                            (/proc/PID/maps); the shared-memory BTL stays inside
                            a node; every rank's TCP socket is on loopback
  NodeLossResumeTest        SIGKILL of every process of one node (its orted and
                            ranks) mid-run; --resume on one node or on the
                            cluster gives the uninterrupted run's bits
  SingleNodeShortcutTest    the apps' one-node start-up shortcut
                            (OMPI_MCA_pml=ob1, apps/mpi_launch.c) is not applied
                            when the ranks span nodes, and is on one node

Each cluster run carries a unique MPMAP_CLUSTER_RUN=... variable in its
environment (inherited by mpirun, the orteds and the ranks; the apps never
read it): the tests find a run's processes by it, and kill whatever of a run
is left after it, even orteds that daemonized away from mpirun.

Exit 77 (skipped) when this machine cannot emulate nodes: no unshare, no
permission for a UTS namespace, node names that do not resolve with
/etc/hosts not writable, or no mpirun.

Usage: test_cluster.py [--apps-dir DIR] [unittest args]; the apps default to
$MPMAP_APPS_DIR, else build/apps beside the source tree.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

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


# --- (a) the same bits -------------------------------------------------------

class ClusterEqualsSingleTest(ClusterCase):
    """Each app on 1 + 2 + 3 ranks over 3 nodes against `mpirun -n 1`."""

    def workloads(self):
        rng = np.random.default_rng(5)
        harness.write_h5(self.path("kde_in.h5"), {"/x": rng.normal(size=(1500, 3))})
        harness.write_h5(self.path("knn_in.h5"), {"/data": rng.random((2500, 4)),
                                                  "/queries": rng.random((300, 4))})
        return [
            ("kde_sweep", "synthetic, gaussian, cv",
             ["--samples", "2000", "--kernel", "gaussian", "--cv", "3", "--widths", "0.1:1.5:20",
              "--point", "0,0", "--point", "0.5,-0.5"], ["--schedule", "dynamic", "--chunk", "2"]),
            ("kde_sweep", "--input (sent to every node)",
             ["--input", self.path("kde_in.h5") + ":/x", "--widths", "0.2:2:15",
              "--point", "0,0,0", "--point", "1,-1,0.5"], []),
            ("mc_pi", "",
             ["--samples", "2e7", "--tasks", "101", "--seed", "7"], ["--schedule", "factoring"]),
            ("knn_query", "synthetic",
             ["-k", "4", "--points", "3000", "--queries-count", "400", "--dim", "3"],
             ["--schedule", "dynamic", "--chunk", "8"]),
            ("knn_query", "--data/--queries (sent to every node)",
             ["-k", "3", "--data", self.path("knn_in.h5") + ":/data",
              "--queries", self.path("knn_in.h5") + ":/queries"], ["--schedule", "static"]),
            ("param_sweep", "lorenz",
             ["--model", "lorenz", "--param", "rho=10:40:7", "--param", "sigma=8,10,12",
              "--length", "2000"], ["--schedule", "dynamic", "--chunk", "1"]),
            ("param_sweep", "linear",
             ["--model", "linear", "--param", "p1=1:3:3", "--param", "p2=0,0.5", "--length", "7"], []),
        ]

    def test_every_app_matches_one_rank(self):
        cases = self.workloads()
        calls = []
        for i, (app, what, args, cluster_extra) in enumerate(cases):
            single = self.path(f"single{i}.h5")
            cluster = self.path(f"cluster{i}.h5")
            calls.append(("single", i, app, args + ["--quiet", "--output", single]))
            calls.append(("cluster", i, app, args + cluster_extra + ["--quiet", "--output", cluster]))

        def run(call):
            kind, _, app, args = call
            try:
                if kind == "single":
                    return self.run_single(app, 1, args)
                return self.run_cluster(app, args)
            except Exception as e:  # reported below, by the case it belongs to
                return e

        # Most of a short run is start-up latency: three at a time.
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(run, calls))
        for call, result in zip(calls, results):
            kind, i, app, _ = call
            what = cases[i][1]
            with self.subTest(app=app, workload=what, run=kind):
                self.assert_ok(result, f"{app} {what} ({kind})")
        for i, (app, what, _, _) in enumerate(cases):
            with self.subTest(app=app, workload=what):
                if not (os.path.exists(self.path(f"single{i}.h5"))
                        and os.path.exists(self.path(f"cluster{i}.h5"))):
                    self.fail("no output to compare")
                assert_same_results(self, self.path(f"cluster{i}.h5"), self.path(f"single{i}.h5"),
                                    f"{app} {what}")
                attrs = harness.read_h5(self.path(f"cluster{i}.h5")).attrs
                self.assertEqual(attrs["mpmap_ranks"], sum(LAYOUT))


# --- (b) one copy per node ---------------------------------------------------

MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ (\S+) (\d+)\s+(.*)$")
OSC_SM = re.compile(r"^/dev/shm/osc_sm\.(.+)\.([0-9a-f]+)\.(\d+)\.(\d+)( \(deleted\))?$")
VADER = re.compile(r"^/dev/shm/vader_segment\.(.+)\.[0-9a-f]+\.[0-9a-f]+\.\d+( \(deleted\))?$")


def shared_mappings(pid):
    """[(kind, node, key, size)] for the osc_sm (MPI shared-memory window) and
    vader (shared-memory BTL) segments mapped by pid; key = (device, inode)."""
    found = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        m = MAPS_LINE.match(line)
        if not m:
            continue
        start, end, _, dev, inode, path = m.groups()
        size = int(end, 16) - int(start, 16)
        o = OSC_SM.match(path)
        if o:
            found.append(("osc_sm", o.group(1), (dev, int(inode)), size, int(o.group(3))))
        v = VADER.match(path)
        if v:
            found.append(("vader", v.group(1), (dev, int(inode)), size, None))
    return found


def hex_ip_is_loopback(hex_addr):
    """/proc/net/tcp{,6} address (hex, host byte order per 32-bit word)."""
    if len(hex_addr) == 8:
        return int(hex_addr, 16) & 0xff == 127
    words = [hex_addr[i:i + 8] for i in range(0, 32, 8)]
    if hex_addr == "0" * 24 + "01000000":       # ::1
        return True
    if words[:2] == ["00000000", "00000000"] and words[2] == "FFFF0000":  # ::ffff:a.b.c.d
        return int(words[3], 16) & 0xff == 127
    return False


def hex_ip_is_wildcard(hex_addr):
    return set(hex_addr) == {"0"}


def tcp_sockets(pid):
    """[(local, remote, state)] hex addresses of pid's TCP sockets."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        sockets = []
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{pid}/net/{table}") as f:
                for line in f.read().splitlines()[1:]:
                    fields = line.split()
                    if fields[9] in inodes:
                        sockets.append((fields[1].split(":")[0], fields[2].split(":")[0], fields[3]))
        return sockets
    except OSError:
        return None


def interfaces(pid):
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return sorted(line.split(":")[0].strip() for line in f.read().splitlines()[2:])
    except OSError:
        return None


class NodeSharedInputTest(ClusterCase):
    """kde_sweep --input on 1 + 2 + 3 ranks: while it computes, /proc/PID/maps
    of every rank shows the MPI shared-memory window that holds the input.

    Open MPI's osc/sm backs a shared window (MPI_Win_allocate_shared over the
    node communicator) with one file /dev/shm/osc_sm.NODE.JOBID.VPID.CID,
    created by the node's first rank (VPID) and mapped by every rank of the
    node. One copy per node = on every node with several ranks, all of its
    ranks map the same file (same device and inode), named after that node and
    its first rank, at least as large as the input; different nodes map
    different files. (A window over a one-rank node is plain private memory in
    Open MPI 4.1's osc/sm, so mpmap-n1 shows none: one copy, trivially.)"""

    ROWS, COLS = 30000, 2

    def test_one_copy_per_node(self):
        harness.write_h5(self.path("in.h5"),
                         {"/x": np.random.default_rng(3).normal(size=(self.ROWS, self.COLS))})
        # Far more work than the observation needs (minutes): the run is
        # killed as soon as every rank has been seen, so a fast machine
        # cannot end it before the window is looked at.
        args = ["--input", self.path("in.h5") + ":/x", "--kernel", "gaussian",
                "--widths", "0.1:1:1000000", "--quiet", "--output", self.path("out.h5")]
        proc, marker = self.start_cluster("kde_sweep", args)
        seen = {}          # rank -> set of (kind, node, key, size, vpid)
        host = {}          # rank -> UTS host name
        sockets = {}       # rank -> TCP sockets seen
        nets = {}          # rank -> network interfaces
        names = {}         # UTS namespace -> host name, for this run
        deadline = time.monotonic() + RUN_TIMEOUT
        multi = [r for r in range(sum(LAYOUT)) if LAYOUT[node_of_rank(r)] > 1]
        complete = False
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                for rank, pid in rank_pids(marker, "kde_sweep").items():
                    maps = shared_mappings(pid)
                    if maps is None:
                        continue
                    seen.setdefault(rank, set()).update(maps)
                    if rank not in host:
                        h = node_of(pid, names)
                        if h:
                            host[rank] = h
                    s = tcp_sockets(pid)
                    if s:
                        sockets.setdefault(rank, set()).update(s)
                    if rank not in nets:
                        n = interfaces(pid)
                        if n is not None:
                            nets[rank] = n
                complete = (all(any(m[0] == "osc_sm" for m in seen.get(r, ())) for r in multi)
                            and len(host) == sum(LAYOUT)
                            and all(any(c[2] == "01" for c in sockets.get(r, ()))
                                    for r in range(sum(LAYOUT))))
                if complete:
                    # Once more, after every rank has attached: a rank that
                    # had not yet mapped its node's segment is seen now.
                    time.sleep(0.2)
                    for rank, pid in rank_pids(marker, "kde_sweep").items():
                        maps = shared_mappings(pid)
                        if maps:
                            seen[rank].update(maps)
                    break
                time.sleep(0.05)
            running = proc.poll() is None
        finally:
            kill_run(marker)
            out, err = proc.communicate()
        self.assertTrue(complete or not running, "nothing observed in time")
        self.assertTrue(running, f"kde_sweep ended (exit {proc.returncode}) before every rank "
                                 f"was observed\nstdout:\n{out}\nstderr:\n{err}")

        payload = self.ROWS * self.COLS * 8
        windows = {}   # node -> set of keys
        for rank in range(sum(LAYOUT)):
            node = node_of_rank(rank)
            with self.subTest(rank=rank, node=NODES[node]):
                self.assertEqual(host.get(rank), NODES[node], "rank ran on the wrong node")
                osc = [m for m in seen.get(rank, ()) if m[0] == "osc_sm"]
                if LAYOUT[node] == 1:
                    # Open MPI 4.1's osc/sm keeps a one-process window in
                    # private memory; a file would be fine too, but only one.
                    self.assertLessEqual(len({m[2] for m in osc}), 1, f"several segments: {osc}")
                    continue
                self.assertTrue(osc, "no shared-memory window seen in /proc/PID/maps "
                                     "(run over before the window was mapped?)")
                keys = {m[2] for m in osc}
                self.assertEqual(len(keys), 1, f"more than one window segment: {osc}")
                for _, name, _, size, vpid in osc:
                    self.assertEqual(name, NODES[node], "window segment of another node")
                    self.assertEqual(vpid, first_rank(node), "segment not made by the node's first rank")
                    self.assertGreaterEqual(size, payload, "segment smaller than the input")
                windows.setdefault(node, set()).update(keys)
                # The shared-memory BTL: only this node's segments.
                vader = {m[1] for m in seen.get(rank, ()) if m[0] == "vader"}
                self.assertEqual(vader, {NODES[node]}, "vader segments of other nodes mapped")
        for node, keys in windows.items():
            self.assertEqual(len(keys), 1, f"{NODES[node]}: ranks map different segments: {keys}")
        all_keys = [k for keys in windows.values() for k in keys]
        self.assertEqual(len(all_keys), len(set(all_keys)), "two nodes share one segment")
        self.assertEqual(sorted(windows), [i for i, n in enumerate(LAYOUT) if n > 1])
        for node, keys in sorted(windows.items()):
            ranks = [r for r in range(sum(LAYOUT)) if node_of_rank(r) == node]
            sizes = sorted({m[3] for r in ranks for m in seen[r] if m[0] == "osc_sm"})
            note(f"{NODES[node]}: ranks {ranks} map one window segment "
                 f"(device:inode {'/'.join(map(str, next(iter(keys))))}, {sizes} bytes mapped, "
                 f"input {payload} bytes)")

        # All MPI traffic on loopback: every TCP socket of every rank has a
        # loopback (or, listening, wildcard) local address and a loopback peer.
        for rank in range(sum(LAYOUT)):
            with self.subTest(rank=rank, check="loopback"):
                conns = sockets.get(rank, set())
                established = [s for s in conns if s[2] == "01"]
                self.assertTrue(established, "no TCP connection seen (between nodes MPI uses TCP)")
                for local, remote, state in conns:
                    self.assertTrue(hex_ip_is_loopback(local) or
                                    (state == "0A" and hex_ip_is_wildcard(local)),
                                    f"socket on a non-loopback address {local}")
                    self.assertTrue(hex_ip_is_loopback(remote) or state == "0A",
                                    f"connection to a non-loopback address {remote}")
                if os.environ.get("MPMAP_CLUSTER_NETNS", "1") != "0" and shutil.which("ip"):
                    self.assertEqual(nets.get(rank), ["lo"],
                                     "the rank's network namespace has other interfaces")


# --- (c) node loss and --resume ----------------------------------------------

class NodeLossResumeTest(ClusterCase):
    """mc_pi on 1 + 2 + 3 ranks; after its first progress line every process
    of one node (the orted and its ranks) is stopped and SIGKILLed, as when a
    node dies. mpirun gives up on the job; the checkpoint (rank 0's) keeps
    what was done. --resume then computes only the rest and the output is
    bitwise the uninterrupted run's."""

    ARGS = ["--samples", "1.2e10", "--tasks", "600", "--seed", "11"]
    reference = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ref_dir = tempfile.mkdtemp(prefix="mpmap_cluster_ref_")
        cls.reference = os.path.join(cls.ref_dir, "reference.h5")
        rc, out, err = harness.run_app("mc_pi", 2, cls.ARGS + ["--quiet", "--output", cls.reference],
                                       cwd=cls.ref_dir, timeout=RUN_TIMEOUT,
                                       env=harness.mpi_env({"OMPI_MCA_orte_tmpdir_base": cls.ref_dir}))
        if rc != 0:
            raise AssertionError(f"reference run failed (exit {rc})\n{err}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ref_dir, True)
        super().tearDownClass()

    def lose_node(self, node, out):
        proc, marker = self.start_cluster("mc_pi", self.ARGS + ["--output", out,
                                                              "--progress-interval", "0.1"])
        lines = []
        everything = {}
        progressed = threading.Event()

        def read():
            for line in proc.stderr:
                lines.append(line)
                if line.startswith("mc_pi: progress "):
                    progressed.set()
            progressed.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            progressed.wait(RUN_TIMEOUT)
            self.assertIsNone(proc.poll(), "the run ended before a node could be lost:\n"
                              + "".join(lines))
            names = {}
            everything = run_processes(marker)
            victims = {pid: env for pid, env in everything.items()
                       if node_of(pid, names) == node}
            comms = sorted(filter(None, (read_text(f"/proc/{p}/comm") for p in victims)))
            ranks = sorted(int(env["OMPI_COMM_WORLD_RANK"]) for env in victims.values()
                           if "OMPI_COMM_WORLD_RANK" in env)
            i = NODES.index(node)
            self.assertEqual(ranks, list(range(first_rank(i), first_rank(i) + LAYOUT[i])),
                             f"processes of {node}: {comms}; of the run: "
                             + ", ".join(f"{p} {read_text(f'/proc/{p}/comm')} on {node_of(p, names)}"
                                         for p in sorted(everything))
                             + "\nstderr:\n" + "".join(lines))
            self.assertIn("orted", comms)
            # The whole node at once: stop everything, then kill it.
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in victims:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            killed_at = time.monotonic()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.fail(f"mpirun did not give up 60 s after {node} was lost:\n" + "".join(lines))
            stdout = proc.stdout.read()
            survivors = sorted(filter(None, (read_text(f"/proc/{p}/comm")
                                             for p in run_processes(marker))))
        finally:
            kill_run(marker, jobids_of(everything) if everything else None)
            reader.join(10)
            proc.stdout.close()
            proc.stderr.close()
        self.assertNotEqual(proc.returncode, 0, "mpirun reported success after losing a node")
        self.assertNotIn("wrote ", stdout)
        self.assertFalse(os.path.exists(out), "an output appeared although a node was lost")
        self.assertTrue(os.path.exists(out + ".ckpt"), "no checkpoint left:\n" + "".join(lines))
        note(f"{node} lost ({', '.join(comms)}): mpirun exit {proc.returncode} "
             f"{time.monotonic() - killed_at:.1f} s later; left running after it: "
             f"{', '.join(survivors) or 'nothing'}")

    def assert_resumed(self, result, out):
        self.assert_ok(result, "--resume")
        rc, stdout, _ = result
        m = re.search(r"\((\d+) tasks resumed from checkpoint\)", stdout)
        self.assertTrue(m, f"no resume count in the summary:\n{stdout}")
        note(f"resumed: {m.group(1)}/600 tasks from the checkpoint")
        self.assertGreater(int(m.group(1)), 0, "nothing was kept from before the node loss")
        self.assertLess(int(m.group(1)), 600, "the run was over before the node loss")
        self.assertFalse(os.path.exists(out + ".ckpt"), "checkpoint left after the resumed run")
        assert_same_results(self, out, self.reference, "resumed after node loss")
        self.assertTrue(harness.same_bits(harness.read_h5(out)["/hits"],
                                          harness.read_h5(self.reference)["/hits"]))

    def test_lose_worker_node_resume_on_one_node(self):
        out = self.path("out.h5")
        self.lose_node("mpmap-n3", out)
        self.assert_resumed(self.run_single("mc_pi", 2, self.ARGS + ["--resume",
                                                                     "--output", out]), out)

    def test_lose_manager_node_resume_on_cluster(self):
        out = self.path("out.h5")
        self.lose_node("mpmap-n1", out)
        self.assert_resumed(self.run_cluster("mc_pi", self.ARGS + ["--resume",
                                                                   "--output", out]), out)


# --- (d) the one-node start-up shortcut --------------------------------------

class SingleNodeShortcutTest(ClusterCase):
    """The apps set OMPI_MCA_pml=ob1 in their own environment (setenv, before
    MPI_Init) when every rank is on one node. setenv does not show in
    /proc/PID/environ (that is the environment the process was started with),
    but every child of the rank inherits it: param_sweep --exec runs a shell
    per grid point that prints its node, rank, OMPI_COMM_WORLD_LOCAL_SIZE and
    whether OMPI_MCA_pml is ob1."""

    EXEC = ("sleep 0.05; echo $(expr 0$(hostname | tr -cd 0-9)) $OMPI_COMM_WORLD_RANK "
            "$OMPI_COMM_WORLD_LOCAL_SIZE $OMPI_COMM_WORLD_SIZE "
            "$(test \"$OMPI_MCA_pml\" = ob1 && echo 1 || echo 0) {i}")
    # A PML or MTL chosen by the user turns the shortcut off anywhere.
    DROP_ENV = ("OMPI_MCA_pml", "OMPI_MCA_mtl")
    ARGS = ["--param", "i=0:29:30", "--exec", EXEC, "--schedule", "dynamic", "--chunk", "1",
            "--quiet"]

    def records(self, path):
        h5 = harness.read_h5(path)
        self.assertTrue((h5["/status"] == 0).all(), f"failed points: {h5['/status']}")
        return h5["/result"].astype(np.int64)

    def test_not_applied_across_nodes(self):
        with ThreadPoolExecutor(max_workers=2) as pool:
            cluster = pool.submit(self.run_cluster, "param_sweep",
                                  self.ARGS + ["--output", self.path("cluster.h5")])
            single = pool.submit(self.run_single, "param_sweep", 2,
                                 self.ARGS + ["--output", self.path("single.h5")])
            cluster, single = cluster.result(), single.result()
        self.assert_ok(cluster, "param_sweep on the cluster")
        self.assert_ok(single, "param_sweep on one node")

        rec = self.records(self.path("cluster.h5"))
        self.assertEqual(rec[:, 5].tolist(), list(range(30)))
        for node, rank, local, world, pml_ob1, _ in rec.tolist():
            self.assertEqual(node, node_of_rank(rank) + 1, "a point ran on the wrong node")
            self.assertEqual(local, LAYOUT[node - 1])
            self.assertEqual(world, sum(LAYOUT))
            self.assertEqual(pml_ob1, 0, f"rank {rank} on mpmap-n{node} set OMPI_MCA_pml=ob1 "
                                         "although the job spans nodes")
        self.assertGreater(len(set(rec[:, 0].tolist())), 1, "every point ran on one node")
        note("cluster: points ran on nodes %s, ranks %s; OMPI_MCA_pml=ob1 in none"
             % (sorted(set(rec[:, 0].tolist())), sorted(set(rec[:, 1].tolist()))))

        # The observation can see the shortcut: on one node it is there.
        rec = self.records(self.path("single.h5"))
        self.assertEqual(rec[:, 2].tolist(), [2] * 30)
        self.assertEqual(rec[:, 4].tolist(), [1] * 30,
                         "on one node the apps should set OMPI_MCA_pml=ob1")
        note("one node (mpirun -n 2): OMPI_MCA_pml=ob1 in every point's environment")


# --- (e) node dispatch across real node boundaries ---------------------------

class ClusterNodeDispatchTest(ClusterCase):
    """MPMAP_DISPATCH=nodes on 1 + 2 + 3 ranks: the nodes come from
    MPI_COMM_TYPE_SHARED, so mpmap-n2 and mpmap-n3 each get a sub-manager
    (ranks 1 and 3) that relays over TCP to rank 0 and serves its node over
    shared memory. mpi_dispatch_test (roles from the trace, records and
    sums of every schedule), mpi_runtime_test's stops (failures, interrupt
    + resume: a CANCEL must reach every rank) and one app against `-n 1`."""

    def cluster_env(self):
        marker, env = super().cluster_env()
        env["MPMAP_DISPATCH"] = "nodes"
        env["MPMAP_CLUSTER_MPIRUN_ARGS"] = "-x MPMAP_DISPATCH"
        return marker, env

    def test_runtime_checks_under_node_dispatch(self):
        runtime = os.environ.get("MPMAP_RUNTIME_TEST")
        if not runtime or not os.access(runtime, os.X_OK):
            self.skipTest("MPMAP_RUNTIME_TEST names no built mpi_runtime_test")
        dispatch = os.path.join(os.path.dirname(runtime), "mpi_dispatch_test")
        for binary, args, sign in ((dispatch, [], "node dispatch: 2 sub-managers checked"),
                                   (runtime, ["--stops-only"], "passed, 0 failed")):
            marker, env = self.cluster_env()
            command = [CLUSTER, str(len(LAYOUT)), ",".join(map(str, LAYOUT)), binary] + args
            try:
                result = subprocess.run(command, cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                                        capture_output=True, text=True, timeout=RUN_TIMEOUT)
            finally:
                kill_run(marker)
            what = f"{os.path.basename(binary)} {' '.join(args)}"
            self.assertEqual(result.returncode, 0,
                             f"{what}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
            self.assertIn(sign, result.stdout)
            self.assertIn("passed, 0 failed", result.stdout)
            note(f"cluster, node dispatch, {what}: " + result.stdout.strip().replace("\n", "; "))

    def test_app_matches_one_rank(self):
        args = ["--model", "lorenz", "--param", "rho=10:40:7", "--param", "sigma=8,10,12",
                "--length", "2000", "--quiet"]
        self.assert_ok(self.run_single("param_sweep", 1, args + ["--output", self.path("one.h5")]),
                       "param_sweep -n 1")
        self.assert_ok(self.run_cluster("param_sweep", args + ["--schedule", "dynamic", "--chunk",
                                                               "1", "--output",
                                                               self.path("nodes.h5")]),
                       "param_sweep on the cluster, node dispatch")
        assert_same_results(self, self.path("nodes.h5"), self.path("one.h5"),
                            "param_sweep, node dispatch")


if __name__ == "__main__":
    reason = cannot_emulate()
    if reason:
        print(f"test_cluster.py: skipped: cannot emulate a cluster here: {reason}", file=sys.stderr)
        sys.exit(SKIP)
    harness.main()
