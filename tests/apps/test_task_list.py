#!/usr/bin/python3
"""End-to-end tests of the task_list app under mpirun.

Runs the built binary (directory from MPMAP_APPS_DIR, or --apps-dir) on
small task files and checks the HDF5 records (status, exit code, signal,
attempts, tails), the joblog, that the records are bitwise identical for
any rank count and schedule (times, hosts and ranks aside), --resume after
SIGTERM to the ranks, --resume-failed, and that bad input is one line,
exit code 2 and no file.
"""
import os
import signal
import socket
import sys
import time

import numpy as np

APP = "task_list"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

# Datasets that depend on where and when a task ran.
PLACE_AND_TIME = {"/start", "/end", "/rank", "/host", "/hosts"}
RECORDS = ["/status", "/exit_code", "/signal", "/attempts", "/stdout_tail", "/stderr_tail"]


def run(args, nprocs=2, cwd=None, timeout=120):
    return harness.run_app(APP, nprocs, list(args), timeout=timeout, cwd=cwd)


def strings(values):
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def joblog_rows(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return lines[0].split("\t"), [line.split("\t", 9) for line in lines[1:]]


class TaskListTest(harness.TempDirCase):

    def write_tasks(self, lines, name="tasks.txt"):
        with open(self.path(name), "w") as f:
            f.write("\n".join(lines) + "\n")
        return self.path(name)

    def run_ok(self, args, nprocs=2, out="out.h5"):
        rc, stdout, stderr = run(list(args) + ["--output", self.path(out)], nprocs=nprocs,
                                 cwd=self.tmp)
        self.assertEqual(rc, 0, f"exit {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        return stdout, stderr

    # ---- records ------------------------------------------------------------

    def test_records_of_success_failure_signal_timeout_and_retry(self):
        tasks = self.write_tasks([
            "# a comment, then a blank line",
            "",
            "echo hello",
            "echo bad >&2; exit 3",
            "kill -9 $$",
            "sleep 30",
            # fails the first time, succeeds the second (marker file)
            "if [ -f marker ]; then echo second; else touch marker; exit 4; fi",
        ])
        stdout, stderr = self.run_ok(["--tasks", tasks, "--timeout", "0.5", "--retries", "1"])
        out = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["/status"], [0, 3, 137, -2, 0])
        np.testing.assert_array_equal(out["/exit_code"], [0, 3, -1, -1, 0])
        np.testing.assert_array_equal(out["/signal"][[0, 1, 2, 4]], [0, 0, 9, 0])
        self.assertIn(out["/signal"][3], (signal.SIGTERM, signal.SIGKILL))  # the timeout's kill
        np.testing.assert_array_equal(out["/attempts"], [1, 2, 2, 2, 2])
        self.assertEqual(strings(out["/stdout_tail"]), ["hello\n", "", "", "", "second\n"])
        self.assertEqual(strings(out["/stderr_tail"])[1], "bad\n")
        self.assertEqual(out["/status"].dtype, np.int32)
        self.assertIn("-2 timed out", out.ds_attrs["/status"]["codes"])
        # times: seconds since time_origin; the timeout took two runs of 0.5 s
        self.assertTrue(np.all(out["/start"] >= 0) and np.all(out["/end"] >= out["/start"]))
        self.assertGreaterEqual(out["/end"][3] - out["/start"][3], 1.0)
        self.assertAlmostEqual(out.attrs["time_origin"], time.time(), delta=120)
        self.assertTrue(set(out["/rank"].tolist()) <= {0, 1})
        self.assertEqual(strings(out["/hosts"]), [socket.gethostname()])
        np.testing.assert_array_equal(out["/host"], 0)
        self.assertEqual(out.dims["/stdout_tail"], [["/task"]])
        self.assertEqual(out.attrs["failed_tasks"], 3)
        self.assertEqual(out.attrs["retried_tasks"], 4)
        self.assertIn("task_list: 5 tasks from", stdout)
        self.assertIn("2 succeeded, 3 failed, 4 retried", stdout)
        failures = harness.app_lines(stderr, APP)
        self.assertEqual(len(failures), 3, stderr)
        self.assertTrue(any("task 1 failed: exit code 3: bad" in line for line in failures))
        # joblog: a header and one line per task, as GNU parallel's
        head, rows = joblog_rows(self.path("out.h5.joblog"))
        self.assertEqual(head, ["Seq", "Host", "Rank", "Starttime", "JobRuntime", "Exitval",
                                "Signal", "Attempts", "Status", "Command"])
        rows.sort(key=lambda r: int(r[0]))
        self.assertEqual([int(r[0]) for r in rows], [0, 1, 2, 3, 4])
        self.assertEqual([int(r[5]) for r in rows], [0, 3, -1, -1, 0])
        self.assertEqual([int(r[8]) for r in rows], [0, 3, 137, -2, 0])
        self.assertEqual(rows[2][9], "kill -9 $$")
        self.assertEqual(rows[2][6], "9")
        # what is left: the output and the joblog
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         ["marker", "out.h5", "out.h5.joblog", "tasks.txt"])

    def test_template_substitutes_and_quotes_the_line(self):
        lines = ["a b.txt", "dir/x.tar.gz", "it's"]
        tasks = self.write_tasks(lines)
        self.run_ok(["--tasks", tasks, "--template",
                     "printf '%s|%s|%s|%s|%s\\n' {} {.} {/} {//} {#}; echo ${HOME:+home}"])
        out = harness.read_h5(self.path("out.h5"))
        self.assertEqual(strings(out["/stdout_tail"]), [
            "a b.txt|a b|a b.txt|.|0\nhome\n",
            "dir/x.tar.gz|dir/x.tar|x.tar.gz|dir|1\nhome\n",
            "it's|it's|it's|.|2\nhome\n",
        ])
        np.testing.assert_array_equal(out["/status"], 0)
        self.assertEqual(out.attrs["template"],
                         "printf '%s|%s|%s|%s|%s\\n' {} {.} {/} {//} {#}; echo ${HOME:+home}")

    def test_records_identical_for_any_ranks_and_schedule(self):
        lines = []
        for i in range(24):
            lines.append(f"sleep 0.0{i % 5}; echo task {i} out; echo e{i} >&2; exit {i % 4}")
        lines[5] = "kill -TERM $$"
        tasks = self.write_tasks(lines)
        configs = [(1, []), (2, ["--schedule", "dynamic"]), (3, ["--schedule", "static"]),
                   (3, ["--schedule", "factoring", "--chunk", "2"]), (2, []),
                   (4, ["--schedule", "dynamic"])]  # from 4 ranks rank 0 only serves
        calls = [dict(app=APP, nprocs=n, cwd=self.tmp,
                      args=["--tasks", tasks, "--output", self.path(f"o{k}.h5")] + extra)
                 for k, (n, extra) in enumerate(configs)]
        for k, result in enumerate(harness.run_many(calls, workers=2)):
            self.assertNotIsInstance(result, Exception, str(result))
            self.assertEqual(result[0], 0, result[2])
        ref = harness.read_h5(self.path("o0.h5"))
        np.testing.assert_array_equal(ref["/status"][:4], [0, 1, 2, 3])
        self.assertEqual(ref["/status"][5], 128 + signal.SIGTERM)
        for k in range(1, len(configs)):
            other = harness.read_h5(self.path(f"o{k}.h5"))
            self.assertEqual(set(other), set(ref))
            for name in ref:
                if name in PLACE_AND_TIME or name.startswith("/trace"):
                    continue
                with self.subTest(config=configs[k], dataset=name):
                    self.assertTrue(harness.same_bits(ref[name], other[name]))

    # ---- interruption and re-runs ------------------------------------------------

    def test_resume_after_sigterm_to_the_ranks(self):
        tasks = self.write_tasks([f"sleep 0.2; echo {i}" for i in range(40)])
        args = ["--tasks", tasks, "--output", self.path("out.h5"), "--schedule", "dynamic",
                "--progress-interval", "0.2"]
        proc = harness.start_app(APP, 2, args, cwd=self.tmp)
        try:
            pids = harness.wait_for_ranks(proc, APP, 2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line or ": progress " in line:
                    break
            self.assertIn(": progress ", line)
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        finally:
            rc, stdout, stderr = harness.stop_app(proc, timeout=120)
        self.assertEqual(rc, harness.EXIT_INTERRUPTED, stderr)
        self.assertTrue(os.path.exists(self.path("out.h5.ckpt")))
        self.assertTrue(os.path.exists(self.path("out.h5.tails")))
        self.assertFalse(os.path.exists(self.path("out.h5")))
        _, first = joblog_rows(self.path("out.h5.joblog"))
        self.assertLess(len(first), 40)

        stdout, stderr = self.run_ok(args[:2] + ["--resume", "--schedule", "dynamic"],
                                     nprocs=3, out="out.h5")
        resumed = int(stdout.split(" tasks resumed from checkpoint")[0].rsplit("(", 1)[1])
        self.assertGreater(resumed, 0)
        out = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["/status"], 0)
        self.assertEqual(strings(out["/stdout_tail"]), [f"{i}\n" for i in range(40)])
        self.assertTrue(np.all(out["/start"] >= 0))
        # every task is in the joblog (a task in flight may appear twice)
        _, rows = joblog_rows(self.path("out.h5.joblog"))
        self.assertEqual({int(r[0]) for r in rows}, set(range(40)))
        self.assertFalse(os.path.exists(self.path("out.h5.ckpt")))
        self.assertFalse(os.path.exists(self.path("out.h5.tails")))
        # and the same records as a run that was never stopped
        self.run_ok(["--tasks", tasks], out="ref.h5", nprocs=2)
        ref = harness.read_h5(self.path("ref.h5"))
        for name in RECORDS:
            self.assertTrue(harness.same_bits(ref[name], out[name]), name)

    def test_commands_signalled_with_the_run_get_status_minus_3(self):
        # What a batch system does at the time limit: SIGTERM to every
        # process of the job, the commands as well as the ranks.
        tasks = self.write_tasks([f"sleep 1; echo {i}" for i in range(12)])
        args = ["--tasks", tasks, "--output", self.path("out.h5"), "--schedule", "dynamic",
                "--progress-interval", "0.2"]
        proc = harness.start_app(APP, 2, args, cwd=self.tmp)
        try:
            ranks = harness.wait_for_ranks(proc, APP, 2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line or (": progress " in line and " progress 0/" not in line):
                    break
            # The next commands start a moment after that line: wait until
            # they run, or only the ranks would be signalled.
            commands = []
            while time.monotonic() < deadline and not commands:
                commands = [p for p, _ in harness.descendants(proc.pid) if p not in ranks]
                if not commands:
                    time.sleep(0.02)
            for pid in commands + ranks:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        finally:
            rc, _, stderr = harness.stop_app(proc, timeout=120)
        self.assertEqual(rc, harness.EXIT_INTERRUPTED, stderr)
        self.run_ok(args[:2] + ["--resume"])
        out = harness.read_h5(self.path("out.h5"))
        status = out["/status"]
        self.assertTrue(set(status.tolist()) <= {0, -3}, status)
        self.assertIn(-3, status.tolist())
        np.testing.assert_array_equal(out["/signal"][status == -3], signal.SIGTERM)
        # --resume-failed runs them again
        self.run_ok(args[:2] + ["--resume-failed"])
        out = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(out["/status"], 0)
        self.assertEqual(strings(out["/stdout_tail"]), [f"{i}\n" for i in range(12)])

    def test_changed_list_refuses_resume(self):
        tasks = self.write_tasks(["echo 1", "exit 5", "echo 3"])
        rc, _, stderr = run(["--tasks", tasks, "--output", self.path("out.h5"), "--on-error",
                             "stop", "--schedule", "static"], nprocs=1, cwd=self.tmp)
        self.assertEqual(rc, harness.EXIT_FAILED, stderr)
        harness.assert_one_line_error(self, APP, stderr, "task 1", "exit code 5")
        self.assertTrue(os.path.exists(self.path("out.h5.ckpt")))
        self.write_tasks(["echo 1", "echo 2", "echo 3"])
        rc, stdout, stderr = run(["--tasks", tasks, "--output", self.path("out.h5"),
                                  "--on-error", "stop", "--resume"], cwd=self.tmp)
        self.assertEqual(rc, harness.EXIT_USAGE, stderr)
        harness.assert_one_line_error(self, APP, stderr, "--resume", "task list", "changed")
        self.assertEqual(stdout, "")

    def test_resume_failed_reruns_only_the_failed_tasks(self):
        tasks = self.write_tasks([
            "echo fine",
            "if [ -f fixed ]; then echo now ok; else echo broken >&2; exit 7; fi",
            "echo also fine; sleep 0.1",
        ])
        self.run_ok(["--tasks", tasks])
        before = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(before["/status"], [0, 7, 0])
        open(self.path("fixed"), "w").close()
        stdout, _ = self.run_ok(["--tasks", tasks, "--resume-failed"], nprocs=3)
        self.assertIn("2 kept from the previous output, 1 run again", stdout)
        after = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(after["/status"], [0, 0, 0])
        self.assertEqual(strings(after["/stdout_tail"]), ["fine\n", "now ok\n",
                                                          "also fine\n"])
        # the kept tasks keep their whole record, times and place included
        for name in ["/start", "/end", "/rank", "/attempts", "/exit_code"]:
            np.testing.assert_array_equal(after[name][[0, 2]], before[name][[0, 2]])
        self.assertEqual(after.attrs["time_origin"], before.attrs["time_origin"])
        self.assertGreater(after["/start"][1], before["/end"].max())
        _, rows = joblog_rows(self.path("out.h5.joblog"))
        self.assertEqual(sorted(int(r[0]) for r in rows), [0, 1, 1, 2])
        self.assertFalse(os.path.exists(self.path("out.h5.tails")))
        # a list that changed is refused
        self.write_tasks(["echo other"])
        rc, _, stderr = run(["--tasks", tasks, "--output", self.path("out.h5"),
                             "--resume-failed"], cwd=self.tmp)
        self.assertEqual(rc, harness.EXIT_USAGE, stderr)
        harness.assert_one_line_error(self, APP, stderr, "--resume-failed", "task list")

    def test_stopped_resume_failed_run_resumes(self):
        tasks = self.write_tasks([
            "echo first",
            "if [ -f fix1 ]; then echo one; else exit 1; fi",
            "if [ -f fix2 ]; then echo two; else exit 2; fi",
        ])
        self.run_ok(["--tasks", tasks])
        before = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(before["/status"], [0, 1, 2])
        open(self.path("fix1"), "w").close()
        args = ["--tasks", tasks, "--output", self.path("out.h5"), "--resume-failed",
                "--on-error", "stop", "--schedule", "static"]
        rc, _, stderr = run(args, nprocs=1, cwd=self.tmp)
        self.assertEqual(rc, harness.EXIT_FAILED, stderr)
        self.assertTrue(os.path.exists(self.path("out.h5.ckpt")))
        # the previous output is still there until a run replaces it
        np.testing.assert_array_equal(harness.read_h5(self.path("out.h5"))["/status"], [0, 1, 2])
        open(self.path("fix2"), "w").close()
        rc, stdout, stderr = run(args + ["--resume"], nprocs=2, cwd=self.tmp)
        self.assertEqual(rc, 0, stderr)
        after = harness.read_h5(self.path("out.h5"))
        np.testing.assert_array_equal(after["/status"], [0, 0, 0])
        self.assertEqual(strings(after["/stdout_tail"]), ["first\n", "one\n", "two\n"])
        self.assertEqual(after["/start"][0], before["/start"][0])
        self.assertEqual(after.attrs["time_origin"], before.attrs["time_origin"])

    # ---- bad input ---------------------------------------------------------------

    def test_bad_input_is_one_line_exit_2_and_no_output(self):
        self.write_tasks(["echo {}"], name="ok.txt")
        self.write_tasks(["# only comments", "", "   "], name="empty.txt")
        cases = [
            (["--tasks", "missing.txt"], "missing.txt"),
            (["--tasks", "empty.txt"], "no tasks"),
            (["--tasks", "ok.txt", "--template", "echo {x}"], "unknown placeholder '{x}'"),
            (["--tasks", "ok.txt", "--template", "echo plain"], "no placeholder"),
            (["--tasks", "ok.txt", "--retries", "-1"], "--retries"),
            (["--tasks", "ok.txt", "--timeout", "0"], "--timeout"),
            (["--template", "echo {}"], "--tasks"),
            (["--tasks", "ok.txt", "--resume-failed"], "no finished output"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                rc, stdout, stderr = run(args + ["--output", "bad.h5"], cwd=self.tmp)
                self.assertEqual(rc, harness.EXIT_USAGE, stderr)
                harness.assert_one_line_error(self, APP, stderr, needle)
                self.assertEqual(stdout, "")
                self.assertEqual(sorted(os.listdir(self.tmp)), ["empty.txt", "ok.txt"])

    def test_help_lists_the_flags_and_recommends_dynamic(self):
        rc, stdout, _ = run(["--help"], nprocs=1)
        self.assertEqual(rc, 0)
        for flag in ["--tasks", "--template", "--joblog", "--retries", "--timeout",
                     "--resume-failed", "--resume", "--on-error", "--schedule"]:
            self.assertIn(flag, stdout)
        self.assertIn("--schedule dynamic", stdout)
        self.assertIn("(default: continue)", stdout)


if __name__ == "__main__":
    harness.main()
