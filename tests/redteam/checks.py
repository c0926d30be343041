"""The red-team runner's verdicts (run_redteam.py): the failures a case can
end in, and the checks of a finished run: its exit code, its one error
line, the files it left, its data against an uninterrupted run's.

Imported by run_redteam.py, which puts tests/apps (harness.py) on sys.path.
"""
import os

import h5py
import harness


class CaseFailure(AssertionError):
    pass


class SetupFailure(CaseFailure):
    """The scenario could not be set up (e.g. a run ended before it could be
    signalled): a FAIL even for known-failing cases, so it is not masked."""


class Skip(Exception):
    pass


def setup_check(cond, message):
    if not cond:
        raise SetupFailure(message)


def check(cond, message):
    if not cond:
        raise CaseFailure(message)


# --- checks ---------------------------------------------------------------------

def datasets(path):
    """Every dataset outside /trace, as arrays."""
    result = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("trace"):
                result[name] = obj[()]
        f.visititems(visit)
    return result


def same_data(path, reference):
    got = datasets(path)
    check(sorted(got) == sorted(reference),
          f"datasets differ: {sorted(got)} vs {sorted(reference)}")
    for name, ref in reference.items():
        check(harness.same_bits(got[name], ref), f"/{name} differs from an uninterrupted run")


def check_exit(rc, want, err):
    if want == "nonzero":
        ok = rc != 0
    elif isinstance(want, tuple):
        ok = rc in want
    else:
        ok = rc == want
    check(ok, f"exit code {rc}, wanted {want}\nstderr: {err[-2000:]}")


def error_line(app, err, needles, forbid=()):
    lines = [line for line in harness.noise_free_lines(err)
             if not line.startswith(app + ": progress ")]
    check(len(lines) == 1, f"expected one error line, got {len(lines)}: {lines[:6]!r}")
    line = lines[0]
    check(line.startswith(app + ": "), f"error line does not name {app}: {line!r}")
    for needle in needles:
        check(needle.lower() in line.lower(), f"error line lacks {needle!r}: {line!r}")
    for bad in forbid:
        check(bad not in line, f"error line has raw text {bad!r}: {line!r}")
    return line


def check_files(d, out, left, before):
    """Only the expected files are in d: out/partial/ckpt per `left`, plus
    what was there before."""
    names = {"out": os.path.basename(out), "partial": os.path.basename(out) + ".partial",
             "ckpt": os.path.basename(out) + ".ckpt", "lock": os.path.basename(out) + ".lock",
             "legs": os.path.basename(out) + ".legs", "status": os.path.basename(out) + ".status"}
    present = set(os.listdir(d))
    for kind, name in names.items():
        # The lock file goes with the last rank 0 that held it: after a kill
        # that leaves OUT.partial behind it may stay too (a dead run's lock
        # holds nothing; the next run takes it over).
        # So may its OUT.status, which only a live lock makes current.
        default = (None if kind in ("lock", "status") and left.get("partial", False) is None
                   else False)
        # The legs of a run wait beside its checkpoint for the leg that
        # finishes it (provenance of resumed runs).
        if kind == "legs" and left.get("ckpt", False) is not False:
            default = None
        want = left.get(kind, default)
        if want is None:
            continue
        check((name in present) == want,
              f"{name} {'missing' if want else 'left behind'} (dir: {sorted(present)})")
    stray = present - set(names.values()) - set(before)
    check(not stray, f"stray files left: {sorted(stray)}")


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()
