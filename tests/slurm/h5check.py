#!/usr/bin/env python3
"""Checks of app outputs for the SLURM tests (shell scripts cannot read HDF5).

  h5check.py same GOT WANT     exit 0 when every dataset outside /trace is
                               bitwise equal (same names, dtypes, shapes,
                               bytes, dataset attributes) and so is every
                               root attribute but provenance (mpmap_*); else
                               print the first difference and exit 1
  h5check.py attr FILE NAME    print a root attribute (arrays space-separated)
  h5check.py ranks FILE        print the ranks that ran chunks (/trace/rank),
                               sorted, space-separated
  h5check.py records FILE      print param_sweep's /result one grid point per
                               line as integers; exit 1 when a /status is not 0
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "apps"))
import harness  # noqa: E402  (tests/apps/harness.py)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

PROVENANCE = re.compile(r"^(mpmap_.*|history)$")


def same(got_path, want_path):
    got, want = harness.read_h5(got_path), harness.read_h5(want_path)
    results = lambda h5: sorted(k for k in h5 if not k.startswith("/trace/"))
    if results(got) != results(want):
        return f"datasets differ: {results(got)} != {results(want)}"
    if not results(want):
        return "no datasets"
    for key in results(want):
        if not harness.same_bits(got[key], want[key]):
            return f"{key} differs"
        if got.ds_attrs[key] != want.ds_attrs[key]:
            return f"attributes of {key} differ"
    keep = lambda attrs: {k: v for k, v in attrs.items() if not PROVENANCE.match(k)}
    g, w = keep(got.attrs), keep(want.attrs)
    if set(g) != set(w):
        return f"root attributes differ: {sorted(g)} != {sorted(w)}"
    for k in w:
        if not harness.same_bits(g[k], w[k]):
            return f"root attribute {k}: {g[k]!r} != {w[k]!r}"
    return None


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return " ".join(text(v) for v in value.tolist())
    return str(value)


def main(argv):
    if len(argv) == 4 and argv[1] == "same":
        problem = same(argv[2], argv[3])
        if problem:
            print(f"{argv[2]} vs {argv[3]}: {problem}")
            return 1
        return 0
    if len(argv) == 4 and argv[1] == "attr":
        with h5py.File(argv[2], "r") as f:
            print(text(f.attrs[argv[3]]))
        return 0
    if len(argv) == 3 and argv[1] == "ranks":
        with h5py.File(argv[2], "r") as f:
            print(" ".join(str(r) for r in sorted(set(f["/trace/rank"][...].tolist()))))
        return 0
    if len(argv) == 3 and argv[1] == "records":
        with h5py.File(argv[2], "r") as f:
            status = f["/status"][...]
            result = f["/result"][...]
        for row in result.reshape(-1, result.shape[-1]).astype(np.int64).tolist():
            print(" ".join(str(v) for v in row))
        return 0 if (status == 0).all() else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
