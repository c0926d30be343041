"""The benchmark verdicts of bench/verdict.py: noise figures, PASS/FAIL/NOISY/IMPLAUSIBLE,
the bounded repeat, and the agreement of a quiet run and a loaded one."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
sys.path.insert(0, BENCH)

import verdict  # noqa: E402
from verdict import Policy, judge, judge_row, loaded, should_retry, spread  # noqa: E402

QUIET = {"cores": 2, "load1_before": 0.4, "load1_after": 2.1, "others_before": 0.0,
         "others_during": 0.1}
# One busy process beside the bench, as with run.sh --hog.
HOG = dict(QUIET, load1_before=1.9, load1_after=3.2, others_before=1.0, others_during=1.05)


def speedup_row(ratio, target=">= 1.85x", bound=2.0):
    return {"name": "7a. speed-up -n 2 / -n 1", "mpmap": "1 s", "baseline": "2 s",
            "ratio": f"{ratio:.3g}x", "target": target,
            "status": "PASS" if ratio >= verdict.number(target) else "FAIL",
            "series": ["1", "2"], "bound": bound}


class Spread(unittest.TestCase):
    def test_range_over_median(self):
        self.assertAlmostEqual(spread([1.0, 1.1, 0.9]), 0.2)
        self.assertAlmostEqual(spread([2.0, 2.0, 2.0, 2.0]), 0.0)

    def test_one_value_or_zero_median_has_no_spread(self):
        self.assertIsNone(spread([3.0]))
        self.assertIsNone(spread([]))
        self.assertIsNone(spread([0.0, 0.0]))

    def test_row_takes_the_worst_of_its_series(self):
        series = {"mpmap": [1.0, 1.01, 1.0], "baseline": [2.0, 2.4, 2.2], "other": [1, 5]}
        sp, which = verdict.row_spread(series, {"mpmap", "baseline"})
        self.assertEqual(which, "baseline")
        self.assertAlmostEqual(sp, 0.4 / 2.2)
        self.assertEqual(verdict.row_spread(series)[1], "other")


class Load(unittest.TestCase):
    def test_quiet_machine_is_not_loaded(self):
        self.assertIsNone(loaded(QUIET))

    def test_other_runnable_work_loads_it(self):
        self.assertIn("1.1 other tasks runnable", loaded(HOG))
        self.assertIsNotNone(loaded(dict(QUIET, others_before=0.8)))
        self.assertIsNone(loaded(dict(QUIET, others_during=0.5)))  # at the limit: quiet

    def test_bench_own_ranks_in_the_load_average_do_not_count(self):
        # load1 after a 2-rank row is ~2 on an idle 2-core machine, and the
        # load left by the previous row lags: only other work decides.
        self.assertIsNone(loaded(dict(QUIET, load1_before=3.5, load1_after=4.0)))

    def test_load_average_decides_without_proc(self):
        self.assertIn("above 2 cores", loaded({"cores": 2, "load1_before": 2.6}))
        self.assertIsNone(loaded({"cores": 2, "load1_before": 1.9}))

    def test_others_exclude_the_bench_and_the_sampler(self):
        self.assertEqual(verdict.others_runnable(5, 2), 2)
        self.assertEqual(verdict.others_runnable(2, 2), 0)  # never negative
        self.assertTrue(verdict.settled(0.3))
        self.assertFalse(verdict.settled(1.2))


class Judge(unittest.TestCase):
    def test_quiet_row_keeps_its_pass_or_fail(self):
        self.assertEqual(judge("PASS", value=2.0, target=">= 1.85x", spread_=0.02), ("PASS", []))
        self.assertEqual(judge("FAIL", value=1.7, target=">= 1.85x", spread_=0.049)[0], "FAIL")

    def test_spread_above_the_limit_and_the_margin_is_noisy(self):
        # 1.7 is 8.1% below 1.85: a 9% spread could have put it on either side.
        v, why = judge("FAIL", value=1.7, target=">= 1.85x", spread_=0.09)
        self.assertEqual(v, "NOISY")
        self.assertEqual(why, ["spread 9.0% > 5%"])
        self.assertEqual(judge("PASS", value=1.9, target=">= 1.85x", spread_=0.051)[0], "NOISY")
        self.assertEqual(judge("PASS", value=0.965, target=">= 0.95x", spread_=0.2)[0], "NOISY")

    def test_spread_within_the_margin_keeps_the_verdict_on_a_quiet_machine(self):
        v, why = judge("FAIL", value=1.7, target=">= 1.85x", spread_=0.06)
        self.assertEqual(v, "FAIL")
        self.assertEqual(why, ["spread 6.0% > 5%", "8% from its target, more than the spread"])
        self.assertEqual(judge("PASS", value=17.3, target=">= 5x", spread_=0.54)[0], "PASS")
        # Without a target to measure the margin from, a jumpy row is NOISY.
        self.assertEqual(judge("PASS", value=0, target="0", spread_=0.06)[0], "NOISY")

    def test_limit_is_per_row(self):
        loose = Policy(spread_limit=0.10)
        self.assertEqual(judge("PASS", value=1.9, target=">= 1.85x", spread_=0.08,
                               policy=loose), ("PASS", []))

    def test_loaded_row_is_noisy_even_with_a_small_spread(self):
        v, why = judge("FAIL", value=1.3, target=">= 1.85x", spread_=0.01, busy=loaded(HOG))
        self.assertEqual(v, "NOISY")
        self.assertIn("other tasks runnable", why[0])

    def test_decisive_pass_stands_under_load(self):
        v, why = judge("PASS", value=17.3, target=">= 5x", spread_=0.2, busy="busy")
        self.assertEqual(v, "PASS")
        self.assertIn("more than 2x", why[-1])
        self.assertEqual(judge("PASS", value=9.9, target=">= 5x", busy="busy")[0], "NOISY")
        # Targets from above: 43 MB is a decisive pass of <= 256 MB, 200 MB not.
        mb = verdict.number
        self.assertEqual(judge("PASS", value=mb("43 MB"), target="<= 256 MB", busy="b")[0], "PASS")
        self.assertEqual(judge("PASS", value=mb("200 MB"), target="<= 256 MB", busy="b")[0],
                         "NOISY")

    def test_a_fail_never_stands_under_load(self):
        self.assertEqual(judge("FAIL", value=0.1, target=">= 5x", busy="busy")[0], "NOISY")
        self.assertEqual(judge("FAIL", value=0.1, target=">= 5x", spread_=0.01, busy="b")[0],
                         "NOISY")

    def test_speedup_above_the_ranks_is_implausible(self):
        # The row that passed for a wrong reason: -n 2 / -n 1 printed 2.4x.
        row = speedup_row(2.4)
        v, why, _, _ = judge_row(row, HOG, {"1": [2.0, 2.0], "2": [0.83, 0.84]})
        self.assertEqual(v, "IMPLAUSIBLE")
        self.assertIn("above the physical bound 2", why[0])
        # ... also on a quiet machine with tight repetitions.
        self.assertEqual(judge_row(row, QUIET, {"1": [2.0, 2.0], "2": [0.83, 0.83]})[0],
                         "IMPLAUSIBLE")
        self.assertEqual(judge_row(speedup_row(2.0), QUIET, {})[0], "PASS")  # at the bound

    def test_a_figure_at_its_bound_may_exceed_it_by_its_spread(self):
        # 13: mc_pi against the generator alone sits at 1.00; runs land on
        # either side. 1.01 with repetitions 3% apart is noise, not an error.
        row = {"name": "13. mc_pi / Philox bound", "mpmap": "3.5 G/s", "baseline": "3.5 G/s",
               "ratio": "1.01x", "target": ">= 0.9x", "status": "PASS", "bound": 1.0,
               "series": ["mpmap", "bound"]}
        spread3 = {"mpmap": [1.00, 1.03], "bound": [1.0, 1.0]}
        v, why, _, _ = judge_row(row, QUIET, spread3)
        self.assertEqual(v, "PASS")
        self.assertIn("above its bound 1 by less than its spread", why[0])
        self.assertEqual(judge_row(row, HOG, spread3)[0], "NOISY")
        # Beyond the spread it stays a measuring error.
        tight = {"mpmap": [1.00, 1.005], "bound": [1.0, 1.0]}
        self.assertEqual(judge_row(row, QUIET, tight)[0], "IMPLAUSIBLE")
        self.assertEqual(judge_row(dict(row, ratio="1.05x"), QUIET, spread3)[0], "IMPLAUSIBLE")

    def test_more_ranks_may_win_a_larger_share_of_busy_cores(self):
        # 7b: throughput of 8 ranks over 2 ranks on 2 cores. Quiet, above 1 is a
        # measuring error; beside a busy process 8 ranks get 8/9 of the cores and
        # 2 ranks 2/3, so 1.11 is possible there (NOISY, not IMPLAUSIBLE), while
        # more than the rank ratio, 4, still is not.
        row = dict(speedup_row(1.11, target=">= 0.95x", bound=1.0), bound_loaded=4.0)
        series = {"2": [0.42, 0.43], "8": [0.38, 0.39]}
        self.assertEqual(judge_row(row, QUIET, series)[0], "IMPLAUSIBLE")
        v, why, _, _ = judge_row(row, HOG, series)
        self.assertEqual(v, "NOISY")
        self.assertFalse(any("physical bound" in w for w in why))
        self.assertEqual(judge_row(dict(row, ratio="4.5x"), HOG, series)[0], "IMPLAUSIBLE")

    def test_fraction_of_a_lower_bound_above_one_is_implausible(self):
        row = {"name": "8. guided", "mpmap": "2 s", "baseline": "LB 2.1 s", "ratio": "1.05x",
               "target": ">= 0.95x", "status": "PASS", "bound": 1.0}
        self.assertEqual(judge_row(row, QUIET, {})[0], "IMPLAUSIBLE")
        info = {"name": "10. efficiency", "mpmap": "1.02", "baseline": "", "ratio": "",
                "target": "", "status": "info", "bound": 1.0}
        self.assertEqual(judge_row(info, QUIET, {})[0], "IMPLAUSIBLE")
        self.assertEqual(judge_row(dict(info, mpmap="0.97"), QUIET, {})[0], "info")

    def test_checks_that_are_not_timings_ignore_noise(self):
        same = {"name": "4. same indices", "mpmap": "0", "baseline": "", "ratio": "",
                "target": "0", "status": "PASS"}
        self.assertEqual(judge_row(same, HOG, {"mpmap": [1, 3]})[0], "PASS")
        self.assertEqual(judge_row(dict(same, status="FAIL"), HOG, {"mpmap": [1, 3]})[0], "FAIL")

    def test_other_statuses_pass_through(self):
        self.assertEqual(judge("n/a (app missing: mc_pi)", busy="busy"),
                         ("n/a (app missing: mc_pi)", []))

    def test_cells_are_read_with_their_prefixes(self):
        self.assertEqual(verdict.number("873 k/s"), 873e3)
        self.assertEqual(verdict.number("5.99e+03 G/s"), 5.99e12)
        self.assertEqual(verdict.goal(">= 300k chunks/s"), (">=", 3e5))
        self.assertEqual(verdict.goal("<= 1e-6"), ("<=", 1e-6))
        self.assertIsNone(verdict.goal("equal"))
        self.assertEqual(verdict.row_value({"ratio": "2.02x", "target": ">= 1.85x",
                                            "mpmap": "0.948 s"}), 2.02)
        self.assertEqual(verdict.row_value({"ratio": "42.1x", "target": ">= 300k chunks/s",
                                            "mpmap": "873 k/s"}), 873e3)


class Repeat(unittest.TestCase):
    def test_settled_rows_are_not_repeated(self):
        self.assertFalse(should_retry(1, ["PASS", "FAIL", "info", "n/a (x)"]))

    def test_unsettled_rows_are_repeated_a_bounded_number_of_times(self):
        policy = Policy(max_attempts=3)
        runs = [a for a in range(1, 10) if should_retry(a, ["PASS", "NOISY"], policy)]
        self.assertEqual(runs, [1, 2])  # attempts 2 and 3 follow, never a 4th
        self.assertTrue(should_retry(1, ["IMPLAUSIBLE"], policy))
        self.assertFalse(should_retry(1, ["NOISY"], Policy(max_attempts=1)))

    def test_overrides_keep_the_other_fields(self):
        p = Policy().with_overrides(max_attempts=1, spread_limit=None)
        self.assertEqual((p.max_attempts, p.spread_limit), (1, 0.05))


class Agreement(unittest.TestCase):
    """A quiet run and a hog run of the same figures agree: what turns into FAIL under the
    hog is NOISY instead, what passes by far stays PASS."""

    def rows(self, noise, figures):
        out = []
        for name, (ratio, target, series) in figures.items():
            r = {"name": name, "mpmap": "", "baseline": "", "ratio": f"{ratio}x", "target": target,
                 "status": "PASS" if ratio >= verdict.number(target) else "FAIL"}
            r["status"] = judge_row(r, noise, series)[0]
            out.append(r)
        return out

    def test_quiet_and_hog_verdicts_agree(self):
        tight = {"a": [1.0, 1.01, 1.0], "b": [2.0, 2.02, 2.01]}
        wide = {"a": [1.0, 1.3, 1.1], "b": [2.0, 2.5, 2.1]}
        quiet = self.rows(QUIET, {"1. KDE": (17.3, ">= 5x", tight),
                                  "7a. speed-up": (2.0, ">= 1.85x", tight),
                                  "5. OpenMP": (0.93, ">= 0.95x", tight)})
        # Under the hog the speed-up falls to 1.4 (a FAIL by its figure) and 5. to 0.8.
        hog = self.rows(HOG, {"1. KDE": (15.1, ">= 5x", wide),
                              "7a. speed-up": (1.4, ">= 1.85x", wide),
                              "5. OpenMP": (0.8, ">= 0.95x", wide)})
        self.assertEqual([r["status"] for r in quiet], ["PASS", "PASS", "FAIL"])
        self.assertEqual([r["status"] for r in hog], ["PASS", "NOISY", "NOISY"])
        self.assertEqual(verdict.disagreements(quiet, hog), [])

    def test_a_flip_is_reported(self):
        quiet = [{"name": "x", "status": "PASS"}, {"name": "y", "status": "FAIL"}]
        other = [{"name": "x", "status": "FAIL"}, {"name": "y", "status": "NOISY"}]
        self.assertEqual(verdict.disagreements(quiet, other), [("x", "PASS", "FAIL")])

    def test_command_line_exits_1_on_a_flip(self):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, status in enumerate(("PASS", "FAIL", "NOISY")):
                paths.append(os.path.join(d, f"{i}.json"))
                with open(paths[-1], "w") as f:
                    json.dump({"rows": [{"name": "row", "status": status}]}, f)
            cmd = [sys.executable, os.path.join(BENCH, "verdict.py")]
            flip = subprocess.run(cmd + paths[:2], capture_output=True, text=True)
            self.assertEqual(flip.returncode, 1)
            self.assertIn("DISAGREE row: PASS vs FAIL", flip.stdout)
            ok = subprocess.run(cmd + [paths[0], paths[2]], capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0)
            self.assertIn("differ  row: PASS vs NOISY", ok.stdout)
            self.assertIn("1 rows in both runs: 0 with the same verdict, 0 PASS/FAIL "
                          "disagreement(s)", ok.stdout)
            same = subprocess.run(cmd + [paths[0], paths[0]], capture_output=True, text=True)
            self.assertEqual(same.returncode, 0)
            self.assertNotIn("differ", same.stdout)
            self.assertIn("1 rows in both runs: 1 with the same verdict", same.stdout)



class ReadmeTable(unittest.TestCase):
    """bench/readme_table.py puts one run's rows, verdicts and noise into the README."""

    def run_tool(self, results, readme_text):
        with tempfile.TemporaryDirectory() as d:
            res, readme = os.path.join(d, "results.json"), os.path.join(d, "README.md")
            with open(res, "w") as f:
                json.dump(results, f)
            with open(readme, "w") as f:
                f.write(readme_text)
            p = subprocess.run([sys.executable, os.path.join(BENCH, "readme_table.py"), res,
                                "--update", readme], capture_output=True, text=True)
            with open(readme) as f:
                return p, f.read()

    def results(self):
        row = dict(speedup_row(1.93), **QUIET, spread=0.019)
        meta = {"date": "2026-01-02 03:04:05 UTC", "quick": True, "load_start": [0.4, 0, 0]}
        return {"meta": meta, "rows": [row], "raw": {}}

    def test_replaces_only_the_marked_block(self):
        text = "# T\n\nbefore\n<!-- bench-table -->\nold table\n<!-- /bench-table -->\nafter\n"
        p, out = self.run_tool(self.results(), text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(out.startswith("# T\n\nbefore\n<!-- bench-table -->\nRun of 2026-01-02"))
        self.assertNotIn("old table", out)
        self.assertIn("| 7a. speed-up -n 2 / -n 1 | 1 s | 2 s | 1.93x | >= 1.85x | PASS | "
                      "spread 1.9%, others 0.1 |", out)
        self.assertTrue(out.endswith("<!-- /bench-table -->\nafter\n"))

    def test_a_readme_without_markers_is_an_error(self):
        p, out = self.run_tool(self.results(), "# T\nno table here\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no <!-- bench-table --> ... <!-- /bench-table --> block", p.stderr)
        self.assertEqual(out, "# T\nno table here\n")


if __name__ == "__main__":
    unittest.main()
