"""Baseline for the hypercube KDE width sweep: the code people write today.

multiprocessing.Pool(2).map over the widths of a function that counts, in a
plain Python loop over the samples (numpy rows, as in the widespread Parzen
window tutorial), those inside the hypercube of edge h around the point, and
returns count / (n h^d) (the tutorial divides by n h, right only for d = 1).

    python3 kde_pool.py --samples 10000 --dim 2 --widths 1.0:1.2:100 --processes 2

Prints one JSON line: seconds (map only), widths, densities.
"""
import argparse
import json
import multiprocessing
import time

import numpy as np

# Filled before the pool forks, read by the workers.
SAMPLES = None
POINT = None


def window_function(x_vec, unit_len=1):
    """1 when every coordinate of x_vec lies within unit_len/2 of 0."""
    for row in x_vec:
        if np.abs(row) > (unit_len / 2):
            return 0
    return 1


def parzen_density(h):
    """count / (n h^d), counting in a plain Python loop over the samples, one
    numpy row at a time (the widespread tutorial way)."""
    k_n = 0
    for row in SAMPLES:
        x_i = (POINT - row) / h
        if window_function(x_i):
            k_n += 1
    return k_n / (len(SAMPLES) * h ** len(POINT))


def widths_from(text):
    a, b, k = text.split(":")
    a, b, k = float(a), float(b), int(k)
    return [a if i == 0 else b if i == k - 1 else a + i * (b - a) / (k - 1) for i in range(k)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--widths", default="1.0:1.2:100")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()
    global SAMPLES, POINT
    SAMPLES = np.random.default_rng(args.seed).standard_normal((args.samples, args.dim))
    POINT = np.zeros(args.dim)
    widths = widths_from(args.widths)
    start = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        densities = pool.map(parzen_density, widths)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "widths": widths, "densities": densities}))


if __name__ == "__main__":
    main()
