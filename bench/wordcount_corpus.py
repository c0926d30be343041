#!/usr/bin/python3
"""Writes a Zipf text corpus for the word_count benchmark.

    bench/wordcount_corpus.py OUT_DIR [--megabytes 400] [--files 4]
                              [--vocabulary 1000000] [--s 1.1] [--seed 1]

Words are drawn from a vocabulary of random lower/upper-case tokens with
Zipf weights 1/rank^s; lines hold 1 to 20 words. Deterministic for a seed.
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--megabytes", type=float, default=400.0)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--vocabulary", type=int, default=1_000_000)
    ap.add_argument("--s", type=float, default=1.1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", dtype=np.uint8)
    lengths = rng.integers(2, 12, size=a.vocabulary)
    vocab = [bytes(letters[rng.integers(0, len(letters), size=n)]) for n in lengths]
    weights = 1.0 / np.arange(1, a.vocabulary + 1) ** a.s
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    vocab = np.array(vocab, dtype=object)
    os.makedirs(a.out, exist_ok=True)
    per_file = int(a.megabytes * 1e6 / a.files)
    for f in range(a.files):
        path = os.path.join(a.out, f"part{f:03d}.txt")
        written = 0
        with open(path, "wb") as out:
            while written < per_file:
                n = 1_000_000
                idx = np.searchsorted(cdf, rng.random(n))
                words = vocab[idx]
                seps = np.where(rng.random(n) < 0.1, b"\n", b" ")
                block = b"".join(w + s for w, s in zip(words, seps))
                out.write(block)
                written += len(block)
        print(f"{path}: {written / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
