"""The output's life under faults (apps/app_common.c, src/output.c):

  OutputLockTest        a second run on a live run's output, whatever its
                        flags, is refused (exit 2, naming host and pid) and
                        leaves the live run's files alone; a dead run's lock
                        file is no obstacle
  DiskFullTest          a full disk ends a run with exit 1 and one line
                        ("no space left on device while writing 'o.h5'"),
                        never a crash; the checkpoint resumes once there is
                        room (needs root to mount a small tmpfs; skipped
                        otherwise)
  ResumeOverOldTest     an interrupted --force run over an old result is
                        continued by --resume; the old file stays until the
                        new one is committed
  CompleteOutputTest    --resume on a complete output of the same arguments
                        exits 0 "already complete" without touching it; other
                        arguments or other input data exit 2 saying what differs
  CheckpointMismatchTest
                        --resume against a checkpoint of other input data or
                        arguments names the difference instead of two clipped
                        fingerprints

Run: MPMAP_APPS_DIR=build/apps python3 tests/apps/test_output_faults.py
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np

from harness import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, TempDirCase, app_lines,
                     assert_one_line_error, file_bytes, main, noise_free_lines, read_h5, run_app,
                     run_many, same_bits, start_app, stop_app, wait_for_ranks, write_h5)

# mc_pi long enough to be caught running (about 8 s on one core).
LONG_MC_PI = ["--samples", "1e10", "--tasks", "1000", "--quiet"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def file_state(path):
    st = os.stat(path)
    return st.st_ino, st.st_size


def stop_ranks(proc, app, sig=signal.SIGTERM):
    for pid in wait_for_ranks(proc, app, 1):
        os.kill(pid, sig)


class OutputLockTest(TempDirCase):
    def test_second_run_is_refused_whatever_its_flags(self):
        out = self.path("same.h5")
        first = start_app("mc_pi", 1, LONG_MC_PI + ["--output", out])
        try:
            ranks = wait_for_ranks(first, "mc_pi", 1)
            # Running: the checkpoint has its first chunks and the partial file exists.
            wait_for(lambda: os.path.exists(out + ".partial") and os.path.exists(out + ".ckpt")
                     and os.path.getsize(out + ".ckpt") > 200, what="the first run's files")
            partial, ckpt = file_state(out + ".partial"), file_state(out + ".ckpt")
            results = run_many([dict(app="mc_pi", nprocs=1,
                                     args=LONG_MC_PI + ["--output", out] + flags)
                                for flags in ([], ["--force"], ["--resume"])])
            for flags, result in zip(([], ["--force"], ["--resume"]), results):
                self.assertNotIsInstance(result, Exception, result)
                code, _, stderr = result
                self.assertEqual(code, EXIT_USAGE, f"second run {flags}: {stderr}")
                assert_one_line_error(self, "mc_pi", stderr, "in use by another run",
                                      f"pid {ranks[0]}", socket.gethostname())
            self.assertIsNone(first.poll(), "the first run died")
            # Nothing of the live run was truncated or replaced.
            now_partial, now_ckpt = file_state(out + ".partial"), file_state(out + ".ckpt")
            self.assertEqual(now_partial[0], partial[0], "partial file replaced")
            self.assertEqual(now_ckpt[0], ckpt[0], "checkpoint replaced")
            self.assertGreaterEqual(now_partial[1], partial[1], "partial file truncated")
            self.assertGreaterEqual(now_ckpt[1], ckpt[1], "checkpoint truncated")
            stop_ranks(first, "mc_pi")
        finally:
            code, _, stderr = stop_app(first)
        # The first run ends as an interrupted run: its work is intact.
        self.assertEqual(code, EXIT_INTERRUPTED, stderr)
        self.assertIn("tasks done; rerun with --resume", stderr)
        self.assertFalse(os.path.exists(out + ".lock"), "lock file left behind")

    def test_lock_of_a_dead_run_is_no_obstacle(self):
        out = self.path("o.h5")
        with open(out + ".lock", "w") as f:
            f.write("pid 999999 on host elsewhere\n")
        code, _, stderr = run_app("mc_pi", 1, ["--samples", "1e5", "--tasks", "10",
                                               "--output", out, "--quiet"])
        self.assertEqual(code, 0, stderr)
        self.assertTrue(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".lock"), "lock file left behind")

    def test_refused_run_releases_its_lock(self):
        out = self.path("o.h5")
        with open(out, "w") as f:
            f.write("old")
        code, _, stderr = run_app("mc_pi", 1, ["--samples", "1e5", "--tasks", "10",
                                               "--output", out])
        self.assertEqual(code, EXIT_USAGE, stderr)
        self.assertFalse(os.path.exists(out + ".lock"), "lock file left behind")


class TmpfsMixin:
    """A tmpfs of a given size for the test, unmounted in cleanup."""

    def mount_tmpfs(self, size):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        where = tempfile.mkdtemp(prefix="mpmap_full_")
        self.addCleanup(os.rmdir, where)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", where], capture_output=True)
        return where

    def grow(self, where, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", where], check=True)


class DiskFullTest(TmpfsMixin, TempDirCase):
    """Disks of 40%, 70% and 100% of the finished output's size (the
    checkpoint needs room too, so even the last one fills up): the disk fills
    while the checkpoint, the output's datasets or the commit's flush are
    written, whichever the layout makes come first."""

    FRACTIONS = (0.4, 0.7, 1.0)

    def assert_clean_failure(self, app, code, stderr):
        self.assertEqual(code, EXIT_FAILED, f"{app} did not fail cleanly (139 = crash):\n{stderr}")
        self.assertNotIn("Segmentation", stderr)
        line = assert_one_line_error(self, app, stderr)
        for internal in ("HDF5", "H5", "errno", "slist", "file descriptor"):
            self.assertNotIn(internal, line, "HDF5 internals in the message")
        self.assertRegex(line, r"(?i)no space left on device")
        return line

    def fill_and_resume(self, app, args, dataset):
        ref = self.path("ref.h5")
        code, _, stderr = run_app(app, 1, args + ["--output", ref])
        self.assertEqual(code, 0, stderr)
        want = read_h5(ref)[dataset]
        size = os.path.getsize(ref)
        for fraction in self.FRACTIONS:
            with self.subTest(fraction=fraction):
                where = self.mount_tmpfs(f"{max(64, int(size * fraction) // 1024)}k")
                out = os.path.join(where, "o.h5")
                code, _, stderr = run_app(app, 1, args + ["--output", out])
                line = self.assert_clean_failure(app, code, stderr)
                if "checkpoint" not in line:
                    self.assertIn(f"no space left on device while writing '{out}'", line)
                # A disk too small for the output's first blocks stops the run
                # before any task: nothing to keep then, and none promised.
                started = "--resume" in line
                self.assertEqual(os.path.exists(out + ".ckpt"), started,
                                 f"checkpoint kept or lost against the message: {line}")
                self.assertFalse(os.path.exists(out), "half a result published")
                self.assertFalse(os.path.exists(out + ".partial"), "partial file left behind")
                self.assertFalse(os.path.exists(out + ".lock"), "lock file left behind")
                # With room again the checkpoint finishes the job, bit for bit.
                self.grow(where, f"{4 * size // 1024 + 1024}k")
                code, _, stderr = run_app(app, 1, args + ["--output", out] +
                                          (["--resume"] if started else []))
                self.assertEqual(code, 0, stderr)
                self.assertTrue(same_bits(read_h5(out)[dataset], want))

    def test_kde_sweep_on_a_full_disk_fails_cleanly_and_resumes(self):
        self.fill_and_resume("kde_sweep", ["--widths", "0.5:1:2000", "--samples", "1000",
                                           "--quiet"], "/density")

    def test_mc_pi_on_a_full_disk_fails_cleanly_and_resumes(self):
        self.fill_and_resume("mc_pi", ["--samples", "1e7", "--tasks", "1e5", "--quiet"], "/hits")


class ResumeOverOldTest(TempDirCase):
    def test_interrupted_force_run_over_an_old_result_resumes(self):
        out = self.path("r.h5")
        code, _, stderr = run_app("mc_pi", 1, ["--samples", "1e5", "--tasks", "10",
                                               "--output", out, "--quiet"])
        self.assertEqual(code, 0, stderr)
        old = file_bytes(out)
        args = ["--samples", "3e9", "--tasks", "300", "--quiet"]
        proc = start_app("mc_pi", 1, args + ["--output", out, "--force"])
        try:
            wait_for(lambda: os.path.exists(out + ".ckpt") and
                     os.path.getsize(out + ".ckpt") > 200, what="checkpointed chunks")
            stop_ranks(proc, "mc_pi")
        finally:
            code, _, stderr = stop_app(proc)
        if code == 0:
            self.skipTest("the --force run finished before it could be interrupted")
        self.assertEqual(code, EXIT_INTERRUPTED, stderr)
        self.assertEqual(file_bytes(out), old, "the old result changed before a commit")
        code, _, stderr = run_app("mc_pi", 1, args + ["--output", out, "--resume"])
        self.assertEqual(code, 0, stderr)
        self.assertFalse(os.path.exists(out + ".ckpt"))
        ref = self.path("ref.h5")
        code, _, stderr = run_app("mc_pi", 1, args + ["--output", ref])
        self.assertEqual(code, 0, stderr)
        self.assertTrue(same_bits(read_h5(out)["/hits"], read_h5(ref)["/hits"]))


class CompleteOutputTest(TempDirCase):
    ARGS = ["--samples", "1e6", "--tasks", "100"]

    def complete(self, app, args):
        out = self.path("r.h5")
        code, _, stderr = run_app(app, 1, args + ["--output", out, "--quiet"])
        self.assertEqual(code, 0, stderr)
        st = os.stat(out)
        return out, file_bytes(out), st.st_mtime_ns

    def test_resume_of_a_complete_output_is_a_no_op(self):
        out, data, mtime = self.complete("mc_pi", self.ARGS)
        time.sleep(0.05)
        code, stdout, stderr = run_app("mc_pi", 2, self.ARGS + ["--output", out, "--resume"])
        self.assertEqual(code, 0, stderr)
        self.assertIn("already complete", stdout + stderr)
        self.assertEqual(file_bytes(out), data)
        self.assertEqual(os.stat(out).st_mtime_ns, mtime)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["r.h5"])

    def test_resume_with_other_arguments_names_the_first(self):
        out, data, _ = self.complete("mc_pi", self.ARGS)
        code, _, stderr = run_app("mc_pi", 1, ["--samples", "2e6", "--tasks", "100",
                                               "--output", out, "--resume"])
        self.assertEqual(code, EXIT_USAGE, stderr)
        assert_one_line_error(self, "mc_pi", stderr, "--samples", "1000000", "2000000")
        self.assertEqual(file_bytes(out), data)

    def test_resume_with_other_input_data_says_so(self):
        data_file = self.path("in.h5")
        rng = np.random.default_rng(3)
        write_h5(data_file, {"/x": rng.normal(size=(300, 2))})
        args = ["--input", f"{data_file}:/x", "--widths", "0.5:1:20"]
        out, data, _ = self.complete("kde_sweep", args)
        code, _, stderr = run_app("kde_sweep", 1, args + ["--output", out, "--resume"])
        self.assertEqual(code, 0, stderr)
        self.assertIn("already complete", stderr)
        write_h5(data_file, {"/x": rng.normal(size=(300, 2))})
        code, _, stderr = run_app("kde_sweep", 1, args + ["--output", out, "--resume"])
        self.assertEqual(code, EXIT_USAGE, stderr)
        assert_one_line_error(self, "kde_sweep", stderr, "input data changed")
        self.assertEqual(file_bytes(out), data)


class CheckpointMismatchTest(TempDirCase):
    def interrupted(self, args, out):
        proc = start_app("kde_sweep", 1, args + ["--output", out])
        try:
            wait_for(lambda: os.path.exists(out + ".ckpt") and
                     os.path.getsize(out + ".ckpt") > 300, what="checkpointed chunks")
            stop_ranks(proc, "kde_sweep")
        finally:
            code, _, stderr = stop_app(proc)
        if code == 0:
            self.skipTest("the run finished before it could be interrupted")
        self.assertEqual(code, EXIT_INTERRUPTED, stderr)

    def test_checkpoint_of_other_input_data(self):
        data_file = self.path("in.h5")
        rng = np.random.default_rng(5)
        write_h5(data_file, {"/x": rng.normal(size=(20000, 3))})
        # Cross-validation over 20000 points: about 60 ms a width; one width
        # a chunk, so the checkpoint grows while the run goes on.
        args = ["--input", f"{data_file}:/x", "--widths", "0.1:2:400", "--kernel", "gaussian",
                "--cv", "2", "--schedule", "dynamic", "--quiet"]
        out = self.path("o.h5")
        self.interrupted(args, out)
        write_h5(data_file, {"/x": rng.normal(size=(20000, 3))})
        code, _, stderr = run_app("kde_sweep", 1, args + ["--output", out, "--resume"])
        self.assertEqual(code, EXIT_USAGE, stderr)
        assert_one_line_error(self, "kde_sweep", stderr, "input data changed")
        # Other arguments: the first differing one is named.
        other = [a if a != "0.1:2:400" else "0.1:2:401" for a in args]
        code, _, stderr = run_app("kde_sweep", 1, other + ["--output", out, "--resume"])
        self.assertEqual(code, EXIT_USAGE, stderr)
        assert_one_line_error(self, "kde_sweep", stderr, "--widths", "was", "now")


if __name__ == "__main__":
    main()
