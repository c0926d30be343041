"""The red-team table: bad input and faults for every app, with the DESIRED
behaviour (README "When things go wrong"). run_redteam.py executes it.

Every case is a dict. Common fields:

  name          unique, "app/what"
  app           kde_sweep | mc_pi | knn_query | param_sweep
  kind          what the runner does (default "run"; see kinds.py):
                run, signal, damaged, concurrent, full_disk, mismatch,
                force_interrupted, resume_complete
  np            ranks (default 1)
  args          the app's arguments; "--output {out}" (and "--quiet" unless
                quiet=False) are appended unless output=False.
                Placeholders: {out} the output path, {in} the shared input
                file (datasets below), {noth5} a text file, {dir} the case's
                directory, {aux} a scratch directory outside it,
                {missing} a path under a directory that does not exist
  exit          expected exit code: an int, a tuple of allowed ints, or
                "nonzero"
  error         needles: stderr (Open MPI's banners and chatter aside, see
                harness.noise_free_lines) must be exactly one "APP: ..." line
                containing each of them; None skips the check
  forbid        substrings the error line must not contain (raw library text)
  left          which files may be in the output directory afterwards:
                {"out": bool, "partial": bool, "ckpt": bool}, None = either;
                default: nothing. Any other new file is a failure too.
  existing      pre-create a valid result at {out} and require its bytes to
                be unchanged afterwards (with left["out"] implied)
  within        seconds the app may take (run without mpirun, so mpirun's
                own exit delay is not counted)
  launch        mpirun (default) | direct (no mpirun: singleton) |
                nobody (direct, as uid 65534 via setpriv: root ignores modes)
  timeout       seconds before the run is killed (whole tree) and failed
  known_failing short reason: the case is expected to fail today; the runner
                reports XFAIL, and UNEXPECTED PASS when it starts passing
"""

# Shared input file {in}: datasets written by the runner.
#   /x      50 x 2 float64        /x3    5 x 3 float64
#   /nan    2 x 2 with a NaN      /inf   2 x 2 with +inf
#   /i      5 x 2 int64           /s     2 strings
#   /e      0 x 2 float64         /three 2 x 2 x 2
#   /g      a group               /one   1 x 2 float64

NO_FILES = {"out": False, "partial": False, "ckpt": False}
KEEP_CKPT = {"out": False, "partial": False, "ckpt": True}

# Slow but nearly CPU-free workload: 40 points of 0.1 s each.
SLOW_EXEC = ["--param", "a=1:40:40", "--exec", "sleep 0.1; echo {a}", "--record-length", "1"]
# For signals sent to mpirun, which relays them to the ranks only one second
# later: workloads that outlast the relay by seconds, not by a fraction.
SLOW_EXEC_RELAY = ["--param", "a=1:60:60", "--exec", "sleep 0.1; echo {a}", "--record-length",
                   "1"]
# CPU workload of a few seconds on one core.
SLOW_PI = ["--samples", "2e9", "--tasks", "300"]
SLOW_PI_RELAY = ["--samples", "2e10", "--tasks", "300"]
# kNN queries that take seconds too (a few ms each in 14-D), so a signal sent
# at the first progress line always finds the run going: 20 000 queries of an
# 8-D problem took 0.07 s on a quiet machine, and the run ended first.
SLOW_KNN = ["--points", "100000", "--queries-count", "30000", "--dim", "14", "-k", "16",
            "--schedule", "dynamic", "--chunk", "50"]
PROGRESS = ["--progress-interval", "0.05"]

CASES = []


def case(**fields):
    CASES.append(fields)


def bad(app, name, args, *needles, forbid=(), **extra):
    """Bad input: exit 2, one line naming the problem, nothing written."""
    case(name=f"{app}/{name}", app=app, args=list(args), exit=2, error=list(needles),
         forbid=list(forbid), left=dict(NO_FILES), **extra)


# --- flags every app shares ------------------------------------------------

TINY = {
    "kde_sweep": ["--samples", "200", "--widths", "0.1:1:4"],
    "mc_pi": ["--samples", "1e5", "--tasks", "10"],
    "knn_query": ["--points", "200", "--queries-count", "20", "--dim", "2"],
    "param_sweep": ["--model", "linear", "--param", "p1=1:2:3", "--param", "p2=0,1",
                    "--length", "5"],
}

