"""The kinds of red-team case (the "kind" field of tests/redteam/cases.py):
what the runner does for each, and what it checks. KINDS maps a kind's name
to the function that runs a case of it, raising checks.CaseFailure when the
app misbehaves, checks.SetupFailure when the scenario cannot be set up and
checks.Skip when the machine lacks what it needs.

Imported by run_redteam.py, which puts tests/apps (harness.py) on sys.path.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import harness

from cases import TINY
from checks import (CaseFailure, SetupFailure, Skip, check, check_exit, check_files, datasets,
                    error_line, file_bytes, same_data, setup_check)
from session import DEFAULT_TIMEOUT, Ctx, Live, run

SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}


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


