#!/usr/bin/python3
"""End-to-end tests of kde_sweep on bad input, under mpirun.

Every case of BAD_INPUT must be one line on stderr, exit code 2 and no file,
on one rank and on three; widths whose results cannot fit in memory are
refused at once. Apps from MPMAP_APPS_DIR, or --apps-dir DIR
(tests/apps/harness.py).

Test classes (each may run as its own ctest entry): KdeBadInputTest
"""
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from kde_sweep_app import APP, EXIT_USAGE, run  # noqa: E402


# --- bad input ----------------------------------------------------------------

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


if __name__ == "__main__":
    harness.main()
