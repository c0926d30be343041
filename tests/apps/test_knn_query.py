#!/usr/bin/python3
"""End-to-end tests of the knn_query app under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR, or --apps-dir DIR) and
checks its HDF5 output against a NumPy brute force computed here: every
squared distance summed dimension by dimension in the app's order
(s = s + (q_j - x_j)^2, j = 0..d-1, then sqrt), rows ranked by (s, row), so
duplicates and exact ties go to the lower row. Also pins that results are
bitwise identical for any rank count, schedule, chunk and leaf size; the
structure of the output file (dimension scales, attributes, provenance);
that bad input is one line on stderr, exit code 2 and no file; and that an
interrupted run resumes to bitwise the uninterrupted results, but not once
the bytes of an input file have changed.

Test classes: KnnValuesTest, KnnDeterminismTest, KnnOutputTest,
KnnBadInputTest, KnnResumeTest.
"""
import os
import re
import shutil
import signal
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

APP = "knn_query"
EXIT_USAGE = harness.EXIT_USAGE
EXIT_INTERRUPTED = harness.EXIT_INTERRUPTED


def run(nprocs, args, **kwargs):
    return harness.run_app(APP, nprocs, args, **kwargs)


# --- independent reference ---------------------------------------------------

def brute_force(data, queries, k):
    """(distance, index), each m x k: the k nearest rows of data to each
    query, ranked by (squared distance, row)."""
    n, d = data.shape
    m = queries.shape[0]
    dist = np.empty((m, k), dtype=np.float64)
    index = np.empty((m, k), dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    for i in range(m):
        s = np.zeros(n, dtype=np.float64)
        for j in range(d):
            t = queries[i, j] - data[:, j]
            s = s + t * t
        order = np.lexsort((rows, s))[:k]
        dist[i] = np.sqrt(s[order])
        index[i] = order
    return dist, index


def uniform_inputs(seed, n, m, d):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), rng.random((m, d))


