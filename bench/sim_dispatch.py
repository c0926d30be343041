#!/usr/bin/env python3
"""Discrete-event simulator of mpmap's dispatch protocol (src/core/manager.c,
src/core/worker.c, src/schedule/*.c), pure Python.

What it models, port of the C code:

* Rank 0 (manager) runs a loop: serve every message that has arrived (each
  costs `c_msg`, plus `c_send` when it answers with a chunk), then run one
  slice of its own chunk (slice length adapted like own_slice: a slice is
  at least one task, so with 10 ms tasks rank 0 answers only every 10 ms),
  else take its own next chunk, else back off (spin/yield, then sleeps of
  2 us .. 1 ms). Endgame: a request made ahead is deferred while the pool
  holds <= P x C tasks, and answered when that worker's chunk COMPLETEs.
  Design (a) `pure`: rank 0 does not compute (manager_computes = 0).
* Workers: one chunk at the start; poll between slices (slice length
  adapted to 20 ms); ask for the next chunk ahead when the work they hold
  ends within max(1.5 task times, 2 x observed answer time, 2 ms), holding
  at most `prefetch` chunks; piggy-back a request on COMPLETE; back off
  like rank 0 when idle.
* Messages take `L` seconds; each task takes its cost plus `wake` (sleep
  overshoot / wake-up delay measured on this machine; 0 for a cluster).
* Schedules: guided, dynamic, factoring (FAC2), static, with min chunk C.
* Design (b) `--nodes-of R`: hierarchical. Rank 0 is a pure top manager
  that hands node-sized chunks (a guided split over nodes, at least R x C
  tasks) to one sub-manager per node of R ranks; the sub-manager runs the
  same manager loop as today's rank 0 (computes in slices, or pure with
  `sub_pure`) on its node's pool and asks the top for more when its pool
  holds less than `refill` x (its ranks) tasks; node-internal messages take
  `L_node`. With `fwd_batch` > 0 the sub-manager also passes every piece of
  results on to the top, in one message per `fwd_batch` seconds, and the
  top pays `c_msg` per message plus `c_entry` per piece (ordered delivery,
  trace, checkpoint), as the library's node dispatch does
  (src/core/submanager.c); design "b:as-built".

Wall time = simulated makespan + `T0` (start-up/teardown collectives).
Efficiency = max(sum of task costs / P, largest task) / wall time.

    sim_dispatch.py --ranks 128 --kind 10ms --schedule guided [--pure] ...
    python3 -c 'import sim_dispatch; ...'   (see simulate())
"""
import argparse
import heapq
import itertools
import json
import math
import sys

PARETO_ALPHA = 1.5
PARETO_MEAN = 0.010
MANAGER_SLICE_MAX = 0.002
MANAGER_SLICE_MIN = 0.00002
MANAGER_SLICE_START = 0.0001
WORKER_SLICE = 0.02


def splitmix(x):
    m = (1 << 64) - 1
    x = (x + 0x9e3779b97f4a7c15) & m
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & m
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & m
    return x ^ (x >> 31)


def task_costs(kind, n):
    """Per-task seconds, as bench/scale.c makes them."""
    if kind == "pareto":
        xm = PARETO_MEAN * (PARETO_ALPHA - 1) / PARETO_ALPHA
        out = []
        for t in range(n):
            bits = splitmix(0x5ca1ab1e ^ t) >> 11
            u = 1.0 - bits * 2.0 ** -53
            out.append(xm * u ** (-1 / PARETO_ALPHA))
        return out
    if kind == "empty":
        return None
    return {"1ms": 0.001, "10ms": 0.010, "100ms": 0.100}[kind]


# ---- schedules (src/schedule/*.c) -------------------------------------------

