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
"""
import argparse
import concurrent.futures
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "apps"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import numpy as np  # noqa: E402
import h5py  # noqa: E402
from cases import CASES, TINY  # noqa: E402

SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}
DEFAULT_TIMEOUT = 90.0


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


# --- the session: shared inputs, cached results ------------------------------

class Session:
    def __init__(self, root):
        self.root = root
        self.inputs = os.path.join(root, "inputs")
        os.makedirs(self.inputs)
        self.input_h5 = os.path.join(self.inputs, "in.h5")
        rng = np.random.default_rng(5)
        with h5py.File(self.input_h5, "w") as f:
            f["x"] = rng.random((50, 2))
            f["x3"] = rng.random((5, 3))
            f["nan"] = np.array([[1.0, np.nan], [2.0, 3.0]])
            f["inf"] = np.array([[1.0, np.inf], [2.0, 3.0]])
            f["i"] = np.arange(10, dtype=np.int64).reshape(5, 2)
            f["s"] = np.array([b"a", b"b"])
            f["e"] = np.zeros((0, 2))
            f["three"] = np.zeros((2, 2, 2))
            f["one"] = np.zeros((1, 2))
            f.create_group("g")
        self.noth5 = os.path.join(self.inputs, "notes.txt")
        with open(self.noth5, "w") as f:
            f.write("this is not HDF5\n")
        big = os.path.join(self.inputs, "sparse.h5")
        with h5py.File(big, "w") as f:  # 2^40 x 2 declared, nothing allocated
            f.create_dataset("big", shape=(1 << 40, 2), dtype="f8", chunks=(1024, 2))
        self.sparse = big
        self.cut = os.path.join(self.inputs, "cut.h5")
        whole = open(self.input_h5, "rb").read()
        with open(self.cut, "wb") as f:
            f.write(whole[:len(whole) // 2])
        self.secret = os.path.join(self.inputs, "secret.h5")
        shutil.copy(self.input_h5, self.secret)
        os.chmod(self.secret, 0)
        os.chmod(root, 0o755)
        os.chmod(self.inputs, 0o755)
        self.lock = threading.Lock()
        self.results = {}
        self.mount_ok = self._probe_mount()

    def _probe_mount(self):
        d = os.path.join(self.root, "mountprobe")
        os.makedirs(d)
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok

    def reference(self, app, args, np_=1):
        """Datasets of an uninterrupted run of app args (cached)."""
        key = (app, tuple(args))
        with self.lock:
            if key in self.results:
                return self.results[key]
        d = tempfile.mkdtemp(dir=self.root, prefix="ref_")
        out = os.path.join(d, "ref.h5")
        rc, _, err = run(app, np_, list(args) + ["--output", out, "--quiet"], timeout=120)
        setup_check(rc == 0, f"reference run of {app} {args} failed ({rc}): {err[-2000:]}")
        data = datasets(out)
        with self.lock:
            self.results[key] = data
        return data

    def valid_result(self, app):
        """Path of a valid tiny result of app (cached)."""
        with self.lock:
            key = ("file", app)
            if key in self.results:
                return self.results[key]
        d = tempfile.mkdtemp(dir=self.root, prefix="valid_")
        out = os.path.join(d, "valid.h5")
        rc, _, err = run(app, 1, TINY[app] + ["--output", out, "--quiet"], timeout=120)
        setup_check(rc == 0, f"tiny run of {app} failed ({rc}): {err[-2000:]}")
        with self.lock:
            self.results[key] = out
        return out


# --- running ------------------------------------------------------------------

def run(app, np_, args, timeout=DEFAULT_TIMEOUT, cwd=None, launch="mpirun"):
    """-> (exit code, stdout, stderr); kills the tree and fails on timeout."""
    if launch == "mpirun":
        cmd = [harness.mpirun(), "-q", "-n", str(np_), harness.app_path(app)] + args
    elif launch == "direct":
        cmd = [harness.app_path(app)] + args
    elif launch == "nobody":
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               harness.app_path(app)] + args
    else:
        raise ValueError(launch)
    env = harness.mpi_env()
    if launch == "nobody":
        home = tempfile.mkdtemp(prefix="nobody_", dir=cwd)
        os.chmod(home, 0o777)
        env.update(HOME=home, TMPDIR=home)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        harness.kill_tree(proc)
        out, err = proc.communicate()
        raise CaseFailure(f"timed out after {timeout:.0f} s (killed): {' '.join(cmd)}\n"
                          f"stderr tail: {err[-1500:]}")
    finally:
        if launch == "nobody":
            shutil.rmtree(home, True)
    return proc.returncode, out, err


class Live:
    """A started run whose stderr goes to a file, so it can be watched."""

    def __init__(self, app, np_, args, logdir):
        self.app = app
        self.log = tempfile.NamedTemporaryFile("w+", dir=logdir, suffix=".err", delete=False)
        self.out = tempfile.NamedTemporaryFile("w+", dir=logdir, suffix=".out", delete=False)
        cmd = [harness.mpirun(), "-q", "-n", str(np_), harness.app_path(app)] + args
        self.proc = subprocess.Popen(cmd, env=harness.mpi_env(), stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.log,
                                     start_new_session=True)
        self.np = np_

    def stderr(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def progress(self):
        """(done, total) of the latest progress line, or None."""
        found = re.findall(r"progress (\d+)/(\d+) tasks", self.stderr())
        return (int(found[-1][0]), int(found[-1][1])) if found else None

    def ranks(self):
        """{rank: pid} of the live ranks."""
        result = {}
        for pid in harness.app_pids(self.proc, self.app):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            for item in env:
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    result[int(item.split(b"=", 1)[1])] = pid
        return result

    def wait_for(self, trigger, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupFailure(f"run ended (exit {self.proc.returncode}) before '{trigger}':"
                                  f"\n{self.stderr()[-1500:]}")
            ranks = self.ranks()
            if len(ranks) >= self.np:
                p = self.progress()
                if trigger == "ranks":
                    return ranks
                if trigger == "progress" and p and 0 < p[0] < p[1]:
                    return ranks
                if trigger == "done" and p and p[0] == p[1]:
                    return ranks
            time.sleep(0.01 if trigger != "progress" else 0.03)
        raise SetupFailure(f"'{trigger}' not reached in {timeout:.0f} s:\n{self.stderr()[-1500:]}")

    def finish(self, timeout=DEFAULT_TIMEOUT):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            harness.kill_tree(self.proc)
            raise CaseFailure(f"hung: still running {timeout:.0f} s after the fault (killed)\n"
                              f"{self.stderr()[-1500:]}")
        return self.proc.returncode, self.stderr()

    def kill(self):
        if self.proc.poll() is None:
            harness.kill_tree(self.proc)


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


# --- case kinds -------------------------------------------------------------------

class Ctx:
    def __init__(self, session, case):
        self.s = session
        self.c = case
        self.app = case["app"]
        self.np = case.get("np", 1)
        self.base = tempfile.mkdtemp(dir=session.root, prefix=case["name"].replace("/", "_") + "_")
        self.dir = os.path.join(self.base, "work")
        self.aux = os.path.join(self.base, "aux")
        os.makedirs(self.dir)
        os.makedirs(self.aux)
        self.out = os.path.join(self.dir, "out.h5")
        self.mounts = []

    def expand(self, args):
        subs = {"out": self.out, "in": self.s.input_h5, "noth5": self.s.noth5,
                "dir": self.dir, "aux": self.aux, "secret": self.s.secret,
                "sparse": self.s.sparse, "cut": self.s.cut,
                "missing": os.path.join(self.aux, "no", "such", "dir", "o.h5"),
                "ro": os.path.join(self.base, "ro")}
        result = []
        for a in args:
            for k, v in subs.items():
                a = a.replace("{" + k + "}", v)
            result.append(a)
        return result

    def args(self, args=None, extra=()):
        a = self.expand(self.c["args"] if args is None else args) + list(extra)
        if self.c.get("output", True):
            a += ["--output", self.out]
        if self.c.get("quiet", True):
            a += ["--quiet"]
        return a

    def mount(self, path, options):
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount tmpfs: {r.stderr.strip()}")
        self.mounts.append(path)

    def cleanup(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.base, True)

    def resume_ok(self, reference, np_=1, args=None):
        """A left checkpoint resumes to the uninterrupted result."""
        rc, _, err = run(self.app, np_, self.args(args, ["--resume"]))
        check(rc == 0, f"--resume after the fault exited {rc}: {err[-2000:]}")
        check_files(self.dir, self.out, {"out": True, "partial": False, "ckpt": False}, [])
        same_data(self.out, reference)


def kind_run(x):
    c = x.c
    if c.get("needs_mount"):
        if not x.s.mount_ok:
            raise Skip("tmpfs mounts not permitted")
        x.mount(os.path.join(x.base, "ro"), "ro,size=64k")
    before = []
    old = None
    for suffix, content in c.get("pre", {}).items():
        with open(x.out + suffix, "wb") as f:
            f.write(content)
    if c.get("existing"):
        shutil.copy(x.s.valid_result(x.app), x.out)
        old = file_bytes(x.out)
        before = [os.path.basename(x.out)]
    launch = c.get("launch", "mpirun")
    cwd = x.dir if launch != "nobody" else x.aux
    if launch == "nobody":
        for d in (x.base, x.dir, x.aux):
            os.chmod(d, 0o777)
    t0 = time.monotonic()
    rc, _, err = run(x.app, x.np, x.args(), timeout=c.get("timeout", DEFAULT_TIMEOUT),
                     cwd=cwd, launch=launch)
    took = time.monotonic() - t0
    check_exit(rc, c["exit"], err)
    if c.get("error") is not None:
        error_line(x.app, err, c["error"], c.get("forbid", ()))
    if "within" in c:
        check(took <= c["within"], f"took {took:.2f} s, more than {c['within']} s")
    left = dict(c.get("left", {}))
    if old is not None:
        left["out"] = True
    check_files(x.dir, x.out, left, before)
    if old is not None:
        check(file_bytes(x.out) == old, "the existing result was modified")


def send(live, target, signame, ranks):
    if target == "mpirun":
        os.kill(live.proc.pid, SIGNALS[signame])
        return
    pid = ranks[0] if target == "rank0" else ranks[max(ranks)]
    os.kill(pid, SIGNALS[signame])


def kind_signal(x):
    c = x.c
    plain = [a for a in x.expand(c["args"]) if a != "--force"]
    reference = x.s.reference(x.app, plain, 1) if c.get("resume", True) else None
    old = None
    if c.get("existing"):
        shutil.copy(x.s.valid_result(x.app), x.out)
        old = file_bytes(x.out)
    live = Live(x.app, x.np, x.args(), x.aux)
    try:
        ranks = live.wait_for(c["trigger"])
        pids = list(ranks.values())
        if c.get("delay"):
            time.sleep(c["delay"])
        send(live, c["target"], c["signal"], ranks)
        rc, err = live.finish()
    finally:
        live.kill()
    # No rank may outlive the run (orphans after mpirun's death included).
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    for p in alive:
        os.kill(p, signal.SIGKILL)
    check(not alive, f"ranks {alive} still running 15 s after mpirun ended")
    check_exit(rc, c["exit"], err)
    if old is not None:
        check(os.path.exists(x.out), "the existing result is gone after the interrupted run")
        if file_bytes(x.out) != old:
            # Acceptable only if the run completed before the signal took
            # effect (mpirun may relay SIGTERM late): then OUT is the new result.
            check(not os.path.exists(x.out + ".ckpt"),
                  "the existing result was modified, yet the run left a checkpoint")
            try:
                same_data(x.out, x.s.reference(x.app, plain, 1))
            except SetupFailure:
                raise
            except Exception as e:
                raise CaseFailure(f"the existing result was damaged: {e}")
            return
        check_files(x.dir, x.out, {"out": True, "ckpt": None,
                                   **killed_left(c)}, [])
        signal_error_line(x, err)
        if c.get("need_ckpt"):
            check(os.path.exists(x.out + ".ckpt"), "no checkpoint left after the interruption")
        return
    if (c["target"] == "mpirun" and rc != 0 and os.path.exists(x.out)
            and not os.path.exists(x.out + ".ckpt")):
        # mpirun relayed the signal only after the run had completed
        # (Open MPI 4.1 does this at times): the result must be complete.
        check_files(x.dir, x.out, {"out": True}, [])
        same_data(x.out, reference)
        return
    if rc == 0:
        check(c.get("final_ok"), "exit 0 although interrupted")
        check_files(x.dir, x.out, {"out": True}, [])
        same_data(x.out, reference)
        return
    signal_error_line(x, err)
    ckpt = os.path.exists(x.out + ".ckpt")
    if c.get("need_ckpt"):
        check(ckpt, "no checkpoint left after the interruption")
    check_files(x.dir, x.out, {"out": False, "ckpt": None,
                               **killed_left(c)}, [])
    if ckpt:
        x.resume_ok(reference)
    else:
        check_files(x.dir, x.out, {"out": False, "ckpt": False,
                                   **killed_left(c)}, [])


def killed_left(c):
    """What a signalled run may leave besides OUT and OUT.ckpt: OUT.partial
    only where rank 0 may die before it can act (partial_ok), OUT.lock where
    rank 0 is SIGKILLed (lock_ok: its lock file holds nothing and the next
    run takes it over, but nobody is left to remove it)."""
    left = {"partial": None if c.get("partial_ok") else False}
    if c.get("lock_ok"):
        left["lock"] = None
    return left


def signal_error_line(x, err):
    """The interrupted run's one line. When mpirun itself was signalled it
    may exit before relaying the ranks' last stderr lines (Open MPI 4.1), so
    there the line may be missing, but never more than one."""
    c = x.c
    if c.get("error") is None:
        return
    if c["target"] == "mpirun" and not [
            l for l in harness.noise_free_lines(err) if not l.startswith(x.app + ": progress ")]:
        return
    error_line(x.app, err, c["error"])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


FAIL_ARGS = ["--param", "a=1:40:40", "--record-length", "1", "--on-error", "stop",
             "--schedule", "dynamic", "--chunk", "1"]


def make_checkpoint(x):
    """A param_sweep checkpoint of tasks 0..38 (the last point fails once);
    returns (args, flag path)."""
    flag = os.path.join(x.aux, "fail-last-point")
    args = FAIL_ARGS + ["--exec", f"if [ {{a}} = 40 ] && [ -e {flag} ]; then exit 7; fi; "
                                  "echo {a}"]
    open(flag, "w").close()
    rc, _, err = run("param_sweep", 1, x.args(args))
    setup_check(rc == 1, f"making the checkpoint: exit {rc}, wanted 1: {err[-1500:]}")
    setup_check(os.path.exists(x.out + ".ckpt"), "making the checkpoint: none left")
    os.unlink(flag)
    return args


def kind_damaged(x):
    c = x.c
    damage = c["damage"]
    ckpt = x.out + ".ckpt"
    if damage == "fresh":
        # A checkpoint of an interrupted run stops a fresh run.
        if x.app != "param_sweep":
            t = Ctx(x.s, dict(c, app="param_sweep", args=[]))
            try:
                make_checkpoint(t)
                shutil.copy(t.out + ".ckpt", ckpt)
            finally:
                t.cleanup()
        else:
            make_checkpoint(x)
        before = file_bytes(ckpt)
        rc, _, err = run(x.app, 1, x.args(TINY[x.app]))
        check_exit(rc, c["exit"], err)
        error_line(x.app, err, c["error"])
        check(file_bytes(ckpt) == before, "the checkpoint was modified")
        check_files(x.dir, x.out, {"ckpt": True}, [])
        return
    maker = c.get("maker", "exec_fail")
    if damage in ("garbage", "foreign") or (x.app != "param_sweep" and maker == "exec_fail"):
        if damage == "foreign":
            t = Ctx(x.s, dict(c, app="param_sweep", args=[]))
            try:
                make_checkpoint(t)
                shutil.copy(t.out + ".ckpt", ckpt)
            finally:
                t.cleanup()
        else:
            with open(ckpt, "wb") as f:
                f.write(random.Random(x.c["name"]).randbytes(4096))
        args = TINY[x.app]
        before = file_bytes(ckpt)
        rc, _, err = run(x.app, 1, x.args(args, ["--resume"]))
        check_exit(rc, c["exit"], err)
        error_line(x.app, err, c["error"])
        check(file_bytes(ckpt) == before, "the damaged checkpoint was modified")
        check_files(x.dir, x.out, {"ckpt": True}, [])
        return
    if maker == "interrupt":
        args = c["args"]
        interrupt(x, args)
    else:
        args = make_checkpoint(x)
    data = bytearray(file_bytes(ckpt))
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[:int(len(data) * 0.6)]
    elif damage == "header":
        data = data[:20]
    elif damage == "flip_header":
        data[24] ^= 0x01
    with open(ckpt, "wb") as f:
        f.write(data)
    rc, _, err = run(x.app, 1, x.args(args, ["--resume"]))
    check_exit(rc, c["exit"], err)
    if rc != 0:
        if c.get("error") is not None:
            error_line(x.app, err, c["error"])
        check_files(x.dir, x.out, {"ckpt": True}, [])
        check(file_bytes(ckpt) == bytes(data), "the damaged checkpoint was modified")
        return
    check_files(x.dir, x.out, {"out": True}, [])
    ref = Ctx(x.s, dict(c, args=[]))
    try:
        rc, _, e2 = run(x.app, 1, ref.args(args))
        setup_check(rc == 0, f"reference run failed: {e2[-1500:]}")
        same_data(x.out, datasets(ref.out))
    finally:
        ref.cleanup()
    if c.get("warning"):  # after the data: a failure here means the result is right
        lines = [l for l in harness.noise_free_lines(err) if l.startswith(x.app + ":")
                 and not l.startswith(x.app + ": progress ")]
        check(len(lines) == 1, f"result correct, but expected one warning line, got {lines!r}")
        for needle in c["error"]:
            check(needle in lines[0].lower(), f"warning lacks {needle!r}: {lines[0]!r}")
        check(re.search(r"\d", lines[0]), f"warning does not count tasks: {lines[0]!r}")


def interrupt(x, args):
    """Starts the run, SIGTERMs rank 0 once a task is done; expects exit 3."""
    live = Live(x.app, x.np, x.args(args), x.aux)
    try:
        ranks = live.wait_for("progress")
        os.kill(ranks[0], signal.SIGTERM)
        rc, err = live.finish()
    finally:
        live.kill()
    setup_check(rc == 3, f"interrupting: exit {rc}, wanted 3: {err[-1500:]}")
    setup_check(os.path.exists(x.out + ".ckpt"), "interrupting: no checkpoint")


def kind_mismatch(x):
    c = x.c
    interrupt(x, c["args"])
    ckpt = x.out + ".ckpt"
    before = file_bytes(ckpt)
    rc, _, err = run(x.app, 1, x.args(c["args2"], ["--resume"]))
    check_exit(rc, c["exit"], err)
    error_line(x.app, err, c["error"])
    check(file_bytes(ckpt) == before, "the checkpoint was modified by the refused run")
    check_files(x.dir, x.out, {"ckpt": True}, [])


def kind_resume_variant(x):
    """Interrupted on np ranks, resumed on 1 with another schedule/chunk."""
    c = x.c
    reference = x.s.reference(x.app, x.expand(c["args"]), 1)
    interrupt(x, c["args"])
    rc, _, err = run(x.app, 1, x.args(c["args"] + c["variant"], ["--resume"]))
    check(rc == 0, f"--resume with {c['variant']} exited {rc}: {err[-1500:]}")
    check_files(x.dir, x.out, {"out": True}, [])
    same_data(x.out, reference)


def kind_resume_complete(x):
    shutil.copy(x.s.valid_result(x.app), x.out)
    old = file_bytes(x.out)
    rc, out, err = run(x.app, 1, x.args(TINY[x.app], ["--resume"]))
    check_exit(rc, 0, err)
    check("complete" in (out + err).lower(), f"no 'already complete' message: {err!r}")
    check(file_bytes(x.out) == old, "the complete result was modified")
    check_files(x.dir, x.out, {"out": True}, [])


def kind_force_interrupted(x):
    c = x.c
    rc, _, err = run(x.app, 1, x.args(c["old_args"]))
    setup_check(rc == 0, f"old result: exit {rc}: {err[-1500:]}")
    old = file_bytes(x.out)
    reference = x.s.reference(x.app, x.expand(c["args"]), 1)
    interrupt(x, c["args"] + ["--force"])
    check(file_bytes(x.out) == old, "the old result changed before the forced run committed")
    check_files(x.dir, x.out, {"out": True, "ckpt": True}, [])
    rc, _, err = run(x.app, 1, x.args(c["args"], ["--resume"]))
    check(rc == 0, f"--resume of the interrupted --force run exited {rc}: {err[-1500:]}")
    check_files(x.dir, x.out, {"out": True}, [])
    same_data(x.out, reference)


def kind_concurrent(x):
    c = x.c
    reference = x.s.reference(x.app, x.expand(c["args"]), 1)
    live = Live(x.app, x.np, x.args(), x.aux)
    try:
        ranks = live.wait_for("progress")
        p = live.progress()
        setup_check(live.proc.poll() is None and p and p[1] - p[0] >= 5,
                    f"the first run is (nearly) done before the second starts: {p}")
        rc2, _, err2 = run(x.app, 1, x.args(None, c["second"]))
        rc1, err1 = live.finish()
    finally:
        live.kill()
    problems = []
    if rc1 != 0:
        problems.append(f"the live run exited {rc1}: {err1[-800:]}")
    else:
        try:
            check_files(x.dir, x.out, {"out": True}, [])
            same_data(x.out, reference)
        except CaseFailure as e:
            problems.append(f"the live run's result is wrong: {e}")
    try:
        check_exit(rc2, c["exit"], err2)
        line = error_line(x.app, err2, [socket.gethostname()])
        check(str(ranks[0]) in line or str(live.proc.pid) in line,
              f"refusal does not name the live run's pid {ranks[0]}: {line!r}")
    except CaseFailure as e:
        problems.append(f"second run: {e}")
    check(not problems, "; ".join(problems))


def kind_full_disk(x):
    c = x.c
    if not x.s.mount_ok:
        raise Skip("tmpfs mounts not permitted")
    reference = x.s.reference(x.app, x.expand(c["args"]), 1)
    x.mount(x.dir, "size=400k")
    rc, _, err = run(x.app, x.np, x.args())
    check_exit(rc, c["exit"], err)
    error_line(x.app, err, c["error"], ["errno =", "buf ="])
    check_files(x.dir, x.out, {"out": False, "partial": False, "ckpt": True}, [])
    r = subprocess.run(["mount", "-o", "remount,size=64m", x.dir], capture_output=True, text=True)
    check(r.returncode == 0, f"remount: {r.stderr}")
    x.resume_ok(reference)


KINDS = {"run": kind_run, "signal": kind_signal, "damaged": kind_damaged,
         "mismatch": kind_mismatch, "resume_variant": kind_resume_variant, "resume_complete": kind_resume_complete,
         "force_interrupted": kind_force_interrupted, "concurrent": kind_concurrent,
         "full_disk": kind_full_disk}


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
