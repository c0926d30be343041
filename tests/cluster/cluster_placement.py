"""Where a job lands on the emulated cluster (test_cluster.py runs these):
one copy of a node-shared input per node, shared memory only inside a node,
TCP only on loopback, and the apps' one-node start-up shortcut only when
every rank is on one node.
"""
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cluster_fixture import (LAYOUT, NODES, RUN_TIMEOUT, ClusterCase, first_rank, kill_run,
                             node_of, node_of_rank, note, rank_pids)
import harness  # noqa: E402  (tests/apps/harness.py, on the path cluster_fixture sets)


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
