"""Baseline for k-nearest-neighbour queries: scipy's cKDTree.

    python3 knn_ckdtree.py FILE.h5:/data FILE.h5:/queries -k 5 --workers 2 --output idx.npy

Times the tree build plus query(queries, k, workers). Prints one JSON line:
seconds; with --output saves the (m, k) int64 indices as .npy.
"""
import argparse
import json
import time

import h5py
import numpy as np
from scipy.spatial import cKDTree


def load(spec):
    path, dataset = spec.split(":", 1)
    with h5py.File(path, "r") as f:
        return np.asarray(f[dataset], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data")
    ap.add_argument("queries")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--output")
    args = ap.parse_args()
    data, queries = load(args.data), load(args.queries)
    start = time.perf_counter()
    distance, index = cKDTree(data).query(queries, k=args.k, workers=args.workers)
    seconds = time.perf_counter() - start
    if args.output:
        np.save(args.output, np.asarray(index, dtype=np.int64))
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
