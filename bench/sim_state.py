"""What the dispatch simulator's ranks hold (sim_model.py runs them): the
parameters of a run, a worker's state, a manager's state and pool (today's
rank 0, or a node sub-manager's chunks from the top), and how the length of
a slice of a chunk adapts.
"""

MANAGER_SLICE_MAX = 0.002
MANAGER_SLICE_MIN = 0.00002
MANAGER_SLICE_START = 0.0001
WORKER_SLICE = 0.02


def next_slice_length(length, elapsed, target):
    if elapsed < target / 4:
        return length * 2
    if elapsed > target * 2 and length > 1:
        return length // 2
    return length


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
        self.host_cores = 0     # host term (sim_host.py): CPUs the ranks share (0 = a core each)
        self.c_event = 0.0      # host term: CPU per task wake-up / back-off wake-up
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
