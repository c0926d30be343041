#!/usr/bin/python3
"""--write ranks end to end: every rank writes the rows of its own tasks into
OUTPUT.partial (src/kit/rows.c, rows_keep.c), rank 0 only /status and the
fills of failed tasks.

  SameBitsTest       param_sweep (linear, lorenz) and knn_query at -n 1, -n 3
                     and another schedule: every dataset bitwise the --write
                     rank0 run's, the fields contiguous
  FailedPointsTest   --exec points failing under --on-error continue: the
                     same NaN rows and /status as with --write rank0
  InterruptTest      SIGTERM mid-run (exit 3, rows kept in OUT.partial.prev
                     beside OUT.ckpt and OUT.ckpt.rows) and SIGKILL of every
                     rank (OUT.partial left), each resumed on another rank
                     count to the bits of a --write rank0 run, nothing left
                     behind; --resume refused with another --write or with
                     the rows' file gone
  RefusalTest        --write ranks where it cannot work (--live; kde_sweep,
                     task_list: summaries on rank 0; mc_pi, word_count:
                     reductions; --write bogus): exit 2 on every rank, one
                     line, no output files
  DiskFullTest       no room for the fields under --write ranks: exit 1, one
                     line naming the file, no hang, no output
  DiskFullMidRunTest the disk filled by another program mid-run: exit 1, one
                     line, the rows kept; --resume once there is room equals
                     the --write rank0 run (both: root, a small tmpfs)

The interrupted runs are stopped at a known point, not after a delay: their
command creates the file 'reached' (and then sleeps) once it gets to the
slow half of the grid, and only while the file 'slow' exists, so the
reference and the resumed runs (same command, hence same fingerprint) are
fast.

Run: MPMAP_APPS_DIR=build/apps python3 tests/apps/test_write_ranks.py
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (shared helpers of the app tests)
import test_output_faults as faults  # noqa: E402  (wait_for, TmpfsMixin)

from harness import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE  # noqa: E402

# Records of a few KiB: linear 600 values, knn_query 256 (distance, index) pairs.
LINEAR = ["--model", "linear", "--param", "p1=-2:2:9", "--param", "p2=0:3:7", "--length", "600"]
LORENZ = ["--model", "lorenz", "--param", "rho=10:40:12", "--param", "sigma=8,10",
          "--length", "2000"]
KNN = ["--points", "4000", "--queries-count", "300", "--dim", "4", "-k", "256"]

# 300 numbers per point; a % 7 == 3 fails (exit 7, a NaN row); from a = 20 on
# (task 40 of 80) a point announces itself in 'reached' and takes 0.3 s while
# 'slow' exists.
SLOW_EXEC = ("sh -c 'if [ $(( {a} % 7 )) = 3 ]; then exit 7; fi; seq {a} $(( {a} + 299 )); "
             "if [ {a} -ge 20 ] && [ -f slow ]; then touch reached; sleep 0.3; fi'")
SLOW_ARGS = ["--exec", SLOW_EXEC, "--param", "a=0:39:40", "--param", "b=0,1",
             "--record-length", "300", "--quiet"]
SLOW_TASKS = 80


def datasets(path):
    """Every dataset but /trace (when each chunk ran: differs run to run)."""
    contents = harness.read_h5(path)
    return {k: v for k, v in contents.items() if not k.startswith("/trace/")}


def field_layouts(path, names):
    with h5py.File(path, "r") as f:
        return {name: f[name].chunks for name in names}


def output_files(out):
    """Which of the run's files exist."""
    suffixes = ("", ".partial", ".partial.prev", ".ckpt", ".ckpt.rows")
    return {s for s in suffixes if os.path.exists(out + s)}


def rank_pids(proc, app):
    """The pids of the ranks of app under the mpirun proc: its processes not
    under another of them (a rank's child has the rank's name from its fork
    to its exec)."""
    pids = set(harness.app_pids(proc, app))
    ranks = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:  # a child gone since
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) not in pids:
            ranks.append(pid)
    return sorted(ranks)