for app in TINY:
    bad(app, "unknown-flag", TINY[app] + ["--bogus"], "--bogus")
    bad(app, "schedule-unknown", TINY[app] + ["--schedule", "roundrobin"], "--schedule",
        "roundrobin")
# Existing results: refused without --force, untouched even with --force when
# the rest of the command line is bad.
for app in TINY:
    bad(app, "existing-output-no-force", TINY[app], "--output", "exists", existing=True)
    bad(app, "existing-output-force-bad-flag", TINY[app] + ["--force", "--chunk", "0"],
        "--chunk", existing=True)
    bad(app, "force-with-resume", TINY[app] + ["--force", "--resume"], "--force", "--resume",
        existing=True)

bad("kde_sweep", "missing-value-at-end", TINY["kde_sweep"] + ["--chunk"], "--chunk",
    output=False, launch="direct")
bad("mc_pi", "chunk-negative", TINY["mc_pi"] + ["--chunk", "-3"], "--chunk", "-3")
bad("knn_query", "on-error-unknown", TINY["knn_query"] + ["--on-error", "maybe"],
    "--on-error", "maybe")
bad("param_sweep", "progress-interval-nan", TINY["param_sweep"] +
    ["--progress-interval", "nan"], "--progress-interval")

# --- kde_sweep --------------------------------------------------------------
bad("kde_sweep", "widths-zero-count", ["--widths", "1:0:0"], "--widths", "1:0:0")
bad("kde_sweep", "widths-not-numbers", ["--widths", "a:b:c"], "--widths")
bad("kde_sweep", "widths-zero-width", ["--widths", "0:1:3"], "--widths")
bad("kde_sweep", "widths-inf", ["--widths", "0.1:inf:3"], "--widths")
bad("kde_sweep", "cv-one-fold", ["--samples", "50", "--cv", "1"], "--cv")
bad("kde_sweep", "cv-more-folds-than-samples", ["--samples", "50", "--cv", "100"], "--cv",
    "50")
bad("kde_sweep", "kernel-unknown", ["--kernel", "epanechnikov"], "--kernel")
bad("kde_sweep", "point-not-number", ["--point", "1,x"], "--point")
bad("kde_sweep", "point-wrong-dimension", ["--point", "1,2,3"], "--point", "2")
bad("kde_sweep", "samples-fraction", ["--samples", "1.5"], "--samples")
bad("kde_sweep", "input-nan", ["--input", "{in}:/nan", "--widths", "0.1:1:3"], "--input",
    "non-finite")
bad("kde_sweep", "input-integer", ["--input", "{in}:/i"], "--input", "integer")
bad("kde_sweep", "input-strings", ["--input", "{in}:/s"], "--input", "string")
bad("kde_sweep", "input-empty", ["--input", "{in}:/e"], "--input", "empty")
bad("kde_sweep", "input-3d", ["--input", "{in}:/three"], "--input", "3-D")
bad("kde_sweep", "input-group", ["--input", "{in}:/g"], "--input", "not a dataset")
bad("kde_sweep", "input-missing-dataset", ["--input", "{in}:/nope"], "--input", "/nope")
bad("kde_sweep", "input-not-hdf5", ["--input", "{noth5}:/x"], "--input", "notes.txt",
    forbid=["errno =", "H5F"])
bad("kde_sweep", "input-no-dataset-part", ["--input", "{in}"], "--input")
bad("kde_sweep", "input-under-missing-dir", ["--input", "{missing}:/x"], "--input",
    "No such file")
bad("kde_sweep", "input-is-directory", ["--input", "{aux}:/x"], "--input")
bad("kde_sweep", "input-unreadable", ["--input", "{secret}:/x"], "--input",
    "Permission denied", launch="nobody")
bad("kde_sweep", "widths-huge-count", ["--widths", "0.1:1:1000000000"], "--widths",
    within=1.5, launch="direct", timeout=8)

