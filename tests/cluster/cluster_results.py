"""What the apps compute on the emulated cluster (test_cluster.py runs these):
the same bits as one rank, the same bits after losing a node and --resume,
and the same under node dispatch (MPMAP_DISPATCH=nodes).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cluster_fixture import (CLUSTER, LAYOUT, NODES, RUN_TIMEOUT, ClusterCase,
                             assert_same_results, first_rank, jobids_of, kill_run, node_of,
                             note, read_text, run_processes)
import harness  # noqa: E402  (tests/apps/harness.py, on the path cluster_fixture sets)


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


# --- (c) node loss and --resume ----------------------------------------------

class NodeLossResumeTest(ClusterCase):
    """mc_pi on 1 + 2 + 3 ranks; after its first progress line every process
    of one node (the orted and its ranks) is stopped and SIGKILLed, as when a
    node dies. mpirun gives up on the job; the checkpoint (rank 0's) keeps
    what was done. --resume then computes only the rest and the output is
    bitwise the uninterrupted run's.

    A subclass sets the app and its arguments: APP, ARGS (TASKS tasks),
    RUN_ARGS for the cluster runs and --resume, REF_RANKS and REF_ARGS for
    the uninterrupted reference, which runs beside the cases when
    REF_IN_BACKGROUND (a run that mostly waits)."""

    APP = "mc_pi"
    ARGS = ["--samples", "1.2e10", "--tasks", "600", "--seed", "11"]
    TASKS = 600
    RUN_ARGS = []
    REF_RANKS = 2
    REF_ARGS = []
    REF_IN_BACKGROUND = False
    RESUME_RANKS = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ref_dir = tempfile.mkdtemp(prefix="mpmap_cluster_ref_")
        cls.ref_path = os.path.join(cls.ref_dir, "reference.h5")
        cls.ref_proc = harness.start_app(
            cls.APP, cls.REF_RANKS, cls.ARGS + cls.REF_ARGS + ["--quiet", "--output", cls.ref_path],
            cwd=cls.ref_dir, env=harness.mpi_env({"OMPI_MCA_orte_tmpdir_base": cls.ref_dir}))
        if not cls.REF_IN_BACKGROUND:
            cls.reference_file()

    @classmethod
    def reference_file(cls):
        """The uninterrupted run's output (waits for it the first time)."""
        if cls.ref_proc is not None:
            proc, cls.ref_proc = cls.ref_proc, None
            rc, _, err = harness.stop_app(proc, RUN_TIMEOUT)
            if rc != 0:
                raise AssertionError(f"reference run failed (exit {rc})\n{err}")
        return cls.ref_path

    @classmethod
    def tearDownClass(cls):
        if cls.ref_proc is not None:
            harness.kill_tree(cls.ref_proc)
        shutil.rmtree(cls.ref_dir, True)
        super().tearDownClass()

    def ready_to_lose(self, line):
        """Whether the run is far enough along to lose a node: it printed a
        progress line."""
        return line.startswith(f"{self.APP}: progress ")

    def lose_node(self, node, out):
        proc, marker = self.start_cluster(self.APP, self.ARGS + self.RUN_ARGS + [
            "--output", out, "--progress-interval", "0.1"])
        lines = []
        everything = {}
        progressed = threading.Event()

        def read():
            for line in proc.stderr:
                lines.append(line)
                if self.ready_to_lose(line):
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
            # A set: the children a rank runs (--exec) inherit its rank variable.
            ranks = sorted({int(env["OMPI_COMM_WORLD_RANK"]) for env in victims.values()
                            if "OMPI_COMM_WORLD_RANK" in env})
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
        # "(N tasks resumed from checkpoint)"; param_sweep says points.
        m = re.search(r"\((\d+) \w+ resumed from checkpoint\)", stdout)
        self.assertTrue(m, f"no resume count in the summary:\n{stdout}")
        note(f"resumed: {m.group(1)}/{self.TASKS} tasks from the checkpoint")
        self.assertGreater(int(m.group(1)), 0, "nothing was kept from before the node loss")
        self.assertLess(int(m.group(1)), self.TASKS, "the run was over before the node loss")
        self.assertFalse(os.path.exists(out + ".ckpt"), "checkpoint left after the resumed run")
        assert_same_results(self, out, self.reference_file(), "resumed after node loss")

    def test_lose_worker_node_resume_on_one_node(self):
        out = self.path("out.h5")
        self.lose_node("mpmap-n3", out)
        self.assert_resumed(self.run_single(self.APP, self.RESUME_RANKS,
                                            self.ARGS + self.RUN_ARGS + ["--resume", "--output",
                                                                         out]), out)

    def test_lose_manager_node_resume_on_cluster(self):
        out = self.path("out.h5")
        self.lose_node("mpmap-n1", out)
        self.assert_resumed(self.run_cluster(self.APP, self.ARGS + self.RUN_ARGS + [
            "--resume", "--output", out]), out)


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
