"""Shared helpers of the mpmap plot tools: argument parsing and PNG output."""
import argparse
import sys

import matplotlib

matplotlib.use("Agg")  # files only: works on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402


def parser(description, default_png):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("input", help="an mpmap output file (.h5)")
    p.add_argument("-o", "--output", default=default_png, help=f"PNG to write (default {default_png})")
    p.add_argument("--dpi", type=int, default=120, help="resolution (default 120)")
    return p


def fail(message):
    print(f"{sys.argv[0].split('/')[-1]}: {message}", file=sys.stderr)
    sys.exit(2)


def open_h5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        fail(f"cannot open '{path}': {e}")


def save(fig, args):
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.output}")
