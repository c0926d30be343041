"""--live: the output is readable while the run writes it (HDF5 SWMR).

  LiveReadTest          a param_sweep --exec started with --live is read from
                        another process (h5py, swmr=True) while it runs, and
                        held open by this one until it has finished: its
                        /tasks_delivered grows, the delivered points equal
                        those of a run without --live bit for bit (a grid: the
                        rows of the last parameter fill up one by one),
                        tools/plot_live.py --once draws them, a second run on
                        the output is refused; the committed file holds the
                        same datasets, values and attributes as the run
                        without --live (provenance times and the command line
                        aside). The same for a kde_sweep (whose summary adds
                        datasets and attributes after the run), which also
                        opens in xarray (and ncdump, when installed); a file
                        written without --live keeps the default format
                        (superblock version 0)
  LiveResumeTest        --live, SIGTERM to the ranks, --resume --live: the
                        same committed file
  LiveDiskFullTest      test_output_faults.py's full-disk case of mc_pi with
                        --live (needs root for a small tmpfs; skipped
                        otherwise)

Run: MPMAP_APPS_DIR=build/apps python3 tests/apps/test_live.py
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

import test_output_faults as faults
from harness import (EXIT_INTERRUPTED, EXIT_USAGE, SOURCE_DIR, TempDirCase, assert_one_line_error,
                     kill_tree, main, read_h5, run_app, same_bits, start_app, stop_app,
                     wait_for_ranks)

# 120 points of 0.1 s on 2 ranks: about 6 s whatever the machine's load (the
# time is sleeping, not computing), several publications (one a second).
PARAM = ["--param", "a=1:60:60", "--param", "b=0,1", "--exec", "sleep 0.1; echo {a} {b}",
         "--quiet"]
NPOINTS = 120
KDE = ["--kernel", "gaussian", "--cv", "3", "--samples", "2000", "--widths", "0.1:1:30",
       "--quiet"]

# Root attributes that differ between any two runs, or name the command line
# (which holds --live and the output's name).
RUN_ATTRS = {"history", "mpmap_command_line", "mpmap_start_time", "mpmap_wall_time",
             "mpmap_total_wall_time", "mpmap_leg_start_time", "mpmap_leg_wall_time"}

# Another process, as a user would read a running output: opens OUT.partial
# in SWMR mode (retrying while the writer holds it for itself), then takes two
# readings with growing counts and saves, for each, the delivered tasks of
# the datasets named (task axes flattened).
READER = r"""
import sys, time
import h5py, numpy as np
path, out, timeout, names = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + timeout
f, counts, arrays = None, [], {}
while time.monotonic() < deadline and len(counts) < 2:
    try:
        if f is None:
            f = h5py.File(path, "r", swmr=True)
        counter = f["tasks_delivered"]
        counter.refresh()
        n = int(counter[()])
        if n > (counts[-1] if counts else 0):
            for name in names:
                ds = f[name]
                ds.refresh()
                arrays[f"{name}_{len(counts)}"] = ds[()]
            counts.append(n)
            continue
    except (OSError, KeyError):
        if f is not None:
            f.close()
            f = None
    time.sleep(0.05)
