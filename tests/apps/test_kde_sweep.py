#!/usr/bin/python3
"""End-to-end tests of the kde_sweep app's values, under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR, or --apps-dir DIR) and
checks its HDF5 output against values computed here independently with
NumPy: hypercube counts and densities, Gaussian kernel densities, the K-fold
cross-validated log-likelihood (log-sum-exp), the width grid, the synthetic
data's true density.

The other kde_sweep tests, one file per concern: test_kde_sweep_output.py
(bitwise identical results for any rank count, schedule and chunk; the
structure of the output file), test_kde_sweep_bad_input.py (bad input) and
test_kde_sweep_resume.py (interrupt and resume).

Test classes (each may run as its own ctest entry): KdeValuesTest
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kde_sweep_app import run  # noqa: E402


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


# --- values -----------------------------------------------------------------

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


if __name__ == "__main__":
    harness.main()
