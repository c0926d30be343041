"""Discrete-event model of mpmap's dispatch protocol (src/core/manager.c,
src/core/worker.c, src/schedule/*.c), pure Python: the events, the worker,
manager and sub-manager loops, and simulate(). Its command line is
sim_dispatch.py; the tasks and schedules are sim_schedules.py, the ranks'
state and the parameters sim_state.py.

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

* Host term (sim_host.py, off by default; the validation turns it on):
  with `host_cores` > 0 every slice of n tasks and every wake-up from a
  back-off costs n x / 1 x `c_event` of CPU, and those bursts and rank 0's
  serving share `host_cores` CPUs (a fluid queue). Models the measured
  runs' 128 ranks on 2 cores; a cluster has a core per rank.

Wall time = simulated makespan + `T0` (start-up/teardown collectives).
Efficiency = max(sum of task costs / P, largest task) / wall time.
"""
import heapq
import itertools
import math

from sim_host import Host
from sim_schedules import PARETO_MEAN, Scheduler, task_costs
from sim_state import (MANAGER_SLICE_MAX, MANAGER_SLICE_MIN, WORKER_SLICE, Manager, Params, Rank,
                       next_slice_length)


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
        # the host term (sim_host.py): ranks sharing `host_cores` CPUs
        self.host = Host(self.p.host_cores, self.p.c_event) if self.p.host_cores > 0 else None
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
        if self.host is not None:
            # woken from its back-off by a message: the wake-up's CPU, behind
            # the others' (the back-off's own polls are not charged: see sim_host.py)
            start = self.host.run(t, self.p.c_event)
            if start > t:
                obj.state = "run"
                self.at(start, self.woken, obj)
                return
        self.woken(t, obj)

    def woken(self, t, obj):
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

    def host_stall(self, t, n, d, slice_end, who):
        """With the host model: when the n task wake-ups of a slice that ran
        d seconds need CPU past t, calls slice_end(who, ...) again then and
        returns True."""
        if self.host is None:
            return False
        done = self.host.run(t, n * self.p.c_event)
        if done <= t:
            return False
        self.at(done, slice_end, who, n, d + done - t, True)
        return True

    def worker_slice_end(self, t, w, n, d, ran=False):
        # the slice's n task wake-ups need CPU before the worker goes on
        if not ran and self.host_stall(t, n, d, self.worker_slice_end, w):
            return
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
            t0 = t
            t, handled = self.serve(m, t)
            if self.host is not None:
                self.host.add(t - t0)
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

    def manager_slice_end(self, t, m, n, d, ran=False):
        if not ran and self.host_stall(t, n, d, self.manager_slice_end, m):
            return
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
