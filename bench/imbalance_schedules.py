#!/usr/bin/python3
"""Every schedule side by side on heavy-tailed (Pareto 1.5) tasks.

    bench/imbalance_schedules.py [--reps R] [--quick] [--build DIR] [--no-build]

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


def run_scenario(exe, scenario, names, reps):
    name, ranks, mode, tasks, total, hog_start, hog_length = scenario
    cmd = ["mpirun", "-n", str(ranks), "--bind-to", "none", exe, mode, str(tasks), str(total),
           str(SEED), str(ALPHA), str(hog_start), str(hog_length), str(reps), *names]
    env = mpi_env()
    print(f"imbalance_schedules: {name}: {shlex.join(cmd[:4])} ...", file=sys.stderr)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        r["scenario"] = name
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


def write_markdown(table, names, rows, path, cores):
    loads = [r["load1"] for r in rows]
    lines = ["# Schedules on heavy-tailed tasks (Pareto 1.5)", "",
             "Makespan / lower bound, median over repetitions (1.00 = the bound; 1.02 = 2% "
             "above it). Bound: max(sum of task costs / P, largest task); sleeping tasks count "
             "the time actually slept; for spinning tasks with the hog, the cores' capacity the "
             "hog leaves (fair sharing) is taken out. Written by bench/imbalance_schedules.py.",
             "", f"Machine: {cores} cores; 1-minute load average during the runs "
             f"{min(loads):.1f}-{max(loads):.1f} (other jobs shared the machine).", ""]
    lines.append("| scenario | bound (s) | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for scenario, per in table.items():
        if not per:
            continue
        bound = statistics.median(v[2] for v in per.values())
        cells = []
        best = min(v[0] for v in per.values())
        for n in names:
            if n not in per:
                cells.append("")
                continue
            text = f"{per[n][0]:.3f}"
            cells.append(f"**{text}**" if per[n][0] == best else text)
        lines.append(f"| {scenario} | {bound:.2f} | " + " | ".join(cells) + " |")
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
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(table, names, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scenarios = [s for s in table if table[s]]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(scenarios))]
        ys = [table[s][n][0] if n in table[s] else 0 for s in scenarios]
        ax.bar(xs, ys, width, label=n)
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
    args = p.parse_args()
    reps = 1 if args.quick else args.reps
    exe = os.path.join(args.build, "bench", "imbalance_schedules")
    if not args.no_build:
        exe = build(args.build)
    names = schedule_names(exe)
    cores = os.cpu_count() or 1
    os.makedirs(OUT, exist_ok=True)
    rows = []
    t0 = time.time()
    for s in SCENARIOS:
        if args.only and s[0] not in args.only.split(","):
            continue
        rows += run_scenario(exe, s, names, reps)
    print(f"imbalance_schedules: {time.time() - t0:.0f} s", file=sys.stderr)
    with open(os.path.join(OUT, "imbalance_schedules.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    table = summarize(rows, names, cores)
    write_markdown(table, names, rows, os.path.join(OUT, "imbalance_schedules.md"), cores)
    plot(table, names, os.path.join(OUT, "imbalance_schedules.png"))
    print(open(os.path.join(OUT, "imbalance_schedules.md")).read())


if __name__ == "__main__":
    main()
