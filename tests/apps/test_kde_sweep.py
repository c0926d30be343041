#!/usr/bin/python3
"""End-to-end tests of the kde_sweep app under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR, or --apps-dir DIR) and
checks its HDF5 output against values computed here independently with
NumPy: hypercube counts and densities, Gaussian kernel densities, the K-fold
cross-validated log-likelihood (log-sum-exp), the width grid, the synthetic
data's true density. Also pins that results are bitwise identical for any
rank count, schedule and chunk; the structure of the output file
(dimension scales, provenance, trace); that bad input is one line on stderr,
exit code 2 and no file; that an existing result is never overwritten
without --force; and that an interrupted or killed run resumes from its
checkpoint to bitwise the results of an uninterrupted run.

Test classes (each may run as its own ctest entry):
  KdeValuesTest, KdeDeterminismTest, KdeOutputTest, KdeBadInputTest,
  KdeResumeTest
"""
import calendar
import math
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

APP = "kde_sweep"
EXIT_USAGE = harness.EXIT_USAGE
EXIT_INTERRUPTED = harness.EXIT_INTERRUPTED


def run(nprocs, args, **kwargs):
    return harness.run_app(APP, nprocs, args, **kwargs)


# --- independent reference implementations -----------------------------------

def widths_of(a, b, k):
    """K widths evenly spaced from A to B, the last exactly B."""
    if k == 1:
        return np.array([a], dtype=float)
    w = np.array([a + i * (b - a) / (k - 1) for i in range(k)], dtype=float)
    w[-1] = b
    return w


def hypercube_count(x, p, h):
    return int(np.count_nonzero(np.all(np.abs(x - p) <= h / 2, axis=1)))


def gaussian_density(x, p, h):
    n, d = x.shape
    sq = np.sum((x - p) ** 2, axis=1)
    return float(np.mean((2 * math.pi * h * h) ** (-d / 2) * np.exp(-sq / (2 * h * h))))


def logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def fold_bounds(n, k):
    """Contiguous folds in input order, the first n mod k one row longer."""
    sizes = [n // k + (1 if f < n % k else 0) for f in range(k)]
    bounds, start = [], 0
    for s in sizes:
        bounds.append((start, start + s))
        start += s
    return bounds


def cv_score(x, folds, h):
    """Mean over folds of sum over held-out x of
    log((1/n_train) sum_{train y} K_h(x - y)), Gaussian K_h."""
    n, d = x.shape
    scores = []
    for a, b in fold_bounds(n, folds):
        test = x[a:b]
        train = np.concatenate([x[:a], x[b:]])
        sq = np.sum((test[:, None, :] - train[None, :, :]) ** 2, axis=2)
        log_k = -0.5 * d * math.log(2 * math.pi * h * h) - sq / (2 * h * h)
        scores.append(float(np.sum(logsumexp(log_k, axis=1) - math.log(len(train)))))
    return float(np.mean(scores))


def standard_normal_density(p):
    p = np.asarray(p, dtype=float)
    return (2 * math.pi) ** (-p.size / 2) * math.exp(-float(np.dot(p, p)) / 2)


def make_samples(n, d, seed):
    """Standard normal rows, the first few on a quarter grid so that some
    samples sit exactly on a cube's face for the widths used below."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    x[:60] = rng.integers(-6, 7, size=(60, d)) * 0.25
    return x


POINTS = {
    2: [(0.0, 0.0), (0.25, -0.5), (1.3, 0.7)],
    3: [(0.0, 0.0, 0.0), (0.5, -0.25, 0.75), (-1.1, 0.4, 0.2)],
}


def point_args(points):
    args = []
    for p in points:
        args += ["--point", ",".join(repr(float(v)) for v in p)]
    return args


# --- 1. values -----------------------------------------------------------------

class KdeValuesTest(harness.TempDirCase):
    # n mod K != 0 for K = 2, 3, 5 in both cases.
    SIZES = {2: 403, 3: 401}

    def input_file(self, d):
        x = make_samples(self.SIZES[d], d, seed=1000 + d)
        path = self.path(f"samples{d}.h5")
        harness.write_h5(path, {"/samples": x})
        return x, path + ":/samples"

    def run_ok(self, args, nprocs=2):
        out = self.path(f"out{len(os.listdir(self.tmp))}.h5")
        rc, stdout, stderr = run(nprocs, list(args) + ["--output", out, "--quiet"])
        self.assertEqual(rc, 0, stderr)
        return harness.read_h5(out)

    def check_widths(self, h5, a, b, k):
        w = h5["/width"]
        self.assertEqual(w.shape, (k,))
        np.testing.assert_allclose(w, widths_of(a, b, k), rtol=1e-15, atol=0)
        self.assertEqual(w[-1], b)
        self.assertEqual(w[0], a)

    def test_hypercube_counts_and_densities_match_numpy(self):
        for d in (2, 3):
            with self.subTest(d=d):
                x, spec = self.input_file(d)
                pts = np.array(POINTS[d])
                # Steps of 0.25: cube faces fall on the quarter grid samples.
                h5 = self.run_ok(["--input", spec, "--widths", "0.25:2.25:9"] + point_args(pts))
                self.check_widths(h5, 0.25, 2.25, 9)
                n = x.shape[0]
                count = np.array([[hypercube_count(x, p, h) for p in pts] for h in h5["/width"]])
                self.assertEqual(h5["/count"].dtype, np.int64)
                np.testing.assert_array_equal(h5["/count"], count)
                density = count / (n * h5["/width"][:, None] ** d)
                np.testing.assert_allclose(h5["/density"], density, rtol=1e-14, atol=0)
                self.assertNotIn("/cv_score", h5)

    def test_one_dimensional_float32_input_in_a_group_of_a_file_with_colon(self):
        # A 1-D dataset is n x 1; float32 is read as double; the file name may
        # contain ':' (the spec splits at the last ':/').
        x32 = make_samples(301, 1, seed=77).ravel().astype(np.float32)
        path = self.path("a:b.h5")
        harness.write_h5(path, {"/grp/samples": x32})
        x = x32.astype(np.float64)[:, None]
        pts = [(0.0,), (0.25,), (-1.7,)]
        for kernel in ("hypercube", "gaussian"):
            with self.subTest(kernel=kernel):
                h5 = self.run_ok(["--input", path + ":/grp/samples", "--kernel", kernel,
                                  "--widths", "0.25:1:4", "--cv", "3"] + point_args(pts))
                w = h5["/width"]
                if kernel == "hypercube":
                    count = np.array([[hypercube_count(x, p, h) for p in pts] for h in w])
                    np.testing.assert_array_equal(h5["/count"], count)
                    expected = count / (x.shape[0] * w[:, None])
                    np.testing.assert_allclose(h5["/density"], expected, rtol=1e-14, atol=0)
                else:
                    expected = [[gaussian_density(x, p, h) for p in pts] for h in w]
                    np.testing.assert_allclose(h5["/density"], expected, rtol=1e-11, atol=0)
                np.testing.assert_allclose(h5["/cv_score"], [cv_score(x, 3, h) for h in w],
                                           rtol=1e-9, atol=0)

    def test_sample_on_cube_face_counts(self):
        # One sample exactly h/2 from the point in every dimension, one just outside.
        x = np.array([[0.5, -0.5], [0.5, 0.5000000000000001], [0.0, 0.0], [3.0, 3.0]])
        harness.write_h5(self.path("face.h5"), {"/samples": x})
        h5 = self.run_ok(["--input", self.path("face.h5") + ":/samples", "--widths", "1:1:1"], 1)
        np.testing.assert_array_equal(h5["/count"], [[2]])
        self.assertEqual(h5["/density"][0, 0], 2 / 4)

    def test_gaussian_densities_match_numpy(self):
        for d in (2, 3):
            with self.subTest(d=d):
                x, spec = self.input_file(d)
                pts = np.array(POINTS[d])
                h5 = self.run_ok(["--input", spec, "--kernel", "gaussian",
                                  "--widths", "0.1:1.0:10"] + point_args(pts))
                self.check_widths(h5, 0.1, 1.0, 10)
                expected = np.array([[gaussian_density(x, p, h) for p in pts]
                                     for h in h5["/width"]])
                np.testing.assert_allclose(h5["/density"], expected, rtol=1e-11, atol=0)
                self.assertNotIn("/count", h5)

    def test_cv_scores_match_numpy_log_sum_exp(self):
        # 1e-4 is so small that exp(-|x-y|^2 / 2h^2) underflows for every pair
        # of distinct samples: only a log-sum-exp gets a finite score.
        a, b, k = 1e-4, 0.6, 4
        for d in (2, 3):
            x, spec = self.input_file(d)
            for folds in (2, 3, 5):
                with self.subTest(d=d, folds=folds):
                    self.assertNotEqual(x.shape[0] % folds, 0)
                    h5 = self.run_ok(["--input", spec, "--kernel", "gaussian", "--cv", str(folds),
                                      "--widths", f"{a}:{b}:{k}"])
                    self.check_widths(h5, a, b, k)
                    got = h5["/cv_score"]
                    self.assertEqual(got.shape, (k,))
                    self.assertTrue(np.all(np.isfinite(got)), got)
                    expected = [cv_score(x, folds, h) for h in h5["/width"]]
                    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
                    best = int(np.argmax(expected))
                    self.assertEqual(h5.attrs["best_width"], h5["/width"][best])
                    self.assertEqual(h5.attrs["best_width_cv"], h5["/width"][best])

    def test_cv_scores_stay_finite_when_widths_are_tiny_against_the_spread(self):
        # |x - y|^2 / (2 h^2) passes 2^63 for far pairs once h <= ~1e-10 here
        # (data of spread 1); the true scores are finite (about -2.6e20 at 1e-10).
        x, spec = self.input_file(2)
        h5 = self.run_ok(["--input", spec, "--kernel", "gaussian", "--cv", "3",
                          "--widths", "1e-12:1e-10:3"])
        expected = [cv_score(x, 3, h) for h in h5["/width"]]
        self.assertTrue(np.all(np.isfinite(expected)))
        np.testing.assert_allclose(h5["/cv_score"], expected, rtol=1e-9, atol=0)

    def test_hypercube_density_is_zero_without_samples_even_when_h_to_the_d_underflows(self):
        # count = 0 means density 0, however small the cube (h^d = 0 in doubles).
        x, spec = self.input_file(2)
        h5 = self.run_ok(["--input", spec, "--widths", "1e-200:1e-199:2", "--point", "0.1,0.1"])
        np.testing.assert_array_equal(h5["/count"], [[0], [0]])
        np.testing.assert_array_equal(h5["/density"], [[0.0], [0.0]])

    def test_cv_with_hypercube_kernel_scores_the_gaussian_kernel(self):
        x, spec = self.input_file(2)
        h5 = self.run_ok(["--input", spec, "--cv", "3", "--widths", "0.2:0.5:3"])
        expected = [cv_score(x, 3, h) for h in h5["/width"]]
        np.testing.assert_allclose(h5["/cv_score"], expected, rtol=1e-9, atol=0)

    def test_synthetic_reference_density_errors_and_best_width(self):
        for d, kernel in ((2, "hypercube"), (3, "gaussian")):
            with self.subTest(d=d, kernel=kernel):
                pts = np.array(POINTS[d])
                h5 = self.run_ok(["--samples", "3000", "--dim", str(d), "--kernel", kernel,
                                  "--widths", "0.2:1.4:13"] + point_args(pts))
                self.check_widths(h5, 0.2, 1.4, 13)
                ref = np.array([standard_normal_density(p) for p in pts])
                np.testing.assert_allclose(h5["/reference_density"], ref, rtol=1e-14, atol=0)
                np.testing.assert_array_equal(
                    h5["/abs_error"], np.abs(h5["/density"] - h5["/reference_density"]))
                mean_error = np.mean(np.abs(h5["/density"] - ref), axis=1)
                best = int(np.argmin(mean_error))
                self.assertEqual(h5.attrs["best_width"], h5["/width"][best])
                self.assertEqual(h5.attrs["best_width_reference"], h5["/width"][best])
                self.assertNotIn("/cv_score", h5)
                np.testing.assert_allclose(h5["/point"], pts, rtol=0, atol=0)

    def test_synthetic_best_width_follows_cv_when_given(self):
        h5 = self.run_ok(["--samples", "500", "--kernel", "gaussian", "--cv", "4",
                          "--widths", "0.05:1.0:12"])
        cv = h5["/cv_score"]
        best_cv = int(np.argmax(cv))
        self.assertEqual(h5.attrs["best_width"], h5["/width"][best_cv])
        mean_error = np.mean(h5["/abs_error"], axis=1)
        self.assertEqual(h5.attrs["best_width_reference"], h5["/width"][int(np.argmin(mean_error))])
        # Default point: the origin.
        np.testing.assert_array_equal(h5["/point"], [[0.0, 0.0]])
        np.testing.assert_allclose(h5["/reference_density"], [1 / (2 * math.pi)], rtol=1e-14)


# --- 2. bitwise identical for any rank count, schedule, chunk -------------------

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


# --- 3. output structure ------------------------------------------------------

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


# --- 4. bad input ----------------------------------------------------------------

# (name, arguments, words the one error line must contain). "{in}" is the
# input directory; outputs go to out.h5 in an empty directory of each case.
BAD_INPUT = [
    ("widths_reversed_zero_count", ["--widths", "1:0:0"], ["--widths"]),
    ("widths_zero_width", ["--widths", "0:1:5"], ["--widths"]),
    ("samples_negative", ["--samples", "-5"], ["--samples"]),
    ("samples_trailing_garbage", ["--samples", "12x"], ["--samples"]),
    ("chunk_zero", ["--chunk", "0"], ["--chunk"]),
    ("cv_one_fold", ["--cv", "1"], ["--cv"]),
    ("cv_more_folds_than_samples", ["--cv", "20", "--samples", "10"], ["--cv"]),
    ("unknown_kernel", ["--kernel", "triangle"], ["--kernel"]),
    ("unknown_schedule", ["--schedule", "fast"], ["--schedule"]),
    ("point_wrong_dimension", ["--point", "1,2,3"], ["--point"]),
    ("point_not_numbers", ["--point", "1,x"], ["--point"]),
    ("point_nan", ["--point", "nan,0"], ["--point"]),
    # 8 PB of results: refused as a bad --widths before any work.
    ("widths_too_many_for_memory", ["--widths", "0.1:0.2:1e15"], ["--widths"]),
    ("unknown_flag", ["--foo"], ["--foo"]),
    ("input_missing_file", ["--input", "missing.h5:/x"], ["missing.h5"]),
    ("input_text_file", ["--input", "{in}/text.h5:/samples"], ["text.h5"]),
    ("input_missing_dataset", ["--input", "{in}/good.h5:/nothing"], ["good.h5", "/nothing"]),
    ("input_int_1d", ["--input", "{in}/bad.h5:/int1d"], ["bad.h5", "/int1d", "integer"]),
    ("input_3d", ["--input", "{in}/bad.h5:/cube"], ["bad.h5", "/cube", "3-D"]),
    ("input_nan", ["--input", "{in}/bad.h5:/nan"], ["bad.h5", "/nan", "row 17, column 1"]),
    ("input_inf", ["--input", "{in}/bad.h5:/inf"], ["bad.h5", "/inf", "row 3, column 0"]),
    ("input_too_many_columns", ["--input", "{in}/bad.h5:/wide"], ["--input", "64"]),
    ("dim_zero", ["--dim", "0"], ["--dim"]),
    ("widths_count_not_integer", ["--widths", "0.1:1:2.5"], ["--widths"]),
    ("input_without_dataset", ["--input", "{in}/good.h5"], ["--input"]),
    ("output_in_missing_folder", ["--output", "/nonexistent/dir/out.h5"],
     ["/nonexistent/dir/out.h5"]),
    ("force_with_resume", ["--force", "--resume"], ["--force", "--resume"]),
    ("resume_without_checkpoint", ["--resume"], ["--resume"]),
    ("samples_with_input", ["--samples", "5", "--input", "{in}/good.h5:/samples"],
     ["--samples"]),
]


class KdeBadInputTest(harness.TempDirCase):
    """Every case runs with -n 1 and -n 3, all at once in setUpClass (most of
    a failing run is mpirun's own wait); each test checks one case."""
    NPROCS = (1, 3)

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mpmap_kde_bad_")
        indir = os.path.join(cls.root, "in")
        os.mkdir(indir)
        with open(os.path.join(indir, "text.h5"), "w") as f:
            f.write("this is not an HDF5 file\n")
        rng = np.random.default_rng(5)
        harness.write_h5(os.path.join(indir, "good.h5"), {"/samples": rng.standard_normal((50, 2))})
        nan = rng.standard_normal((50, 2))
        nan[17, 1] = np.nan
        inf = rng.standard_normal((50, 2))
        inf[3, 0] = -np.inf
        harness.write_h5(os.path.join(indir, "bad.h5"), {
            "/int1d": np.arange(50, dtype=np.int32),
            "/cube": rng.standard_normal((5, 4, 2)),
            "/nan": nan, "/inf": inf, "/wide": rng.standard_normal((10, 65))})
        cls.inputs = sorted(os.listdir(indir))
        calls, cls.keys = [], []
        for name, args, _ in BAD_INPUT:
            for n in cls.NPROCS:
                cwd = os.path.join(cls.root, f"{name}_n{n}")
                os.mkdir(cwd)
                full = [a.replace("{in}", indir) for a in args]
                if "--output" not in full:
                    full += ["--output", "out.h5"]
                if "--widths" not in full:
                    full += ["--widths", "0.5:1:3"]  # quick, should a case wrongly run
                calls.append(dict(app=APP, nprocs=n, args=full, cwd=cwd, timeout=60))
                cls.keys.append((name, n))
        cls.results = dict(zip(cls.keys, harness.run_many(calls, workers=6)))
        cls.indir = indir

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, True)

    def check(self, name, needles):
        for n in self.NPROCS:
            with self.subTest(n=n):
                result = self.results[(name, n)]
                if isinstance(result, Exception):
                    raise result
                rc, stdout, stderr = result
                self.assertEqual(rc, EXIT_USAGE, f"exit code\nstderr:\n{stderr}")
                harness.assert_one_line_error(self, APP, stderr, *needles)
                cwd = os.path.join(self.root, f"{name}_n{n}")
                self.assertEqual(os.listdir(cwd), [], "files created")
                self.assertEqual(sorted(os.listdir(self.indir)), self.inputs)
                self.assertFalse(os.path.exists("/nonexistent"))

    def test_widths_beyond_memory_are_refused_at_once(self):
        """--widths sizes rank 0's /density, /abs_error, /width and /cv_score:
        a count whose /density alone fits in memory but not all of them is
        refused before anything is allocated (it grew past 2.6 GB, silent,
        for 30 s)."""
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        count = memory // 32 + 1
        with tempfile.TemporaryDirectory() as cwd:
            started = time.monotonic()
            rc, stdout, stderr = run(2, ["--widths", f"0.1:1:{count}", "--output", "out.h5"],
                                     cwd=cwd, timeout=30)
            elapsed = time.monotonic() - started
            self.assertEqual(rc, EXIT_USAGE, stderr)
            harness.assert_one_line_error(self, APP, stderr, "--widths", "do not fit in memory")
            self.assertEqual(stdout, "")
            self.assertEqual(os.listdir(cwd), [], "files created")
            self.assertLess(elapsed, 15)



def _bad_input_test(name, needles):
    def test(self):
        self.check(name, needles)
    test.__doc__ = f"bad input {name}: exit 2, one line naming {needles}, no file"
    return test


for _name, _args, _needles in BAD_INPUT:
    setattr(KdeBadInputTest, f"test_bad_input_{_name}", _bad_input_test(_name, _needles))


# --- 6. interrupt and resume -----------------------------------------------------

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
