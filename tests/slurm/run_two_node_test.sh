#!/usr/bin/env bash
# mpmap's batch scripts on a two-node SLURM cluster emulated on this machine
# (scripts/slurm-local.sh start --nodes 2: nodes n1 and n2, each slurmd in a
# mount and UTS namespace of its own).  Submitted with --nodes=2, the jobs
# must
#   - run ranks on both nodes, and without the apps' one-node start-up
#     shortcut (OMPI_MCA_pml=ob1), which a one-node job does take;
#   - give results bitwise equal to the same app on one rank (mpirun -n 1);
#   - survive the time-limit signal: checkpoint, requeue, --resume on two
#     nodes again, and the resumed result bitwise equal to one rank's.
#
#   tests/slurm/run_two_node_test.sh BUILD_DIR
#
# Binaries come from BUILD_DIR/apps (MPMAP_SLURM_TEST_BIN overrides it).
# MPMAP_SLURM_TWO_NODE_LONG_ARGS: kde_sweep arguments for the interrupted run
# (default about 8 s of CPU); it is signalled once its first chunk is in the
# checkpoint.
# MPI traffic stays on loopback: the OMPI_MCA_* settings below reach the jobs
# because sbatch exports the submitting environment (--export=ALL, its default).
# Exit: 0 all passed, 1 a check failed, 77 skipped (no slurm, no namespaces,
# no app binary), with one line saying why.
# shellcheck disable=SC2016 # awk programs and the --exec command: single quotes on purpose
set -u

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD_DIR=$(cd "$1" && pwd) || exit 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${MPMAP_SLURM_TEST_BIN:-$BUILD_DIR/apps}
read -r -a LONG_ARGS <<<"${MPMAP_SLURM_TWO_NODE_LONG_ARGS:---samples 10000 --widths 0.05:1.0:400 --kernel gaussian --cv 5 --quiet}"
SMALL_ARGS=(--samples 2000 --widths 0.1:1.0:16 --kernel gaussian --cv 3 --quiet)
H5CHECK=(/usr/bin/python3 "$ROOT/tests/slurm/h5check.py")

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$ROOT/tests/slurm/lib.sh"

for app in kde_sweep param_sweep; do
    if [ ! -x "$BIN/$app" ]; then
        echo "SKIP: no app binary $BIN/$app"
        exit 77
    fi
done

ref_pids=()
cleanup() {
    local pid
    for pid in "${ref_pids[@]}"; do kill "$pid" 2>/dev/null; done
    slurm_cleanup
}
slurm_pick_dir_and_ports 2
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

t0=$SECONDS
slurm_start_or_skip
check "slurm-local.sh start --nodes 2: n1 and n2 idle (ports $MPMAP_SLURM_PORT-$((MPMAP_SLURM_PORT + 2)), $((SECONDS - t0)) s)" \
    [ "$(sinfo -h -N -o '%N:%T' | sort -u | tr '\n' ' ')" = "n1:idle n2:idle " ]

WORK=$MPMAP_SLURM_DIR/work
mkdir -p "$WORK"
cd "$WORK" || exit 1
export MPMAP_BIN=$BIN
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo

# kde_sweep on one rank outside SLURM, in the background: the reference the
# two-node results must equal.  Its pid goes to ref_pids.
reference() { # reference OUT ARGS...
    local out=$1
    shift
    env -u SLURM_CONF mpirun -n 1 "$BIN/kde_sweep" "$@" --output "$out" >"$out.log" 2>&1 &
    ref_pids+=($!)
}
reference_done() { # reference_done PID OUT -> exit 0 and the file is there
    wait "$1" && h5_opens "$2"
}
same_as_reference() { # same_as_reference GOT WANT
    "${H5CHECK[@]}" same "$1" "$2"
}

