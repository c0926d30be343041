"""What the end-to-end tests of kde_sweep (tests/apps/test_kde_sweep*.py)
share: the app's name, its exit codes, and a run of it on N ranks under
mpirun (tests/apps/harness.py)."""
import harness

APP = "kde_sweep"
EXIT_USAGE = harness.EXIT_USAGE
EXIT_INTERRUPTED = harness.EXIT_INTERRUPTED


def run(nprocs, args, **kwargs):
    return harness.run_app(APP, nprocs, args, **kwargs)