def run_on_every_rank(app, nprocs, args, cwd, rc_dir, timeout=60):
    """Runs app under mpirun with each rank's exit code kept in
    rc_dir/rc.RANK (mpirun reports only the first non-zero one, and would
    kill the other ranks before they exit by themselves; told not to, it
    exits 0); returns (stdout, stderr, [exit code of rank 0, 1, ...]),
    None for a rank that did not exit by itself."""
    keep = f'"$0" "$@"; rc=$?; echo $rc > "{rc_dir}/rc.$OMPI_COMM_WORLD_RANK"; exit $rc'
    command = [harness.mpirun(), "--mca", "orte_abort_on_non_zero_status", "0",
               "-n", str(nprocs), "sh", "-c", keep, harness.app_path(app)] + [str(a) for a in args]
    proc = subprocess.Popen(command, cwd=cwd, env=harness.mpi_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _, out, err = harness.stop_app(proc, timeout, command)
    codes = []
    for rank in range(nprocs):
        path = os.path.join(rc_dir, f"rc.{rank}")
        codes.append(int(harness.file_bytes(path)) if os.path.exists(path) else None)
    return out, err, codes


class WriteRanksCase(harness.TempDirCase):

    def assert_same_datasets(self, got_path, want, what):
        got = datasets(got_path)
        self.assertEqual(sorted(got), sorted(want), f"{what}: other datasets")
        for name in want:
            self.assertTrue(harness.same_bits(got[name], want[name]),
                            f"{what}: {name} differs from the --write rank0 run")

    def assert_ok(self, result, what):
        self.assertNotIsInstance(result, Exception, f"{what}: {result}")
        rc, _, stderr = result
        self.assertEqual(rc, 0, f"{what}:\n{stderr}")


class SameBitsTest(WriteRanksCase):
    """Each app: a --write rank0 reference and three --write ranks runs."""

    # name: app, arguments, fields, least bytes of a record's row of a field
    CASES = {
        "linear": ("param_sweep", LINEAR, ("/result",), 4800),
        "lorenz": ("param_sweep", LORENZ, ("/result",), 32),
        "knn": ("knn_query", KNN, ("/distance", "/index"), 2048),
    }
    VARIANTS = [(1, []), (3, []), (3, ["--schedule", "dynamic", "--chunk", "3"])]

    def test_every_dataset_equals_the_rank0_run(self):
        calls, labels = [], []
        for name, (app, args, _, _) in self.CASES.items():
            calls.append(dict(app=app, nprocs=2, timeout=60,
                              args=args + ["--quiet", "--output", self.path(f"{name}.ref.h5")]))
            labels.append((name, "ref", None))
            for i, (n, extra) in enumerate(self.VARIANTS):
                out = self.path(f"{name}.{i}.h5")
                calls.append(dict(app=app, nprocs=n, timeout=60,
                                  args=args + extra + ["--write", "ranks", "--quiet",
                                                       "--output", out]))
                labels.append((name, f"-n {n} {' '.join(extra)}", out))
        for label, result in zip(labels, harness.run_many(calls, workers=3)):
            self.assert_ok(result, f"{label[0]} {label[1]}")
        for name, (_, _, fields, row_bytes) in self.CASES.items():
            want = datasets(self.path(f"{name}.ref.h5"))
            for field in fields:
                ntasks = want["/status"].size if "/status" in want else want[field].shape[0]
                self.assertGreaterEqual(want[field].nbytes // ntasks, row_bytes, f"{name}{field}")
            for label in labels:
                if label[0] != name or label[2] is None:
                    continue
                with self.subTest(app=name, run=label[1]):
                    self.assert_same_datasets(label[2], want, f"{name} {label[1]}")
                    attrs = harness.read_h5(label[2]).attrs
                    self.assertIn("--write=ranks", attrs["mpmap_fingerprint"])
                    self.assertEqual(attrs["mpmap_write"], "ranks")
                    # Rows at fixed byte offsets: the fields are contiguous.
                    for field, chunks in field_layouts(label[2], fields).items():
                        self.assertIsNone(chunks, f"{name}{field} is chunked")
                    self.assertEqual(output_files(label[2]), {""},
                                     f"{name} {label[1]}: files left beside the output")


class FailedPointsTest(WriteRanksCase):
    def test_failed_points_are_nan_rows_and_statuses_as_with_rank0(self):
        # a % 3 == 1 fails; the others print 300 numbers a..a+299.
        cmd = ("sh -c 'if [ $(( {a} % 3 )) = 1 ]; then echo no >&2; exit 7; fi; "
               "seq {a} $(( {a} + 299 ))'")
        args = ["--exec", cmd, "--param", "a=0:8:9", "--param", "b=0,1",
                "--record-length", "300", "--quiet"]
        runs = [(1, ["--write", "rank0"]), (3, ["--write", "ranks"]),
                (2, ["--write", "ranks", "--schedule", "dynamic", "--chunk", "2"])]
        results = harness.run_many([dict(app="param_sweep", nprocs=n, timeout=60,
                                         args=args + extra + ["--output", self.path(f"f{i}.h5")])
                                    for i, (n, extra) in enumerate(runs)], workers=3)
        for (n, extra), result in zip(runs, results):
            self.assert_ok(result, f"-n {n} {extra}")
        want = datasets(self.path("f0.h5"))
        status, result = want["/status"], want["/result"]
        failed = (np.arange(9) % 3 == 1)[:, None].repeat(2, axis=1)
        np.testing.assert_array_equal(status, np.where(failed, 7, 0))
        self.assertTrue(np.isnan(result[failed]).all())
        np.testing.assert_array_equal(
            result[0, 1], np.arange(0, 300, dtype=float))
        for i in (1, 2):
            with self.subTest(run=runs[i]):
                self.assert_same_datasets(self.path(f"f{i}.h5"), want, f"run {runs[i]}")
                self.assertEqual(harness.read_h5(self.path(f"f{i}.h5")).attrs["failed_points"],
                                 6)


class SlowRunCase(WriteRanksCase):
    """Runs of SLOW_ARGS caught in their slow half, and their reference."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mpmap_write_ranks_")
        # Also when the reference run fails (tearDownClass would not run).
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        out = os.path.join(cls.root, "reference.h5")
        rc, _, err = harness.run_app("param_sweep", 2, SLOW_ARGS + ["--output", out],
                                     timeout=60, cwd=cls.root)
        if rc != 0:
            raise AssertionError(f"reference run failed ({rc}):\n{err}")
        cls.reference = datasets(out)

    def start_and_catch(self, nprocs, out):
        """Starts a slow --write ranks run; returns it and its ranks' pids
        once it got to the slow half of the grid (slow until fast())."""
        open(self.path("slow"), "w").close()
        # Another schedule than the resumed runs': small chunks, so tasks
        # are done (and checkpointed) before the slow half starts.
        proc = harness.start_app("param_sweep", nprocs, SLOW_ARGS + [
            "--write", "ranks", "--schedule", "dynamic", "--chunk", "4", "--output", out],
            cwd=self.tmp)
        try:
            faults.wait_for(lambda: os.path.exists(self.path("reached")) or proc.poll() is not None,
                            what="the slow half of the grid")
            self.assertIsNone(proc.poll(), "the run ended before it could be stopped")
            pids = rank_pids(proc, "param_sweep")
            self.assertEqual(len(pids), nprocs)
        except BaseException:
            harness.kill_tree(proc)
            raise
        return proc, pids

    def fast(self):
        """The points of the caught run left, and of later runs, are fast."""
        os.remove(self.path("slow"))

    def assert_resumed_to_reference(self, nprocs, out, all_done_ok=False):
        rc, stdout, stderr = harness.run_app("param_sweep", nprocs, [
            a for a in SLOW_ARGS if a != "--quiet"] + [
            "--write", "ranks", "--output", out, "--resume"], timeout=60, cwd=self.tmp)
        self.assertEqual(rc, 0, stderr)
        m = re.search(r"\((\d+) points resumed from checkpoint\)", stdout)
        self.assertIsNotNone(m, stdout)
        # A failure at the commit leaves every task in the checkpoint.
        self.assertTrue(0 < int(m.group(1)) <= (SLOW_TASKS if all_done_ok else SLOW_TASKS - 1),
                        stdout)
        self.assert_same_datasets(out, self.reference, "resumed run")
        self.assertEqual(output_files(out), {""}, "files left after the resumed run")
        return int(m.group(1))


class InterruptTest(SlowRunCase):

    def test_sigterm_keeps_rows_beside_checkpoint_and_resume_on_fewer_ranks_equals_rank0(self):
        out = self.path("o.h5")
        proc, pids = self.start_and_catch(3, out)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        self.fast()
        rc, _, stderr = harness.stop_app(proc, 60)
        self.assertEqual(rc, EXIT_INTERRUPTED, stderr)
        m = re.search(r"interrupted: (\d+)/(\d+) tasks done; rerun with --resume", stderr)
        self.assertIsNotNone(m, stderr)
        done = int(m.group(1))
        self.assertTrue(0 < done < SLOW_TASKS, m.group(0))
        self.assertEqual(output_files(out), {".partial.prev", ".ckpt", ".ckpt.rows"})
        # The checkpoint holds ranges, not the done tasks' 2400-byte rows.
        self.assertLess(os.path.getsize(out + ".ckpt"), 2400 * done)
        self.assertEqual(self.assert_resumed_to_reference(2, out), done)

    def test_sigkill_of_every_rank_leaves_partial_and_resume_on_more_ranks_equals_rank0(self):
        out = self.path("o.h5")
        proc, pids = self.start_and_catch(2, out)
        # A killed run keeps only the ranges its ranks synced, once per
        # checkpoint interval: wait until the checkpoint has some.
        size = os.path.getsize(out + ".ckpt")
        try:
            faults.wait_for(lambda: os.path.getsize(out + ".ckpt") > size, what="a synced range")
        except BaseException:
            harness.kill_tree(proc)
            raise
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.fast()
        rc, _, stderr = harness.stop_app(proc, 60)
        self.assertNotEqual(rc, 0, stderr)
        self.assertEqual(output_files(out), {".partial", ".ckpt", ".ckpt.rows"})
        self.assert_resumed_to_reference(3, out)

    def test_resume_refused_with_rank0_and_without_the_rows_file(self):
        out = self.path("o.h5")
        proc, pids = self.start_and_catch(2, out)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        self.fast()
        rc, _, stderr = harness.stop_app(proc, 60)
        self.assertEqual(rc, EXIT_INTERRUPTED, stderr)
        kept = {s: harness.file_bytes(out + s) for s in (".partial.prev", ".ckpt", ".ckpt.rows")}

        def assert_refused(args, *needles):
            rc_dir = tempfile.mkdtemp(dir=self.tmp)
            _, stderr, codes = run_on_every_rank(
                "param_sweep", 2, SLOW_ARGS + args + ["--output", out, "--resume"], self.tmp,
                rc_dir)
            self.assertEqual(codes, [EXIT_USAGE] * 2, stderr)
            harness.assert_one_line_error(self, "param_sweep", stderr, *needles)
            self.assertFalse(os.path.exists(out), "output written by a refused run")
            self.assertFalse(os.path.exists(out + ".partial"), "partial made by a refused run")

        # The checkpoint's rows are in the data file: --write rank0 could
        # not use them, and the fingerprint says which flag differs.
        assert_refused(["--write", "rank0"], "--write", "--force")
        for suffix, data in kept.items():
            self.assertEqual(harness.file_bytes(out + suffix), data, f"{suffix} changed")

        os.remove(out + ".partial.prev")
        assert_refused(["--write", "ranks"], "gone", "--force")
        self.assertEqual(output_files(out), {".ckpt", ".ckpt.rows"})
        for suffix in (".ckpt", ".ckpt.rows"):
            self.assertEqual(harness.file_bytes(out + suffix), kept[suffix], f"{suffix} changed")

        # As the message says, --force starts over.
        rc, _, stderr = harness.run_app("param_sweep", 2, SLOW_ARGS + [
            "--write", "ranks", "--output", out, "--force"], timeout=60, cwd=self.tmp)
        self.assertEqual(rc, 0, stderr)
        self.assert_same_datasets(out, self.reference, "--force after the refusal")
        self.assertEqual(output_files(out), {""})


class RefusalTest(WriteRanksCase):
    KDE = ["--kernel", "gaussian", "--cv", "5", "--samples", "500", "--widths", "0.05:1:10"]
    CASES = {
        "live": ("param_sweep", LINEAR + ["--live", "--write", "ranks"],
                 ("--write ranks cannot be used with --live",)),
        "bogus": ("param_sweep", LINEAR + ["--write", "bogus"], ("--write", "bogus")),
        "kde_sweep": ("kde_sweep", KDE + ["--write", "ranks"],
                      ("--write ranks", "needs every result on rank 0", "--write rank0")),
        "task_list": ("task_list", ["--tasks", "TASKS", "--write", "ranks"],
                      ("--write ranks", "needs every result on rank 0", "--write rank0")),
        "mc_pi": ("mc_pi", ["--samples", "1e5", "--tasks", "10", "--write", "ranks"],
                  ("--write ranks", "folds its results on rank 0", "--write rank0")),
        "word_count": ("word_count", ["-i", "INPUT", "--write", "ranks"],
                       ("--write ranks", "folds its results on rank 0", "--write rank0")),
    }

    def test_refused_on_every_rank_with_one_line_and_no_files(self):
        inputs = self.path("inputs")
        os.mkdir(inputs)
        with open(os.path.join(inputs, "tasks.txt"), "w") as f:
            f.write("echo one\necho two\necho three\n")
        with open(os.path.join(inputs, "words.txt"), "w") as f:
            f.write("alpha beta gamma alpha\n" * 100)
        for name, (app, args, needles) in self.CASES.items():
            with self.subTest(case=name):
                where = self.path(name)
                os.mkdir(where)
                rc_dir = self.path(name + ".rc")
                os.mkdir(rc_dir)
                args = [os.path.join(inputs, "tasks.txt") if a == "TASKS" else
                        os.path.join(inputs, "words.txt") if a == "INPUT" else a for a in args]
                out = os.path.join(where, "o.h5")
                stdout, stderr, codes = run_on_every_rank(
                    app, 3, args + ["--output", out, "--quiet"], where, rc_dir)
                self.assertEqual(codes, [EXIT_USAGE] * 3, f"exit codes per rank\n{stderr}")
                harness.assert_one_line_error(self, app, stderr, *needles)
                self.assertEqual(stdout, "")
                self.assertEqual(output_files(out), set(), "a refused run made output files")
                self.assertEqual(os.listdir(where), [], "a refused run left files")


class DiskFullTest(faults.TmpfsMixin, WriteRanksCase):
    # 9 records of 160 KB (1.4 MB in all).
    ARGS = ["--model", "linear", "--param", "p1=1:9:9", "--param", "p2=1", "--length", "20000",
            "--quiet"]

    def test_no_room_for_the_fields_fails_with_one_line_and_no_output(self):
        # The fields are allocated when the file is made: far more than the
        # 400 KiB there is.
        where = self.mount_tmpfs("400k")
        out = os.path.join(where, "o.h5")
        for n in (1, 3):
            with self.subTest(ranks=n):
                for name in os.listdir(where):
                    os.remove(os.path.join(where, name))
                rc, _, stderr = harness.run_app("param_sweep", n, self.ARGS + [
                    "--write", "ranks", "--output", out], timeout=60)
                self.assertEqual(rc, EXIT_FAILED, f"(139 = crash)\n{stderr}")
                self.assertNotIn("Segmentation", stderr)
                line = harness.assert_one_line_error(self, "param_sweep", stderr, "o.h5")
                self.assertRegex(line, r"(?i)no space left on device")
                self.assertFalse(os.path.exists(out), "output committed on a full disk")



class DiskFullMidRunTest(faults.TmpfsMixin, SlowRunCase):
    def test_disk_filled_mid_run_keeps_the_rows_and_resumes_once_there_is_room(self):
        where = self.mount_tmpfs("2m")
        out = os.path.join(where, "o.h5")
        proc, _ = self.start_and_catch(3, out)
        # Another program takes the rest of the disk; the slow points end
        # and the run meets the full disk at its next write: a row, the
        # checkpoint or the commit, whichever the layout makes come first.
        filler = os.path.join(where, "filler")
        self.addCleanup(lambda: os.path.exists(filler) and os.remove(filler))
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        self.fast()
        rc, _, stderr = harness.stop_app(proc, 60)
        self.assertEqual(rc, EXIT_FAILED, f"(139 = crash)\n{stderr}")
        # Beside the points of SLOW_EXEC that fail by design.
        others = "\n".join(line for line in stderr.splitlines()
                           if not re.search(r": point \d+ \(.*\) failed: exit code 7$", line))
        line = harness.assert_one_line_error(self, "param_sweep", others, "o.h5", "--resume")
        self.assertRegex(line, r"(?i)no space left on device")
        self.assertEqual(output_files(out), {".partial.prev", ".ckpt", ".ckpt.rows"})
        os.remove(filler)
        # The message's promise: --resume carries the rows kept so far.
        self.assert_resumed_to_reference(2, out, all_done_ok=True)


if __name__ == "__main__":
    harness.main()
