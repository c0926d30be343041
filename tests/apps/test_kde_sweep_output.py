#!/usr/bin/python3
"""End-to-end tests of what kde_sweep writes, under mpirun.

Pins that results are bitwise identical for any rank count, schedule and
chunk; the structure of the output file (dimension scales, provenance,
trace); that an existing result is never overwritten without --force; the
warning about a best width at the edge of the range. Apps from
MPMAP_APPS_DIR, or --apps-dir DIR (tests/apps/harness.py).

Test classes (each may run as its own ctest entry):
  KdeDeterminismTest, KdeOutputTest
"""
import calendar
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kde_sweep_app import APP, EXIT_USAGE, run  # noqa: E402


# --- bitwise identical for any rank count, schedule, chunk -------------------

class KdeDeterminismTest(harness.TempDirCase):
    DATASETS = ("/density", "/count", "/cv_score", "/width", "/point")

    def sweep(self, base_args, combos):
        base = self.path("base.h5")
        rc, _, err = run(1, base_args + ["--output", base])
        self.assertEqual(rc, 0, err)
        ref = harness.read_h5(base)
        calls = []
        for i, (n, schedule, chunk) in enumerate(combos):
            calls.append(dict(app=APP, nprocs=n, args=base_args + [
                "--schedule", schedule, "--chunk", str(chunk), "--output", self.path(f"r{i}.h5")]))
        # Two at a time: the machine has two cores.
        results = harness.run_many(calls, workers=2)
        for i, ((n, schedule, chunk), result) in enumerate(zip(combos, results)):
            with self.subTest(n=n, schedule=schedule, chunk=chunk):
                if isinstance(result, Exception):
                    raise result
                rc, _, err = result
                self.assertEqual(rc, 0, err)
                got = harness.read_h5(self.path(f"r{i}.h5"))
                for name in self.DATASETS:
                    if name in ref:
                        self.assertTrue(harness.same_bits(got[name], ref[name]),
                                        f"{name} differs from the -n 1 run")
                self.assertEqual(got.attrs["mpmap_ranks"], n)
                self.assertEqual(got.attrs["mpmap_schedule"], schedule)
                self.assertEqual(got.attrs["mpmap_chunk"], chunk)
        leftovers = [f for f in os.listdir(self.tmp) if not f.endswith(".h5")]
        self.assertEqual(leftovers, [], "checkpoint or partial files left after success")

    def test_hypercube_and_cv_identical_for_any_ranks_schedule_chunk(self):
        args = ["--samples", "700", "--cv", "3", "--widths", "0.05:2.0:37", "--quiet",
                "--point", "0,0", "--point", "0.3,-0.7", "--point", "1,1"]
        combos = []
        chunks = (1, 3, 5)
        for i, n in enumerate((2, 3, 8)):
            for j, schedule in enumerate(("static", "dynamic", "guided", "factoring")):
                combos.append((n, schedule, chunks[(i + j) % 3]))
        self.sweep(args, combos)

    def test_gaussian_identical_for_any_ranks_schedule_chunk(self):
        args = ["--samples", "600", "--dim", "3", "--kernel", "gaussian", "--cv", "5",
                "--widths", "0.01:1.5:29", "--quiet", "--point", "0,0,0", "--point", "1,-1,0.5"]
        combos = [(2, "dynamic", 4), (3, "guided", 2), (8, "factoring", 1), (8, "static", 7)]
        self.sweep(args, combos)


# --- output structure ------------------------------------------------------

