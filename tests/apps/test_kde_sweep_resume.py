#!/usr/bin/python3
"""End-to-end tests of an interrupted or killed kde_sweep, under mpirun.

An interrupted or killed run resumes from its checkpoint to bitwise the
results of an uninterrupted run; a rerun without --resume, or with other
arguments, is refused; the progress bar ends its line before the
interruption's message. Apps from MPMAP_APPS_DIR, or --apps-dir DIR
(tests/apps/harness.py).

Test classes (each may run as its own ctest entry): KdeResumeTest
"""
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kde_sweep_app import APP, EXIT_INTERRUPTED, EXIT_USAGE, run  # noqa: E402


# --- interrupt and resume -----------------------------------------------------

class KdeResumeTest(harness.TempDirCase):
    """A Gaussian --cv 5 sweep of 300 widths (about 2 s of CPU, 1 s on two
    idle cores, much more under load). Runs are interrupted when their
    progress lines show work done, not after a fixed delay, so the test does
    not depend on the machine's speed. The uninterrupted run is made once,
    in setUpClass.

    Signals to the ranks themselves arrive at once. A signal to mpirun does
    not: Open MPI 4.1's mpirun answers SIGTERM/SIGINT with SIGCONT to the
    ranks at once, SIGTERM odls_base_sigkill_timeout (1 s) later and SIGKILL
    another second later, then exits (measured: +0.00, +1.00, +2.00 s, on
    an idle and a loaded machine alike). The test that signals mpirun
    therefore runs LONG_ARGS, a sweep that lasts ten times that relay on two
    idle cores (and longer the more loaded the machine, while the relay
    stays 1 s), and makes its own uninterrupted reference."""
    ARGS = ["--kernel", "gaussian", "--cv", "5", "--samples", "5000", "--widths",
            "0.05:1:300", "--point", "0,0", "--point", "0.5,-0.5"]
    # 1000 widths of 10 000 samples: about 20 s of CPU, so an uninterrupted
    # run takes about 10 s on two idle cores and minutes on a loaded one;
    # 20 ms a task, so an interrupted rank stops well within the 1 s mpirun
    # leaves it before its SIGKILL.
    LONG_ARGS = ["--kernel", "gaussian", "--cv", "5", "--samples", "10000", "--widths",
                 "0.05:1:1000", "--point", "0,0", "--point", "0.5,-0.5"]
    LONG_TIMEOUT = 450
    DATASETS = ("/density", "/cv_score", "/width", "/point", "/reference_density", "/abs_error")

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mpmap_kde_resume_")
        cls.reference_path = os.path.join(cls.root, "reference.h5")
        rc, _, err = run(2, cls.ARGS + ["--output", cls.reference_path, "--quiet"])
        if rc != 0:
            raise AssertionError(f"uninterrupted run failed ({rc}):\n{err}")
        cls.reference = harness.read_h5(cls.reference_path)
        cls.ntasks = cls.reference["/width"].shape[0]
        cls.shared_checkpoint = None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, True)

    def start(self, out, nprocs=2, extra=(), args=None):
        """Starts the sweep (ARGS unless args) with progress lines every
        0.1 s on stderr."""
        return harness.start_app(APP, nprocs, list(args or self.ARGS) + list(extra) + [
            "--output", out, "--progress-interval", "0.1"])

    def wait_progress(self, proc, at_least=1):
        """Reads progress lines until at_least tasks are done; returns the
        stderr read so far."""
        seen = []
        deadline = time.monotonic() + 60
        pattern = re.compile(rf"^{APP}: progress (\d+)/(\d+) tasks")
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            m = pattern.match(line)
            if m and int(m.group(1)) >= at_least:
                if int(m.group(1)) >= int(m.group(2)):
                    self.fail("the run finished before it could be interrupted; make it longer")
                return "".join(seen)
        harness.kill_tree(proc)
        self.fail("no progress line before the deadline:\n" + "".join(seen))

    def finish(self, proc, seen, timeout=120):
        rc, out, err = harness.stop_app(proc, timeout=timeout)
        return rc, out, seen + err

    def assert_interrupted(self, rc, err, out, expected_rc=EXIT_INTERRUPTED, message=True,
                           ntasks=None):
        if expected_rc is None:
            self.assertNotEqual(rc, 0, err)
        else:
            self.assertEqual(rc, expected_rc, err)
        m = re.search(r"interrupted: (\d+)/(\d+) tasks done; rerun with --resume", err)
        done = None
        if message or m:
            self.assertIsNotNone(m, err)
            done, total = int(m.group(1)), int(m.group(2))
            self.assertEqual(total, ntasks or self.ntasks)
            self.assertTrue(0 < done < total, f"{done}/{total}")
        state = (f"exit code {rc}; files: {sorted(os.listdir(os.path.dirname(out)))}\n"
                 f"stderr:\n{err}")
        self.assertTrue(os.path.exists(out + ".ckpt"), "checkpoint missing; " + state)
        self.assertFalse(os.path.exists(out), "output written by an interrupted run; " + state)
        self.assertFalse(os.path.exists(out + ".partial"), "partial output left behind; " + state)
        return done

    def assert_resumes_to_reference(self, out, nprocs=3, extra=("--schedule", "dynamic",
                                                                 "--chunk", "2"),
                                    flag="--resume", args=None, reference=None,
                                    timeout=harness.DEFAULT_TIMEOUT):
        """Runs again with flag (--resume, or --force to start over) and
        checks the results are bitwise the uninterrupted run's (ARGS and
        the class's reference unless args and reference)."""
        reference = reference or self.reference
        rc, stdout, err = run(nprocs, list(args or self.ARGS) + list(extra)
                              + ["--output", out, flag], timeout=timeout)
        self.assertEqual(rc, 0, err)
        m = re.search(r"\((\d+) tasks resumed from checkpoint\)", stdout)
        self.assertIsNotNone(m, stdout)
        if flag == "--resume":
            self.assertGreater(int(m.group(1)), 0, "nothing was taken from the checkpoint")
        else:
            self.assertEqual(int(m.group(1)), 0, "--force must start over")
        got = harness.read_h5(out)
        for name in self.DATASETS:
            self.assertTrue(harness.same_bits(got[name], reference[name]),
                            f"{name} differs from the uninterrupted run")
        self.assertEqual(got.attrs["best_width"], reference.attrs["best_width"])
        self.assertFalse(os.path.exists(out + ".ckpt"), "checkpoint left after success")
        self.assertFalse(os.path.exists(out + ".partial"))

    def interrupt(self, out):
        """Makes OUT.ckpt by interrupting a run (SIGTERM to every rank, as a
        batch system does); checks the interrupted run's outcome."""
        proc = self.start(out)
        seen = self.wait_progress(proc)
        for pid in harness.app_pids(proc, APP):
            os.kill(pid, signal.SIGTERM)
        rc, _, err = self.finish(proc, seen)
        return self.assert_interrupted(rc, err, out)

    def copy_of_shared_checkpoint(self, out):
        """OUT.ckpt: a copy of one interrupted run's checkpoint, shared by
        the tests that only need one to exist (the checkpoint does not
        record the output's name)."""
        cls = type(self)
        if cls.shared_checkpoint is None:
            made = os.path.join(cls.root, "shared.h5")
            self.interrupt(made)
            cls.shared_checkpoint = made + ".ckpt"
        shutil.copyfile(cls.shared_checkpoint, out + ".ckpt")

    def test_sigterm_to_ranks_exits_3_and_resume_is_bitwise_identical(self):
        out = self.path("out.h5")
        self.interrupt(out)
        self.assert_resumes_to_reference(out)

    def test_sigterm_to_mpirun_saves_checkpoint_and_resume_is_bitwise_identical(self):
        # Open MPI's mpirun relays SIGTERM to the ranks 1 s late and SIGKILLs
        # them 1 s after that (see the class comment), returns 1 itself,
        # whatever the ranks return, and may stop relaying their output while
        # it shuts down; the app's own code and message are pinned above.
        # LONG_ARGS runs ten times as long as that relay even on an idle
        # machine (longer on a loaded one), so the relayed signal lands long
        # before the sweep could end; no retry, no fixed delay.
        args = self.LONG_ARGS
        reference_path = self.path("long_reference.h5")
        rc, _, err = run(2, args + ["--output", reference_path, "--quiet"],
                         timeout=self.LONG_TIMEOUT)
        self.assertEqual(rc, 0, f"uninterrupted run failed:\n{err}")
        reference = harness.read_h5(reference_path)
        ntasks = reference["/width"].shape[0]

        out = self.path("out.h5")
        proc = self.start(out, args=args)
        seen = self.wait_progress(proc)
        proc.send_signal(signal.SIGTERM)
        rc, _, err = self.finish(proc, seen)
        self.assert_interrupted(rc, err, out, expected_rc=None, message=False, ntasks=ntasks)
        self.assert_resumes_to_reference(out, args=args, reference=reference,
                                         timeout=self.LONG_TIMEOUT)

    def test_sigkill_of_one_rank_leaves_a_resumable_checkpoint(self):
        out = self.path("out.h5")
        proc = self.start(out)
        # Past the first checkpoint sync (every 2 s) most of the time; any
        # state of the checkpoint must resume.
        seen = self.wait_progress(proc, at_least=max(2, self.ntasks // 5))
        pids = harness.app_pids(proc, APP)
        self.assertEqual(len(pids), 2)
        os.kill(pids[-1], signal.SIGKILL)
        rc, _, err = self.finish(proc, seen)
        self.assertNotEqual(rc, 0, err)
        self.assertFalse(os.path.exists(out), "output written by a killed run")
        self.assertTrue(os.path.exists(out + ".ckpt"), "checkpoint missing")
        self.assert_resumes_to_reference(out)

    def test_rerun_without_resume_is_refused_until_force(self):
        out = self.path("out.h5")
        self.copy_of_shared_checkpoint(out)
        before = harness.file_bytes(out + ".ckpt")
        for n in (1, 2):
            with self.subTest(n=n):
                rc, _, err = run(n, self.ARGS + ["--output", out])
                self.assertEqual(rc, EXIT_USAGE, err)
                harness.assert_one_line_error(self, APP, err, "--resume", "--force")
                self.assertEqual(harness.file_bytes(out + ".ckpt"), before)
                self.assertEqual(sorted(os.listdir(self.tmp)), ["out.h5.ckpt"])
        # --force starts over, ignoring the checkpoint, and removes it.
        self.assert_resumes_to_reference(out, nprocs=2, extra=(), flag="--force")

    def test_resume_with_other_arguments_is_refused(self):
        out = self.path("out.h5")
        self.copy_of_shared_checkpoint(out)
        before = harness.file_bytes(out + ".ckpt")
        changes = {
            "other_widths": ["--widths", "0.05:1:99"],
            "other_widths_same_count": ["--widths", "0.06:1:100"],
            "other_kernel_args": ["--cv", "4"],
            "other_seed": ["--seed", "7"],
        }
        for label, change in changes.items():
            with self.subTest(change=label):
                args = list(self.ARGS)
                flag = change[0]
                if flag in args:
                    i = args.index(flag)
                    args[i:i + 2] = change
                else:
                    args += change
                rc, _, err = run(2, args + ["--output", out, "--resume"])
                self.assertEqual(rc, EXIT_USAGE, err)
                line = harness.assert_one_line_error(self, APP, err)
                self.assertRegex(line, r"different run|arguments differ|--resume", line)
                self.assertEqual(harness.file_bytes(out + ".ckpt"), before)
                self.assertEqual(sorted(os.listdir(self.tmp)), ["out.h5.ckpt"])


    def test_progress_bar_fits_the_terminal_and_ends_its_line_before_interrupted(self):
        """At 50 columns every bar update wrapped, and "interrupted: ..."
        was glued to the end of the bar's line."""
        out = self.path("bar.h5")
        env = harness.mpi_env({"MPMAP_PROGRESS": "bar", "COLUMNS": "50"})
        proc = harness.start_app(APP, 2, self.ARGS + ["--output", out,
                                                      "--progress-interval", "0.05"], env=env)
        fd = proc.stderr.fileno()
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen.count(b"\r") < 2:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
        if seen.count(b"\r") < 2:
            harness.kill_tree(proc)
            self.fail(f"no progress bar before the deadline: {seen!r}")
        for pid in harness.app_pids(proc, APP):
            os.kill(pid, signal.SIGTERM)
        rc, _, err = harness.stop_app(proc, timeout=120)
        text = seen.decode() + err
        self.assertEqual(rc, EXIT_INTERRUPTED, text)
        at = text.find(f"{APP}: interrupted: ")
        self.assertGreater(at, 0, repr(text))
        self.assertEqual(text[at - 1], "\n", f"not on a line of its own: {text!r}")
        bars = re.findall(r"\r([^\r\n]*)", text)
        self.assertGreater(len(bars), 1, repr(text))
        for bar in bars:
            self.assertLessEqual(len(bar), 49, f"wider than 50 columns: {bar!r}")
            self.assertRegex(bar, r"\d+/300")


if __name__ == "__main__":
    harness.main()
