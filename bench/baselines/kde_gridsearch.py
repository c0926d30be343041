"""Baseline for the Gaussian cross-validated bandwidth search: scikit-learn.

GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": widths},
cv=KFold(K) (no shuffle: contiguous folds, like kde_sweep --cv K), n_jobs=2).
KernelDensity.score is the summed log density of the held-out rows, so
mean_test_score is the mean over folds of that sum, kde_sweep's /cv_score.

    python3 kde_gridsearch.py DATA.h5:/samples WIDTHS.json --folds 5 --jobs 2

WIDTHS.json is a JSON list of the exact widths. Prints one JSON line:
seconds (fit only) and mean_test_score.
"""
import argparse
import json
import time

import h5py
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", help="FILE.h5:/DATASET, n x d float64")
    ap.add_argument("widths", help="JSON file with the list of bandwidths")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    path, dataset = args.data.split(":", 1)
    with h5py.File(path, "r") as f:
        x = np.asarray(f[dataset], dtype=np.float64)
    with open(args.widths) as f:
        widths = [float(w) for w in json.load(f)]
    start = time.perf_counter()
    search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": widths},
                          cv=KFold(args.folds), n_jobs=args.jobs)
    search.fit(x)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds,
                      "mean_test_score": [float(s) for s in search.cv_results_["mean_test_score"]],
                      "best_bandwidth": float(search.best_params_["bandwidth"])}))


if __name__ == "__main__":
    main()