np.savez(out, counts=np.array(counts), **arrays)
"""

REF_DIR = tempfile.mkdtemp(prefix="mpmap_live_ref_")
_references = {}


def tearDownModule():
    shutil.rmtree(REF_DIR, True)


def superblock_version(path):
    with open(path, "rb") as f:
        head = f.read(9)
    assert head[:8] == b"\x89HDF\r\n\x1a\n", f"{path} is not an HDF5 file"
    return head[8]


def png_written(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x89PNG"


def plot_live(*args):
    return subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tools", "plot_live.py")] +
                          list(args), capture_output=True, text=True, timeout=120)


class LiveCase(TempDirCase):
    """Compares with runs without --live, each made once per module."""

    def start(self, app, args):
        proc = start_app(app, 2, args)
        self.addCleanup(lambda: proc.poll() is None and kill_tree(proc))
        return proc

    def reference(self, app, args, proc=None, path=None):
        """(path, contents) of app args run without --live; proc and path: of
        that run, started already."""
        key = (app,) + tuple(args)
        if key not in _references:
            if proc is None:
                path = os.path.join(REF_DIR, f"ref{len(_references)}.h5")
                proc = self.start(app, list(args) + ["--output", path])
            code, _, stderr = stop_app(proc)
            self.assertEqual(code, 0, stderr)
            _references[key] = (path, read_h5(path))
        return _references[key]

    def assert_same_as(self, ref, path, legs=1):
        """All datasets, their attributes and scales, and the root attributes
        but RUN_ATTRS, equal the reference contents; the trace has the same
        columns (its rows depend on timing). A run in several legs records
        each (mpmap_leg*) where the reference has one."""
        got = read_h5(path)
        self.assertEqual(sorted(got), sorted(ref), "not the same datasets")
        for name in ref:
            self.assertEqual(got.ds_attrs[name], ref.ds_attrs[name], name)
            self.assertEqual(got.dims[name], ref.dims[name], name)
            if not name.startswith("/trace/"):
                self.assertTrue(same_bits(got[name], ref[name]), f"{name} differs")
        self.assertEqual(got.scales, ref.scales)
        self.assertEqual(sorted(got.attrs), sorted(ref.attrs), "not the same root attributes")
        for key, value in ref.attrs.items():
            if key in RUN_ATTRS or (legs > 1 and key.startswith("mpmap_leg")):
                continue
            self.assertTrue(np.array_equal(got.attrs[key], value), f"attribute {key} differs")
        self.assertNotIn("/tasks_delivered", got)
        self.assertFalse(os.path.exists(path + ".partial"))


class LiveReadTest(LiveCase):
    def test_a_live_run_is_read_while_it_runs_and_commits_the_same_file(self):
        out = self.path("live.h5")
        partial = out + ".partial"
        # The run without --live beside it: the time is sleeping.
        ref_path = self.path("ref.h5")
        ref_proc = self.start("param_sweep", PARAM + ["--output", ref_path])
        proc = self.start("param_sweep", PARAM + ["--output", out, "--live"])
        # A reader that keeps the file open to the end must not stop the
        # run from finishing its file (readers hold a shared HDF5 lock).
        watcher = None
        while watcher is None and proc.poll() is None:
            try:
                watcher = h5py.File(partial, "r", swmr=True)
            except OSError:  # not there yet, or not yet in SWMR mode
                time.sleep(0.05)
        self.assertIsNotNone(watcher, "the partial file never opened for SWMR reading")
        self.addCleanup(watcher.close)
        readings = self.path("readings.npz")
        reader = subprocess.run([sys.executable, "-c", READER, partial, readings, "60", "result",
                                 "status"], capture_output=True, text=True, timeout=90)
        running_after_reads = proc.poll() is None
        # The lock holds as without --live.
        code, _, stderr = run_app("param_sweep", 1, PARAM + ["--output", out, "--live"])
        self.assertEqual(code, EXIT_USAGE, stderr)
        assert_one_line_error(self, "param_sweep", stderr, "is in use by another run")
        snap = self.path("snap.png")
        plot = plot_live(partial, "--once", snap)
        code, _, stderr = stop_app(proc)
        self.assertEqual(code, 0, stderr)
        self.assertEqual(reader.returncode, 0, reader.stderr)
        watcher.close()

        _, ref = self.reference("param_sweep", PARAM, ref_proc, ref_path)
        got = np.load(readings)
        counts = [int(n) for n in got["counts"]]
        self.assertEqual(len(counts), 2, f"two growing readings expected, got {counts}")
        self.assertTrue(running_after_reads, "the run ended before both readings")
        self.assertLess(counts[0], counts[1])
        self.assertLessEqual(counts[1], NPOINTS)
        want_result = ref["/result"].reshape(NPOINTS, -1)
        want_status = ref["/status"].reshape(NPOINTS)
        for i, n in enumerate(counts):
            result = got[f"result_{i}"].reshape(NPOINTS, -1)
            status = got[f"status_{i}"].reshape(NPOINTS)
            self.assertTrue(same_bits(result[:n], want_result[:n]),
                            f"the first {n} points differ from the run without --live")
            self.assertTrue(same_bits(status[:n], want_status[:n]))

        self.assertEqual(plot.returncode, 0, plot.stderr)
        self.assertIn("wrote", plot.stdout)
        self.assertTrue(png_written(snap))
        self.assert_same_as(ref, out)

    def test_a_live_kde_sweep_commits_the_same_file(self):
        out = self.path("kde.h5")
        ref_path, ref = self.reference("kde_sweep", KDE)
        code, _, stderr = run_app("kde_sweep", 2, KDE + ["--output", out, "--live"])
        self.assertEqual(code, 0, stderr)
        self.assert_same_as(ref, out)
        self.assertEqual(superblock_version(out), 3)
        self.assertEqual(superblock_version(ref_path), 0, "the default format changed")
        snap = self.path("snap.png")
        plot = plot_live(out, "--once", snap)
        self.assertEqual(plot.returncode, 0, plot.stderr)
        self.assertTrue(png_written(snap))
        check = subprocess.run(["/usr/bin/python3",
                                os.path.join(SOURCE_DIR, "tests", "check_xarray.py"), out],
                               capture_output=True, text=True, timeout=120)
        if check.returncode != 77:  # 77: xarray or h5netcdf missing
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        if shutil.which("ncdump"):
            dump = subprocess.run(["ncdump", "-h", out], capture_output=True, text=True)
            self.assertEqual(dump.returncode, 0, dump.stderr)
            self.assertIn("density", dump.stdout)


class LiveResumeTest(LiveCase):
    def test_interrupted_live_run_resumes_to_the_same_file(self):
        out = self.path("live.h5")
        proc = self.start("param_sweep", PARAM + ["--output", out, "--live"])
        # Stopped once the partial file shows delivered tasks.
        deadline = time.monotonic() + 60
        delivered = 0
        while delivered == 0 and time.monotonic() < deadline and proc.poll() is None:
            try:
                with h5py.File(out + ".partial", "r", swmr=True) as f:
                    delivered = int(f["tasks_delivered"][()])
            except (OSError, KeyError):
                pass
            time.sleep(0.05)
        self.assertGreater(delivered, 0, "no task delivered")
        for pid in wait_for_ranks(proc, "param_sweep", 2):
            os.kill(pid, signal.SIGTERM)
        code, _, stderr = stop_app(proc)
        self.assertEqual(code, EXIT_INTERRUPTED, stderr)
        self.assertFalse(os.path.exists(out + ".partial"))
        self.assertTrue(os.path.exists(out + ".ckpt"))
        code, _, stderr = run_app("param_sweep", 2, PARAM + ["--output", out, "--live",
                                                            "--resume"])
        self.assertEqual(code, 0, stderr)
        _, ref = self.reference("param_sweep", PARAM)
        self.assert_same_as(ref, out, legs=2)
        self.assertEqual(len(read_h5(out).attrs["mpmap_leg_ranks"]), 2)


class LiveDiskFullTest(faults.DiskFullTest):
    # mc_pi streams 1e5 tasks into chunked datasets: the disk fills while
    # the live file is published, or at its end, or at the commit.
    test_kde_sweep_on_a_full_disk_fails_cleanly_and_resumes = None

    def test_mc_pi_on_a_full_disk_fails_cleanly_and_resumes(self):
        self.fill_and_resume("mc_pi", ["--samples", "1e7", "--tasks", "1e5", "--quiet", "--live"],
                             "/hits")


if __name__ == "__main__":
    main()