# --- mc_pi ------------------------------------------------------------------
bad("mc_pi", "samples-zero", ["--samples", "0"], "--samples", "'0'")
bad("mc_pi", "samples-not-number", ["--samples", "abc"], "--samples", "abc")
bad("mc_pi", "samples-missing-value", ["--samples"], "--samples", output=False)
bad("mc_pi", "tasks-more-than-samples", ["--samples", "10", "--tasks", "100"], "--tasks")
bad("mc_pi", "tasks-negative", ["--tasks", "-1"], "--tasks", "-1")
bad("mc_pi", "tasks-out-of-range", ["--tasks", "1e19"], "--tasks", "1e19")
bad("mc_pi", "seed-negative", ["--seed", "-1"], "--seed")
bad("mc_pi", "tasks-huge", ["--samples", "1e18", "--tasks", "1e18"], "--tasks",
    within=1.5, launch="direct", timeout=8)

# --- knn_query --------------------------------------------------------------
bad("knn_query", "k-zero", ["-k", "0"], "-k")
bad("knn_query", "k-missing-value", ["-k"], "-k", output=False)
bad("knn_query", "k-more-than-points", ["--data", "{in}:/x", "--queries-count", "5",
                                        "-k", "51"], "-k", "50")
bad("knn_query", "leaf-size-zero", ["--leaf-size", "0"], "--leaf-size")
bad("knn_query", "queries-count-negative", ["--queries-count", "-5"], "--queries-count")
bad("knn_query", "points-huge", ["--points", "1000000000000", "--queries-count", "10"],
    "--points", within=1.5, launch="direct")
bad("knn_query", "queries-nan", ["--data", "{in}:/x", "--queries", "{in}:/nan"],
    "--queries", "non-finite")
bad("knn_query", "queries-wrong-columns", ["--data", "{in}:/x", "--queries", "{in}:/x3"],
    "--queries", "columns")
bad("knn_query", "data-empty", ["--data", "{in}:/e", "--queries-count", "5"], "--data",
    "empty")
bad("knn_query", "data-not-hdf5", ["--data", "{noth5}:/x"], "--data", "notes.txt",
    forbid=["errno =", "H5F"])

# --- param_sweep ------------------------------------------------------------
bad("param_sweep", "no-model-no-exec", ["--param", "a=1:2:3"], "--model", "--exec")
bad("param_sweep", "model-and-exec", ["--model", "linear", "--exec", "echo 1",
                                      "--param", "p1=1:2:2", "--param", "p2=1"], "--exec")
bad("param_sweep", "param-no-values", ["--model", "linear", "--param", "p1",
                                       "--param", "p2=1"], "--param", "'p1'")
bad("param_sweep", "param-zero-count", ["--model", "linear", "--param", "p1=2:1:0",
                                        "--param", "p2=1"], "--param")
bad("param_sweep", "param-duplicate", ["--model", "linear", "--param", "p1=1:2:2",
                                       "--param", "p1=1", "--param", "p2=1"], "duplicate")
bad("param_sweep", "param-nan-value", ["--model", "linear", "--param", "p1=1,nan",
                                       "--param", "p2=1"], "--param", "nan")
bad("param_sweep", "model-unknown", ["--model", "nosuch", "--param", "p1=1"], "--model",
    "nosuch")
bad("param_sweep", "dt-zero", ["--model", "lorenz", "--param", "rho=1:2:2", "--dt", "0"],
    "--dt")
bad("param_sweep", "timeout-negative", ["--exec", "echo {a}", "--param", "a=1:2:2",
                                        "--timeout", "-1"], "--timeout")
bad("param_sweep", "length-zero", ["--model", "linear", "--param", "p1=1:2:2",
                                   "--param", "p2=1", "--length", "0"], "--length")
bad("param_sweep", "exec-unknown-placeholder", ["--exec", "echo {b}", "--param", "a=1:2:2"],
    "--exec", "{b}")
bad("param_sweep", "param-huge-count", ["--model", "lorenz", "--param",
                                        "rho=1:2:1099511627776"], "--param",
    within=1.5, launch="direct")
bad("param_sweep", "grid-huge-product", ["--model", "linear", "--param", "p1=1:2:100000",
                                         "--param", "p2=1:2:100000"], "--param",
    within=1.5, launch="direct", timeout=8)

