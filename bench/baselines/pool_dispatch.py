"""Baseline for dispatch overhead: multiprocessing.Pool.map of a no-op over
single tasks (chunksize=1).

    python3 pool_dispatch.py --tasks 50000 --processes 2

Prints one JSON line: seconds (map only) and tasks_per_s.
"""
import argparse
import json
import multiprocessing
import time


def noop(task):
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=50000)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    with multiprocessing.Pool(args.processes) as pool:
        pool.map(noop, range(100), chunksize=1)  # workers up and warm
        start = time.perf_counter()
        pool.map(noop, range(args.tasks), chunksize=1)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "tasks_per_s": args.tasks / seconds}))


if __name__ == "__main__":
    main()