class Scheduler:
    def __init__(self, kind, total, workers, min_chunk=1, base=0):
        self.kind, self.total, self.P, self.C = kind, total, max(workers, 1), max(min_chunk, 1)
        self.base = base        # first task of the virtual range (hierarchy)
        self.next = 0
        self.batch_chunk, self.batch_left = 0, 0
        if kind == "static":
            q, r = divmod(total, self.P)
            self.blocks = []
            b = 0
            for w in range(self.P):
                e = b + q + (1 if w < r else 0)
                self.blocks.append([b, e])
                b = e

    def left(self):
        if self.kind == "static":
            return sum(e - b for b, e in self.blocks)
        return self.total - self.next

    def take(self, size):
        rem = self.total - self.next
        if rem <= 0:
            return None
        size = min(size, rem)
        b = self.next
        self.next += size
        return (self.base + b, self.base + b + size)

    def next_chunk(self, slot):
        k = self.kind
        if k == "static":
            if slot >= self.P:
                return None
            b, e = self.blocks[slot]
            if b >= e:
                return None
            self.blocks[slot][0] = e
            return (self.base + b, self.base + e)
        rem = self.total - self.next
        if rem <= 0:
            return None
        if k == "dynamic":
            return self.take(self.C)
        if k == "guided":
            return self.take(max(self.C, -(-rem // self.P)))
        if k == "factoring":
            if self.batch_left == 0:
                self.batch_chunk = max(self.C, -(-rem // (2 * self.P)))
                self.batch_left = self.P
            self.batch_left -= 1
            return self.take(self.batch_chunk)
        raise ValueError(k)

    def endgame(self):
        if self.kind == "static":
            return False
        return self.total - self.next <= self.P * self.C


def next_slice_length(length, elapsed, target):
    if elapsed < target / 4:
        return length * 2
    if elapsed > target * 2 and length > 1:
        return length // 2
    return length


# ---- the simulation ------------------------------------------------------------

class Params:
    def __init__(self, **kw):
        self.L = 20e-6          # one-way message latency between ranks (s)
        self.L_node = None      # within a node (hierarchy); default L
        self.c_msg = 1.5e-6     # manager CPU per message received
        self.c_send = 1.5e-6    # manager CPU per chunk sent
        self.c_worker = 2e-6    # worker CPU per poll that receives / per send
        self.wake = 0.0         # added to every task (sleep overshoot)
        self.T0 = 0.0           # fixed start/stop cost of a run
        self.spin_poll = 1e-6   # time per back-off round while spinning/yielding
        self.sleep_slack = 60e-6  # nanosleep overshoot of a back-off sleep
        self.prefetch = 2
        self.batch = 50         # messages one MPI progress call pulls in (0 = manager_poll drains all)
        self.poll_max = 0.0     # with batch 0: a poll stops after this much serving (0 = never);
                                # the fixed manager_poll uses MANAGER_POLL_MAX = 50 ms
        self.c_miss = 0.0       # with batch 0: manager CPU for the two probes that end a poll
        self.poll_per_worker = 0  # with batch 0: a poll stops after this many messages per
                                  # worker (+1) (0 = never); manager_poll uses 4
        self.refill = 2.0       # hierarchy: sub-manager asks the top when its pool < refill x ranks x C
        self.fwd_batch = 0.0    # hierarchy: results go on to the top every fwd_batch s (0 = never)
        self.c_entry = 0.0      # top CPU per forwarded piece of results
        self.__dict__.update(kw)
        if self.L_node is None:
            self.L_node = self.L

    def backoff_offsets(self):
        """Poll times (from the start of idling) of mpmap__backoff_pause."""
        t = 4050 * self.spin_poll
        offs = [t]
        for step in range(1, 10):
            t += 1e-6 * (1 << step) + self.sleep_slack
            offs.append(t)
        return offs, 1e-3 + self.sleep_slack


class Rank:
    __slots__ = ("id", "inbox", "queue", "requests", "stopped", "spt", "asked_at", "reply_lat",
                 "slice_len", "cur", "pos", "cur_left", "state", "idle_since", "wake_at",
                 "done", "piece_start", "mgr")

    def __init__(self, rid):
        self.id = rid
        self.inbox = []          # heap of (arrival, seq, msg)
        self.queue = []
        self.requests = 1
        self.stopped = False
        self.spt = 0.0
        self.asked_at = 0.0
        self.reply_lat = 0.0
        self.slice_len = 1
        self.cur = None
        self.pos = 0
        self.cur_left = 0
        self.state = "idle"
        self.idle_since = 0.0
        self.wake_at = None
        self.done = False
        self.piece_start = 0.0
        self.mgr = None          # the manager this rank talks to


class Manager:
    """A manager loop (today's rank 0, or a node sub-manager)."""

    def __init__(self, sim, rid, workers, sched, computes, parent=None, lat=None):
        self.sim, self.id, self.workers, self.sched = sim, rid, workers, sched
        self.computes = computes
        self.parent = parent         # top manager (hierarchy) or None
        self.lat = lat if lat is not None else sim.p.L
        self.inbox = []
        self.pulled = []             # matched-able: pulled in by an earlier progress call
        self.stopped = {w.id: False for w in workers}
        self.open = {w.id: 0 for w in workers}
        self.deferred = {w.id: False for w in workers}
        self.slot = {w.id: i + (1 if computes else 0) for i, w in enumerate(workers)}
        self.own = None              # [pos, end] of rank 0's own chunk
        self.exhausted = False
        self.slice_len = 1
        self.slice_target = MANAGER_SLICE_START
        self.state = "start"
        self.idle_since = 0.0
        self.wake_at = None
        self.finished_at = None
        self.busy = 0.0
        # hierarchy: pending pools from the top and the refill request
        self.pools = []              # list of Scheduler over received node chunks
        self.top_stopped = parent is None
        self.top_requests = 0
        self.node_ranks = len(workers) + (1 if computes else 0)
        self.fwd_pending = 0         # pieces of results not yet passed on to the top

    # -- the pool (one scheduler, or node chunks from the top) --
    def next_chunk(self, slot):
        if self.parent is None:
            return self.sched.next_chunk(slot)
        while self.pools:
            c = self.pools[0].next_chunk(slot)
            if c is not None:
                return c
            self.pools.pop(0)
        return None

    def pool_left(self):
        if self.parent is None:
            return self.sched.left()
        return sum(p.left() for p in self.pools)

    def endgame(self):
        if self.parent is None:
            return self.sched.endgame()
        # endgame of the node: the top has nothing more and the pool is small
        return self.top_stopped and self.pool_left() <= self.node_ranks * self.sim.C

    def pool_dry(self):
        """Nothing to hand out now (hierarchy: maybe more from the top)."""
        return self.pool_left() == 0

    def maybe_refill(self, t):
        if self.parent is None or self.top_stopped or self.top_requests > 0:
            return t
        if self.pool_left() <= self.sim.p.refill * self.node_ranks * max(1, self.sim.C):
            self.top_requests += 1
            self.sim.send(self.parent, t + self.sim.p.L, ("REQ", self.id, 0, None, 0.0, 0.0))
        return t


class Sim:
    def __init__(self, P, kind, schedule, C=1, params=None, pure=False, target=1.0,
                 nodes_of=0, sub_pure=False, ntasks=None):
        self.p = params or Params()
        self.P, self.C = P, C
        mean = {"1ms": 0.001, "10ms": 0.010, "100ms": 0.100, "pareto": PARETO_MEAN,
                "empty": 0.0}[kind]
        self.N = ntasks if ntasks is not None else max(1, round(P * target / mean))
        costs = task_costs(kind, self.N)
        if isinstance(costs, list):
            self.prefix = [0.0] + list(itertools.accumulate(costs))
            self.work, self.largest = self.prefix[-1], max(costs)
            self.const = None
        else:
            self.const = costs or 0.0
            self.prefix = None
            self.work, self.largest = self.const * self.N, self.const
        self.events = []
        self.seq = itertools.count()
        self.ranks = [Rank(i) for i in range(P)]
        self.chunks = 0
        self.schedule = schedule
        self.offs, self.period = self.p.backoff_offsets()
        if nodes_of and nodes_of < P:
            self._build_hierarchy(nodes_of, schedule, sub_pure)
        else:
            computes = not pure or P == 1
            sched = Scheduler(schedule, self.N, P if computes else P - 1, C)
            self.top = Manager(self, 0, self.ranks[1:], sched, computes)
            self.managers = {0: self.top}
            for r in self.ranks[1:]:
                r.mgr = self.top

    def _build_hierarchy(self, R, schedule, sub_pure):
        P = self.P
        heads = list(range(0, P, R))
        # Top manager: rank 0, pure; it also heads node 0 through a sub-manager
        # object with id 0 that shares the rank (its node's manager loop).
        nnodes = len(heads)
        top_sched = Scheduler("guided", self.N, nnodes, R * self.C)
        self.top = Manager(self, -1, [], top_sched, False)
        self.top.subs = {}
        self.managers = {}
        for h in heads:
            members = self.ranks[h + 1:min(h + R, P)]
            computes = not sub_pure
            m = Manager(self, h, members, None, computes, parent=self.top, lat=self.p.L_node)
            m.top_stopped = False
            self.managers[h] = m
            self.top.subs[h] = m
            for r in members:
                r.mgr = m
        self.hier = True

    # -- costs --
    def cost(self, b, e):
        if self.prefix is not None:
            return self.prefix[e] - self.prefix[b] + self.p.wake * (e - b)
        return (self.const + self.p.wake) * (e - b) if self.const else 0.0

    # -- events --
    def at(self, t, fn, *args):
        heapq.heappush(self.events, (t, next(self.seq), fn, args))

    def send(self, dest, arrival, msg):
        """dest: a Rank (worker side) or a Manager."""
        heapq.heappush(dest.inbox, (arrival, next(self.seq), msg))
        if dest.state == "idle":
            w = self.poll_time(dest.idle_since, arrival)
            if isinstance(dest, Rank) and self.p.batch > 0:
                w = self.poll_time(dest.idle_since, w + 1e-9)
            if dest.wake_at is None or w < dest.wake_at:
                dest.wake_at = w
                self.at(w, self.wake, dest)

    def poll_time(self, since, arrival):
        # `since` may lie ahead of the arrival: a manager that was busy until
        # then handles the message at its next poll, not before it was free
        arrival = max(arrival, since)
        d = arrival - since
        if d <= self.offs[0]:
            return arrival
        for o in self.offs[1:]:
            if since + o >= arrival:
                return since + o
        last = self.offs[-1]
        k = math.ceil((d - last) / self.period)
        return since + last + k * self.period

    def wake(self, t, obj):
        if obj.wake_at is None or t < obj.wake_at - 1e-15 or obj.state != "idle":
            return
        obj.wake_at = None
        if isinstance(obj, Manager):
            self.manager_loop(obj, t)
        else:
            self.worker_loop(obj, t)

    # -- workers ------------------------------------------------------------------
    def deliver(self, w, t):
        got = False
        while w.inbox and w.inbox[0][0] <= t:
            _, _, msg = heapq.heappop(w.inbox)
            got = True
            w.requests -= 1
            if w.asked_at > 0:
                lat = t - w.asked_at
                w.reply_lat = 0.7 * w.reply_lat + 0.3 * lat if w.reply_lat > 0 else lat
                w.asked_at = 0.0
            if msg is None:
                w.stopped = True
            else:
                w.queue.append(msg)
        return got

    def wants(self, w, computing):
        if w.requests > 0 or w.stopped:
            return False
        held = len(w.queue) + (1 if computing else 0)
        if held == 0:
            return True
        if held >= self.p.prefetch or w.spt <= 0:
            return False
        left = (w.cur_left if computing else 0) + sum(e - b for b, e in w.queue)
        thr = max(1.5 * w.spt, 2 * w.reply_lat, 0.002)
        return w.spt * left <= thr

    def request(self, w, t, ahead, complete=None):
        w.requests += 1
        w.asked_at = t
        m = w.mgr
        self.send(m, t + m.lat, ("REQ", w.id, 1 if ahead else 0, complete, 0.0, 0.0))

    def worker_loop(self, w, t):
        w.state = "run"
        if self.deliver(w, t):
            t += self.p.c_worker
        if w.queue:
            b, e = w.queue.pop(0)
            w.cur, w.pos, w.cur_left, w.piece_start = (b, e), b, e - b, t
            self.worker_slice(w, t)
            return
        if w.requests == 0 and w.stopped:
            w.done = True
            w.state = "done"
            return
        if self.wants(w, False):
            self.request(w, t, False)
        w.state = "idle"
        w.idle_since = t
        if w.inbox:
            self.send_wake(w)

    def send_wake(self, obj):
        arr = obj.inbox[0][0]
        wt = self.poll_time(obj.idle_since, arr)
        if obj.wake_at is None or wt < obj.wake_at:
            obj.wake_at = wt
            self.at(wt, self.wake, obj)

    def worker_slice(self, w, t):
        if self.deliver(w, t):
            t += self.p.c_worker
        if self.wants(w, True):
            self.request(w, t, True)
        b, e = w.cur
        n = min(w.slice_len, e - w.pos)
        d = self.cost(w.pos, w.pos + n)
        self.at(t + d, self.worker_slice_end, w, n, d)

    def worker_slice_end(self, t, w, n, d):
        if n > 0:
            per = d / n
            w.spt = 0.7 * w.spt + 0.3 * per if w.spt > 0 else per
        w.slice_len = next_slice_length(w.slice_len, d, WORKER_SLICE)
        w.pos += n
        w.cur_left -= n
        b, e = w.cur
        if w.pos < e:
            self.worker_slice(w, t)
            return
        # COMPLETE, with a request when one is due
        m = w.mgr
        req = self.wants(w, False)
        if req:
            w.requests += 1
            w.asked_at = t
        flags = ("CMP", w.id, (1 if w.queue else 0) if req else -1, w.cur, w.piece_start, t)
        self.send(m, t + m.lat, flags)
        w.cur = None
        self.worker_loop(w, t + self.p.c_worker)

    # -- managers -----------------------------------------------------------------
    def assign(self, m, wid, t):
        """m answers worker wid at time t (already includes the cost)."""
        rng = m.next_chunk(m.slot[wid])
        if rng is None and m.parent is not None and not m.top_stopped:
            # nothing here yet: wait for the top (answer when the refill comes)
            m.deferred[wid] = "dry"
            return
        if rng is None:
            m.stopped[wid] = True
        else:
            m.open[wid] += 1
            self.chunks += 1
        self.send(self.ranks[wid], t + m.lat, rng)
        m.maybe_refill(t)

    def handle(self, m, msg, t):
        kind, src, ahead, rng, start, finish = msg
        if m is self.top and getattr(self, "hier", False):
            return self.top_handle(msg, t)
        if kind == "TOP":   # a node chunk (or STOP) from the top manager
            m.top_requests -= 1
            if rng is None:
                m.top_stopped = True
            else:
                m.pools.append(Scheduler(self.schedule, rng[1] - rng[0], m.node_ranks, self.C,
                                         base=rng[0]))
            for wid, d in list(m.deferred.items()):
                if d == "dry":
                    m.deferred[wid] = False
                    t += self.p.c_send
                    self.assign(m, wid, t)
            if m.computes and m.exhausted and not m.pool_dry():
                m.exhausted = False
            m.maybe_refill(t)
            return t
        if kind == "CMP":
            if m.parent is not None and self.p.fwd_batch > 0:
                m.fwd_pending += 1
                if m.fwd_pending == 1:
                    self.at(t + self.p.fwd_batch, self.forward, m)
            m.open[src] -= 1
            half = 0.5 * (finish - start)
            tg = 0.8 * m.slice_target + 0.2 * half
            m.slice_target = min(max(tg, MANAGER_SLICE_MIN), MANAGER_SLICE_MAX)
            request = ahead >= 0
            ahead = ahead == 1
        else:
            request = True
            ahead = ahead == 1
        if request and ahead and m.endgame():
            m.deferred[src] = True
            return t
        if request or (kind == "CMP" and m.deferred[src] is True):
            m.deferred[src] = False
            t += self.p.c_send
            self.assign(m, src, t)
        return t

    def forward(self, t, m):
        """A sub-manager passes the pieces it holds on to the top."""
        if m.fwd_pending:
            n, m.fwd_pending = m.fwd_pending, 0
            self.send(self.top, t + self.p.L, ("FWD", m.id, n, None, 0.0, 0.0))

    def top_handle(self, msg, t):
        kind, src, _, _, _, _ = msg
        if kind == "FWD":
            return t + msg[2] * self.p.c_entry
        top = self.top
        rng = top.sched.next_chunk(0)
        t += self.p.c_send
        if rng is not None:
            self.chunks += 1
        self.send(top.subs[src], t + self.p.L, ("TOP", -1, 0, rng, 0.0, 0.0))
        return t

    def serve(self, m, t):
        """manager_poll: MPI_Improbe until it misses. With Open MPI a miss runs
        one progress call that pulls in up to `batch` messages, but reports
        none: they are seen by the NEXT manager_poll (after rank 0's next own
        slice). batch 0 models a poll that drains everything."""
        handled = 0
        B = int(self.p.batch)
        if B <= 0:
            # the fixed manager_poll: probe until a miss follows a miss, so
            # everything that has arrived is served, for at most poll_max
            t_end = t + self.p.poll_max if self.p.poll_max > 0 else math.inf
            n_max = (int(self.p.poll_per_worker) * (len(m.workers) + 1)
                     if self.p.poll_per_worker > 0 else math.inf)
            while m.inbox and m.inbox[0][0] <= t and t < t_end and handled < n_max:
                _, _, msg = heapq.heappop(m.inbox)
                t += self.p.c_msg
                t = self.handle(m, msg, t)
                handled += 1
            if t < t_end and handled < n_max:
                t += self.p.c_miss
            return t, handled
        while True:
            while m.pulled:
                msg = m.pulled.pop(0)
                t += self.p.c_msg
                t = self.handle(m, msg, t)
                handled += 1
            k = 0
            while m.inbox and m.inbox[0][0] <= t and k < B:
                m.pulled.append(heapq.heappop(m.inbox)[2])
                k += 1
            return t, handled

    def workers_finished(self, m):
        if m.parent is not None and not m.top_stopped:
            return False
        return all(m.stopped[w] and m.open[w] == 0 for w in m.stopped)

    def manager_loop(self, m, t):
        m.state = "run"
        while True:
            t, handled = self.serve(m, t)
            if m is self.top and getattr(self, "hier", False):
                if all(s.finished_at is not None for s in self.top.subs.values()):
                    m.finished_at = t
                    m.state = "done"
                    return
                m.state = "idle"
                if handled:
                    m.idle_since = t
                self.idle_wake(m, t)
                return
            if m.own is not None:
                pos, end = m.own
                n = min(m.slice_len, end - pos)
                d = self.cost(pos, pos + n) + self.p.c_worker
                m.state = "slice"
                self.at(t + d, self.manager_slice_end, m, n, d)
                return
            if m.computes and not m.exhausted:
                rng = m.next_chunk(0)
                if rng is not None:
                    self.chunks += 1
                    t += self.p.c_send
                    m.own = [rng[0], rng[1]]
                    m.maybe_refill(t)
                    continue
                if m.parent is None or m.top_stopped:
                    m.exhausted = True
            if self.workers_finished(m):
                m.finished_at = t
                m.state = "done"
                if m.parent is not None:
                    self.forward(t, m)
                    self.at(t + (self.p.L if self.p.fwd_batch > 0 else 0.0),
                            lambda tt, mm: self.top_done(mm, tt), m)
                return
            m.state = "idle"
            if handled:
                m.idle_since = t
            self.idle_wake(m, t)
            return

    def idle_wake(self, m, t):
        if m.pulled:
            wt = self.poll_time(m.idle_since, t + 1e-9)
            if m.wake_at is None or wt < m.wake_at:
                m.wake_at = wt
                self.at(wt, self.wake, m)
        elif m.inbox:
            self.send_wake(m)

    def top_done(self, m, t):
        top = self.top
        if (top.state == "idle" and not top.inbox and not top.pulled
                and all(s.finished_at is not None for s in top.subs.values())):
            top.finished_at = t
            top.state = "done"

    def manager_slice_end(self, t, m, n, d):
        target = m.slice_target if m.workers else WORKER_SLICE
        m.slice_len = next_slice_length(m.slice_len, d, target)
        m.own[0] += n
        if m.own[0] >= m.own[1]:
            m.own = None
        m.idle_since = t
        self.manager_loop(m, t)

    # -- run ------------------------------------------------------------------------
    def run(self):
        t = 0.0
        mgrs = list(self.managers.values())
        if getattr(self, "hier", False):
            # every sub-manager asks the top for its first node chunk
            for m in mgrs:
                m.top_requests = 1
                self.send(self.top, self.p.L, ("REQ", m.id, 0, None, 0.0, 0.0))
            for m in mgrs:
                for w in m.workers:
                    m.deferred[w.id] = "dry"
                m.state = "idle"
                m.idle_since = 0.0
            self.top.state = "idle"
            self.top.idle_since = 0.0
            self.send_wake(self.top)
        else:
            m = self.top
            for w in m.workers:
                t += self.p.c_send
                self.assign(m, w.id, t)
            self.at(t, lambda tt, mm: self.manager_loop(mm, tt), m)
        for r in self.ranks:
            if r.mgr is not None:
                r.state = "idle"
                r.idle_since = 0.0
        ev = self.events
        while ev:
            tt, _, fn, args = heapq.heappop(ev)
            fn(tt, *args)
        ends = [m.finished_at for m in mgrs]
        if any(e is None for e in ends):
            raise RuntimeError("simulation did not finish")
        makespan = max(ends)
        wall = makespan + self.p.T0
        ideal = max(self.work / self.P, self.largest) if self.work else 0.0
        return {"ranks": self.P, "tasks": self.N, "chunks": self.chunks, "wall_time": wall,
                "ideal": ideal, "efficiency": ideal / wall if ideal else 0.0,
                "chunks_per_s": self.chunks / wall}


def simulate(P, kind, schedule, C=1, pure=False, target=1.0, nodes_of=0, sub_pure=False,
             ntasks=None, **params):
    p = Params(**params)
    return Sim(P, kind, schedule, C, p, pure=pure, target=target, nodes_of=nodes_of,
               sub_pure=sub_pure, ntasks=ntasks).run()


# ---- calibration, validation, predictions ---------------------------------------

# Calibrated on this machine (bench/results/scale.json, "calibration"):
#   L      one-way latency, blocking ping-pong at -n 2 (shared memory, loaded host)
#   c      manager time per message / per chunk sent, from empty tasks, dynamic
#          chunk 1 at -n 2: 1 / chunks_per_s = 2c
#   batch  messages one Open MPI progress call pulls in: from a 128-rank trace
#          (100 ms tasks, rank 0 answered ~25 chunks = ~50 messages per own task)
#   T0     wall time of a null run (one empty task per rank, static) at each P
#   wake   per-task sleep overshoot, measured in each run (slept - nominal)
def machine_params(cal, P, wake):
    L = cal.get("pingpong_one_way_s") or 20e-6
    emp = cal["empty"]
    rate = emp.get("dynamic:200000:2", {}).get("chunks_per_s", 320e3)
    c = 1.0 / rate / 2
    t0 = emp.get(f"static:{P}:{P}", {}).get("wall_time", 0.0)
    return dict(L=L, c_msg=c, c_send=c, c_worker=c, batch=CAL_BATCH, T0=t0, wake=wake,
                sleep_slack=max(wake, 60e-6))


CAL_BATCH = 50

# A cluster node: one core per rank, compute tasks (no sleep overshoot),
# InfiniBand-class latency between nodes, shared memory within a node; the
# manager's cost per message as measured here at -n 2 (a fast core would be
# lower; Improbe over thousands of peers could be higher: see --c-scale).
def cluster_params(P, **over):
    c = 1.57e-6
    p = dict(L=2e-6, L_node=0.5e-6, c_msg=c, c_send=c, c_worker=c, batch=CAL_BATCH,
             T0=2e-6 * math.log2(max(P, 2)) * 4, wake=0.0, sleep_slack=60e-6, spin_poll=0.3e-6)
    p.update(over)
    return p


def validate(summary_path, out_json=None):
    with open(summary_path) as f:
        summ = json.load(f)
    cal = summ["calibration"]
    rows = []
    # Second view: the host's own overhead at P ranks (start-up, stragglers,
    # CPU contention: everything but dispatch) taken from the static
    # schedule with the same tasks, which dispatches nothing after the start.
    host = {}
    for c in summ["cases"]:
        if c["schedule"] == "static":
            prm = machine_params(cal, c["ranks"], c["overshoot_per_task"])
            prm["T0"] = 0.0
            r = simulate(c["ranks"], c["kind"], "static", 1, **prm)
            host[(c["ranks"], c["kind"])] = max(0.0, c["wall_time"] - r["wall_time"])
    for c in summ["cases"]:
        pure = c["schedule"].endswith("-pure")
        sched = c["schedule"].replace("-pure", "")
        prm = machine_params(cal, c["ranks"], c["overshoot_per_task"])
        r = simulate(c["ranks"], c["kind"], sched, 1, pure=pure, **prm)
        h = host.get((c["ranks"], c["kind"]))
        r2 = None
        if h is not None and sched != "static":
            prm["T0"] = h
            r2 = simulate(c["ranks"], c["kind"], sched, 1, pure=pure, **prm)
        rows.append({"kind": c["kind"], "schedule": c["schedule"], "ranks": c["ranks"],
                     "measured": c["efficiency"], "measured_all": c["efficiency_all"],
                     "simulated": r["efficiency"], "diff": r["efficiency"] - c["efficiency"],
                     "simulated_host_from_static": r2["efficiency"] if r2 else None,
                     "host_overhead_s": h,
                     "wake_ms": c["overshoot_per_task"] * 1e3, "T0": prm["T0"],
                     "load1": c["load1"]})
        print(f'{c["kind"]:>6} {c["schedule"]:>12} P={c["ranks"]:>4} measured {c["efficiency"]:.3f} '
              f'sim {r["efficiency"]:.3f} diff {r["efficiency"] - c["efficiency"]:+.3f}'
              + (f' | T0 from static: sim {r2["efficiency"]:.3f} diff '
                 f'{r2["efficiency"] - c["efficiency"]:+.3f}' if r2 else ''),
              flush=True)
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"params": {"batch": CAL_BATCH, "machine_example_P128":
                                  machine_params(cal, 128, 0.0)}, "rows": rows}, f, indent=1)
    return rows


DESIGNS = {
    # name: (simulate() keyword arguments, parameter overrides)
    "today": ({}, {}),
    "today+pollfix": ({}, {"batch": 0}),
    # as built in manager_poll: two probes end a poll (c_miss), a poll serves
    # at most 4 messages per worker and 50 ms, then rank 0 runs an own slice
    "pollfix-as-built": ({}, {"batch": 0, "poll_max": 0.05, "poll_per_worker": 4,
                              "c_miss": 2 * 1.57e-6}),
    "a:pure-manager": ({"pure": True}, {}),
    "b:node-submanagers-64": ({"nodes_of": 64}, {}),
    "b:node-submanagers-64-pure": ({"nodes_of": 64, "sub_pure": True}, {}),
    # node dispatch as built: the fixed probe loop everywhere, pure
    # sub-managers that pass every piece of results on to rank 0 in batches
    # of 2 ms (BATCH_SECONDS in submanager.c), 0.4 us of rank 0 per piece
    "b:as-built": ({"nodes_of": 64, "sub_pure": True},
                   {"batch": 0, "poll_max": 0.05, "poll_per_worker": 4, "c_miss": 2 * 1.57e-6,
                    "fwd_batch": 0.002, "c_entry": 0.4e-6}),
}


def predict(out_path, ranks=(1024, 4096, 16384), kinds=("10ms", "1ms", "pareto"),
            schedules=("guided", "factoring", "dynamic"), designs=tuple(DESIGNS), **over):
    import time
    rows = []
    for P in ranks:
        for kind in kinds:
            for sched in schedules:
                if sched == "dynamic" and (kind == "1ms" or P > 4096):
                    continue  # chunk-1 runs of 10^6..10^7 chunks: too slow to simulate here
                for d in designs:
                    kw, pover = DESIGNS[d]
                    prm = cluster_params(P, **{**pover, **over})
                    t = time.time()
                    r = simulate(P, kind, sched, 1, **kw, **prm)
                    r.update(kind=kind, schedule=sched, design=d, sim_seconds=time.time() - t)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
                    with open(out_path, "w") as f:
                        json.dump({"params": cluster_params(P, **over), "rows": rows}, f, indent=1)
    return rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--predict":
        predict(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--validate":
        validate(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=128)
    ap.add_argument("--kind", default="10ms", choices=["1ms", "10ms", "100ms", "pareto", "empty"])
    ap.add_argument("--schedule", default="guided")
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--ntasks", type=int)
    ap.add_argument("--target", type=float, default=1.0)
    ap.add_argument("--pure", action="store_true", help="design (a): rank 0 only manages")
    ap.add_argument("--nodes-of", type=int, default=0, help="design (b): ranks per node")
    ap.add_argument("--sub-pure", action="store_true")
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE (see Params)")
    a = ap.parse_args()
    params = {}
    for kv in a.param:
        k, v = kv.split("=", 1)
        params[k] = float(v)
    if "prefetch" in params:
        params["prefetch"] = int(params["prefetch"])
    r = simulate(a.ranks, a.kind, a.schedule, a.chunk, a.pure, a.target, a.nodes_of, a.sub_pure,
                 a.ntasks, **params)
    print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
