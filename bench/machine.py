"""What else the machine is doing while the bench runs (Linux /proc), and the CPU hog.

LoadSampler counts, twice a second in a thread of the harness, the runnable
tasks of the machine (/proc/stat procs_running) and those of the bench's own
process tree (the harness and everything it started, the hog excepted); the
difference is the other work that competes with the bench for the cores.
"""
import os
import subprocess
import sys
import threading
import time

from verdict import others_runnable

INTERVAL = 0.5  # seconds between samples: ~2 ms of CPU each, <1% of a core


def load1():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def procs_running():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running "):
                return int(line.split()[1])
    raise OSError("no procs_running in /proc/stat")


def _processes():
    """pid -> parent pid of every process."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:  # gone since listdir
            continue
        # The command name (field 2) may hold spaces: split after its ')'.
        parents[int(name)] = int(stat[stat.rfind(")") + 2:].split()[1])
    return parents


def _tree(root, parents, exclude):
    """root and its descendants, without the trees rooted at the pids in exclude."""
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in exclude or pid in out:
            continue
        out.add(pid)
        todo += children.get(pid, [])
    return out


def _running_tasks(pids):
    """Runnable threads (state R) of the given processes."""
    n = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            n += stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R"
    return n


def sample_others(exclude=()):
    """One sample: (runnable tasks not the bench's own, the bench's own); None off Linux."""
    try:
        total = procs_running()
        own = _running_tasks(_tree(os.getpid(), _processes(), set(exclude)))
    except OSError:
        return None
    # The sampling thread is itself runnable while it reads, and its task is
    # the harness's own, so it is counted in both: nothing more to subtract.
    return others_runnable(total, own, sampler=0), own


class LoadSampler:
    """Samples in a thread between start() and stop(); stop() returns the summary."""

    def __init__(self, exclude=()):
        self.exclude = set(exclude)
        self.others, self.own = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while True:
            got = sample_others(self.exclude)
            if got is not None:
                self.others.append(got[0])
                self.own.append(got[1])
            if self._stop.wait(INTERVAL):
                return

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return summary(self.others, self.own)


def summary(others, own):
    if not others:
        return {"others_mean": None, "others_max": None, "own_mean": None, "samples": 0}
    return {"others_mean": sum(others) / len(others), "others_max": max(others),
            "own_mean": sum(own) / len(own), "samples": len(others)}


def others_now(exclude=(), seconds=1.0):
    """Mean runnable tasks not the bench's own over a short window (None off Linux)."""
    sampler = LoadSampler(exclude).start()
    time.sleep(seconds)
    return sampler.stop()["others_mean"]


def wait_until_quiet(limit, exclude=(), timeout=20.0):
    """Waits (at most timeout seconds) until other work is at or below limit; returns
    (seconds waited, last mean of other runnable tasks)."""
    start = time.monotonic()
    while True:
        others = others_now(exclude)
        waited = time.monotonic() - start
        if others is None or others <= limit or waited >= timeout:
            return waited, others


def start_hog():
    """One busy process at nice 0 (whatever the harness's own niceness): the other work of
    `run.sh --hog`. The caller stops it with stop_hog."""
    def nice0():
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except OSError:  # not allowed to raise priority: keep the inherited niceness
            pass
    # Busy in user space; it looks up its parent now and then so that it ends
    # with a harness that was killed before it could stop it.
    loop = ("import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n"
            "    for _ in range(1000000):\n        pass\n")
    return subprocess.Popen([sys.executable, "-c", loop, str(os.getpid())], preexec_fn=nice0,
                            stdin=subprocess.DEVNULL)


def stop_hog(hog):
    if hog is not None and hog.poll() is None:
        hog.kill()
        hog.wait()
