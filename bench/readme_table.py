#!/usr/bin/env python3
"""Writes the performance table of README.md from a bench run's results.json.

    bench/readme_table.py [RESULTS.json] [--update README.md]

Without --update it prints the table. With it, it replaces the lines between
the README's `<!-- bench-table -->` and `<!-- /bench-table -->` markers, so the
README always shows one run's figures, verdicts and noise as the bench wrote
them, never numbers copied by hand.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from table import readme_table  # noqa: E402

BEGIN, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=os.path.join(here, "results", "results.json"))
    ap.add_argument("--update", metavar="README")
    a = ap.parse_args()
    with open(a.results) as f:
        res = json.load(f)
    meta = res["meta"]
    head = (f"Run of {meta['date']}, {'--quick' if meta['quick'] else 'full'}, "
            f"load average {meta['load_start'][0]:.2f} before"
            + (", with a CPU hog beside it" if meta.get("hog") else "") + ":")
    table = head + "\n\n" + readme_table(res["rows"])
    if not a.update:
        sys.stdout.write(table)
        return 0
    with open(a.update) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit(f"readme_table: {a.update} has no {BEGIN} ... {END} block")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    with open(a.update + ".tmp", "w") as f:
        f.write(before + BEGIN + "\n" + table + END + after)
    os.replace(a.update + ".tmp", a.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
