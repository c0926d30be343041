"""The host term of the dispatch simulator (sim_model.py): the CPUs that the
ranks share when a run has more ranks than cores, as the measured runs on
the 2-core test box do (128 sleeping ranks on 2 cores).

Every time a rank becomes runnable (a task's sleep ends, a back-off sleep
ends on a message) it needs `c_event` seconds of CPU before it can go on:
the wake-up itself, the library's loop, the clock reads, the next
nanosleep. A slice of n tasks costs n x c_event. Those bursts, and rank 0's
time serving messages, share `cores` CPUs. The model is a fluid queue: the
CPU time asked for and not yet served (the backlog) drains at `cores`
CPU-seconds per second, and a burst asked for at t is done at
t + max(burst, (backlog + burst) / cores). While the ranks ask for less
than the cores give, the backlog stays near zero and only c_event is
added; when they ask for more (128 ranks waking every millisecond), the
backlog grows until the ranks are slowed to what the cores can serve.

The measured sleep overshoot (`wake`) already holds the time from a sleep's
end to the rank's first instruction; what the host term adds is the CPU
work after it, stretched by the others' demand. The simulated ranks start
together and keep in step (no jitter), so their bursts queue together:
c_event is an effective figure fitted to the runs, not a measured CPU time.
Not charged: the CPU an idle rank burns in its back-off (50 spins and 4000
yields, then a wake-up per sleep). Charging the spin phase as CPU made the
dynamic rows, which rank 0's answers limit, 0.17-0.24 too slow at 128
ranks; a real yield probably gives the core away to whoever is runnable.

A cluster has a core per rank: there the host term is off (host_cores = 0,
the default), so the predictions of sim_designs.cluster_params do not use it.
"""


class Host:
    """`cores` CPUs shared by every rank's bursts of CPU work (fluid FIFO)."""

    def __init__(self, cores, c_event):
        self.cores = float(cores)
        self.c_event = c_event
        self.backlog = 0.0   # CPU-seconds asked for and not served yet
        self.t = 0.0         # time the backlog refers to
        self.cpu = 0.0       # CPU-seconds asked for in all (for reports)

    def _drain(self, t):
        if t > self.t:
            self.backlog = max(0.0, self.backlog - self.cores * (t - self.t))
            self.t = t

    def run(self, t, cpu):
        """A rank asks at t for `cpu` seconds of CPU: when it is done."""
        self._drain(t)
        self.backlog += cpu
        self.cpu += cpu
        # events of one handler may run a little behind self.t
        return max(t + cpu, self.t + self.backlog / self.cores)

    def add(self, cpu):
        """CPU used by a rank that already holds a core (rank 0 serving)."""
        self.backlog += cpu
        self.cpu += cpu


# Fitted (sim_dispatch.py --fit-host, least RMS error on a 2.5-5 us grid)
# to the rows of bench/results/scale.json that measure the host, not
# dispatch: static at every P and all 8-rank rows. The dispatching rows at
# 32-128 ranks were not used. A second parameter, the cores left over by
# other jobs, does not help: with 1 core the fit picks 10 us, the same
# c_event / cores, and validates no better.
HOST_CORES = 2
HOST_C_EVENT = 20e-6