def tie_inputs(seed, n, m, d):
    """Integer grid data full of duplicates, integer and half-integer queries:
    many rows at exactly equal distances."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 4, size=(n, d)).astype(np.float64)
    queries = rng.integers(-1, 9, size=(m, d)).astype(np.float64) / 2
    return data, queries


class KnnCase(harness.TempDirCase):
    def inputs(self, data, queries, name="in.h5"):
        """Writes data and queries into one file; returns the two specs."""
        path = self.path(name)
        harness.write_h5(path, {"/data": data, "/queries": queries})
        return f"{path}:/data", f"{path}:/queries"

    def query(self, data_spec, query_spec, k, nprocs=2, extra=(), out="out.h5"):
        out = self.path(out)
        rc, stdout, err = run(nprocs, ["--data", data_spec, "--queries", query_spec, "-k", k,
                                       "--output", out, "--quiet"] + list(extra))
        self.assertEqual(rc, 0, err)
        return harness.read_h5(out)

    def assert_matches(self, got, want_dist, want_index):
        self.assertTrue(harness.same_bits(got["/index"], want_index),
                        f"index differs:\n{got['/index']}\nvs\n{want_index}")
        self.assertTrue(harness.same_bits(got["/distance"], want_dist),
                        f"distance differs (max {np.max(np.abs(got['/distance'] - want_dist))})")


class KnnValuesTest(KnnCase):
    def check(self, data, queries, k, nprocs=2, extra=()):
        got = self.query(*self.inputs(data, queries), k=k, nprocs=nprocs, extra=extra)
        self.assert_matches(got, *brute_force(data, queries, k))
        return got

    def test_uniform_3d_matches_brute_force(self):
        self.check(*uniform_inputs(1, 2000, 300, 3), k=7)

    def test_uniform_8d_matches_brute_force(self):
        self.check(*uniform_inputs(2, 2000, 300, 8), k=5)

    def test_duplicates_and_exact_ties_go_to_the_lower_row(self):
        data, queries = tie_inputs(3, 2000, 300, 3)
        got = self.check(data, queries, k=40)
        # The data really has ties inside the answers, so the order is pinned.
        d = got["/distance"]
        self.assertTrue(np.any(d[:, 1:] == d[:, :-1]), "no tied distances in the answers")

    def test_ties_in_8d_with_queries_on_data_points(self):
        data, _ = tie_inputs(4, 2000, 1, 8)
        queries = np.vstack([data[:150], tie_inputs(5, 2000, 150, 8)[1]])
        got = self.check(data, queries, k=6)
        self.assertTrue(np.all(got["/distance"][:150, 0] == 0.0))

    def test_k_one_is_the_nearest_row(self):
        self.check(*uniform_inputs(6, 2000, 300, 3), k=1)

    def test_k_equal_to_n_ranks_every_row(self):
        data, queries = tie_inputs(7, 60, 25, 3)
        got = self.check(data, queries, k=60, nprocs=3)
        for row in got["/index"]:
            self.assertEqual(sorted(row.tolist()), list(range(60)))

    def test_one_point_one_dimension(self):
        # A 1-D dataset is read as one column.
        path = self.path("one.h5")
        harness.write_h5(path, {"/x": np.array([2.5]), "/q": np.array([0.0, 2.5, 10.0])})
        got = self.query(f"{path}:/x", f"{path}:/q", k=1)
        self.assertTrue(harness.same_bits(got["/index"], np.zeros((3, 1), dtype=np.int64)))
        self.assertTrue(harness.same_bits(got["/distance"], np.array([[2.5], [0.0], [7.5]])))

    def test_synthetic_answers_are_sorted_rows_of_the_data(self):
        out = self.path("out.h5")
        rc, stdout, err = run(2, ["--points", "300", "--queries-count", "40", "--dim", "3",
                                  "-k", "300", "--output", out])
        self.assertEqual(rc, 0, err)
        self.assertIn("300 points in 3-D for 40 queries", stdout)
        got = harness.read_h5(out)
        self.assertEqual(got["/distance"].shape, (40, 300))
        self.assertTrue(np.all(np.diff(got["/distance"], axis=1) >= 0))
        for row in got["/index"]:
            self.assertEqual(sorted(row.tolist()), list(range(300)))
        # Uniform points in the unit cube: no distance above sqrt(3).
        self.assertTrue(np.all(got["/distance"] <= np.sqrt(3)))

    def test_synthetic_queries_against_file_data(self):
        data, _ = uniform_inputs(8, 500, 1, 4)
        path = self.path("d.h5")
        harness.write_h5(path, {"/data": data})
        out = self.path("out.h5")
        rc, _, err = run(2, ["--data", f"{path}:/data", "--queries-count", "30", "-k", "3",
                             "--output", out, "--quiet"])
        self.assertEqual(rc, 0, err)
        got = harness.read_h5(out)
        self.assertEqual(got["/index"].shape, (30, 3))
        self.assertEqual(got.attrs["dim"], 4)
        self.assertTrue(np.all((got["/index"] >= 0) & (got["/index"] < 500)))


class KnnDeterminismTest(KnnCase):
    def test_identical_for_any_ranks_schedule_chunk_and_leaf_size(self):
        data, queries = tie_inputs(11, 2000, 300, 8)
        data[:1000] += uniform_inputs(12, 1000, 1, 8)[0]  # half ties, half general position
        want = brute_force(data, queries, 5)
        specs = self.inputs(data, queries)
        variants = [
            (1, []),
            (2, []),
            (3, ["--schedule", "static"]),
            (8, ["--schedule", "dynamic", "--chunk", "3"]),
            (2, ["--schedule", "factoring"]),
            (3, ["--schedule", "guided", "--chunk", "50"]),
            (2, ["--schedule", "dynamic", "--chunk", "1"]),
            (2, ["--leaf-size", "1"]),
            (3, ["--leaf-size", "5000"]),
        ]
        calls = [dict(app=APP, nprocs=n, args=["--data", specs[0], "--queries", specs[1], "-k", 5,
                                                "--output", self.path(f"out{i}.h5"), "--quiet"]
                      + extra, timeout=300)
                 for i, (n, extra) in enumerate(variants)]
        for i, ((n, extra), result) in enumerate(zip(variants, harness.run_many(calls, 3))):
            with self.subTest(ranks=n, args=extra):
                if isinstance(result, Exception):
                    raise result
                rc, _, err = result
                self.assertEqual(rc, 0, err)
                self.assert_matches(harness.read_h5(self.path(f"out{i}.h5")), *want)

    def test_synthetic_identical_for_any_ranks(self):
        args = ["--points", "3000", "--queries-count", "500", "--dim", "5", "-k", "4", "--quiet"]
        first = None
        for n, extra in ((1, []), (3, ["--schedule", "dynamic", "--chunk", "7"]), (2, [])):
            out = self.path(f"s{n}.h5")
            rc, _, err = run(n, args + extra + ["--output", out])
            self.assertEqual(rc, 0, err)
            got = harness.read_h5(out)
            if first is None:
                first = got
                continue
            for name in ("/distance", "/index"):
                self.assertTrue(harness.same_bits(got[name], first[name]), name)
        # Another seed draws other points.
        out = self.path("other.h5")
        rc, _, err = run(2, args + ["--seed", "2", "--output", out])
        self.assertEqual(rc, 0, err)
        self.assertFalse(harness.same_bits(harness.read_h5(out)["/distance"], first["/distance"]))


class KnnOutputTest(KnnCase):
    def test_dimension_scales_attributes_and_provenance(self):
        data, queries = uniform_inputs(21, 200, 30, 3)
        data_spec, query_spec = self.inputs(data, queries)
        got = self.query(data_spec, query_spec, k=4, extra=["--leaf-size", "8"])
        # Besides the results only their coordinates and the run's /trace.
        self.assertEqual({name for name in got if not name.startswith("/trace/")},
                         {"/distance", "/index", "/query", "/neighbour"})
        self.assertEqual(got["/distance"].dtype, np.float64)
        self.assertEqual(got["/index"].dtype, np.int64)
        self.assertEqual(got["/distance"].shape, (30, 4))
        for name in ("/distance", "/index"):
            self.assertEqual(got.dims[name], [["/query"], ["/neighbour"]], name)
            self.assertIn("long_name", got.ds_attrs[name])
        self.assertEqual(got.scales - {"/trace/chunk"}, {"/query", "/neighbour"})
        self.assertTrue(harness.same_bits(got["/query"], np.arange(30, dtype=np.int64)))
        self.assertTrue(harness.same_bits(got["/neighbour"], np.arange(4, dtype=np.int64)))
        attrs = got.attrs
        self.assertEqual((attrs["k"], attrs["points"], attrs["queries"], attrs["dim"],
                          attrs["leaf_size"]), (4, 200, 30, 3, 8))
        self.assertEqual(attrs["data_source"], data_spec)
        self.assertEqual(attrs["query_source"], query_spec)
        self.assertEqual(attrs["mpmap_app"], APP)
        self.assertEqual(attrs["mpmap_ranks"], 2)
        self.assertIn("mpmap_wall_time", attrs)
        self.assertIn("--leaf-size 8", attrs["mpmap_command_line"])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["in.h5", "out.h5"])

    def test_synthetic_source_is_described(self):
        out = self.path("out.h5")
        rc, _, err = run(1, ["--points", "100", "--queries-count", "10", "--seed", "9",
                             "--output", out, "--quiet"])
        self.assertEqual(rc, 0, err)
        attrs = harness.read_h5(out).attrs
        self.assertEqual(attrs["data_source"], "synthetic uniform [0,1)^8, seed 9")
        self.assertEqual((attrs["k"], attrs["leaf_size"], attrs["dim"]), (5, 128, 8))

    def test_help_lists_every_flag(self):
        rc, stdout, err = run(1, ["--help"])
        self.assertEqual(rc, 0, err)
        for flag in ("--data", "--queries", "--points", "--queries-count", "--dim", "--seed",
                     "-k", "--leaf-size", "--schedule", "--chunk", "--output", "--force",
                     "--resume", "--quiet"):
            self.assertIn(flag, stdout)


class KnnBadInputTest(KnnCase):
    def test_bad_input_is_one_line_exit_2_and_no_output(self):
        data, queries = uniform_inputs(31, 2000, 300, 8)
        data_spec, query_spec = self.inputs(data, queries)
        narrow = self.path("narrow.h5")
        harness.write_h5(narrow, {"/q": queries[:, :3]})
        nan_data = data.copy()
        nan_data[17, 2] = np.nan
        nan_path = self.path("nan.h5")
        harness.write_h5(nan_path, {"/data": nan_data, "/queries": nan_data[15:20]})
        both = ["--data", data_spec, "--queries", query_spec]
        cases = {
            "k_zero": (both + ["-k", "0"], ["-k"]),
            "k_above_n": (both + ["-k", "2001"], ["-k", "2001", "2000"]),
            "dimension_mismatch": (["--data", data_spec, "--queries", f"{narrow}:/q"],
                                   ["300 x 3", "2000 x 8"]),
            "missing_dataset": (["--data", data_spec.replace(":/data", ":/nope"),
                                 "--queries", query_spec], ["--data", "/nope"]),
            "missing_file": (["--data", self.path("absent.h5") + ":/data"], ["--data", "absent.h5"]),
            "nan_in_data": (["--data", f"{nan_path}:/data", "--queries", query_spec],
                            ["--data", "non-finite", "row 17, column 2"]),
            "nan_in_queries": (["--data", data_spec, "--queries", f"{nan_path}:/queries"],
                               ["--queries", "non-finite", "row 2, column 2"]),
            "points_with_data": (both + ["--points", "10"], ["--points", "--data"]),
            "queries_count_with_queries": (both + ["--queries-count", "10"],
                                           ["--queries-count", "--queries"]),
            "dim_with_data": (["--data", data_spec, "--dim", "3"], ["--dim", "--data"]),
            "seed_with_both_files": (both + ["--seed", "3"], ["--seed"]),
            "leaf_size_zero": (both + ["--leaf-size", "0"], ["--leaf-size"]),
            "leaf_size_negative": (both + ["--leaf-size", "-4"], ["--leaf-size"]),
            "synthetic_k_above_points": (["--points", "3", "-k", "4"], ["-k", "3 points"]),
            "unknown_schedule": (both + ["--schedule", "sometimes"], ["--schedule"]),
        }
        names = list(cases)
        calls = [dict(app=APP, nprocs=2,
                      args=cases[name][0] + ["--output", self.path(f"{name}.h5")])
                 for name in names]
        for name, result in zip(names, harness.run_many(calls, 4)):
            with self.subTest(case=name):
                if isinstance(result, Exception):
                    raise result
                rc, _, err = result
                self.assertEqual(rc, EXIT_USAGE, err)
                harness.assert_one_line_error(self, APP, err, *cases[name][1])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["in.h5", "nan.h5", "narrow.h5"])

    def test_existing_output_is_refused_without_force(self):
        data, queries = uniform_inputs(32, 100, 10, 2)
        data_spec, query_spec = self.inputs(data, queries)
        out = self.path("out.h5")
        args = ["--data", data_spec, "--queries", query_spec, "--output", out, "--quiet"]
        self.assertEqual(run(2, args)[0], 0)
        before = harness.file_bytes(out)
        rc, _, err = run(2, args + ["-k", "2"])
        self.assertEqual(rc, EXIT_USAGE, err)
        harness.assert_one_line_error(self, APP, err, "--force")
        self.assertEqual(harness.file_bytes(out), before)
        rc, _, err = run(2, args + ["-k", "2", "--force"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(harness.read_h5(out)["/index"].shape, (10, 2))

    def test_sizes_beyond_memory_are_refused_at_once(self):
        """Counts that size memory or output: the synthetic points (one
        kd-tree copy per rank) and the queries times k (/distance, /index)."""
        cases = {
            "queries x k": (["--queries-count", "1e8", "--dim", "1", "-k", "100000",
                             "--points", "100000"], ["--queries-count", "-k"]),
            "points": (["--points", "1e12", "--dim", "64"], ["--points"]),
        }
        for name, (args, needles) in cases.items():
            with self.subTest(case=name):
                started = time.monotonic()
                rc, stdout, stderr = run(2, args + ["--output", self.path("out.h5")],
                                         timeout=30)
                self.assertEqual(rc, harness.EXIT_USAGE, stderr)
                harness.assert_one_line_error(self, APP, stderr, "do not fit in memory", *needles)
                self.assertEqual(os.listdir(self.tmp), [])
                self.assertLess(time.monotonic() - started, 15)


class KnnResumeTest(KnnCase):
    """Interrupts a run of 120 000 queries over 150 000 points in 8-D (about
    2 s on two idle cores) once its progress lines show work done."""
    N, M = 150000, 120000

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="mpmap_knn_resume_")
        data, queries = uniform_inputs(41, cls.N, cls.M, 8)
        cls.input_path = os.path.join(cls.root, "in.h5")
        harness.write_h5(cls.input_path, {"/data": data, "/queries": queries})
        cls.args = ["--data", f"{cls.input_path}:/data", "--queries", f"{cls.input_path}:/queries"]
        cls.reference_path = os.path.join(cls.root, "reference.h5")
        rc, _, err = run(2, cls.args + ["--output", cls.reference_path, "--quiet"], timeout=300)
        if rc != 0:
            raise AssertionError(f"uninterrupted run failed ({rc}):\n{err}")
        cls.reference = harness.read_h5(cls.reference_path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, True)

    def interrupt(self, args, out):
        proc = harness.start_app(APP, 2, args + ["--output", out, "--progress-interval", "0.1"])
        seen = []
        deadline = time.monotonic() + 120
        pattern = re.compile(rf"^{APP}: progress (\d+)/(\d+) tasks")
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            m = pattern.match(line)
            if m and int(m.group(1)) >= 1:
                if int(m.group(1)) >= int(m.group(2)):
                    self.fail("the run finished before it could be interrupted")
                break
        else:
            harness.kill_tree(proc)
            self.fail("no progress line before the deadline:\n" + "".join(seen))
        for pid in harness.app_pids(proc, APP):
            os.kill(pid, signal.SIGTERM)
        rc, _, err = harness.stop_app(proc, timeout=120)
        err = "".join(seen) + err
        self.assertEqual(rc, EXIT_INTERRUPTED, err)
        self.assertRegex(err, r"interrupted: \d+/120000 tasks done; rerun with --resume")
        self.assertTrue(os.path.exists(out + ".ckpt"), "checkpoint missing")
        self.assertFalse(os.path.exists(out))

    def test_sigterm_then_resume_is_bitwise_identical_but_not_once_the_data_changed(self):
        # A private copy of the inputs, so one coordinate can change in place:
        # same file name, shapes and flags, only the bytes differ.
        path = self.path("in.h5")
        shutil.copyfile(self.input_path, path)
        args = ["--data", f"{path}:/data", "--queries", f"{path}:/queries"]
        out = self.path("out.h5")
        self.interrupt(args, out)
        before = harness.file_bytes(out + ".ckpt")

        for dataset in ("/data", "/queries"):
            with self.subTest(changed=dataset):
                with h5py.File(path, "r+") as f:
                    f[dataset][5, 3] = -f[dataset][5, 3] - 1.0
                rc, _, err = run(2, args + ["--output", out, "--resume"])
                self.assertEqual(rc, EXIT_USAGE, err)
                harness.assert_one_line_error(self, APP, err)
                self.assertEqual(harness.file_bytes(out + ".ckpt"), before)
                self.assertFalse(os.path.exists(out))
                shutil.copyfile(self.input_path, path)

        # Schedule, ranks and leaf size change speed only: resuming with
        # other ones is fine and gives bitwise the uninterrupted results.
        rc, stdout, err = run(3, args + ["--output", out, "--resume", "--schedule", "dynamic",
                                         "--chunk", "100", "--leaf-size", "16"], timeout=300)
        self.assertEqual(rc, 0, err)
        m = re.search(r"\((\d+) queries resumed from checkpoint\)", stdout)
        self.assertIsNotNone(m, stdout)
        self.assertGreater(int(m.group(1)), 0)
        got = harness.read_h5(out)
        for name in ("/distance", "/index"):
            self.assertTrue(harness.same_bits(got[name], self.reference[name]), name)
        self.assertFalse(os.path.exists(out + ".ckpt"))


if __name__ == "__main__":
    harness.main()