# --- output paths -----------------------------------------------------------
bad("mc_pi", "output-under-missing-dir", TINY["mc_pi"] + ["--output", "{missing}"],
    "--output", output=False)
bad("kde_sweep", "output-is-directory", TINY["kde_sweep"] + ["--output", "{aux}"],
    "--output", output=False)
bad("knn_query", "output-read-only-fs", TINY["knn_query"] + ["--output", "{ro}/o.h5"],
    "--output", "Read-only", output=False, needs_mount=True)
bad("param_sweep", "output-in-proc", TINY["param_sweep"] + ["--output", "/proc/redteam.h5"],
    "/proc/redteam.h5", forbid=["errno =", "o_flags"], output=False)

# --- signals ----------------------------------------------------------------
# trigger: ranks (as soon as every rank runs: setup), progress (some tasks
# done), done (every task done: the final write); delay: seconds to wait
# after the trigger. target: rank0, rank_last, mpirun. After the run: no OUT,
# no OUT.partial (unless partial_ok: SIGKILL of rank 0 or mpirun cannot
# clean up); a checkpoint, if left, must resume (--resume, -n 1) to a result
# identical to an uninterrupted run's (resume=False skips that). Every rank
# must be gone 15 s after mpirun ends. final_ok: exit 0 with the complete
# result is fine too (the signal came after the commit). existing: an old
# result is in place (the run has --force) and must survive byte for byte.
# When mpirun itself is signalled the app's line may be lost (mpirun exits
# before relaying it), so it is optional there.


def sig(app, name, args, trigger, target, signame, exit, needles=None, np=2, **extra):
    case(name=f"{app}/{name}", app=app, kind="signal", np=np, args=list(args) + PROGRESS,
         quiet=False, trigger=trigger, target=target, signal=signame, exit=exit,
         error=needles, **extra)


sig("param_sweep", "sigterm-rank-last-run", SLOW_EXEC, "progress", "rank_last", "TERM", 3,
    ["interrupted", "/40", "--resume"], need_ckpt=True)
sig("param_sweep", "sigint-rank0-run", SLOW_EXEC, "progress", "rank0", "INT", 3,
    ["interrupted"], need_ckpt=True)
# mpirun follows its SIGTERM to the ranks with SIGKILL after a short grace
# time, so under load rank 0 may not get to remove OUT.partial: partial_ok.
sig("param_sweep", "sigterm-mpirun-run", SLOW_EXEC_RELAY, "progress", "mpirun", "TERM", 1,
    ["interrupted"], need_ckpt=True, partial_ok=True)
sig("param_sweep", "sigterm-rank0-setup", SLOW_EXEC, "ranks", "rank0", "TERM", "nonzero")
sig("param_sweep", "sigterm-rank-last-final", SLOW_EXEC, "done", "rank_last", "TERM",
    (0, 3), final_ok=True)
# A rank killed outright: mpirun SIGTERMs the others, then SIGKILLs them while
# rank 0 still waits for the dead rank's chunk. Rank 0 gives OUT.partial up
# at the SIGTERM (the run can no longer commit); the lock file stays.
sig("param_sweep", "sigkill-rank-last", SLOW_EXEC, "progress", "rank_last", "KILL",
    "nonzero", need_ckpt=True, lock_ok=True)
sig("param_sweep", "sigkill-rank0", SLOW_EXEC, "progress", "rank0", "KILL", "nonzero",
    partial_ok=True)
sig("param_sweep", "sigkill-mpirun", SLOW_EXEC, "progress", "mpirun", "KILL", "nonzero",
    partial_ok=True)
sig("mc_pi", "sigterm-rank-last-run", SLOW_PI, "progress", "rank_last", "TERM", 3,
    ["interrupted", "/300"], need_ckpt=True)
sig("mc_pi", "sigterm-rank0-setup", SLOW_PI, "ranks", "rank0", "TERM", "nonzero")
sig("kde_sweep", "sigterm-rank0-run",
    ["--kernel", "gaussian", "--samples", "2000000", "--widths", "0.05:1:64", "--point", "0,0",
     "--point", "1,1", "--point", "2,2", "--point", "3,3", "--schedule", "dynamic"],
    "progress", "rank0", "TERM", 3, ["interrupted", "/64"], need_ckpt=True)
