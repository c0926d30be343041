#!/usr/bin/python3
"""End-to-end tests of the word_count app under mpirun.

A Zipf corpus of a few MB (several files, a subdirectory, every kind of
ASCII whitespace, upper and lower case, a word longer than a counting task,
files without a final newline, an empty file) is generated here and counted
independently with collections.Counter over bytes.split(). The app's /word
and /count must equal it exactly, sorted by count descending then word, and
be bitwise identical for -n 1, 2, 3, every schedule and several
--task-bytes (tasks then cut words and whitespace runs at many places).
Also: --fold-case, bad input (one line, exit 2, no file), the memory budget
(tables over it spill to disk and give the same bytes; an unwritable spill
directory is exit 1 naming it), and the count's checkpoint: interrupted by
SIGTERM under -n 3, refused without --resume or with other settings, shown
by mpmap-status, resumed on -n 2 to the uninterrupted run's bytes.
"""
import collections
import json
import os
import random
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (shared helpers of the app tests)

APP = "word_count"
SCHEDULES = ("guided", "static", "dynamic", "factoring")


def zipf_words(rng, vocabulary, n, s=1.1):
    """n words drawn from a Zipf(s) law over `vocabulary`."""
    weights = [1.0 / (r + 1) ** s for r in range(len(vocabulary))]
    return rng.choices(vocabulary, weights, k=n)


def make_corpus(root, megabytes=3.0, seed=7):
    """Writes the corpus under root; returns the list of files written."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'-,.!?é"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
                  for _ in range(20000)]
    vocabulary += ["The", "the", "THE", "tHe"]
    spaces = [" "] * 20 + ["\n"] * 4 + ["\t", "  ", "\r\n", "\v", "\f", " \n\n "]
    os.makedirs(os.path.join(root, "sub", "deeper"), exist_ok=True)
    names = ["a.txt", "b.txt", os.path.join("sub", "c.txt"),
             os.path.join("sub", "deeper", "d.txt"), os.path.join("sub", "empty.txt")]
    per_file = int(megabytes * 1e6 / 4)
    written = []
    for i, name in enumerate(names):
        path = os.path.join(root, name)
        parts = []
        if name.endswith("empty.txt"):
            per = 0
        else:
            per = per_file
        size = 0
        if i == 1:
            parts.append("   \n\t")  # a file starting with whitespace
        words = zipf_words(rng, vocabulary, max(1, per // 6)) if per else []
        for j, w in enumerate(words):
            if size >= per:
                break
            if j == 1000 and i == 0:
                w = "x" * 300000  # longer than a task of every size tested
            parts.append(w)
            parts.append(rng.choice(spaces))
            size += len(w) + 1
        text = "".join(parts)
        if i == 2:
            text = text.rstrip()  # no final newline
        with open(path, "wb") as f:
            f.write(text.encode("utf-8"))
        written.append(path)
    return written


def reference(paths, fold_case=False):
    """Counter of the words of every file (bytes.split: ASCII whitespace)."""
    counts = collections.Counter()
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        if fold_case:
            data = data.lower()
        counts.update(data.split())
    return counts


def ordered(counts):
    """(words, counts) by count descending, then word bytewise."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, _ in items], [c for _, c in items]


