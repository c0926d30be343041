"""Running the apps for the red-team runner (run_redteam.py): the session's
shared inputs and cached results, a run to its end, a run watched while it
goes (to signal it mid-run), and each case's own directories.

Imported by run_redteam.py, which puts tests/apps (harness.py) on sys.path.
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import h5py
import harness
import numpy as np

from cases import TINY
from checks import (CaseFailure, SetupFailure, Skip, check, check_files, datasets, same_data,
                    setup_check)

DEFAULT_TIMEOUT = 90.0


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


# --- a case's directories and arguments ---------------------------------------

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


