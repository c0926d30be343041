#!/usr/bin/python3
"""End-to-end tests of the param_sweep app under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR) with the built-in
models and with --exec commands, and checks the HDF5 output against values
computed here independently: the linear model's closed form, the Lorenz
system's eigenvalues at the origin, the numbers the shell commands print.
Also checks that results are bitwise identical for any rank count and
schedule, the failure handling of --exec, and that bad input is one line,
exit code 2 and no output file.
"""
import os
import subprocess
import sys
import time

import h5py
import numpy as np

APP_NAME = "param_sweep"
HERE = os.path.dirname(os.path.abspath(__file__))
CHECK_XARRAY = os.path.join(os.path.dirname(HERE), "check_xarray.py")


sys.path.insert(0, HERE)
import harness  # noqa: E402  (shared helpers of the app tests)


def app_path():
    return harness.app_path(APP_NAME)


def run_app(args, nprocs=2, cwd=None, timeout=300):
    """Runs the app under mpirun; returns (exit code, stdout, stderr). A run
    that outlives the timeout is killed with all its ranks and fails."""
    return harness.run_app(APP_NAME, nprocs, list(args), timeout=timeout, cwd=cwd)


def app_lines(stderr):
    """The app's own stderr lines (mpirun adds its own banner on failures)."""
    return [line for line in stderr.splitlines() if line.startswith(APP_NAME + ":")
            and ": progress " not in line]


def read_h5(path):
    """Datasets (as arrays), root attributes and the scales of /result."""
    with h5py.File(path, "r") as f:
        data = {name: f[name][...] for name in f if isinstance(f[name], h5py.Dataset)}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        scales = [[s.name for s in dim.values()] for dim in f["result"].dims]
        status_scales = [[s.name for s in dim.values()] for dim in f["status"].dims]
        status_attrs = dict(f["status"].attrs)
    return {"data": data, "attrs": attrs, "scales": scales, "status_scales": status_scales,
            "status_attrs": status_attrs}


