"""Baseline for Monte Carlo pi: a Pool of numpy-vectorised chunks.

Each chunk draws rng.random((chunk, 2)) from its own seeded generator and
counts the points inside the quarter circle.

    python3 mc_pi_numpy.py --samples 2e8 --chunk 1e6 --processes 2

Prints one JSON line: seconds (map only), samples, samples_per_s, pi.
"""
import argparse
import json
import multiprocessing
import time

import numpy as np


def hits_in_chunk(job):
    seed, index, size = job
    x = np.random.default_rng([seed, index]).random((size, 2))
    return int(np.count_nonzero((x * x).sum(axis=1) <= 1.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=float, default=2e8)
    ap.add_argument("--chunk", type=float, default=1e6)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    samples, chunk = int(args.samples), int(args.chunk)
    jobs = [(args.seed, i, min(chunk, samples - s)) for i, s in enumerate(range(0, samples, chunk))]
    start = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        hits = sum(pool.map(hits_in_chunk, jobs))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "samples": samples, "samples_per_s": samples / seconds,
                      "pi": 4.0 * hits / samples}))


if __name__ == "__main__":
    main()
