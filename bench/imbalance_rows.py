"""Row 8 of the bench: heavy-tailed tasks, every schedule against the lower bound.

20 000 tasks with Pareto(1.5) costs (bench/imbalance.c, seed 42) add up to
4 s of work at -n 2; the figure is lower bound / makespan (1 = the bound, 0.98
= 2% above it). The bound is max(serial time / 2, largest task), the serial
time measured in the same run at -n 1 (a shared machine stretches short
spins, so the nominal 4 s is not used).

Two scenarios:

* quiet cores: every schedule of interest, guided (the default) and auto (the
  choice for unknown costs) with targets;
* a core shared for part of the run (--steal 0.5:1): a thread of rank 0's
  process spins on rank 0's core from 0.5 s to 1.5 s, as a second job
  landing on a node would, and the tasks spin on their thread's CPU time so
  the rank that shares its core really is slower. The bound adds the half
  core-second the thread takes (fair sharing of one core for 1 s).
"""
from harness import fmt_s, fmt_x, info_row, json_line, median, mpirun, row, run, alternate

TOTAL_S = 4.0
TASKS = 20000
# (schedule, chunk) on quiet cores; guided and auto carry the targets.
SCHEDULES = [("static", 1), ("dynamic", 20), ("guided", 1), ("factoring", 1), ("af", 1),
             ("auto", 1)]
# Diagnostic variant: guided with one prefetched chunk per worker instead of two.
VARIANT = ("guided-prefetch1", "guided", 1, ["--prefetch=1"])
STEAL_START, STEAL_LENGTH = 0.5, 1.0
STEAL_SCHEDULES = ["static", "guided", "af", "auto"]
TARGETS = {"guided": 0.95, "auto": 0.98}


def steal_bound(serial, largest):
    """Least makespan on 2 cores when one of them gives half of itself to the
    stealing thread for STEAL_LENGTH seconds."""
    return max((serial + 0.5 * STEAL_LENGTH) / 2, largest)


def bench_imbalance(s):
    """8. Pareto(1.5) task costs, 20 000 tasks: makespan of each schedule vs the lower bound."""
    exe = s.prog("imbalance")

    def sched(label, name, chunk, extra=()):
        def once():
            trace = s.tmp(f"imbalance_{label}.csv")
            return json_line(run(mpirun(2, [exe, *extra, name, chunk, TASKS, TOTAL_S, 42, 1.5,
                                            trace]), s)[1])
        return once

    runners = {name: sched(name, name, c) for name, c in SCHEDULES}
    label, name, chunk, extra = VARIANT
    runners[label] = sched(label, name, chunk, extra)
    steal = f"--steal={STEAL_START:g}:{STEAL_LENGTH:g}"
    for name in STEAL_SCHEDULES:
        runners[f"steal:{name}"] = sched(f"steal_{name}", name, 1, [steal])
    # The tasks' costs measured serially, in the same conditions: one rank runs them all.
    runners["serial"] = lambda: json_line(run(mpirun(1, [exe, "static", 1, TASKS, TOTAL_S, 42,
                                                         1.5]), s)[1])
    r = alternate(s.slow_reps, runners, figure=lambda name, x: x["wall_time"])
    nominal = r["guided"][0]["lower_bound"]
    largest = r["guided"][0]["max"]
    serial = median([x["wall_time"] for x in r.pop("serial")])
    bound = max(serial / 2, largest)
    bound_steal = steal_bound(serial, largest)
    med = {name: median([x["wall_time"] for x in r[name]]) for name in r}
    quiet = [n for n in med if not n.startswith("steal:")]
    raw = {"lower_bound_s": bound, "nominal_lower_bound_s": nominal, "serial_s": serial,
           "total_s": r["guided"][0]["total"], "max_task_s": largest,
           "makespan_s": {n: med[n] for n in quiet},
           "chunks": {n: r[n][0]["chunks"] for n in quiet},
           "steal": {"start_s": STEAL_START, "length_s": STEAL_LENGTH,
                     "lower_bound_s": bound_steal,
                     "makespan_s": {n[6:]: med[n] for n in med if n.startswith("steal:")},
                     "chunks": {n[6:]: r[n][0]["chunks"] for n in med if n.startswith("steal:")}},
           "samples": r}
    rows = []
    for name, chunk in SCHEDULES:
        ratio = bound / med[name]
        label = f"8. Pareto tasks, {name} (chunk {chunk}): lower bound / makespan"
        note = f"{raw['chunks'][name]} chunks; nominal LB {nominal:.3g} s: {nominal / med[name]:.3g}x"
        # A makespan cannot beat the lower bound: a ratio above 1 is a measuring error.
        judging = {"series": [name, "serial"], "bound": 1.0}
        if name in TARGETS:
            rows.append(row("imbalance", label, fmt_s(med[name]), f"LB {fmt_s(bound)}",
                            fmt_x(ratio), f">= {TARGETS[name]:g}x", ratio >= TARGETS[name], note,
                            **judging))
        else:
            rows.append(info_row("imbalance", label, fmt_s(med[name]), f"LB {fmt_s(bound)}",
                                 fmt_x(ratio), note, **judging))
    label = VARIANT[0]
    rows.append(info_row("imbalance", "8. Pareto tasks, guided with prefetch 1 (diagnostic)",
                         fmt_s(med[label]), f"LB {fmt_s(bound)}", fmt_x(bound / med[label]),
                         f"{raw['chunks'][label]} chunks; default prefetch is 2",
                         series=[label, "serial"], bound=1.0))
    for name in STEAL_SCHEDULES:
        key = f"steal:{name}"
        ratio = bound_steal / med[key]
        label = (f"8. Pareto tasks, a core shared {STEAL_START:g}-{STEAL_START + STEAL_LENGTH:g} s, "
                 f"{name}: lower bound / makespan")
        note = (f"{raw['steal']['chunks'][name]} chunks; another thread on rank 0's core; "
                f"bound (serial + {0.5 * STEAL_LENGTH:g} core-s) / 2")
        judging = {"series": [key, "serial"], "bound": 1.0}
        if name in TARGETS and name != "guided":
            rows.append(row("imbalance", label, fmt_s(med[key]), f"LB {fmt_s(bound_steal)}",
                            fmt_x(ratio), f">= {TARGETS[name]:g}x", ratio >= TARGETS[name], note,
                            **judging))
        else:
            rows.append(info_row("imbalance", label, fmt_s(med[key]), f"LB {fmt_s(bound_steal)}",
                                 fmt_x(ratio), note, **judging))
    return rows, raw
