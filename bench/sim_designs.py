"""The parameters the dispatch simulator (sim_dispatch.py) runs with:
calibrated to this machine (--validate), assumed for a cluster (--predict),
and the designs --predict compares.
"""
import math


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
