"""The live view of a run: OUT.status (src/kit/status.c) and mpmap-status
(tools/status/).

  LiveRunTest        a slow --quiet param_sweep on 2 ranks writes OUT.status;
                     mpmap-status (text, --json, --watch) shows done/total
                     growing, consistent with the per-rank counts, one line per
                     rank; after the run the file is gone and mpmap-status says
                     "complete" with the task count
  InterruptedTest    ranks stopped by SIGTERM: OUT.status is gone, mpmap-status
                     reports the checkpoint's done count, equal to the app's own
                     "interrupted: D/N", and its failed tasks (counted here from
                     the checkpoint independently); the resumed run completes
                     with every failure counted
  FakeRunTest        a status file under a lock held here: a rank far longer
                     without a chunk is flagged, the lock stays ours; without
                     the lock the same file is stale and ignored
  UsageTest          bad usage and nothing there: exit 2 and one line

Run: MPMAP_APPS_DIR=build/apps MPMAP_STATUS_TOOL=build/tools/mpmap-status \
     python3 tests/apps/test_status.py
"""
import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
import unittest

from harness import (EXIT_INTERRUPTED, EXIT_USAGE, TempDirCase, apps_dir, main, start_app,
                     stop_app, wait_for_ranks)

STATUS_KEYS = ["format", "state", "app", "output", "pid", "host", "ranks", "manager_computes",
               "interval", "start_time", "start_iso", "tasks_start_time", "update_time",
               "update_iso", "elapsed", "tasks_total", "tasks_done", "tasks_restored",
               "tasks_failed", "rate", "eta"]


def tool():
    path = os.environ.get("MPMAP_STATUS_TOOL") or os.path.join(apps_dir(), "..", "tools",
                                                               "mpmap-status")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not built (set MPMAP_STATUS_TOOL)")
    return path


