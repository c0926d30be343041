#!/usr/bin/env python3
"""One binary, every CPU path: the apps run with their kernels forced to the
scalar, AVX2 and best path (MPMAP_ISA) and must write bitwise the same
results, so a build runs on every x86-64 node of a cluster and gives the same
numbers everywhere. (A path the CPU lacks falls back to the next one down.)"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CASES = {
    "kde_sweep": ["--kernel", "gaussian", "--cv", "3", "--samples", "3000", "--widths",
                  "0.05:1:24", "--point", "0,0", "--point", "0.5,-1"],
    "kde_hypercube": ["--samples", "3000", "--widths", "0.2:2:24", "--point", "0.1,0.2"],
    "knn_query": ["-k", "7", "--points", "5000", "--queries-count", "700", "--dim", "5"],
    "mc_pi": ["--samples", "2e7", "--tasks", "64"],
}
PATHS = ("scalar", "avx2", "auto")


class IsaPathsTest(harness.TempDirCase):
    def test_every_path_writes_the_same_bits(self):
        for case, args in CASES.items():
            app = "kde_sweep" if case.startswith("kde") else case
            results = {}
            for path in PATHS:
                out = self.path(f"{case}_{path}.h5")
                rc, _, err = harness.run_app(app, 2, args + ["--output", out, "--quiet"],
                                             env=harness.mpi_env({"MPMAP_ISA": path}))
                self.assertEqual(rc, 0, f"{case} with MPMAP_ISA={path}:\n{err}")
                results[path] = harness.read_h5(out)
            names = [n for n in results["auto"] if not n.startswith("/trace")]
            self.assertTrue(names, case)
            for path in ("scalar", "avx2"):
                for name in names:
                    with self.subTest(case=case, path=path, dataset=name):
                        self.assertTrue(harness.same_bits(results[path][name],
                                                          results["auto"][name]))


if __name__ == "__main__":
    harness.main()