sig("knn_query", "sigint-rank-last-run",
    SLOW_KNN,
    "progress", "rank_last", "INT", 3, ["interrupted"], need_ckpt=True)

# --- damaged checkpoints -----------------------------------------------------
# The checkpoint comes from param_sweep --exec whose last point fails once
# (--on-error stop: exit 1, tasks 0..38 checkpointed); the failure is then
# cleared and the run resumed. damage: flip (one byte in the middle), truncate
# (to 60%), garbage (random bytes), header (first 20 bytes only), foreign (a
# checkpoint of another app's run), none.


def damaged(app, name, damage, exit, needles, **extra):
    case(name=f"{app}/{name}", app=app, kind="damaged", damage=damage, exit=exit,
         error=needles, **extra)


damaged("param_sweep", "ckpt-none-resume-after-task-error", "none", 0, None)
damaged("param_sweep", "ckpt-flipped-byte", "flip", 0, ["checkpoint", "recomput"],
        warning=True)
damaged("param_sweep", "ckpt-truncated", "truncate", 0, ["checkpoint", "recomput"],
        warning=True)
damaged("param_sweep", "ckpt-garbage", "garbage", 2, ["checkpoint", "out.h5.ckpt"])
damaged("param_sweep", "ckpt-header-only", "header", 2, ["checkpoint"])
damaged("mc_pi", "ckpt-from-param-sweep", "foreign", 2, ["checkpoint", "different run"])
damaged("knn_query", "ckpt-garbage", "garbage", 2, ["checkpoint", "out.h5.ckpt"])
damaged("kde_sweep", "ckpt-without-resume", "fresh", 2, ["--resume", "--force"])
damaged("param_sweep", "ckpt-header-flipped", "flip_header", 2, ["checkpoint", "out.h5.ckpt"])
# maker=interrupt: the checkpoint of a run SIGTERMed (rank 0) mid-way.
damaged("mc_pi", "ckpt-flipped-byte", "flip", 0, ["checkpoint", "recomput"], warning=True,
        maker="interrupt", np=2, args=SLOW_PI + PROGRESS, quiet=False)
damaged("knn_query", "ckpt-truncated", "truncate", 0, ["checkpoint", "recomput"],
        warning=True, maker="interrupt", np=2, quiet=False,
        args=SLOW_KNN + PROGRESS)

# --- resume mismatch, complete output, --force over an old result -----------
case(name="mc_pi/resume-different-seed", app="mc_pi", kind="mismatch", np=1,
     args=SLOW_PI + PROGRESS, args2=SLOW_PI + PROGRESS + ["--seed", "2"], quiet=False,
     exit=2, error=["checkpoint", "different run", "--seed"])
LONG_KDE = ["--kernel", "gaussian", "--samples", "1000000", "--widths", "0.05:1:64",
            "--schedule", "dynamic",
            "--point", "0,0", "--point", "0.25,0.25", "--point", "0.5,0.5", "--point", "1,1",
            "--point", "1.5,1.5", "--point", "2,2"]
case(name="kde_sweep/resume-different-last-flag", app="kde_sweep", kind="mismatch", np=1,
     args=LONG_KDE + PROGRESS, args2=LONG_KDE[:-1] + ["2,3"] + PROGRESS,
     quiet=False, exit=2, error=["checkpoint", "different run", "2,3"])
for app in ("mc_pi", "knn_query"):
    case(name=f"{app}/resume-complete-output", app=app, kind="resume_complete",
         args=TINY[app], exit=0, error=None)
case(name="param_sweep/resume-after-interrupted-force", app="param_sweep",
     kind="force_interrupted", np=2, args=SLOW_EXEC + PROGRESS, quiet=False,
     old_args=TINY["param_sweep"])

# --- a second run on the same output while one is live ----------------------
for extra in ([], ["--force"], ["--resume"]):
    case(name="param_sweep/concurrent" + (extra[0] if extra else "-plain"), app="param_sweep",
         kind="concurrent", np=1, args=SLOW_EXEC + PROGRESS, quiet=False, second=extra,
         exit=2, error=["in use by another run", "pid"])
