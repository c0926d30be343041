#!/usr/bin/python3
"""Runs the red-team table (tests/redteam/cases.py) against the built apps.

    MPMAP_APPS_DIR=build/redteam/apps tests/redteam/run_redteam.py [-j N] [-k SUBSTR]...

Apps from $MPMAP_APPS_DIR (or --apps-dir), mpirun from $MPMAP_MPIEXEC, as in
tests/apps/harness.py. Prints one line per case (PASS, FAIL, XFAIL = known
failing and still failing, UNEXPECTED PASS = marked known_failing but passes
now: un-mark it, SKIP = needs what this machine lacks), then
"N passed, N failed, N known-failing, N unexpected passes, N skipped".
Exits 1 when a case FAILs or UNEXPECTEDly PASSes.

Mount cases (read-only and full tmpfs) need root with CAP_SYS_ADMIN and are
skipped otherwise.

The table is cases.py; what each kind of case does is kinds.py, with
session.py (running the apps) and checks.py (the verdicts on a run).
"""
import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "apps"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from cases import CASES, TINY  # noqa: E402
from checks import CaseFailure, SetupFailure, Skip  # noqa: E402
from kinds import KINDS  # noqa: E402
from session import Ctx, Session  # noqa: E402


def run_case(session, case):
    """-> (status, seconds, detail); status PASS FAIL XFAIL XPASS SKIP."""
    t0 = time.monotonic()
    x = Ctx(session, case)
    detail = ""
    try:
        KINDS[case.get("kind", "run")](x)
        ok = True
    except Skip as e:
        return "SKIP", time.monotonic() - t0, str(e)
    except SetupFailure as e:
        return "FAIL", time.monotonic() - t0, "setup: " + str(e)
    except CaseFailure as e:
        ok, detail = False, str(e)
    except Exception:  # a bug in the runner or the environment: a failure
        ok, detail = False, traceback.format_exc()
    finally:
        x.cleanup()
    known = case.get("known_failing")
    if ok:
        status = "XPASS" if known else "PASS"
    else:
        status = "XFAIL" if known else "FAIL"
    return status, time.monotonic() - t0, detail


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--apps-dir")
    p.add_argument("-j", type=int, default=4, help="cases at once (default 4)")
    p.add_argument("-k", action="append", default=[], help="only cases whose name has this")
    p.add_argument("-v", action="store_true", help="print why known-failing cases fail")
    opts = p.parse_args()
    if opts.apps_dir:
        harness._apps_dir_override = opts.apps_dir
    for app in TINY:
        if not os.access(harness.app_path(app), os.X_OK):
            sys.exit(f"{harness.app_path(app)} is not built (set MPMAP_APPS_DIR)")
    names = [c["name"] for c in CASES]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"duplicate case names: {sorted(dup)}")
    cases = [c for c in CASES if not opts.k or any(k in c["name"] for k in opts.k)]
    root = tempfile.mkdtemp(prefix="mpmap_redteam_")
    start = time.monotonic()
    counts = {"PASS": 0, "FAIL": 0, "XFAIL": 0, "XPASS": 0, "SKIP": 0}
    try:
        session = Session(root)
        # Time-bounded cases run alone at the end, so load does not skew them.
        parallel = [c for c in cases if "within" not in c]
        serial = [c for c in cases if "within" in c]
        print_lock = threading.Lock()

        def report(case, result):
            status, took, detail = result
            counts[status] += 1
            label = {"XFAIL": "XFAIL (known)", "XPASS": "UNEXPECTED PASS"}.get(status, status)
            with print_lock:
                extra = f"  [{case['known_failing']}]" if status in ("XFAIL", "XPASS") else ""
                print(f"{label:16s} {case['name']} ({took:.1f} s){extra}", flush=True)
                if status == "FAIL" or (status == "XFAIL" and opts.v) or status == "SKIP":
                    for line in detail.strip().splitlines()[:12]:
                        print(f"    {line}", flush=True)
                if status == "XPASS":
                    print("    passes now: remove its known_failing mark", flush=True)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.j)) as pool:
            futures = {pool.submit(run_case, session, c): c for c in parallel}
            for f in concurrent.futures.as_completed(futures):
                report(futures[f], f.result())
        for c in serial:
            report(c, run_case(session, c))
    finally:
        shutil.rmtree(root, True)
    took = time.monotonic() - start
    print(f"\n{len(cases)} cases in {took:.0f} s: {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['XFAIL']} known-failing, {counts['XPASS']} unexpected passes, "
          f"{counts['SKIP']} skipped")
    print(f"{counts['PASS']} passed, {counts['FAIL'] + counts['XPASS']} failed")
    sys.exit(1 if counts["FAIL"] or counts["XPASS"] else 0)


if __name__ == "__main__":
    main()