class KdeOutputTest(harness.TempDirCase):
    def test_dimension_scales_provenance_and_trace(self):
        out = self.path("out.h5")
        nprocs, ntasks = 3, 23
        args = ["--samples", "800", "--cv", "3", "--widths", f"0.1:1.2:{ntasks}",
                "--schedule", "dynamic", "--chunk", "2", "--point", "0,0", "--point", "1,2",
                "--output", out]
        rc, stdout, err = run(nprocs, args)
        self.assertEqual(rc, 0, err)
        self.assertIn(out, stdout)
        h5 = harness.read_h5(out)
        for name in ("/width", "/point", "/density", "/count", "/cv_score", "/reference_density",
                     "/abs_error", "/trace/begin", "/trace/end", "/trace/rank", "/trace/start",
                     "/trace/finish"):
            self.assertIn(name, h5)
        for name, dims in h5.dims.items():
            for axis, scales in enumerate(dims):
                if name in h5.scales:
                    continue  # a coordinate is its own scale
                self.assertTrue(scales, f"{name} axis {axis} has no dimension scale")
        self.assertIn("/width", h5.scales)
        self.assertIn("/trace/chunk", h5.scales)
        for name in ("/density", "/count", "/cv_score", "/abs_error"):
            self.assertEqual(h5.dims[name][0], ["/width"], name)
        self.assertEqual(h5.dims["/density"][1], h5.dims["/reference_density"][0])

        attrs = h5.attrs
        self.assertEqual(attrs["mpmap_app"], APP)
        self.assertEqual(attrs["mpmap_ranks"], nprocs)
        self.assertEqual(attrs["mpmap_schedule"], "dynamic")
        self.assertEqual(attrs["mpmap_chunk"], 2)
        self.assertIn("--widths", attrs["mpmap_command_line"])
        self.assertIn(f"0.1:1.2:{ntasks}", attrs["mpmap_command_line"])
        self.assertGreater(attrs["mpmap_wall_time"], 0)
        self.assertRegex(attrs["mpmap_start_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        started = calendar.timegm(time.strptime(attrs["mpmap_start_time"], "%Y-%m-%dT%H:%M:%SZ"))
        self.assertLess(abs(started - time.time()), 600, attrs["mpmap_start_time"])
        self.assertEqual(attrs["mpmap_host"], os.uname().nodename)
        for key in ("mpmap_version", "mpmap_app_version", "mpmap_hdf5_version", "history"):
            self.assertTrue(attrs[key], key)
        self.assertEqual(attrs["kernel"], "hypercube")
        # Sizes are numbers, not text.
        self.assertEqual(attrs["samples"], 800)
        self.assertEqual(attrs["cv_folds"], 3)

        begin, end, rank = h5["/trace/begin"], h5["/trace/end"], h5["/trace/rank"]
        start, finish = h5["/trace/start"], h5["/trace/finish"]
        self.assertTrue(np.all(begin < end))
        covered = np.zeros(ntasks, dtype=int)
        for b, e in zip(begin, end):
            covered[b:e] += 1
        np.testing.assert_array_equal(covered, 1, "every task exactly once in /trace")
        self.assertTrue(np.all((rank >= 0) & (rank < nprocs)))
        self.assertTrue(np.all(start <= finish) and np.all(start >= 0))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["out.h5"])

    def test_existing_output_is_refused_then_overwritten_with_force(self):
        out = self.path("out.h5")
        rc, _, err = run(1, ["--samples", "200", "--widths", "0.5:1:3", "--output", out])
        self.assertEqual(rc, 0, err)
        before = harness.file_bytes(out)
        rc, _, err = run(2, ["--samples", "200", "--widths", "0.5:1:4", "--output", out])
        self.assertEqual(rc, EXIT_USAGE, err)
        harness.assert_one_line_error(self, APP, err, out, "--force")
        self.assertEqual(harness.file_bytes(out), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["out.h5"])
        rc, _, err = run(2, ["--samples", "200", "--widths", "0.5:1:4", "--output", out,
                             "--force"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(harness.read_h5(out)["/width"].shape, (4,))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["out.h5"])

    def test_sizes_are_numeric_attributes(self):
        """samples, dim and cv_folds are numbers in the file, not text."""
        out = self.path("out.h5")
        rc, _, err = run(2, ["--samples", "300", "--dim", "3", "--cv", "3", "--widths",
                             "0.5:1:3", "--output", out, "--quiet"])
        self.assertEqual(rc, 0, err)
        attrs = harness.read_h5(out).attrs
        for key, want in (("samples", 300), ("dim", 3), ("cv_folds", 3)):
            with self.subTest(key=key):
                self.assertIsInstance(attrs[key], (int, np.integer), repr(attrs[key]))
                self.assertEqual(attrs[key], want)

    def test_trace_of_a_tiny_run_is_sized_to_the_run(self):
        """Six trace datasets of 8192-row chunks made every file >= 387 KB."""
        out = self.path("out.h5")
        rc, _, err = run(1, ["--samples", "50", "--widths", "0.5:1:3", "--output", out,
                             "--quiet"])
        self.assertEqual(rc, 0, err)
        self.assertLess(os.path.getsize(out), 128 * 1024)
        h5 = harness.read_h5(out)
        self.assertGreater(h5["/trace/begin"].shape[0], 0)

    def test_best_width_at_the_edge_of_the_range_is_warned_about(self):
        """Widths far too small: the best of them sits on an edge of the
        range, which only says the range stops too early."""
        out = self.path("edge.h5")
        rc, stdout, err = run(2, ["--samples", "2000", "--widths", "0.01:0.05:5", "--cv", "3",
                                  "--output", out])
        self.assertEqual(rc, 0, err)
        self.assertRegex(stdout, r"warning: the best width \(closest to the true density\) "
                                 r"0\.0[15] is at the (lower|upper) edge of the swept range "
                                 r"0\.01\.\.0\.05")
        self.assertRegex(stdout, r"warning: the best width \(cross-validation\) 0\.05 is at "
                                 r"the upper edge")
        self.assertIn("--widths", stdout)
        out = self.path("inside.h5")
        rc, stdout, err = run(2, ["--kernel", "gaussian", "--samples", "2000", "--widths",
                                  "0.05:2:40", "--cv", "3", "--output", out])
        self.assertEqual(rc, 0, err)
        self.assertNotIn("warning", stdout)


if __name__ == "__main__":
    harness.main()