case(name="mc_pi/concurrent--force", app="mc_pi", kind="concurrent", np=1,
     args=SLOW_PI + PROGRESS, quiet=False, second=["--force"], exit=2, error=["in use by another run", "pid"])

# --- full disk (tmpfs of 400 kB): exit 1, 'no space left on device', checkpoint kept
for app, args in (
        ("mc_pi", ["--samples", "1e6", "--tasks", "20000"]),
        ("kde_sweep", ["--samples", "100", "--widths", "0.1:1:30000"]),
        ("knn_query", ["--points", "1000", "--queries-count", "30000", "--dim", "2"]),
        ("param_sweep", ["--model", "linear", "--param", "p1=1:2:200", "--param", "p2=0:1:20",
                         "--length", "100"])):
    case(name=f"{app}/full-disk", app=app, kind="full_disk", args=args, exit=1,
         error=["no space left on device"], needs_mount=True)

# --- more inputs and task failures -----------------------------------------
bad("kde_sweep", "input-empty-dataset-name", ["--input", "{in}:"], "--input")
bad("knn_query", "data-truncated-hdf5", ["--data", "{cut}:/x"], "--data", "cut.h5",
    forbid=["errno =", "H5F"])
bad("kde_sweep", "input-huge-sparse-dataset", ["--input", "{sparse}:/big", "--widths",
                                               "0.1:1:3"], "--input", within=3.0,
    launch="direct", timeout=20)
case(name="param_sweep/exec-timeout-stops", app="param_sweep",
     args=["--param", "a=1:3:3", "--exec", "sleep 5; echo {a}", "--record-length", "1",
           "--timeout", "0.3", "--on-error", "stop", "--schedule", "dynamic"],
     exit=1, error=["point 0", "failed", "timed out"],
     left={"out": False, "partial": False, "ckpt": None})
case(name="param_sweep/exec-command-missing-stops", app="param_sweep",
     args=["--param", "a=1:3:3", "--exec", "/nonexistent/redteam-cmd {a}",
           "--record-length", "1", "--on-error", "stop"],
     exit=1, error=["point 0", "failed", "127"],
     left={"out": False, "partial": False, "ckpt": None})
# A stale OUT.partial of a crashed run (no checkpoint) does not block a new run.
case(name="mc_pi/stale-partial-replaced", app="mc_pi", args=TINY["mc_pi"], exit=0,
     error=None, pre={".partial": b"stale bytes of a crashed run"}, left={"out": True})

# --- faults while an old result exists (it must stay intact) -----------------
sig("param_sweep", "sigkill-rank0-over-existing", SLOW_EXEC + ["--force"], "progress",
    "rank0", "KILL", "nonzero", partial_ok=True, existing=True, resume=False)
sig("mc_pi", "sigterm-mpirun-over-existing", SLOW_PI_RELAY + ["--force"], "progress", "mpirun",
    "TERM", 1, ["interrupted"], existing=True, resume=False, need_ckpt=True, partial_ok=True)
sig("knn_query", "sigterm-rank0-setup-big-data",
    ["--points", "800000", "--queries-count", "200", "--dim", "8"], "ranks", "rank0",
    "TERM", "nonzero", np=1, delay=0.2)
sig("mc_pi", "sigterm-rank0-final", SLOW_PI, "done", "rank0", "TERM", (0, 3), final_ok=True)

# --- resume with another rank count, schedule and chunk: same result ---------
case(name="param_sweep/resume-other-schedule", app="param_sweep", kind="resume_variant",
     np=2, args=SLOW_EXEC + PROGRESS, quiet=False,
     variant=["--schedule", "static", "--chunk", "3"], exit=0, error=None)
case(name="knn_query/resume-other-schedule", app="knn_query", kind="resume_variant", np=2,
     args=["--points", "50000", "--queries-count", "60000", "--dim", "10", "-k", "8"] +
     PROGRESS, quiet=False, variant=["--schedule", "static", "--chunk", "7"], exit=0,
     error=None)