# --- where the ranks run, and the one-node shortcut ---
# Every grid point's shell prints the node's number (from the host name its
# UTS namespace gives it), the rank, the step's node count and whether the
# app had set OMPI_MCA_pml=ob1 (the apps setenv it before MPI_Init on one
# node; the shell inherits it), whether the rank got the loopback-only TCP
# setting from the submitting shell, and the point.
EXEC='sleep 0.05; echo $(hostname | tr -cd 0-9) $SLURM_PROCID $SLURM_STEP_NUM_NODES $(test "$OMPI_MCA_pml" = ob1 && echo 1 || echo 0) $(test "$OMPI_MCA_btl_tcp_if_include" = lo && echo 1 || echo 0) {i}'
placement() { # placement NODES NTASKS: sets jid; the records go to placement_NODES.txt
    local rc
    jid=$(timeout 300 sbatch --wait --parsable --nodes="$1" --ntasks="$2" --time=5 \
        "$ROOT/jobs/param_sweep.slurm" --param i=0:23:24 --exec "$EXEC" \
        --schedule dynamic --chunk 1 --quiet)
    rc=$?
    jid=${jid%%;*}
    check "param_sweep --nodes=$1 --ntasks=$2: job $jid exit 0, JobState=COMPLETED" \
        [ "$rc $(job_field "$jid" JobState)" = "0 COMPLETED" ]
    "${H5CHECK[@]}" records "$WORK/param_sweep_$jid.h5" >"$WORK/placement_$1.txt"
    check "param_sweep --nodes=$1: every point's command succeeded (/status)" [ "$?" = 0 ]
    [ "$rc" = 0 ] || show_log "$WORK/param_sweep-$jid.log"
}
# Fields of the records: node rank step_nodes pml_ob1 tcp_lo i
hosts_of_ranks() { # "rank->nN ..." for each rank that ran points
    awk '{ print $2 "->n" $1 }' "$1" | sort -u -n | tr '\n' ' '
}

reference "$WORK/ref_small.h5" "${SMALL_ARGS[@]}"

placement 2 3
rec=$WORK/placement_2.txt
check "param_sweep --nodes=2: NodeList=n[1-2]" [ "$(job_field "$jid" NodeList)" = "n[1-2]" ]
check "param_sweep --nodes=2: points 0..23 in order" \
    [ "$(awk '{ print $6 }' "$rec" | tr '\n' ' ')" = "$(seq 0 23 | tr '\n' ' ')" ]
check "param_sweep --nodes=2: ranks 0, 1, 2 all ran points" \
    [ "$(awk '{ print $2 }' "$rec" | sort -u -n | tr '\n' ' ')" = "0 1 2 " ]
check "param_sweep --nodes=2: points ran on n1 and on n2" \
    [ "$(awk '{ print $1 }' "$rec" | sort -u | tr '\n' ' ')" = "1 2 " ]
check "param_sweep --nodes=2: each rank stayed on one node" \
    [ "$(awk '{ print $2 }' "$rec" | sort -u | wc -l)" = "$(awk '{ print $2, $1 }' "$rec" | sort -u | wc -l)" ]
check "param_sweep --nodes=2: every rank saw a 2-node step" \
    awk '$3 != 2 { bad = 1 } END { exit bad }' "$rec"
check "param_sweep --nodes=2: OMPI_MCA_pml=ob1 on no rank (job spans nodes)" \
    awk '$4 != 0 { bad = 1 } END { exit bad }' "$rec"
check "param_sweep --nodes=2: every rank has OMPI_MCA_btl_tcp_if_include=lo" \
    awk '$5 != 1 { bad = 1 } END { exit bad }' "$rec"
check "param_sweep --nodes=2: provenance mpmap_host is rank 0's node n1" \
    [ "$("${H5CHECK[@]}" attr "$WORK/param_sweep_$jid.h5" mpmap_host)" = n1 ]
echo "  ranks on nodes: $(hosts_of_ranks "$rec")"

# The control: on one node the same observation sees the shortcut.
placement 1 2
rec=$WORK/placement_1.txt
check "param_sweep --nodes=1: one node, a 1-node step" \
    [ "$(awk '{ print $1 " " $3 }' "$rec" | sort -u | wc -l)" = 1 ]
check "param_sweep --nodes=1: OMPI_MCA_pml=ob1 on every rank (the shortcut is visible)" \
    awk '$4 != 1 { bad = 1 } END { exit bad }' "$rec"
echo "  ranks on nodes: $(hosts_of_ranks "$rec")"

# --- a result on two nodes equals one rank's ---
jid=$(timeout 300 sbatch --wait --parsable --nodes=2 --ntasks=2 --time=5 \
    "$ROOT/jobs/kde_sweep.slurm" "${SMALL_ARGS[@]}")
rc=$?
jid=${jid%%;*}
out=$WORK/kde_sweep_$jid.h5
check "kde_sweep --nodes=2: job $jid exit 0, COMPLETED, NodeList=n[1-2]" \
    [ "$rc $(job_field "$jid" JobState) $(job_field "$jid" NodeList)" = "0 COMPLETED n[1-2]" ]
check "kde_sweep --nodes=2: log says 'on n[1-2], 2 tasks'" \
    grep -qF "on n[1-2], 2 tasks" "$WORK/kde_sweep-$jid.log"
