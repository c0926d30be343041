#!/usr/bin/python3
"""word_count (mpmap keyed reduction) against MR-MPI's wordfreq on one corpus.

    bench/wordcount_bench.py --word-count build/release/apps/word_count
                             [--megabytes 400] [--reps 3] [--ranks 1,2]
                             [--corpus DIR] [--out results.md]

Generates the Zipf corpus once (bench/wordcount_corpus.py), builds
bench/mrmpi_wordfreq.cpp against Debian's libmrmpi-dev (apt-get install
libmrmpi-dev) when it is installed, then alternates the programs rep by rep
(the machine may be shared: alternation keeps drift out of the ratios) and
reports medians of the whole-process wall time, throughput (corpus MB / s),
and the largest resident set of any rank (/usr/bin/time %M on every rank).
The counts are checked: the same total and distinct words, and once the
same (count, word) list in the same order.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def run(cmd):
    """Runs cmd under mpirun with /usr/bin/time on every rank:
    (wall s, max RSS MB of a rank, CPU s of all ranks, stdout)."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    rss = [int(m) for m in re.findall(r"rss_kb (\d+)", p.stderr)]
    cpu = sum(float(u) + float(s) for u, s in re.findall(r"cpu_s ([\d.]+) ([\d.]+)", p.stderr))
    return wall, max(rss) / 1024.0, cpu, p.stdout


def build_mrmpi(outdir):
    if not os.path.exists("/usr/include/mrmpi/mapreduce.h"):
        print("MR-MPI not installed (apt-get install libmrmpi-dev): its rows are skipped")
        return None
    exe = os.path.join(outdir, "mrmpi_wordfreq")
    subprocess.run(["mpicxx", "-std=c++17", "-O2", "-DOMPI_SKIP_MPICXX=1",
                    os.path.join(HERE, "mrmpi_wordfreq.cpp"), "-lMapReduceMPI", "-o", exe],
                   check=True)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--word-count", required=True)
    ap.add_argument("--megabytes", type=float, default=400.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None, help="also write the medians and the check as JSON")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="wordcount_bench_")
    corpus = a.corpus or os.path.join(work, "corpus")
    if not os.path.isdir(corpus) or not os.listdir(corpus):
        subprocess.run([sys.executable, os.path.join(HERE, "wordcount_corpus.py"), corpus,
                        "--megabytes", str(a.megabytes)], check=True)
    files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
    mbytes = sum(os.path.getsize(f) for f in files) / 1e6
    mrmpi = build_mrmpi(work)
    timer = ["/usr/bin/time", "-f", "rss_kb %M cpu_s %U %S"]
    out_h5 = os.path.join(work, "wc.h5")
    programs = []
    for n in [int(x) for x in a.ranks.split(",")]:
        programs.append((f"mpmap word_count -n {n}", ["mpirun", "-n", str(n)] + timer +
                         [a.word_count, "--input", corpus, "--output", out_h5, "--force",
                          "--quiet"]))
        if mrmpi:
            programs.append((f"MR-MPI wordfreq -n {n}", ["mpirun", "-n", str(n)] + timer +
                             [mrmpi] + files))
            programs.append((f"MR-MPI wordfreq + compress -n {n}",
                             ["mpirun", "-n", str(n)] + timer + [mrmpi, "--compress"] + files))
    results = {name: [] for name, _ in programs}
    for rep in range(a.reps):
        for name, cmd in programs:
            wall, rss, cpu, _ = run(cmd)
            results[name].append((wall, rss, cpu))
            print(f"rep {rep}: {name}: {wall:.2f} s, CPU {cpu:.2f} s, max RSS of a rank "
                  f"{rss:.0f} MB", flush=True)

    # The counts agree: word_count's file against MR-MPI's dump.
    check = "not checked (no MR-MPI)"
    if mrmpi:
        import h5py
        dump = os.path.join(work, "mrmpi.txt")
        run(["mpirun", "-n", "2"] + timer + [mrmpi, "--dump", dump] + files)
        with h5py.File(out_h5, "r") as f:
            mine = [f"{c} {w.decode()}" for c, w in zip(f["count"][()], f["word"][()])]
            total, distinct = int(f.attrs["total"]), int(f.attrs["distinct_words"])
        with open(dump) as f:
            theirs = f.read().splitlines()
        check = (f"identical ({distinct} distinct words, {total} words)" if mine == theirs
                 else f"DIFFERENT ({len(mine)} vs {len(theirs)} rows)")

    lines = [f"# word_count vs MR-MPI wordfreq: {mbytes:.0f} MB Zipf corpus, "
             f"{len(files)} files, medians of {a.reps}",
             "", "CPU s is user + system time summed over the ranks: on a shared machine it",
             "says more than the wall time.", "",
             "| program | wall s | MB/s | CPU s (all ranks) | MB per CPU s | max RSS of a rank (MB) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, _ in programs:
        wall = statistics.median(w for w, _, _ in results[name])
        rss = statistics.median(r for _, r, _ in results[name])
        cpu = statistics.median(c for _, _, c in results[name])
        lines.append(f"| {name} | {wall:.2f} | {mbytes / wall:.1f} | {cpu:.2f} | "
                     f"{mbytes / cpu:.1f} | {rss:.0f} |")
    lines += ["", f"Counts: {check}.", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json:
        import json
        medians = {name: {"wall": statistics.median(w for w, _, _ in results[name]),
                          "rss_mb": statistics.median(r for _, r, _ in results[name]),
                          "cpu": statistics.median(c for _, _, c in results[name])}
                   for name, _ in programs}
        with open(a.json, "w") as f:
            json.dump({"megabytes": mbytes, "programs": medians, "check": check,
                       "identical": check.startswith("identical")}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