class WordCountTest(harness.TempDirCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.corpus_dir = tempfile.mkdtemp(prefix="wc_corpus_")
        cls.files = make_corpus(cls.corpus_dir)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.corpus_dir, ignore_errors=True)

    def count(self, out, nprocs=2, extra=(), inputs=None):
        args = []
        for i in (inputs if inputs is not None else [self.corpus_dir]):
            args += ["--input", i]
        args += ["--output", out, "--quiet"] + list(extra)
        code, stdout, stderr = harness.run_app(APP, nprocs, args, timeout=300)
        self.assertEqual(code, 0, f"word_count {args} failed:\n{stderr}")
        return harness.read_h5(out)

    def check_against_counter(self, h5, fold_case=False):
        words, counts = ordered(reference(self.files, fold_case))
        self.assertEqual([bytes(w) if not isinstance(w, bytes) else w
                          for w in h5["/word"].tolist()], words)
        self.assertEqual(h5["/count"].tolist(), counts)
        self.assertEqual(h5["/count"].dtype.str, "<i8")
        self.assertEqual(h5.attrs["total"], sum(counts))
        self.assertEqual(h5.attrs["distinct_words"], len(words))
        self.assertEqual(h5.dims["/count"], [["/word"]])

    def test_counts_equal_counter(self):
        h5 = self.count(self.path("wc.h5"), nprocs=3, extra=["--task-bytes", "65536"])
        self.check_against_counter(h5)
        self.assertEqual(h5.attrs["files"], 5)

    def test_fold_case(self):
        h5 = self.count(self.path("wc.h5"), nprocs=2, extra=["--fold-case"])
        self.check_against_counter(h5, fold_case=True)

    def test_identical_for_ranks_schedules_task_sizes(self):
        runs = []
        for nprocs in (1, 2, 3):
            for i, schedule in enumerate(SCHEDULES):
                task_bytes = ("777", "4096", "65536", "4194304")[(i + nprocs) % 4]
                runs.append((nprocs, schedule, task_bytes))
        calls = []
        for nprocs, schedule, task_bytes in runs:
            out = self.path(f"wc_{nprocs}_{schedule}_{task_bytes}.h5")
            args = ["--input", self.corpus_dir, "--output", out, "--quiet",
                    "--schedule", schedule, "--task-bytes", task_bytes]
            if schedule == "dynamic":
                args += ["--chunk", "3"]
            calls.append(dict(app=APP, nprocs=nprocs, args=args, timeout=600))
        # two at a time: most of a small run is mpirun starting up
        results = harness.run_many(calls, workers=2)
        first = None
        for (nprocs, schedule, task_bytes), result in zip(runs, results):
            if isinstance(result, Exception):
                raise result
            code, _, stderr = result
            self.assertEqual(code, 0, f"-n {nprocs} {schedule} {task_bytes}: {stderr}")
            h5 = harness.read_h5(self.path(f"wc_{nprocs}_{schedule}_{task_bytes}.h5"))
            if first is None:
                first = h5
                self.check_against_counter(h5)
                continue
            for name in ("/word", "/count"):
                self.assertTrue(harness.same_bits(first[name], h5[name]) if name == "/count"
                                else first[name].tolist() == h5[name].tolist(),
                                f"{name} differs at -n {nprocs} {schedule} {task_bytes}")
            self.assertEqual(first.attrs["total"], h5.attrs["total"])

    def test_files_given_one_by_one(self):
        h5 = self.count(self.path("wc.h5"), nprocs=2, inputs=self.files)
        self.check_against_counter(h5)

    def test_empty_input(self):
        empty = self.path("nothing.txt")
        open(empty, "wb").close()
        h5 = self.count(self.path("wc.h5"), nprocs=2, inputs=[empty])
        self.assertEqual(h5.attrs["total"], 0)
        self.assertEqual(len(h5["/count"]), 0)

    def test_missing_input_is_one_line(self):
        out = self.path("wc.h5")
        code, _, stderr = harness.run_app(APP, 2, ["--input", self.path("missing.txt"),
                                                   "--output", out], timeout=120)
        self.assertEqual(code, harness.EXIT_USAGE)
        harness.assert_one_line_error(self, APP, stderr, "--input", "missing.txt")
        self.assertFalse(os.path.exists(out))

    def test_input_required(self):
        code, _, stderr = harness.run_app(APP, 1, ["--output", self.path("wc.h5")])
        self.assertEqual(code, harness.EXIT_USAGE)
        harness.assert_one_line_error(self, APP, stderr, "--input")

    def test_budget_exceeded_spills_and_gives_the_same_bytes(self):
        """Word tables over --budget go to run files in --spill-dir (unnamed:
        the directory stays empty) and are merged: the result is the
        in-memory run's, bit for bit."""
        ref = self.path("ref.h5")
        code, _, stderr = harness.run_app(APP, 2, ["--input", self.corpus_dir, "--output", ref,
                                                   "--quiet"], timeout=300)
        self.assertEqual(code, 0, stderr)
        spill = self.path("spill")
        os.mkdir(spill)
        out = self.path("wc.h5")
        code, stdout, stderr = harness.run_app(APP, 2, ["--input", self.corpus_dir, "--output",
                                                        out, "--budget", "1", "--spill-dir",
                                                        spill], timeout=300)
        self.assertEqual(code, 0, stderr)
        self.assertRegex(stdout, r"over --budget: \d+ run files")
        a, b = harness.read_h5(ref), harness.read_h5(out)
        self.assertTrue(harness.same_bits(a["/count"], b["/count"]))
        self.assertEqual(a["/word"].tolist(), b["/word"].tolist())
        self.assertEqual(a.attrs["total"], b.attrs["total"])
        self.assertEqual(os.listdir(spill), [])

    def status(self, out, *flags):
        """mpmap-status OUT [flags] -> (exit code, stdout)."""
        tool = os.environ.get("MPMAP_STATUS_TOOL") or os.path.join(
            harness.apps_dir(), "..", "tools", "mpmap-status")
        proc = subprocess.run([tool, out] + list(flags), capture_output=True, text=True,
                              timeout=30)
        return proc.returncode, proc.stdout

    def test_interrupted_count_resumes_on_other_ranks(self):
        """SIGTERM mid-count under -n 3 (the rank that counts its 6th task
        sends it to itself: MPMAP_TEST_SIGTERM_AFTER, so the count is
        interrupted at a known point, not before it starts): exit 3 and the
        count's checkpoint saved. A fresh run is then refused, a resume with
        another --task-bytes too (exit 2, one line naming it, nothing
        touched); mpmap-status tells how far the count got; --resume on -n 2
        counts the rest and writes the uninterrupted run's bytes."""
        common = ["--input", self.corpus_dir, "--task-bytes", "16384", "--schedule",
                  "dynamic", "--quiet"]
        ref = self.path("ref.h5")
        code, _, stderr = harness.run_app(APP, 2, common + ["--output", ref], timeout=300)
        self.assertEqual(code, 0, stderr)
        out = self.path("wc.h5")
        kckpt = out + ".kckpt"
        env = harness.mpi_env({"MPMAP_TEST_SIGTERM_AFTER": "6"})
        code, _, stderr = harness.run_app(APP, 3, common + ["--output", out], env=env,
                                          timeout=300)
        self.assertEqual(code, harness.EXIT_INTERRUPTED, stderr)
        line = harness.assert_one_line_error(self, APP, stderr, "interrupted while counting",
                                             kckpt, "--resume")
        done, total = map(int, re.search(r"(\d+)/(\d+) count tasks done", line).groups())
        self.assertTrue(6 <= done < total, line)
        self.assertTrue(os.path.exists(kckpt))
        self.assertTrue(os.path.exists(kckpt + ".leg0.rank2"))
        self.assertFalse(os.path.exists(out))
        saved = {f: harness.file_bytes(os.path.join(self.tmp, f))
                 for f in os.listdir(self.tmp) if f.startswith("wc.h5.kckpt")}

        code, text = self.status(out)
        self.assertEqual(code, 0, text)
        self.assertIn(f"interrupted in its keyed stage (before the output's tasks): "
                      f"{done}/{total} tasks done", text)
        code, text = self.status(out, "--json")
        view = json.loads(text)
        self.assertEqual((view["state"], view["stage"], view["tasks_done"], view["tasks_total"]),
                         ("interrupted", "keyed", done, total))

        code, _, stderr = harness.run_app(APP, 2, common + ["--output", out], timeout=120)
        self.assertEqual(code, harness.EXIT_USAGE, stderr)
        harness.assert_one_line_error(self, APP, stderr, kckpt, "--resume", "--force")
        other = [a if a != "16384" else "8192" for a in common]
        code, _, stderr = harness.run_app(APP, 2, other + ["--output", out, "--resume"],
                                          timeout=120)
        self.assertEqual(code, harness.EXIT_USAGE, stderr)
        harness.assert_one_line_error(self, APP, stderr, "--resume", "different run",
                                      "--task-bytes: was 16384, now 8192", "--force")
        self.assertEqual({f: harness.file_bytes(os.path.join(self.tmp, f)) for f in saved},
                         saved)

        code, _, stderr = harness.run_app(APP, 2, common + ["--output", out, "--resume"],
                                          timeout=300)
        self.assertEqual(code, 0, stderr)
        a, b = harness.read_h5(ref), harness.read_h5(out)
        self.assertTrue(harness.same_bits(a["/count"], b["/count"]))
        self.assertEqual(a["/word"].tolist(), b["/word"].tolist())
        self.assertEqual(a.attrs["total"], b.attrs["total"])
        self.assertEqual(b.attrs["count_tasks"], total)
        self.assertEqual(b.attrs["count_tasks_restored"], done)
        self.assertEqual(a.attrs["count_tasks_restored"], 0)
        self.assertEqual([f for f in os.listdir(self.tmp) if ".kckpt" in f], [])
        code, text = self.status(out)
        self.assertEqual(code, 0, text)
        self.assertIn(f"complete: {len(b['/count'])} tasks (0 failed), word_count", text)

    def test_unwritable_spill_dir_fails_cleanly(self):
        out = self.path("wc.h5")
        missing = self.path("no-such-dir")
        code, _, stderr = harness.run_app(APP, 2, ["--input", self.corpus_dir, "--output", out,
                                                   "--budget", "1", "--spill-dir", missing],
                                          timeout=300)
        self.assertEqual(code, harness.EXIT_FAILED, stderr)
        harness.assert_one_line_error(self, APP, stderr, "no-such-dir")
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    harness.main()
