"""Verdicts of the benchmark rows on a machine that may be shared: pure functions.

A row's figure is only worth a PASS or FAIL when it was measured in quiet
conditions. Two things say it was not:

* the spread of its timed repetitions, (max - min) / median of each series
  the row is computed from (the largest over those series), above the row's
  limit (5% unless the benchmark sets another);
* other work on the machine: on average more than 0.5 runnable tasks that are
  not the bench's own (the hog of `run.sh --hog` counts as other work) in the
  second before the row or while it ran. The bench fills the cores itself
  (2 ranks or 2 workers on 2 cores), so any sustained other work means the
  machine's load exceeded its cores. The 1-minute load average is recorded
  too but decides only where /proc cannot be sampled: it counts the bench's
  own ranks and lags a minute behind.

A disturbed row is run again (the whole benchmark, a bounded number of
attempts) unless its verdict holds anyway, and is NOISY instead of PASS or
FAIL when the last attempt is still disturbed and:

* the machine was loaded, and the row is a FAIL or a PASS that clears its
  target by less than a factor (2 by default): steady other work slows every
  repetition alike, so the spread cannot say how much it moved the figure;
* or the machine was quiet but the figure is nearer its target (relative
  distance) than its repetitions' spread: the noise could flip it.

A figure above its physical bound (a speed-up above the cores, a fraction of
a lower bound above 1) by more than its repetitions' spread is IMPLAUSIBLE
whatever the conditions: the measurement is wrong somewhere. (Within the
spread it is a figure at its bound plus noise, judged as any other.) A row may give a second bound for a loaded
machine: with other work on the cores, more ranks win a larger share of them
(8 ranks beside one busy process get 8/9 of 2 cores, 2 ranks 2/3), so a
throughput of 8 ranks over 2 is then bounded by the ranks, 4, not the cores.

    python3 bench/verdict.py QUIET.json OTHER.json

compares the verdicts of two results.json files (e.g. a quiet run and a
`--hog` run): exit 1 when a row is PASS in one and FAIL in the other.
"""
import json
import re
import statistics
import sys
from dataclasses import dataclass

SPREAD_MEASURE = "(max - min) / median, the largest over the series the row is computed from"
UNSETTLED = ("NOISY", "IMPLAUSIBLE")
_SI = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


@dataclass(frozen=True)
class Policy:
    spread_limit: float = 0.05   # (max - min) / median of a series
    others_limit: float = 0.5    # mean runnable tasks that are not the bench's own
    max_attempts: int = 3        # runs of a benchmark, the first included
    decisive: float = 2.0        # a disturbed PASS stands when it clears its target by this factor

    def with_overrides(self, **kw):
        fields = {k: v for k, v in kw.items() if v is not None}
        return Policy(**{**self.__dict__, **fields})


# ---------------------------------------------------------------- noise figures

def spread(values):
    """(max - min) / median of a series; None for fewer than 2 values or a zero median."""
    values = [float(v) for v in values if v is not None]
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    if mid == 0:
        return None
    return (max(values) - min(values)) / abs(mid)


def row_spread(series, names=None):
    """(largest spread, its series name) over the named series (all when names is None)."""
    worst, which = None, None
    for name, values in series.items():
        if names is not None and name not in names:
            continue
        sp = spread(values)
        if sp is not None and (worst is None or sp > worst):
            worst, which = sp, name
    return worst, which


def others_runnable(procs_running, own_running, sampler=1):
    """Runnable tasks that are not the bench's: /proc/stat's procs_running minus the bench's
    own runnable tasks and the sampler that is reading (itself runnable while it reads)."""
    return max(0, procs_running - own_running - sampler)


def loaded(noise, policy=Policy()):
    """The reason the machine was busy around a row, or None. noise holds others_before and
    others_during (mean runnable tasks not the bench's own), else load1_before and cores."""
    others = [noise.get(k) for k in ("others_before", "others_during")]
    others = [x for x in others if x is not None]
    if others:
        worst = max(others)
        if worst > policy.others_limit:
            return f"{worst:.1f} other tasks runnable (limit {policy.others_limit:g})"
        return None
    load1, cores = noise.get("load1_before"), noise.get("cores")
    if load1 is not None and cores and load1 > cores:
        return f"load {load1:.2f} above {cores} cores"
    return None


def settled(others_mean, policy=Policy()):
    """Whether the machine is quiet enough to start (again)."""
    return others_mean is None or others_mean <= policy.others_limit


# ---------------------------------------------------------------- reading rows

def number(text):
    """The number a table cell starts with, SI prefix applied: '873 k/s' -> 873e3,
    '2.02x' -> 2.02, '>= 300k chunks/s' -> 3e5; None when there is none."""
    m = re.match(r"\s*(?:[<>]=?\s*)?([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kMG]?)",
                 str(text))
    if not m:
        return None
    return float(m.group(1)) * _SI[m.group(2)]


def goal(target):
    """('>=' or '<=', threshold) of a target cell such as '>= 1.85x'; None for 'equal'."""
    m = re.match(r"\s*(>=|<=)", str(target))
    value = number(target)
    return (m.group(1), value) if m and value is not None else None


def row_value(row):
    """The figure a row's target is about: the ratio for targets in 'x', else the mpmap cell."""
    target = str(row.get("target", "")).strip()
    if target.endswith("x") or (not target and row.get("ratio")):
        return number(row.get("ratio", ""))
    return number(row.get("mpmap", ""))


