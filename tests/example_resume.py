#!/usr/bin/env python3
"""A user's own app on the kit, built against the installed package
(tests/install_example.sh builds it): an uninterrupted run on 3 ranks, then a
run interrupted by SIGTERM to its ranks and finished with --resume under
another schedule must give a bitwise-identical file; bad flags exit 2 with
one line.

    example_resume.py BUILD_DIR_OF_THE_EXAMPLE
"""
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps"))
import harness  # noqa: E402

APP = "oscillator_sweep"
# About 4 s of work on one core: long enough that the SIGTERM sent after the
# first progress line reaches the ranks well before the sweep could end.
ARGS = ["--zetas", "0.05:0.5:40", "--omegas", "0.2:1.8:100", "--duration", "100"]
DATASETS = ("/peak", "/zeta", "/omega")


class ExampleAppTest(harness.TempDirCase):
    def run_app(self, extra, nprocs=3):
        return harness.run_app(APP, nprocs, ARGS + extra, timeout=300)

    def test_interrupted_then_resumed_is_bitwise_identical(self):
        ref = self.path("ref.h5")
        rc, out, err = self.run_app(["--output", ref])
        self.assertEqual(rc, 0, err)
        self.assertIn("resonance at omega", out)
        reference = harness.read_h5(ref)

        out_path = self.path("out.h5")
        proc = harness.start_app(APP, 3, ARGS + ["--output", out_path, "--progress-interval", "0.1"])
        seen = []
        while True:
            line = proc.stderr.readline()
            self.assertTrue(line, "no progress line:\n" + "".join(seen))
            seen.append(line)
            m = re.match(rf"{APP}: progress (\d+)/(\d+) tasks", line)
            if m and int(m.group(1)) >= 1:
                self.assertLess(int(m.group(1)), int(m.group(2)), "finished before the signal")
                break
        for pid in harness.app_pids(proc, APP):
            os.kill(pid, signal.SIGTERM)
        rc, _, err = harness.stop_app(proc, timeout=120)
        err = "".join(seen) + err
        self.assertEqual(rc, harness.EXIT_INTERRUPTED, err)
        self.assertRegex(err, r"interrupted: \d+/40 tasks done; rerun with --resume")
        self.assertTrue(os.path.exists(out_path + ".ckpt"))
        self.assertFalse(os.path.exists(out_path))

        rc, out, err = self.run_app(["--output", out_path, "--resume", "--schedule", "dynamic"], 2)
        self.assertEqual(rc, 0, err)
        m = re.search(r"\((\d+) tasks resumed from checkpoint\)", out)
        self.assertTrue(m and int(m.group(1)) > 0, out)
        got = harness.read_h5(out_path)
        for name in DATASETS:
            self.assertTrue(harness.same_bits(got[name], reference[name]), name)
        self.assertFalse(os.path.exists(out_path + ".ckpt"))
        self.assertFalse(os.path.exists(out_path + ".legs"))
        # Provenance keeps both legs: 3 ranks interrupted, then 2 that finished.
        a = got.attrs
        self.assertEqual(a["mpmap_legs"], 2)
        self.assertEqual(list(a["mpmap_leg_ranks"]), [3, 2])
        self.assertEqual(sum(a["mpmap_leg_tasks"]), 40)
        self.assertGreater(a["mpmap_leg_tasks"][0], 0)
        self.assertAlmostEqual(a["mpmap_total_wall_time"], sum(a["mpmap_leg_wall_time"]))
        self.assertLess(a["mpmap_leg_start_time"][0], a["mpmap_leg_start_time"][1])
        self.assertEqual(reference.attrs["mpmap_legs"], 1)

    def test_bad_flag_is_one_line_and_exit_2(self):
        rc, _, err = self.run_app(["--zetas", "1:0:0", "--output", self.path("x.h5")], 2)
        self.assertEqual(rc, harness.EXIT_USAGE, err)
        harness.assert_one_line_error(self, APP, err, "--zetas")
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    os.environ["MPMAP_APPS_DIR"] = os.path.abspath(sys.argv.pop(1))
    harness.main()
