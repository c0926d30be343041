"""One benchmark of the harness in attempts: its noise figures, its rows' verdicts, and
the repeat while they are unsettled (the rules are in verdict.py)."""
import json
import os
import time

import machine
import verdict
from runner import recording

CORES = os.cpu_count() or 1


def measure(s, fn):
    """Runs one attempt of a benchmark: (rows, raw, noise, series)."""
    noise = {"cores": CORES, "load1_before": machine.load1(),
             "others_before": machine.others_now(s.hog_pids)}
    sampler = machine.LoadSampler(s.hog_pids).start()
    t0 = time.perf_counter()
    try:
        with recording() as series:
            rows, raw = fn(s)
    finally:
        during = sampler.stop()
    noise.update(seconds=time.perf_counter() - t0, load1_after=machine.load1(),
                 others_during=during["others_mean"], others_max=during["others_max"],
                 own_during=during["own_mean"], samples=during["samples"])
    return rows, raw, noise, series


def judge_rows(rows, noise, series, defaults, policy):
    """Fills each row's verdict (its status) and noise fields; returns the verdicts."""
    for r in rows:
        if verdict.is_timed(r):
            for k, v in defaults.items():
                r.setdefault(k, v)
        r.setdefault("target_status", r["status"])  # PASS/FAIL of the figure alone
        r["status"], r["reasons"], r["spread"], r["spread_series"] = verdict.judge_row(
            dict(r, status=r["target_status"]), noise, series, policy)
        for k in ("load1_before", "load1_after", "others_before", "others_during"):
            r[k] = noise.get(k)
    return [r["status"] for r in rows]


def fmt_attempt(noise, rows):
    others = "?" if noise["others_during"] is None else \
        f"{noise['others_before']:.1f} before, {noise['others_during']:.1f} during " \
        f"(max {noise['others_max']})"
    spreads = [r for r in rows if r.get("spread") is not None]
    worst = max(spreads, key=lambda r: r["spread"], default=None)
    spread = "-" if worst is None else f"{worst['spread']:.1%} ({worst['spread_series']})"
    load = lambda x: "?" if x is None else f"{x:.2f}"  # noqa: E731
    return (f"{noise['seconds']:.1f} s; load {load(noise['load1_before'])} -> "
            f"{load(noise['load1_after'])}; others runnable {others}; largest spread {spread}")


def run_benchmark(s, fn, opts):
    """Runs a benchmark until its rows are settled or its attempts are spent (waiting a
    little for the machine to quiet down between attempts); the last attempt's rows stand."""
    policy = s.policy.with_overrides(**{k: opts.get(k) for k in
                                        ("spread_limit", "others_limit", "max_attempts")})
    attempts, attempt = [], 0
    while True:
        attempt += 1
        if attempt > 1:
            waited, others = machine.wait_until_quiet(policy.others_limit, s.hog_pids, s.settle)
            print(f"harness:   waited {waited:.0f} s for other work to settle "
                  f"(others runnable {'?' if others is None else f'{others:.1f}'})", flush=True)
        rows, raw, noise, series = measure(s, fn)
        verdicts = judge_rows(rows, noise, series, opts.get("rows", {}), policy)
        print(f"harness:   attempt {attempt}/{policy.max_attempts}: {fmt_attempt(noise, rows)}; "
              f"verdicts {', '.join(verdicts)}", flush=True)
        for r in rows:
            if r["reasons"]:
                print(f"harness:     {r['status']} {r['name']}: {'; '.join(r['reasons'])}",
                      flush=True)
        attempts.append({"noise": noise, "series": series,
                         "verdicts": {r["name"]: r["status"] for r in rows}})
        if not verdict.should_retry(attempt, verdicts, policy):
            break
    for r in rows:
        r["attempts"] = attempt
    raw["noise"] = {"policy": policy.__dict__, "attempts": attempts}
    return rows, raw


def compare_with_quiet(rows, path):
    """A hog run's rows against the quiet run's results.json: the disagreements."""
    if not os.path.exists(path):
        print(f"harness: no quiet run to compare with ({path})")
        return None
    with open(path) as f:
        quiet = json.load(f)["rows"]
    names = {r["name"] for r in rows}
    bad = verdict.disagreements([r for r in quiet if r["name"] in names], rows)
    print(f"harness: verdicts against the quiet run ({path}): {len(bad)} PASS/FAIL flip(s)")
    for name, a, b in bad:
        print(f"harness:   {name}: quiet {a}, with the hog {b}")
    return [list(x) for x in bad]