def is_timed(row):
    """A row whose figure is a time or rate (it has a ratio), unless it says otherwise;
    equality checks and memory are not disturbed by a busy machine."""
    if "timed" in row:
        return bool(row["timed"])
    return bool(str(row.get("ratio", "")).strip())


# ---------------------------------------------------------------- verdicts

def decisive(value, target, factor):
    """Whether value passes target by more than factor (so noise cannot have made it pass)."""
    g = goal(target)
    if value is None or g is None or value <= 0 or g[1] <= 0:
        return False
    op, threshold = g
    return value >= factor * threshold if op == ">=" else value * factor <= threshold


def margin(value, target):
    """How far value lies from target's threshold, relative to it (either side); None when
    either is unknown."""
    g = goal(target)
    if value is None or g is None or g[1] == 0:
        return None
    return abs(value - g[1]) / abs(g[1])


def judge(status, *, value=None, target="", bound=None, bound_loaded=None, timed=True,
          spread_=None, busy=None, policy=Policy()):
    """(verdict, reasons) of one row.

    status is the row's own PASS / FAIL / info (others, such as "n/a ...", pass through);
    value its figure, bound the physical limit of that figure (None: none), bound_loaded
    the limit when other work shares the cores (None: the same), spread_ the largest
    spread of its series, busy the reason the machine was loaded (None: quiet)."""
    if status not in ("PASS", "FAIL", "info"):
        return status, []
    if busy and bound_loaded is not None:
        bound = bound_loaded
    reasons = []
    if bound is not None and value is not None and value > bound:
        # A figure that sits at its bound (mc_pi against the generator alone)
        # lands a little above it as often as below: within its spread that
        # is the noise, beyond it the measurement is wrong.
        if spread_ is None or value > bound * (1 + spread_):
            return "IMPLAUSIBLE", [f"{value:.3g} is above the physical bound {bound:.3g}"]
        reasons.append(f"{value:.3g} is above its bound {bound:.3g} by less than its spread")
    if not timed:
        return status, reasons
    jumpy = spread_ is not None and spread_ > policy.spread_limit
    if jumpy:
        reasons.append(f"spread {spread_:.1%} > {policy.spread_limit:.0%}")
    if busy:
        reasons.append(busy)
    if not reasons or status == "info":
        return status, reasons
    if busy:
        # Other work slows the bench steadily, which the spread does not show:
        # only a pass by far survives it, never a fail.
        if status == "PASS" and decisive(value, target, policy.decisive):
            return "PASS", reasons + [f"clears its target by more than {policy.decisive:g}x"]
        return "NOISY", reasons
    # A quiet machine, repetitions that disagree: the verdict stands when the
    # figure is farther from its target than its repetitions are apart.
    m = margin(value, target)
    if m is not None and m > spread_:
        return status, reasons + [f"{m:.0%} from its target, more than the spread"]
    return "NOISY", reasons


def judge_row(row, noise, series, policy=Policy()):
    """judge() on a harness row: its bound and series names (row["bound"], row["series"])
    and the noise of the benchmark attempt it came from. Returns (verdict, reasons, spread,
    name of the series with that spread)."""
    names, timed = row.get("series"), is_timed(row)
    sp, which = None, None
    if timed:
        sp, which = row_spread(series, None if names is None else {str(n) for n in names})
    verdict, reasons = judge(row["status"], value=row_value(row), target=row.get("target", ""),
                             bound=row.get("bound"), bound_loaded=row.get("bound_loaded"),
                             timed=timed, spread_=sp,
                             busy=loaded(noise, policy), policy=policy)
    return verdict, reasons, sp, which


def should_retry(attempt, verdicts, policy=Policy()):
    """Whether to run a benchmark again after attempt number `attempt` (1-based) gave these
    verdicts: only while some row is unsettled and attempts are left."""
    return attempt < policy.max_attempts and any(v in UNSETTLED for v in verdicts)


# ---------------------------------------------------------------- two runs

def disagreements(rows_a, rows_b):
    """Rows (name, verdict in a, verdict in b) that are PASS in one run and FAIL in the
    other. NOISY, IMPLAUSIBLE, info and n/a never disagree: they make no claim."""
    b = {r["name"]: r["status"] for r in rows_b}
    out = []
    for r in rows_a:
        va, vb = r["status"], b.get(r["name"])
        if {va, vb} == {"PASS", "FAIL"}:
            out.append((r["name"], va, vb))
    return out


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: verdict.py QUIET.json OTHER.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        a = json.load(f)["rows"]
    with open(argv[2]) as f:
        b = json.load(f)["rows"]
    common = {r["name"] for r in a} & {r["name"] for r in b}
    bad = disagreements(a, b)
    for name, va, vb in bad:
        print(f"DISAGREE {name}: {va} vs {vb}")
    # Rows whose verdicts differ without contradicting each other: one run
    # makes a claim (PASS/FAIL) where the other says its figure was disturbed.
    vb = {r["name"]: r["status"] for r in b}
    same = 0
    for r in a:
        if r["name"] not in common:
            continue
        if r["status"] == vb[r["name"]]:
            same += 1
        elif (r["name"], r["status"], vb[r["name"]]) not in bad:
            print(f"differ  {r['name']}: {r['status']} vs {vb[r['name']]}")
    print(f"{len(common)} rows in both runs: {same} with the same verdict, "
          f"{len(bad)} PASS/FAIL disagreement(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
