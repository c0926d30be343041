#!/usr/bin/env python3
"""The apps on an emulated multi-node cluster on this one machine.

mpirun_cluster.sh starts Open MPI with a hostfile of made-up nodes
(mpmap-n1, mpmap-n2, ...) and agent.sh as the rsh launch agent: each node's
orted and ranks run in a UTS namespace of their own whose host name is the
node's, so Open MPI treats them as separate nodes (MPI_COMM_TYPE_SHARED splits
by node, shared memory only inside a node, TCP over loopback between nodes).
Every test uses uneven nodes: 1 + 2 + 3 ranks.

  ClusterEqualsSingleTest   every app's datasets (and its non-provenance
                            attributes) on the cluster are bitwise equal to
                            the same app under plain `mpirun -n 1`
  NodeSharedInputTest       the node-shared input is one shared-memory segment
                            per node, mapped by every rank of that node
                            (/proc/PID/maps); the shared-memory BTL stays inside
                            a node; every rank's TCP socket is on loopback
  NodeLossResumeTest        SIGKILL of every process of one node (its orted and
                            ranks) mid-run; --resume on one node or on the
                            cluster gives the uninterrupted run's bits
  SingleNodeShortcutTest    the apps' one-node start-up shortcut
                            (OMPI_MCA_pml=ob1, apps/mpi_launch.c) is not applied
                            when the ranks span nodes, and is on one node
  ClusterNodeDispatchTest   under MPMAP_DISPATCH=nodes, mpi_dispatch_test and
                            mpi_runtime_test --stops-only pass across the
                            nodes, and param_sweep matches `-n 1`
  RanksWriteClusterTest     param_sweep --write ranks: ranks of every node
                            write their rows in place, bitwise equal to
                            `-n 1 --write rank0`; node loss + --resume in
                            ranks mode gives the same bits

The cases live in cluster_results.py (bits: a, c, e), cluster_placement.py
(where the job lands: b, d) and cluster_ranks.py (in-place writing); all run
on cluster_fixture.py (starting the
emulated nodes, finding and killing a run's processes, comparing results).

Each cluster run carries a unique MPMAP_CLUSTER_RUN=... variable in its
environment (inherited by mpirun, the orteds and the ranks; the apps never
read it): the tests find a run's processes by it, and kill whatever of a run
is left after it, even orteds that daemonized away from mpirun.

Exit 77 (skipped) when this machine cannot emulate nodes: no unshare, no
permission for a UTS namespace, node names that do not resolve with
/etc/hosts not writable, or no mpirun.

Usage: test_cluster.py [--apps-dir DIR] [unittest args]; the apps default to
$MPMAP_APPS_DIR, else build/apps beside the source tree.
"""
import sys

from cluster_fixture import SKIP, cannot_emulate
from cluster_placement import NodeSharedInputTest, SingleNodeShortcutTest
from cluster_ranks import RanksWriteClusterTest
from cluster_results import ClusterEqualsSingleTest, ClusterNodeDispatchTest, NodeLossResumeTest
import harness  # noqa: E402  (tests/apps/harness.py, on the path cluster_fixture sets)

# The cases unittest.main finds in this module (harness.main runs __main__).
__all__ = ["ClusterEqualsSingleTest", "NodeSharedInputTest", "NodeLossResumeTest",
           "SingleNodeShortcutTest", "ClusterNodeDispatchTest", "RanksWriteClusterTest"]


if __name__ == "__main__":
    reason = cannot_emulate()
    if reason:
        print(f"test_cluster.py: skipped: cannot emulate a cluster here: {reason}", file=sys.stderr)
        sys.exit(SKIP)
    harness.main()
