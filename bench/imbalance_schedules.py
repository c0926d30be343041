#!/usr/bin/python3
"""Every schedule side by side on heavy-tailed (Pareto 1.5) tasks.

    bench/imbalance_schedules.py [--reps R] [--quick] [--build DIR] [--no-build]
                                 [--only SCENARIO,...] [--pure] [--trace]

Scenarios (each runs every registered schedule in one mpirun, REPS times in
turn; bench/imbalance_schedules.c):
    n2-spin        -n 2, tasks burn their cost in CPU time
    n2-spin-hog    the same, a CPU hog thread takes a core for part of the run
    n2-sleep       -n 2, tasks sleep
    n8-sleep       -n 8 (oversubscribed on 2 cores), tasks sleep
    n8-sleep-hog   the same with the hog
Each job's ideal makespan is about 2 s. The figure of merit is makespan /
lower bound, the bound being max(sum of task costs / P, largest task); for
sleeping tasks the sum is the time actually slept, for the hog scenarios of
spinning tasks the capacity the hog leaves (P ranks and the hog sharing the
cores fairly) is taken out as well.

That bound is not always reachable by a schedule that does not know the
costs: with seed 42 at -n 8 the two largest tasks (1.57 s, #657, and 0.95 s,
#1960 with 93% of the work before it) hold every schedule near 1.4 x. So the
table also gives, for the scenarios without hog, the makespan of a
zero-overhead simulation (a free rank takes the next chunk at once): of
dynamic chunk 1 ("in-order ideal", what self-scheduling in task order can
reach) and of each schedule the simulator knows (static, dynamic, guided,
factoring): measured / simulated is then the runtime's own cost.

--pure also runs every schedule with rank 0 only managing
(manager_computes = 0, shown as NAME:pure). --trace records every chunk
(mpmap_job.trace) and adds per-run diagnostics: idle time per rank, rank 0's
longest own task and how long the workers sat idle during it, where the
two largest tasks ran.

Writes bench/results/imbalance_schedules.{jsonl,md,png}.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sim_schedules import Scheduler, splitmix  # noqa: E402
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "results")

# name, ranks, mode, tasks, total seconds, hog start, hog length
SCENARIOS = [
    ("n2-spin", 2, "spin", 3000, 4.0, 0, 0),
    ("n2-spin-hog", 2, "spin", 3000, 4.0, 0.5, 1.0),
    ("n2-sleep", 2, "sleep", 1000, 4.0, 0, 0),
    ("n8-sleep", 8, "sleep", 2000, 16.0, 0, 0),
    ("n8-sleep-hog", 8, "sleep", 2000, 16.0, 0.5, 1.0),
]
SEED, ALPHA = 42, 1.5


SIMULATED = ("static", "dynamic", "guided", "factoring")


def task_costs(tasks, total, seed=SEED, alpha=ALPHA):
    """Per-task seconds exactly as bench/imbalance_schedules.c draws them."""
    mask = (1 << 64) - 1
    raw = []
    for t in range(tasks):
        bits = splitmix(((seed * 0x100000001b3) & mask) ^ t) >> 11
        raw.append((1.0 - bits * 2.0 ** -53) ** (-1.0 / alpha))
    scale = total / sum(raw)
    return [c * scale for c in raw]


def simulate(costs, ranks, kind, chunk=1):
    """Makespan of schedule `kind` with no overhead at all: a rank that runs
    dry takes its next chunk (src/schedule/*.c, as bench/sim_schedules.py
    cuts them) the same instant."""
    sched = Scheduler(kind, len(costs), ranks, chunk)
    free = [(0.0, w) for w in range(ranks)]
    end = 0.0
    while free:
        free.sort()
        t, w = free.pop(0)
        got = sched.next_chunk(w)
        if got is None:
            end = max(end, t)
            continue
        t += sum(costs[got[0]:got[1]])
        free.append((t, w))
    return end


def build(build_dir):
    """Builds libmpmap.a in build_dir and the bench program against it."""
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                    "-DMPMAP_BUILD_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j2", "--target", "mpmap_static"], check=True,
                   stdout=subprocess.DEVNULL)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "hdf5-openmpi"], check=True,
                           capture_output=True, text=True).stdout.split()
    exe = os.path.join(build_dir, "bench", "imbalance_schedules")
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.run(["mpicc", "-std=c17", "-O2", "-DNDEBUG", "-Wall", "-Wextra", "-Werror",
                    "-I" + os.path.join(ROOT, "include"), os.path.join(HERE, "imbalance_schedules.c"),
                    os.path.join(build_dir, "src", "libmpmap.a"), *flags, "-lm", "-lpthread",
                    "-o", exe], check=True)
    return exe


def mpi_env():
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_pml="ob1")


def schedule_names(exe):
    """Every registered schedule, in registry order (the library's own list)."""
    out = subprocess.run(["mpirun", "-n", "1", exe, "--list"], env=mpi_env(), check=True,
                         capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def hog_bound(total, ranks, cores, hog_start, hog_length):
    """Least makespan for `total` CPU seconds on `ranks` ranks when a hog thread shares the
    cores fairly during [hog_start, hog_start + hog_length)."""
    full = min(ranks, cores)
    during = min(ranks, cores * ranks / (ranks + 1))
    if total <= full * hog_start:
        return total / full
    done = full * hog_start
    if total <= done + during * hog_length:
        return hog_start + (total - done) / during
    done += during * hog_length
    return hog_start + hog_length + (total - done) / full


def lower_bound(row, cores):
    work = row["actual"] if row["mode"] == "sleep" else row["total"]
    if row["mode"] == "spin" and row["hog_length"] > 0:
        t = hog_bound(work, row["ranks"], cores, row["hog_start"], row["hog_length"])
    else:
        t = work / row["ranks"]
    return max(t, row["max"])


def run_scenario(exe, scenario, names, reps, trace=False):
    name, ranks, mode, tasks, total, hog_start, hog_length = scenario
    cmd = ["mpirun", "-n", str(ranks), "--bind-to", "none", exe, mode, str(tasks), str(total),
           str(SEED), str(ALPHA), str(hog_start), str(hog_length), str(reps), *names]
    env = mpi_env()
    if trace:
        env["IMBALANCE_TRACE"] = "1"
    print(f"imbalance_schedules: {name}: {shlex.join(cmd[:4])} ...", file=sys.stderr)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        r["scenario"] = name
        if r.get("pure"):
            r["schedule"] += ":pure"
    return rows


def summarize(rows, names, cores):
    """{scenario: {schedule: (median makespan / bound, median makespan, bound, chunks)}}"""
    table = {}
    for scenario in [s[0] for s in SCENARIOS]:
        table[scenario] = {}
        for n in names:
            mine = [r for r in rows if r["scenario"] == scenario and r["schedule"] == n]
            if not mine:
                continue
            ratios = [r["wall_time"] / lower_bound(r, cores) for r in mine]
            table[scenario][n] = (statistics.median(ratios),
                                  statistics.median(r["wall_time"] for r in mine),
                                  statistics.median(lower_bound(r, cores) for r in mine),
                                  statistics.median(r["chunks"] for r in mine))
    return table


def scenario_costs(scenario, rows):
    """The scenario's task costs, sleeping ones stretched by the measured
    overshoot (actual / requested, median over its runs), or None for a
    scenario with a hog (the simulation knows no hog) or without rows."""
    name, ranks, mode, tasks, total, hog_start, hog_length = scenario
    mine = [r for r in rows if r["scenario"] == name]
    if hog_length > 0 or not mine:
        return None
    stretch = statistics.median(r["actual"] / r["total"] for r in mine) if mode == "sleep" else 1
    return [c * stretch for c in task_costs(tasks, total)]


def simulated(scenarios_costs, names):
    """{scenario: {"in-order": makespan, schedule: makespan}}, zero overhead;
    NAME:pure runs on one rank fewer."""
    out = {}
    for s in SCENARIOS:
        costs = scenarios_costs.get(s[0])
        if costs is None:
            continue
        ranks = s[1]
        out[s[0]] = {"in-order": simulate(costs, ranks, "dynamic")}
        for n in names:
            kind, pure = n.split(":")[0], n.endswith(":pure")
            if kind in SIMULATED and ranks - pure > 0:
                out[s[0]][n] = simulate(costs, ranks - pure, kind)
    return out


# Text after this line in the results file is analysis written by hand: a
# rerun rewrites the tables above it and keeps it.
KEEP_MARK = "<!-- analysis below: kept when bench/imbalance_schedules.py rewrites this file -->"


def write_markdown(table, names, rows, path, cores, sims):
    loads = [r["load1"] for r in rows]
    lines = ["# Schedules on heavy-tailed tasks (Pareto 1.5)", "",
             "Makespan / lower bound, median over repetitions (1.00 = the bound; 1.02 = 2% "
             "above it). Bound: max(sum of task costs / P, largest task); sleeping tasks count "
             "the time actually slept; for spinning tasks with the hog, the cores' capacity the "
             "hog leaves (fair sharing) is taken out. Written by bench/imbalance_schedules.py.",
             "", f"Machine: {cores} cores; 1-minute load average during the runs "
             f"{min(loads):.1f}-{max(loads):.1f} (other jobs shared the machine).", ""]
    lines.append("| scenario | bound (s) | in-order ideal | " + " | ".join(names) + " |")
    lines.append("|---|---|---|" + "---|" * len(names))
    for scenario, per in table.items():
        if not per:
            continue
        bound = statistics.median(v[2] for v in per.values())
        ideal = f"{sims[scenario]['in-order'] / bound:.3f}" if scenario in sims else ""
        cells = []
        best = min(v[0] for v in per.values())
        for n in names:
            if n not in per:
                cells.append("")
                continue
            text = f"{per[n][0]:.3f}"
            cells.append(f"**{text}**" if per[n][0] == best else text)
        lines.append(f"| {scenario} | {bound:.2f} | {ideal} | " + " | ".join(cells) + " |")
    shown = [n for n in names if any(n in sims[s] for s in sims)]
    if shown:
        lines += ["", "In-order ideal: dynamic chunk 1 simulated with no overhead at all (a rank "
                  "that runs dry takes the next task the same instant), over the bound. Below: "
                  "the same simulation of each schedule over the bound, and measured / "
                  "simulated (1.00 = the runtime costs nothing; NAME:pure runs on P - 1 "
                  "ranks):", ""]
        lines.append("| scenario | " + " | ".join(f"{n} sim" for n in shown) + " | "
                     + " | ".join(f"{n} meas/sim" for n in shown) + " |")
        lines.append("|---|" + "---|" * (2 * len(shown)))
        for scenario, sim in sims.items():
            per = table[scenario]
            bound = statistics.median(v[2] for v in per.values())
            a = [f"{sim[n] / bound:.3f}" if n in sim else "" for n in shown]
            b = [f"{per[n][1] / sim[n]:.3f}" if n in sim and n in per else "" for n in shown]
            lines.append(f"| {scenario} | " + " | ".join(a) + " | " + " | ".join(b) + " |")
    lines += ["", "Chunks handed out (median):", ""]
    lines.append("| scenario | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for scenario, per in table.items():
        if per:
            lines.append(f"| {scenario} | " + " | ".join(
                f"{per[n][3]:.0f}" if n in per else "" for n in names) + " |")
    lines += ["", "Scenarios: " + "; ".join(
        f"{s[0]}: -n {s[1]}, {s[3]} {'spinning' if s[2] == 'spin' else 'sleeping'} tasks, "
        f"{s[4]:g} s of work"
        + (f", hog from {s[5]:g} s for {s[6]:g} s" if s[6] else "") for s in SCENARIOS), ""]
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        if KEEP_MARK in old:
            kept = old[old.index(KEEP_MARK):]
    with open(path, "w") as f:
        f.write("\n".join(lines))
        if kept:
            f.write("\n" + kept)


def overlap(intervals, a, b):
    """Seconds of [a, b) covered by the disjoint `intervals`."""
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)


def diagnose(row, costs, long_task=0.1):
    """What one traced run did with its time: idle per rank (until the last
    chunk finished), where the two largest tasks ran, rank 0's longest own
    task, and the worker idle time that fell while rank 0 was inside one of
    its own tasks of `long_task` seconds or more (it answers nobody then)."""
    trace = row["trace"]
    end = max(e[4] for e in trace)
    pieces = {}
    for e in trace:
        pieces.setdefault(e[2], []).append(e)
    idle, gaps = {}, {}
    for rank, mine in pieces.items():
        mine.sort(key=lambda e: e[3])
        idle[rank] = end - sum(e[4] - e[3] for e in mine)
        at, gaps[rank] = 0.0, []
        for e in mine:
            if e[3] > at:
                gaps[rank].append((at, e[3]))
            at = max(at, e[4])
        gaps[rank].append((at, end))

    def task_span(e, k):
        start = e[3] + sum(costs[e[0]:k])
        return start, start + costs[k]

    def placed(k):
        where = next(e for e in trace if e[0] <= k < e[1])
        return (k, where[2]) + task_span(where, k)

    big, second = sorted(range(len(costs)), key=lambda k: -costs[k])[:2]
    own_long, longest = [], (0.0, None)
    for e in pieces.get(0, []):
        for k in range(e[0], e[1]):
            if costs[k] >= long_task:
                own_long.append(task_span(e, k))
            if costs[k] > longest[0]:
                longest = (costs[k], k)
    stall = sum(overlap(own_long, *g) for rank, gs in gaps.items() if rank != 0 for g in gs)
    return {"makespan": row["wall_time"], "last_finish": end, "idle": idle,
            "largest": placed(big), "second": placed(second), "own_longest": longest,
            "stall": stall}


def write_trace_markdown(rows, costs_of, path, cores):
    lines = ["# Where the time goes: traced runs of bench/imbalance_schedules.py --trace", "",
             "Per run: makespan; bound; idle s per rank until the last chunk finished "
             "(rank 0 first; '-' = it computed nothing); the largest task (rank, start-end); "
             "the same for the second largest; "
             "rank 0's longest own task; stall = worker idle seconds (summed over workers) "
             "that fell while rank 0 was inside an own task of 0.1 s or more, answering "
             "nobody.", ""]
    lines.append("| scenario | schedule | rep | makespan | bound | idle per rank | largest task "
                 "| 2nd largest | rank 0 longest own | stall |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        costs = costs_of.get(r["scenario"])
        if "trace" not in r or not r["trace"] or costs is None:
            continue
        d = diagnose(r, costs)
        idle = " ".join(f"{d['idle'][k]:.2f}" if k in d["idle"] else "-"
                        for k in range(r["ranks"]))
        k, rank, a, b = d["largest"]
        lk, lrank, la, lb = d["second"]
        own = (f"#{d['own_longest'][1]} {d['own_longest'][0]:.2f} s"
               if d["own_longest"][1] is not None else "-")
        lines.append(f"| {r['scenario']} | {r['schedule']} | {r['rep']} | {d['makespan']:.3f} "
                     f"| {lower_bound(r, cores):.3f} | {idle} | #{k} on rank {rank}, "
                     f"{a:.2f}-{b:.2f} | #{lk} on rank {lrank}, "
                     f"{la:.2f}-{lb:.2f} | {own} | {d['stall']:.2f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(table, names, path, sims):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scenarios = [s for s in table if table[s]]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(names)
    base = [n for n in names if not n.endswith(":pure")]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, n in enumerate(names):
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(scenarios))]
        ys = [table[s][n][0] if n in table[s] else 0 for s in scenarios]
        pure = n.endswith(":pure")
        color = colors[base.index(n.split(":")[0]) % len(colors)] if n.split(":")[0] in base \
            else colors[i % len(colors)]
        ax.bar(xs, ys, width, label=n if not pure else None, color=color,
               hatch="//" if pure else None, edgecolor="white" if pure else None, lw=0)
    for k, s in enumerate(scenarios):
        if s in sims:
            bound = statistics.median(v[2] for v in table[s].values())
            ax.plot([k - 0.45, k + 0.45], [sims[s]["in-order"] / bound] * 2, color="black", lw=1.5,
                    label="in-order ideal (simulated)" if k == 0 else None)
    if len(base) < len(names):
        ax.bar([0], [0], 0, color="lightgrey", hatch="//", label="hatched: NAME:pure")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(1.02, color="grey", lw=0.8, ls="--", label="bound + 2%")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios)
    ax.set_ylabel("makespan / lower bound")
    top = max(v[0] for s in scenarios for v in table[s].values())
    ax.set_ylim(0.9, min(top * 1.05, 3.0))
    ax.set_title("Schedules on Pareto(1.5) tasks (lower is better; bars above the axis clipped)")
    ax.legend(ncol=6, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="one repetition")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "imbalance_schedules"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--pure", action="store_true",
                   help="also run every schedule with rank 0 only managing (NAME:pure)")
    p.add_argument("--trace", action="store_true",
                   help="record every chunk; writes results/imbalance_schedules_trace.md")
    args = p.parse_args()
    reps = 1 if args.quick else args.reps
    exe = os.path.join(args.build, "bench", "imbalance_schedules")
    if not args.no_build:
        exe = build(args.build)
    names = schedule_names(exe)
    if args.pure:
        names += [n + ":pure" for n in names]
    cores = os.cpu_count() or 1
    os.makedirs(OUT, exist_ok=True)
    rows = []
    t0 = time.time()
    for s in SCENARIOS:
        if args.only and s[0] not in args.only.split(","):
            continue
        rows += run_scenario(exe, s, names, reps, args.trace)
    print(f"imbalance_schedules: {time.time() - t0:.0f} s", file=sys.stderr)
    with open(os.path.join(OUT, "imbalance_schedules.jsonl"), "w") as f:
        for r in rows:  # the traces go into the _trace.md summary, not here
            f.write(json.dumps({k: v for k, v in r.items() if k != "trace"}) + "\n")
    table = summarize(rows, names, cores)
    costs_of = {s[0]: scenario_costs(s, rows) for s in SCENARIOS}
    sims = simulated(costs_of, names)
    write_markdown(table, names, rows, os.path.join(OUT, "imbalance_schedules.md"), cores, sims)
    if args.trace:
        write_trace_markdown(rows, costs_of, os.path.join(OUT, "imbalance_schedules_trace.md"),
                             cores)
    plot(table, names, os.path.join(OUT, "imbalance_schedules.png"), sims)
    print(open(os.path.join(OUT, "imbalance_schedules.md")).read())


if __name__ == "__main__":
    main()
