"""The work the dispatch simulator (sim_dispatch.py) hands out: per-task
costs as bench/scale.c makes them, and the schedules of src/schedule/*.c
that cut a pool of tasks into chunks.
"""

PARETO_ALPHA = 1.5
PARETO_MEAN = 0.010


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