def status_cmd(*args, timeout=30):
    p = subprocess.run([tool()] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def status_json(out):
    code, stdout, stderr = status_cmd(out, "--json")
    if code != 0:
        raise AssertionError(f"mpmap-status --json exited {code}: {stderr}")
    lines = stdout.splitlines()
    if len(lines) != 1:
        raise AssertionError(f"--json printed {len(lines)} lines: {stdout!r}")
    return json.loads(lines[0])


def read_status(path):
    """OUT.status as a dict, or None when it is not there (now)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    pairs = [line.split(" = ", 1) for line in text.splitlines() if line]
    return {k: v for k, v in pairs}


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def sweep_args(out, points, fail_even=False):
    command = "sleep 0.1; echo {a}"
    if fail_even:
        command = "sleep 0.1; test $(({a} % 2)) -eq 1 || exit 3; echo {a}"
    return ["--param", f"a=1:{points}:{points}", "--exec", command, "--record-length", "1",
            "--progress-interval", "0.2", "--quiet", "--output", out]


def running_status(path, at_least=0):
    s = read_status(path)
    if s and s.get("state") == "running" and int(s["tasks_done"]) >= at_least:
        return s
    return None


def checkpoint_counts(path):
    """(ntasks, done, failed) of a checkpoint, read from its documented format
    (src/checkpoint.h) without the library."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"MPMAPCK1", "not a checkpoint"
    _, fplen, ntasks, record_size = struct.unpack_from("<IIqQ", data, 8)
    pos, done, failed = 36 + fplen, 0, 0
    while pos + 40 <= len(data):
        magic, flags, begin, end, length = struct.unpack_from("<IIqqQ", data, pos)
        if magic != 0x45504B43 or pos + 40 + length > len(data):
            break
        n = end - begin
        if flags & 1:
            failed += sum(1 for s in struct.unpack_from(f"<{n}i", data, pos + 40) if s != 0)
        done += n
        pos += 40 + length
    return ntasks, done, failed


class LiveRunTest(TempDirCase):
    def test_live_status_grows_then_complete(self):
        out = self.path("live.h5")
        status_file = out + ".status"
        proc = start_app("param_sweep", 2, sweep_args(out, 60))
        watcher = None
        try:
            ranks = wait_for_ranks(proc, "param_sweep", 2)
            first = wait_for(lambda: running_status(status_file), what="OUT.status")
            for key in STATUS_KEYS:
                self.assertIn(key, first)
            self.assertEqual(first["app"], "param_sweep")
            self.assertIn(int(first["pid"]), ranks)
            self.assertEqual(first["host"], socket.gethostname())
            self.assertEqual(first["ranks"], "2")
            self.assertEqual(first["tasks_total"], "60")
            for r in (0, 1):
                for key in ("tasks", "busy", "last_chunk"):
                    self.assertIn(f"rank.{r}.{key}", first)
            self.assertNotIn("rank.2.tasks", first)
            watcher = subprocess.Popen([tool(), out, "--watch", "0.3"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)

            a = status_json(out)
            self.assertEqual(a["state"], "running")
            self.assertEqual((a["app"], a["ranks"], a["tasks_total"]), ("param_sweep", 2, 60))
            self.assertTrue(0 <= a["tasks_done"] < 60, a)
            self.assertEqual(a["tasks_failed"], 0)
            self.assertEqual([r["rank"] for r in a["per_rank"]], [0, 1])
            # Every computed task arrived in some rank's chunk.
            self.assertEqual(sum(r["tasks"] for r in a["per_rank"]),
                             a["tasks_done"] - a["tasks_restored"])

            # Progress shows: a later look has more done.
            b = wait_for(lambda: (lambda j: j if j["state"] != "running"
                                  or j["tasks_done"] > a["tasks_done"] else None)(status_json(out)),
                         what="tasks_done to grow")
            if b["state"] == "running":
                self.assertGreater(b["tasks_done"], a["tasks_done"])
                self.assertLessEqual(b["tasks_done"], 60)

            code, text, err = status_cmd(out)
            if "running" in text:
                self.assertEqual(code, 0, err)
                self.assertRegex(text, r"^.*live\.h5: running param_sweep \(pid \d+ on ")
                self.assertRegex(text, r"\n  done +\d+/60 tasks \(\d+\.\d%\), 0 restored, 0 failed")
                rank_lines = re.findall(r"^ +(\d+) +(\d+) +[\d.]+% ", text, re.M)
                self.assertEqual([r for r, _ in rank_lines], ["0", "1"], text)
        finally:
            code, _, err = stop_app(proc)
        self.assertEqual(code, 0, err)
        self.assertFalse(os.path.exists(status_file))
        self.assertFalse(os.path.exists(status_file + ".tmp"))

        watched, werr = watcher.communicate(timeout=30)
        self.assertEqual(watcher.returncode, 0, werr)
        self.assertIn("running param_sweep", watched)
        self.assertRegex(watched, r"live\.h5: complete: 60 tasks \(0 failed\), param_sweep on 2 "
                                  r"ranks, [\d.]+ s\n$")

        code, text, err = status_cmd(out)
        self.assertEqual((code, err), (0, ""))
        self.assertRegex(text, r"^.*live\.h5: complete: 60 tasks \(0 failed\)")
        done = status_json(out)
        self.assertEqual((done["state"], done["tasks_total"], done["tasks_done"],
                          done["tasks_failed"], done["legs"]), ("complete", 60, 60, 0, 1))


class InterruptedTest(TempDirCase):
    def test_interrupted_reports_the_checkpoint_then_resume_completes(self):
        out = self.path("cut.h5")
        points = 60
        proc = start_app("param_sweep", 2, sweep_args(out, points, fail_even=True))
        try:
            ranks = wait_for_ranks(proc, "param_sweep", 2)
            wait_for(lambda: running_status(out + ".status", at_least=6),
                     what="OUT.status with 6 tasks done")
            for pid in ranks:
                os.kill(pid, signal.SIGTERM)
        finally:
            code, _, err = stop_app(proc)
        self.assertEqual(code, EXIT_INTERRUPTED, err)
        said = re.search(r"interrupted: (\d+)/(\d+) tasks done", err)
        self.assertIsNotNone(said, err)
        done, total = int(said.group(1)), int(said.group(2))
        self.assertEqual(total, points)
        self.assertTrue(6 <= done < points, err)
        self.assertFalse(os.path.exists(out + ".status"))

        ntasks, ckpt_done, ckpt_failed = checkpoint_counts(out + ".ckpt")
        self.assertEqual((ntasks, ckpt_done), (points, done))
        code, text, err = status_cmd(out)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(text, f"{out}: interrupted: {done}/{points} tasks done "
                               f"({100 * done / points:.1f}%), {ckpt_failed} failed; rerun with "
                               f"--resume\n")
        j = status_json(out)
        self.assertEqual((j["state"], j["tasks_total"], j["tasks_done"], j["tasks_failed"]),
                         ("interrupted", points, done, ckpt_failed))
        self.assertGreater(ckpt_failed, 0)  # some even points were among the first done

        # A torn tail (a kill in mid-append) is counted as a resume would drop it.
        torn = self.path("torn.h5")
        with open(out + ".ckpt", "rb") as f, open(torn + ".ckpt", "wb") as g:
            g.write(f.read() + b"\x43\x4b\x50\x45" + b"\x00" * 96)
        j = status_json(torn)
        self.assertEqual((j["state"], j["tasks_done"], j["tasks_failed"], j["damaged_bytes"]),
                         ("interrupted", done, ckpt_failed, 100))
        code, text, _ = status_cmd(torn)
        self.assertIn("the checkpoint's last 100 bytes are damaged", text)

        proc = start_app("param_sweep", 2, sweep_args(out, points, fail_even=True) + ["--resume"])
        code, _, err = stop_app(proc)
        self.assertEqual(code, 0, err)
        j = status_json(out)
        self.assertEqual((j["state"], j["tasks_total"], j["tasks_failed"], j["legs"]),
                         ("complete", points, points // 2, 2))


class FakeRunTest(TempDirCase):
    """A status file written here, under a lock held here: the rules of the
    reader without a run's timing."""

    def write_status(self, out, now, last_chunks):
        lines = ["format = 1", "state = running", "app = fake", f"output = {out}",
                 f"pid = {os.getpid()}", f"host = {socket.gethostname()}",
                 f"ranks = {len(last_chunks)}", "manager_computes = 1", "interval = 1",
                 f"start_time = {now - 200}", "start_iso = x", f"tasks_start_time = {now - 200}",
                 f"update_time = {now}", "update_iso = x", "elapsed = 200",
                 "tasks_total = 1000", "tasks_done = 400", "tasks_restored = 100",
                 "tasks_failed = 2", "rate = 1.5", "eta = 400"]
        for r, last in enumerate(last_chunks):
            lines += [f"rank.{r}.tasks = 100", f"rank.{r}.busy = 150.5",
                      f"rank.{r}.last_chunk = {last}"]
        with open(out + ".status", "w") as f:
            f.write("\n".join(lines) + "\n")

    def test_silent_rank_is_flagged_and_the_lock_stays_held(self):
        out = self.path("fake.h5")
        now = time.time()
        self.write_status(out, now, [now - 1, now - 2, now - 100])
        with open(out + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            j = status_json(out)
            code, text, err = status_cmd(out)
            # The probe left the lock to its holder.
            with open(out + ".lock") as other:
                with self.assertRaises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        self.assertEqual((j["state"], j["tasks_done"], j["tasks_restored"], j["tasks_failed"]),
                         ("running", 400, 100, 2))
        self.assertEqual([r["silent"] for r in j["per_rank"]], [False, False, True])
        self.assertAlmostEqual(j["per_rank"][0]["busy_percent"], 75.25, places=1)
        self.assertEqual(code, 0, err)
        silent = [line for line in text.splitlines() if "silent" in line]
        self.assertEqual(len(silent), 1, text)
        self.assertRegex(silent[0], r"^ +2 +100 ")
        self.assertIn("done     400/1000 tasks (40.0%), 100 restored, 2 failed", text)

        # Lock released: the file is what a killed run leaves, not a run.
        code, text, err = status_cmd(out)
        self.assertEqual((code, text), (EXIT_USAGE, ""))
        self.assertEqual(err, f"mpmap-status: no run at '{out}' (no live run, no checkpoint, "
                              f"no output)\n")


class UsageTest(TempDirCase):
    def test_bad_usage_exits_2_with_one_line(self):
        for args in ([], ["--watch"], [self.path("o.h5"), "--watch", "0"],
                     [self.path("o.h5"), "--watch", "x"], [self.path("o.h5"), "--bogus"],
                     ["a.h5", "b.h5"], [self.path("none.h5")], [self.path("none.h5"), "--json"]):
            code, stdout, stderr = status_cmd(*args)
            self.assertEqual(code, EXIT_USAGE, args)
            self.assertEqual(stdout, "", args)
            self.assertEqual(len(stderr.splitlines()), 1, (args, stderr))
            self.assertTrue(stderr.startswith("mpmap-status: "), stderr)

    def test_not_an_output(self):
        path = self.path("plain.h5")
        with open(path, "w") as f:
            f.write("not hdf5\n")
        code, stdout, stderr = status_cmd(path)
        self.assertEqual((code, stdout), (EXIT_USAGE, ""))
        self.assertEqual(stderr, f"mpmap-status: '{path}' is not an HDF5 file\n")


if __name__ == "__main__":
    main()
