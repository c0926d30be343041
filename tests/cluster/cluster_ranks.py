"""--write ranks on the emulated cluster: every rank writes the rows of its
own tasks into the output, on whichever node it runs (test_cluster.py runs
these).

param_sweep runs a command at 240 grid points, each printing 1024 numbers
(8 KiB records: 1.9 MiB of results, more than the kit keeps contiguous when
rank 0 writes them, so the layout tells the two modes apart), on 1 + 2 + 3
ranks with --write ranks. Against `mpirun -n 1 --write rank0`:

  test_every_node_writes_rows_in_place   the same bits; /result contiguous
                                         (written in place) where the
                                         reference's is chunked; ranks of
                                         every node ran chunks (/trace)
  test_lose_*                            NodeLossResumeTest's node losses in
                                         ranks mode: the rows the checkpoint
                                         counts stay in OUT.partial or, when
                                         rank 0 saw the job end, in
                                         OUT.partial.prev (named by
                                         OUT.ckpt.rows), and --resume gives
                                         the reference's bits

The command sleeps 100 ms, so the reference (-n 1, 30 s of mostly waiting)
runs beside the cases, and a node can be lost mid-run after the ranks first
synced their rows (once per checkpoint interval, 2 s).
"""
import os
import re

import h5py

from cluster_fixture import LAYOUT, assert_same_results, node_of_rank, note
from cluster_results import NodeLossResumeTest


class RanksWriteClusterTest(NodeLossResumeTest):

    APP = "param_sweep"
    ARGS = ["--exec", "sleep 0.1; echo {p1} {p2}; seq 1 1022", "--record-length", "1024",
            "--param", "p1=0:1:60", "--param", "p2=1,2,3,4",
            "--schedule", "dynamic", "--chunk", "2"]
    TASKS = 240
    RUN_ARGS = ["--write", "ranks"]
    REF_RANKS = 1
    REF_ARGS = ["--write", "rank0"]
    REF_IN_BACKGROUND = True
    RESUME_RANKS = 3

    def ready_to_lose(self, line):
        # Some rows must be written and counted before the node goes, or
        # --resume would have nothing of the first leg to keep: a range
        # enters the checkpoint once its rank synced its rows, so wait for
        # an entry there (entries start with the magic "CKPE").
        m = re.match(rf"{self.APP}: progress (\d+)/", line)
        if not m or int(m.group(1)) < 12:
            return False
        with open(self.ckpt, "rb") as f:
            return b"CKPE" in f.read()

    def lose_node(self, node, out):
        self.ckpt = out + ".ckpt"
        super().lose_node(node, out)
        # What --resume keeps: the data file the ranks wrote (OUT.partial
        # when rank 0 was killed, OUT.partial.prev when it saw the job end
        # and stopped) and the manifest that names it.
        left = [x for x in (".partial", ".partial.prev") if os.path.exists(out + x)]
        note(f"rows kept in OUT{' and OUT'.join(left) or ' nothing'}")
        self.assertEqual(len(left), 1, f"data files left after the loss: {left}")
        self.assertTrue(os.path.exists(out + ".ckpt.rows"), "no rows manifest left after the loss")

    def assert_resumed(self, result, out):
        super().assert_resumed(result, out)
        for left in (".ckpt.rows", ".partial.prev", ".partial"):
            self.assertFalse(os.path.exists(out + left), f"{out + left} left after the resumed run")
        with h5py.File(out, "r") as f:
            self.assertIsNone(f["result"].chunks, "the resumed run did not write in place")

    def test_every_node_writes_rows_in_place(self):
        out = self.path("ranks.h5")
        self.assert_ok(self.run_cluster(self.APP, self.ARGS + self.RUN_ARGS
                                        + ["--quiet", "--output", out]),
                       "param_sweep --write ranks on the cluster")
        reference = self.reference_file()
        assert_same_results(self, out, reference, "param_sweep --write ranks on 3 nodes")
        with h5py.File(out, "r") as f, h5py.File(reference, "r") as ref:
            self.assertEqual(f.attrs["mpmap_ranks"], sum(LAYOUT))
            self.assertIsNotNone(ref["result"].chunks,
                                 "the reference's /result is contiguous too: the layout "
                                 "cannot tell the modes apart")
            self.assertIsNone(f["result"].chunks, "--write ranks left /result chunked")
            ranks = [int(r) for r in f["trace/rank"][...]]
            tasks = [int(e) - int(b) for b, e in zip(f["trace/begin"][...], f["trace/end"][...])]
        per_rank = {r: sum(t for q, t in zip(ranks, tasks) if q == r) for r in sorted(set(ranks))}
        nodes = sorted({node_of_rank(r) for r in per_rank})
        note(f"--write ranks on 3 nodes: tasks per rank {per_rank}")
        self.assertEqual(sum(per_rank.values()), self.TASKS, "/trace does not cover every task")
        self.assertEqual(nodes, list(range(len(LAYOUT))),
                         f"not every node wrote rows: tasks per rank {per_rank}")