class ParamSweepTest(harness.TempDirCase):

    def sweep(self, args, out="out.h5", nprocs=2, expect=0):
        rc, stdout, stderr = run_app(list(args) + ["--output", self.path(out), "--quiet"],
                                     nprocs=nprocs, cwd=self.tmp)
        self.assertEqual(rc, expect, f"exit {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        return stdout, stderr

    # ---- built-in models ------------------------------------------------

    def test_linear_vector_matches_closed_form_and_coordinates(self):
        # Values chosen so every p1*ctr - p2^2 is exact in binary64, with or
        # without fused multiply-add.
        self.sweep(["--model", "linear", "--param", "p1=-1:2:4", "--param", "p2=0.5,1.5,3",
                    "--length", "7"])
        out = read_h5(self.path("out.h5"))
        p1 = np.array([-1.0, 0.0, 1.0, 2.0])
        p2 = np.array([0.5, 1.5, 3.0])
        ctr = np.arange(7, dtype=float)
        expected = p1[:, None, None] * ctr[None, None, :] - (p2 ** 2)[None, :, None]
        result = out["data"]["result"]
        self.assertEqual(result.shape, (4, 3, 7))
        np.testing.assert_array_equal(result, expected)
        np.testing.assert_array_equal(out["data"]["p1"], p1)
        np.testing.assert_array_equal(out["data"]["p2"], p2)
        # /field labels the record axis with the fields' names.
        self.assertEqual([bytes(v).decode() if isinstance(v, bytes) else str(v)
                          for v in out["data"]["field"]], [f"y_{i}" for i in range(7)])
        self.assertEqual(out["scales"], [["/p1"], ["/p2"], ["/field"]])
        self.assertEqual(out["status_scales"], [["/p1"], ["/p2"]])
        self.assertEqual(out["data"]["status"].dtype, np.int32)
        np.testing.assert_array_equal(out["data"]["status"], np.zeros((4, 3)))
        self.assertEqual(out["attrs"]["model"], "linear")
        self.assertEqual(out["attrs"]["fields"], ",".join(f"y_{i}" for i in range(7)))
        self.assertEqual(out["attrs"]["parameters"], "p1=-1:2:4; p2=0.5,1.5,3")
        self.assertEqual(out["attrs"]["failed_points"], 0)
        self.assertIn("codes", out["status_attrs"])

    def test_linear_summary_matches_closed_form(self):
        m = 1000
        self.sweep(["--model", "linear", "--param", "p1=-2:3:6", "--param", "p2=0.25,2",
                    "--length", str(m), "--record", "summary"])
        out = read_h5(self.path("out.h5"))
        p1 = np.linspace(-2, 3, 6)
        p2 = np.array([0.25, 2.0])
        off = (p2 ** 2)[None, :]
        first = -off + 0 * p1[:, None]
        last = p1[:, None] * (m - 1) - off
        mean = p1[:, None] * (m - 1) / 2.0 - off       # arithmetic series
        result = out["data"]["result"]
        self.assertEqual(result.shape, (6, 2, 4))
        np.testing.assert_allclose(result[..., 0], mean, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(result[..., 1], np.minimum(first, last), rtol=1e-15)
        np.testing.assert_allclose(result[..., 2], np.maximum(first, last), rtol=1e-15)
        np.testing.assert_allclose(result[..., 3], last, rtol=1e-15)
        self.assertEqual(out["attrs"]["fields"], "mean,min,max,last")

    def test_lorenz_classic_point_has_lyapunov_near_0_9(self):
        self.sweep(["--model", "lorenz"])
        out = read_h5(self.path("out.h5"))
        record = out["data"]["result"]
        self.assertEqual(record.shape, (1, 4))      # one point, on the "point" axis
        self.assertTrue(np.isfinite(record).all())
        mean_z, max_z, mean_x2, lyapunov = record[0]
        self.assertAlmostEqual(lyapunov, 0.9, delta=0.1)
        # The attractor's z sits around rho - 1 = 27 (mean ~23.5), below max z.
        self.assertTrue(15 < mean_z < max_z < 60)
        self.assertGreater(mean_x2, 0)
        self.assertEqual(out["attrs"]["fields"], "mean_z,max_z,mean_x2,lyapunov")

    def test_lorenz_below_rho_1_exponent_is_the_origin_eigenvalue(self):
        self.sweep(["--model", "lorenz", "--param", "rho=0.5,28", "--length", "6000"])
        out = read_h5(self.path("out.h5"))
        sigma, rho, beta = 10.0, 0.5, 8.0 / 3.0
        jacobian = np.array([[-sigma, sigma, 0], [rho, -1, 0], [0, 0, -beta]])
        largest = max(np.linalg.eigvals(jacobian).real)
        result = out["data"]["result"]
        np.testing.assert_array_equal(out["data"]["rho"], [0.5, 28.0])
        self.assertAlmostEqual(result[0, 3], largest, delta=0.02)
        self.assertAlmostEqual(result[1, 3], 0.9, delta=0.1)

    def test_results_bitwise_identical_for_any_ranks_and_schedule(self):
        runs = [(1, []), (2, ["--schedule", "static"]), (3, ["--schedule", "dynamic", "--chunk", "2"]),
                (8, ["--schedule", "factoring"]), (8, []), (2, ["--schedule", "dynamic"])]
        args = ["--model", "lorenz", "--param", "rho=20:30:5", "--param", "sigma=9,10,11",
                "--length", "3000"]
        reference = None
        for i, (n, extra) in enumerate(runs):
            name = f"inv{i}.h5"
            self.sweep(args + extra, out=name, nprocs=n)
            data = read_h5(self.path(name))["data"]
            got = (data["result"].tobytes(), data["status"].tobytes())
            if reference is None:
                reference = got
                self.assertTrue(np.isfinite(data["result"]).all())
            else:
                self.assertEqual(got, reference, f"-n {n} {' '.join(extra)} differs from -n 1")

    # ---- --exec -----------------------------------------------------------

    def test_exec_awk_record_and_grid_order(self):
        self.sweep(["--exec", "awk 'BEGIN{print {a}*2, {b}+1}'", "--param", "a=0:3:4",
                    "--param", "b=1,2"], nprocs=3)
        out = read_h5(self.path("out.h5"))
        a = np.array([0.0, 1, 2, 3])
        b = np.array([1.0, 2])
        result = out["data"]["result"]
        self.assertEqual(result.shape, (4, 2, 2))
        np.testing.assert_array_equal(result[..., 0], np.broadcast_to(2 * a[:, None], (4, 2)))
        np.testing.assert_array_equal(result[..., 1], np.broadcast_to(b[None, :] + 1, (4, 2)))
        self.assertEqual(out["attrs"]["command"], "awk 'BEGIN{print {a}*2, {b}+1}'")
        self.assertNotIn("model", out["attrs"])
        np.testing.assert_array_equal(out["data"]["status"], 0)

    def test_exec_first_parameter_varies_slowest(self):
        # Each point prints its own coordinates: cell [i, j, k] must hold
        # (x_i, y_j, z_k), i.e. the grid is laid out in C order.
        self.sweep(["--exec", "echo {x} {y} {z}", "--param", "x=1,2", "--param", "y=10:30:3",
                    "--param", "z=-1,-2,-3,-4"], nprocs=3)
        out = read_h5(self.path("out.h5"))
        x, y, z = [1.0, 2.0], [10.0, 20.0, 30.0], [-1.0, -2.0, -3.0, -4.0]
        expected = np.array([[[[xi, yj, zk] for zk in z] for yj in y] for xi in x])
        np.testing.assert_array_equal(out["data"]["result"], expected)
        self.assertEqual(out["scales"], [["/x"], ["/y"], ["/z"], ["/field"]])
        np.testing.assert_array_equal(out["data"]["y"], y)
        np.testing.assert_array_equal(out["data"]["z"], z)

    def test_seven_parameters_make_an_eight_axis_result(self):
        # The most --param allows: seven task axes plus /field, HDF5's limit.
        names = "abcdefg"
        args = ["--exec", "echo " + " ".join("{%s}" % n for n in names)]
        for i, n in enumerate(names):
            args += ["--param", f"{n}={i},{i + 10}"]
        self.sweep(args, nprocs=2)
        out = read_h5(self.path("out.h5"))
        result = out["data"]["result"]
        self.assertEqual(result.shape, (2,) * 7 + (7,))
        self.assertEqual(out["scales"], [["/" + n] for n in names] + [["/field"]])
        # cell [1, 0, 1, 0, 1, 0, 1] holds each axis's own value
        np.testing.assert_array_equal(result[1, 0, 1, 0, 1, 0, 1],
                                      [10, 1, 12, 3, 14, 5, 16])

    def test_exec_failing_point_is_recorded_and_sweep_continues(self):
        cmd = "sh -c 'if [ {a} = 2 ]; then echo bad >&2; exit 5; fi; echo {a}'"
        _, stderr = self.sweep(["--exec", cmd, "--param", "a=0:4:5"], nprocs=2)
        out = read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["data"]["status"], [0, 0, 5, 0, 0])
        result = out["data"]["result"][:, 0]
        self.assertTrue(np.isnan(result[2]))
        np.testing.assert_array_equal(result[[0, 1, 3, 4]], [0, 1, 3, 4])
        self.assertEqual(out["attrs"]["failed_points"], 1)
        self.assertIn("param_sweep: point 2 (a=2) failed: exit code 5: bad", app_lines(stderr))
        self.assertFalse(os.path.exists(self.path("out.h5.ckpt")))

    def test_exec_failure_status_is_identical_for_any_ranks_and_schedule(self):
        cmd = "sh -c 'if [ $(( {a} % 3 )) = 1 ]; then exit 7; fi; echo {a} {b}'"
        reference = None
        for i, (n, extra) in enumerate([(1, []), (3, ["--schedule", "dynamic"]), (8, [])]):
            name = f"f{i}.h5"
            self.sweep(["--exec", cmd, "--param", "a=0:8:9", "--param", "b=0,1"] + extra,
                       out=name, nprocs=n)
            data = read_h5(self.path(name))["data"]
            got = (data["result"].tobytes(), data["status"].tobytes())
            if reference is None:
                reference = got
                expected = np.where(np.arange(9) % 3 == 1, 7, 0)[:, None] * np.ones((1, 2))
                np.testing.assert_array_equal(data["status"], expected)
            else:
                self.assertEqual(got, reference, f"-n {n} differs from -n 1")

    def test_exec_on_error_stop_fails_and_names_the_point(self):
        cmd = "sh -c 'if [ {a} = 2 ]; then echo bad >&2; exit 5; fi; echo {a}'"
        _, stderr = self.sweep(["--exec", cmd, "--param", "a=0:4:5", "--on-error", "stop"],
                               expect=1)
        lines = app_lines(stderr)
        self.assertTrue(any("point 2 (a=2) failed: exit code 5: bad" in line for line in lines),
                        stderr)
        self.assertFalse(os.path.exists(self.path("out.h5")))
        self.assertFalse(os.path.exists(self.path("out.h5.partial")))

    def test_exec_timeout_fails_only_the_slow_point(self):
        # The fast points (and the probe of point 0) must beat the clock too:
        # 5 s is a thousand times what `sh -c echo` takes on an idle machine,
        # so a loaded one cannot time them out; the slow point would sleep
        # for ten minutes and is killed after the 5 s.
        cmd = "sh -c 'if [ {a} = 1 ]; then sleep 600; fi; echo {a}'"
        _, stderr = self.sweep(["--exec", cmd, "--param", "a=0,1,2", "--timeout", "5"])
        out = read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["data"]["status"], [0, -2, 0])
        self.assertTrue(np.isnan(out["data"]["result"][1, 0]))
        self.assertTrue(any("point 1 (a=1) failed: timed out" in l for l in app_lines(stderr)))

    def test_exec_unparsable_and_wrong_count_have_their_codes(self):
        cmd = "sh -c 'case {a} in 1) echo 1 2;; 2) echo abc;; 3) echo;; *) echo {a};; esac'"
        self.sweep(["--exec", cmd, "--param", "a=0:4:5"])
        out = read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["data"]["status"], [0, -4, -3, -3, 0])
        np.testing.assert_array_equal(out["data"]["result"][[0, 4], 0], [0, 4])

    def test_exec_record_length_skips_the_probe(self):
        # Point 0 fails; with --record-length nothing needs it to succeed.
        cmd = "sh -c 'if [ {a} = 0 ]; then exit 3; fi; echo {a} {a}'"
        self.sweep(["--exec", cmd, "--param", "a=0,1,2", "--record-length", "2"])
        out = read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["data"]["status"], [3, 0, 0])
        np.testing.assert_array_equal(out["data"]["result"][1:], [[1, 1], [2, 2]])

    def test_exec_stopped_run_resumes_from_its_checkpoint(self):
        # Point 2 fails until the file 'ok' exists; the resumed run only has
        # to compute what the stopped run did not.
        cmd = "sh -c 'if [ {a} = 2 ] && [ ! -f ok ]; then exit 5; fi; echo {a}'"
        args = ["--exec", cmd, "--param", "a=0:5:6", "--on-error", "stop", "--schedule", "static"]
        self.sweep(args, nprocs=1, expect=1)
        self.assertTrue(os.path.exists(self.path("out.h5.ckpt")))
        open(self.path("ok"), "w").close()
        self.sweep(args + ["--resume"], nprocs=2)
        out = read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["data"]["result"][:, 0], np.arange(6))
        np.testing.assert_array_equal(out["data"]["status"], 0)
        self.assertFalse(os.path.exists(self.path("out.h5.ckpt")))

    def test_large_records_stream_in_several_blocks(self):
        # 1.6 MB per record: /result is written a few rows at a time, the
        # last block shorter than the others.
        m = 200000
        self.sweep(["--model", "linear", "--param", "p1=-3:3:7", "--param", "p2=0.5",
                    "--length", str(m)], nprocs=3)
        result = read_h5(self.path("out.h5"))["data"]["result"]
        expected = np.arange(-3.0, 4.0)[:, None, None] * np.arange(m, dtype=float) - 0.25
        self.assertEqual(result.shape, (7, 1, m))
        np.testing.assert_array_equal(result, expected)

    # ---- bad input ---------------------------------------------------------

    def test_bad_input_is_one_line_exit_2_and_no_output(self):
        cases = [
            (["--model", "nope"], "unknown model 'nope'"),
            (["--model", "linear", "--param", "p1=1:2:3"], "p2"),
            (["--model", "linear", "--param", "p1=1,2", "--param", "p2=1", "--param", "q=1"],
             "no parameter 'q'"),
            (["--model", "linear", "--param", "p1=1:2", "--param", "p2=1"], "--param"),
            (["--model", "linear", "--param", "p1=1:2:0", "--param", "p2=1"], "--param"),
            (["--model", "linear", "--param", "p1=1,x", "--param", "p2=1"], "--param"),
            (["--model", "linear", "--param", "p1=1", "--param", "p1=2", "--param", "p2=1"],
             "--param"),
            (["--model", "linear", "--exec", "echo 1"], "exclude each other"),
            ([], "--model"),
            (["--exec", "echo {c}", "--param", "a=1,2"], "{c}"),
            (["--exec", "exit 4", "--param", "a=1,2"], "first grid point"),
            (["--exec", "echo 1", "--length", "3"], "--length"),
            (["--model", "lorenz", "--record", "summary"], "--record"),
            (["--model", "linear", "--param", "p1=1", "--param", "p2=1", "--timeout", "1"],
             "--timeout"),
            (["--model", "linear", "--param", "p1=1", "--param", "p2=1", "--length", "0"],
             "--length"),
            (["--model", "linear", "--param", "p1=1", "--param", "p2=0:1:40", "--length",
              "1000000"], "put the longest parameter first"),
            (["--exec", "echo {a}", "--param", "a=1", "--param", "b=1", "--param", "c=1",
              "--param", "d=1", "--param", "e=1", "--param", "f=1", "--param", "g=1",
              "--param", "h=1"], "at most 7 parameters"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                out = self.path("bad.h5")
                rc, stdout, stderr = run_app(args + ["--output", out], nprocs=2, cwd=self.tmp)
                self.assertEqual(rc, 2, stderr)
                lines = app_lines(stderr)
                self.assertEqual(len(lines), 1, stderr)
                self.assertIn(needle, lines[0])
                self.assertEqual(stdout, "")
                self.assertEqual(os.listdir(self.tmp), [])

    def test_existing_output_needs_force(self):
        args = ["--model", "linear", "--param", "p1=1", "--param", "p2=1", "--length", "3"]
        self.sweep(args)
        rc, _, stderr = run_app(args + ["--output", self.path("out.h5")], cwd=self.tmp)
        self.assertEqual(rc, harness.EXIT_USAGE, stderr)
        self.assertIn("exists", app_lines(stderr)[0])
        self.sweep(args + ["--force"])

    def test_help_lists_every_flag(self):
        rc, stdout, _ = run_app(["--help"], nprocs=1)
        self.assertEqual(rc, 0)
        for flag in ["--param", "--model", "--exec", "--length", "--record", "--dt",
                     "--record-length", "--timeout", "--schedule", "--chunk", "--output",
                     "--force", "--resume", "--quiet", "--on-error", "linear", "lorenz",
                     "/status codes"]:
            self.assertIn(flag, stdout)

    # ---- readers -------------------------------------------------------------

    def test_xarray_opens_a_2d_sweep(self):
        if not os.path.exists(CHECK_XARRAY):
            self.skipTest("tests/check_xarray.py not present")
        self.sweep(["--model", "linear", "--param", "p1=0:1:3", "--param", "p2=1,2",
                    "--record", "summary"])
        proc = subprocess.run([sys.executable, CHECK_XARRAY, self.path("out.h5")],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 77:
            self.skipTest(proc.stdout.strip())
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("result('p1', 'p2', 'field')", proc.stdout)


    def test_sizes_beyond_memory_are_bad_input(self):
        """A grid axis of 2^40 values exited 1 (out of memory) after the
        checks; it is bad input: exit 2, one line naming --param, at once."""
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        cases = {
            "model axis": ["--model", "lorenz", "--param", "rho=1:2:1099511627776"],
            "exec axis": ["--exec", "echo 1", "--param", "rho=1:2:1099511627776"],
            # /result and /status: 12 bytes a point, twice the memory.
            "grid points": ["--model", "linear", "--param", "p1=1:2:1048576", "--param",
                            f"p2=1:2:{2 * memory // 12 // 1048576 + 1}", "--length", "1"],
        }
        for name, args in cases.items():
            with self.subTest(case=name):
                started = time.monotonic()
                rc, stdout, stderr = run_app(args + ["--output", self.path("out.h5")],
                                             cwd=self.tmp, timeout=30)
                self.assertEqual(rc, harness.EXIT_USAGE, stderr)
                lines = app_lines(stderr)
                self.assertEqual(len(lines), 1, stderr)
                self.assertIn("--param", lines[0])
                self.assertIn("do not fit in memory", lines[0])
                self.assertEqual(os.listdir(self.tmp), [])
                self.assertLess(time.monotonic() - started, 15)

    def test_help_states_the_on_error_default_of_each_mode(self):
        """--help said --on-error defaults to stop while --exec continues."""
        rc, stdout, _ = run_app(["--help"], nprocs=1)
        self.assertEqual(rc, 0)
        line = [x for x in stdout.splitlines() if x.strip().startswith("--on-error stop|continue")]
        self.assertEqual(len(line), 1, stdout)
        self.assertIn("(default: stop with --model, continue with --exec)", line[0])
        self.assertNotIn("(default: stop)", stdout)
        # And that is what happens with --exec: a failing point does not stop
        # the sweep.
        stdout, stderr = self.sweep(["--exec", "test {a} != 2 && echo {a}", "--param", "a=1:3:3",
                                     "--record-length", "1"])
        self.assertIn("point 1 (a=2) failed", stderr)

    def test_field_is_a_string_coordinate(self):
        """/field holds the field names, so xarray selects by name."""
        self.sweep(["--model", "lorenz", "--param", "rho=10:30:3", "--length", "2000"])
        out = read_h5(self.path("out.h5"))
        with h5py.File(self.path("out.h5"), "r") as f:
            names = [v.decode() if isinstance(v, bytes) else v for v in f["field"][()]]
            self.assertEqual(names, ["mean_z", "max_z", "mean_x2", "lyapunov"])
            self.assertEqual([s.name for s in f["result"].dims[1].values()], ["/field"])
        self.assertEqual(out["attrs"]["fields"], "mean_z,max_z,mean_x2,lyapunov")
        try:
            import xarray
        except ImportError:
            self.skipTest("xarray not installed")
        with xarray.open_dataset(self.path("out.h5"), engine="h5netcdf") as ds:
            max_z = ds.result.sel(field="max_z").values
            np.testing.assert_array_equal(max_z, out["data"]["result"][:, 1])


if __name__ == "__main__":
    harness.main()  # also takes --apps-dir DIR
