#!/usr/bin/python3
"""End-to-end tests of the mc_pi app under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR) and checks its HDF5
output against values computed here independently: the hit counts of small
runs from a NumPy implementation of Philox4x32-10 (checked against the
Random123 known-answer vector), pi and its standard error from their
formulas, the split of samples over tasks. Also checks that /hits is
bitwise identical for any rank count and schedule, that bad input is one
line, exit code 2 and no output file, and that memory stays flat with a
million tasks.
"""
import math
import os
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

APP_NAME = "mc_pi"
HERE = os.path.dirname(os.path.abspath(__file__))
TIME = "/usr/bin/time"
RSS_LIMIT_KB = 256 * 1024

sys.path.insert(0, HERE)
import harness  # noqa: E402  (shared helpers of the app tests)


def run_app(args, nprocs=2, timeout=300, wrapper=()):
    """Runs the app under mpirun; returns (exit code, stdout, stderr).
    wrapper is a command prefix put in front of the app on every rank."""
    if not wrapper:
        return harness.run_app(APP_NAME, nprocs, list(args), timeout)
    cmd = [harness.mpirun(), "-n", str(nprocs)] + list(wrapper) + \
        [harness.app_path(APP_NAME)] + list(args)
    proc = subprocess.run(cmd, env=harness.mpi_env(), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def app_lines(stderr):
    """The app's own stderr lines (mpirun adds its own banner on failures)."""
    return [line for line in stderr.splitlines() if line.startswith(APP_NAME + ":")
            and ": progress " not in line]


# --- Philox4x32-10 (Salmon et al., SC'11), as Random123 defines it ----------

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on arrays of counters (uint64 holding 32-bit words)."""
    c = [np.asarray(v, dtype=np.uint64) & MASK32 for v in (c0, c1, c2, c3)]
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    for _ in range(10):
        p0 = np.uint64(PHILOX_M0) * c[0]
        p1 = np.uint64(PHILOX_M1) * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
        k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
    return c


def reference_hits(seed, task, samples):
    """Hits of task `task`: point i is words 2i, 2i+1 of stream (seed, task),
    i.e. block i // 2 (counter {block, 0, task_lo, task_hi}, key {seed_lo,
    seed_hi}); a hit is x^2 + y^2 < 2^64."""
    if samples == 0:
        return 0
    blocks = np.arange((samples + 1) // 2, dtype=np.uint64)
    w = philox4x32_10(blocks, np.zeros_like(blocks), np.full_like(blocks, task & 0xFFFFFFFF),
                      np.full_like(blocks, task >> 32), seed & 0xFFFFFFFF, seed >> 32)
    x = np.stack([w[0], w[2]], axis=1).reshape(-1)[:samples]
    y = np.stack([w[1], w[3]], axis=1).reshape(-1)[:samples]
    xx, yy = x * x, y * y  # < 2^64 each: exact in uint64
    return int(np.count_nonzero(yy <= ~xx))


def shares(samples, tasks):
    """Samples of each task: the first samples % tasks tasks get one more."""
    base, extra = divmod(samples, tasks)
    return [base + (1 if t < extra else 0) for t in range(tasks)]


class McPiTest(harness.TempDirCase):

    def run_pi(self, args, out="out.h5", nprocs=2, quiet=True):
        extra = ["--output", self.path(out), "--force"] + (["--quiet"] if quiet else [])
        rc, stdout, stderr = run_app(list(args) + extra, nprocs=nprocs)
        self.assertEqual(rc, 0, msg=f"args={args} n={nprocs}\nstdout={stdout}\nstderr={stderr}")
        with h5py.File(self.path(out), "r") as f:
            hits = f["hits"][...]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            task = f["task"][...]
            scales = [s.name for s in f["hits"].dims[0].values()]
        return hits, attrs, task, scales, stdout

    def test_philox_reference_matches_random123_known_answer(self):
        # Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0.
        w = philox4x32_10([0], [0], [0], [0], 0, 0)
        self.assertEqual([int(v[0]) for v in w], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])
        # Counter pi digits, key e digits.
        w = philox4x32_10([0x243F6A88], [0x85A308D3], [0x13198A2E], [0x03707344],
                          0xA4093822, 0x299F31D0)
        self.assertEqual([int(v[0]) for v in w], [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])

    def test_hits_match_independent_philox_count(self):
        samples, tasks, seed = 1001, 7, 12345678901234
        hits, attrs, _, _, _ = self.run_pi(
            ["--samples", str(samples), "--tasks", str(tasks), "--seed", str(seed)])
        expected = [reference_hits(seed, t, n) for t, n in enumerate(shares(samples, tasks))]
        self.assertEqual(hits.tolist(), expected)
        self.assertEqual(int(attrs["hits"]), sum(expected))

    def test_output_layout_and_estimate_formulas(self):
        samples, tasks, seed = 3_000_001, 100, 5
        hits, attrs, task, scales, _ = self.run_pi(
            ["--samples", "3000001", "--tasks", str(tasks), "--seed", str(seed)])
        self.assertEqual(hits.dtype, np.int64)
        self.assertEqual(hits.shape, (tasks,))
        self.assertEqual(task.tolist(), list(range(tasks)))
        self.assertEqual(scales, ["/task"])
        self.assertEqual(int(hits.sum()), int(attrs["hits"]))
        self.assertEqual(int(attrs["samples"]), samples)
        self.assertEqual(int(attrs["tasks"]), tasks)
        self.assertEqual(int(attrs["seed"]), seed)
        p = int(attrs["hits"]) / samples
        self.assertEqual(float(attrs["pi"]), 4.0 * p)
        self.assertTrue(math.isclose(float(attrs["std_error"]),
                                     4.0 * math.sqrt(p * (1.0 - p) / samples), rel_tol=1e-13))
        self.assertIn(attrs["kernel_path"], ("scalar", "avx2", "avx512"))
        self.assertEqual(attrs["mpmap_app"], APP_NAME)
        self.assertEqual(int(attrs["mpmap_ranks"]), 2)
        self.assertTrue(np.all(hits <= np.array(shares(samples, tasks))))

    def test_hits_bitwise_identical_for_any_ranks_and_schedule(self):
        args = ["--samples", "2000003", "--tasks", "257", "--seed", "42"]
        base, base_attrs, _, _, _ = self.run_pi(args, out="base.h5", nprocs=1)
        runs = [(2, ["--schedule", "static"]), (3, ["--schedule", "dynamic", "--chunk", "7"]),
                (8, ["--schedule", "factoring"]), (8, []), (2, ["--schedule", "guided", "--chunk", "50"]),
                (3, ["--schedule", "static", "--chunk", "1000"]),
                (3, ["--schedule", "awf-c"]), (2, ["--schedule", "af", "--chunk", "3"]),
                (2, ["--schedule", "awf-b"])]
        for i, (n, extra) in enumerate(runs):
            with self.subTest(nprocs=n, schedule=extra):
                hits, attrs, _, _, _ = self.run_pi(args + extra, out=f"run{i}.h5", nprocs=n)
                self.assertEqual(hits.tobytes(), base.tobytes())
                self.assertEqual(np.float64(attrs["pi"]).tobytes(),
                                 np.float64(base_attrs["pi"]).tobytes())
                self.assertEqual(int(attrs["hits"]), int(base_attrs["hits"]))

    def test_auto_records_the_schedule_it_picked(self):
        args = ["--samples", "1000000", "--tasks", "400", "--schedule", "auto"]
        _, attrs, _, _, stdout = self.run_pi(args, nprocs=2, quiet=False)
        self.assertEqual(attrs["mpmap_schedule"], "awf-c")
        self.assertIn("awf-c schedule (picked by auto)", stdout)
        # One rank has nothing to balance: guided.
        _, attrs, _, _, _ = self.run_pi(args, out="one.h5", nprocs=1)
        self.assertEqual(attrs["mpmap_schedule"], "guided")

    def test_samples_split_over_tasks_differ_by_at_most_one(self):
        hits, attrs, task, _, _ = self.run_pi(["--samples", "10", "--tasks", "3", "--seed", "9"])
        self.assertEqual(hits.shape, (3,))
        self.assertTrue(np.all(hits >= 0))
        self.assertTrue(np.all(hits <= np.array([4, 3, 3])), msg=hits)
        self.assertEqual(hits.tolist(), [reference_hits(9, t, n) for t, n in enumerate([4, 3, 3])])
        self.assertEqual(task.tolist(), [0, 1, 2])

    def test_estimate_within_five_std_errors_of_pi(self):
        _, attrs, _, _, stdout = self.run_pi(["--samples", "1e7", "--tasks", "64"], quiet=False)
        self.assertEqual(int(attrs["samples"]), 10_000_000)
        err = float(attrs["std_error"])
        self.assertGreater(err, 0)
        self.assertLess(abs(float(attrs["pi"]) - math.pi), 5 * err)
        # The summary names the estimate, the rate and the file.
        self.assertRegex(stdout, r"pi = 3\.\d+ \+- ")
        self.assertIn("samples/s", stdout)
        self.assertIn(self.path("out.h5"), stdout)

    def test_bad_input_is_one_line_exit_2_and_no_output(self):
        # case: (arguments, the flag the message must name)
        cases = {
            "negative samples": (["--samples", "-5"], "--samples"),
            "trailing junk": (["--samples", "12x"], "--samples"),
            "zero tasks": (["--tasks", "0"], "--tasks"),
            "more tasks than samples": (["--samples", "10", "--tasks", "11"], "--tasks"),
            "seed not a number": (["--seed", "abc"], "--seed"),
            "zero chunk": (["--chunk", "0"], "--chunk"),
            "unknown schedule": (["--schedule", "fast"], "--schedule"),
        }
        for name, (args, flag) in cases.items():
            with self.subTest(case=name):
                out = self.path("bad.h5")
                rc, stdout, stderr = run_app(args + ["--output", out], nprocs=2)
                self.assertEqual(rc, harness.EXIT_USAGE, msg=stderr)
                harness.assert_one_line_error(self, APP_NAME, stderr, flag)
                self.assertEqual(stdout, "")
                self.assertEqual(os.listdir(self.tmp), [], msg=f"{name} left files behind")

    @unittest.skipUnless(os.access(TIME, os.X_OK), "needs GNU time (Debian package 'time')")
    def test_memory_stays_flat_with_a_million_tasks(self):
        out = self.path("big.h5")
        # One file per rank: the ranks' stderr lines can interleave mid-line.
        rss_file = self.path("rss.$OMPI_COMM_WORLD_RANK")
        wrapper = ["sh", "-c", f'exec {TIME} -f %M -o "{rss_file}" "$0" "$@"']
        rc, stdout, stderr = run_app(
            ["--samples", "1e7", "--tasks", "1000000", "--output", out, "--quiet"], nprocs=2,
            wrapper=wrapper)
        self.assertEqual(rc, 0, msg=stderr)
        for rank in range(2):
            with open(self.path(f"rss.{rank}")) as f:
                kb = int(f.read().split()[-1])
            self.assertLess(kb, RSS_LIMIT_KB, msg=f"rank {rank}")
        with h5py.File(out, "r") as f:
            self.assertEqual(f["hits"].shape, (1_000_000,))
            self.assertEqual(int(f["hits"][...].sum()), int(f.attrs["hits"]))


    def test_tasks_beyond_memory_are_refused_before_the_output_is_made(self):
        """/hits and its /task coordinate take 8 bytes a task each: 1e15
        tasks filled the disk instead of being refused."""
        started = time.monotonic()
        rc, stdout, stderr = run_app(["--samples", "1e18", "--tasks", "1e15",
                                      "--output", self.path("big.h5")], nprocs=2, timeout=30)
        self.assertEqual(rc, harness.EXIT_USAGE, msg=stderr)
        harness.assert_one_line_error(self, APP_NAME, stderr, "--tasks", "do not fit in memory")
        self.assertEqual(stdout, "")
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertLess(time.monotonic() - started, 15)


if __name__ == "__main__":
    harness.main()  # also takes --apps-dir DIR