check "kde_sweep -n 1 reference finished" reference_done "${ref_pids[0]}" "$WORK/ref_small.h5"
check "kde_sweep --nodes=2: bitwise equal to -n 1" same_as_reference "$out" "$WORK/ref_small.h5"
[ "$rc" = 0 ] || show_log "$WORK/kde_sweep-$jid.log"

# --- interrupted on two nodes: checkpoint, requeue, --resume on two nodes ---
reference "$WORK/ref_long.h5" "${LONG_ARGS[@]}"
jid=$(sbatch --parsable --nodes=2 --ntasks=2 --time=10 "$ROOT/jobs/kde_sweep.slurm" "${LONG_ARGS[@]}")
jid=${jid%%;*}
log=$WORK/kde_sweep-$jid.log
out=$WORK/kde_sweep_$jid.h5
# A chunk appended to the checkpoint after its header: the first leg has
# work to keep.
ckpt_grew() { [ "$(stat -c %s "$1.ckpt" 2>/dev/null || echo 0)" -gt "$2" ]; }
if wait_for 60 step_running "$jid" && wait_for 120 sweep_begun "$out" &&
    wait_for 60 ckpt_grew "$out" "$(stat -c %s "$out.ckpt")"; then
    # What --signal=TERM@120 does before the time limit: SIGTERM to the
    # steps, which reaches the ranks on both nodes.
    scancel --signal=TERM "$jid"
    check "kde_sweep requeue --nodes=2: job $jid requeued itself after SIGTERM" wait_for 60 restarted "$jid"
    check "kde_sweep requeue --nodes=2: checkpoint left" [ -e "$out.ckpt" ]
    check "kde_sweep requeue --nodes=2: app printed 'interrupted: D/N tasks done'" \
        grep -q 'interrupted: [0-9]*/[0-9]* tasks done' "$log"
    check "kde_sweep requeue --nodes=2: srun saw exit code 3" grep -q 'exit code 3' "$log"
    grep -m1 -o 'interrupted: [0-9]*/[0-9]* tasks done' "$log" | sed 's/^/  /'
    # Skip Slurm's two-minute hold on a requeued job once the old step's
    # slurmstepd on both nodes has cleaned up (its PMIx sockets).
    wait_for 60 step_gone "$jid"
    scontrol update JobId="$jid" StartTime=now
    check "kde_sweep requeue --nodes=2: second run completed" wait_for 400 state_is "$jid" COMPLETED
    check "kde_sweep requeue --nodes=2: second run used --resume" grep -q -- '--resume --output' "$log"
    check "kde_sweep requeue --nodes=2: ExitCode=0:0, Restarts=1" \
        [ "$(job_field "$jid" ExitCode) $(job_field "$jid" Restarts)" = "0:0 1" ]
    check "kde_sweep requeue --nodes=2: both runs on n[1-2] with 2 tasks" \
        [ "$(grep -cF "on n[1-2], 2 tasks" "$log")" = 2 ]
    # Rank 1 (on n2) computed too; a short run could end before it asked.
    check "kde_sweep requeue --nodes=2: both ranks ran chunks (/trace)" \
        [ "$("${H5CHECK[@]}" ranks "$out")" = "0 1" ]
    check "kde_sweep requeue --nodes=2: provenance has 2 legs of 2 ranks" \
        [ "$("${H5CHECK[@]}" attr "$out" mpmap_legs) $("${H5CHECK[@]}" attr "$out" mpmap_leg_ranks)" = "2 2 2" ]
    check "kde_sweep -n 1 long reference finished" reference_done "${ref_pids[1]}" "$WORK/ref_long.h5"
    # The first leg's tasks were kept, not computed again.
    legs=$("${H5CHECK[@]}" attr "$out" mpmap_leg_tasks)
    total=$("${H5CHECK[@]}" attr "$WORK/ref_long.h5" mpmap_leg_tasks)
    echo "  tasks per leg: $legs (of $total)"
    check "kde_sweep requeue --nodes=2: the legs split the tasks, the first did some" \
        awk -v l="$legs" -v total="$total" \
        'BEGIN { n = split(l, t, " "); exit !(n == 2 && t[1] > 0 && t[1] + t[2] == total) }'
    check "kde_sweep requeue --nodes=2: resumed result bitwise equal to -n 1" \
        same_as_reference "$out" "$WORK/ref_long.h5"
else
    bad "kde_sweep requeue --nodes=2: job $jid never started its step, its sweep or its first chunk"
fi
if [ "$failed" != 0 ]; then
    show_log "$log"
    tail -n 20 "$MPMAP_SLURM_DIR"/nodes/*/slurmd.log 2>/dev/null
fi
echo "two-node test: $((SECONDS - t0)) s"
summary
