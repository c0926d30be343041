# shellcheck shell=bash
# The shared body of mpmap's batch jobs.  Not a job script itself: each
# jobs/<app>.slurm and jobs/<app>.pbs holds its scheduler directives and its
# app's default problem, sets
#
#   APP            the app: binary $BIN_DIR/$APP, result ${APP}_<jobid>.h5
#   DEFAULT_ARGS   (array) its arguments when neither script arguments nor
#                  MPMAP_ARGS are given
#   SCHEDULER      slurm (launch with srun) or pbs (launch with mpirun)
#
# and sources this file, which runs the app and exits with the job's code
# (it never returns).  Sourced, not run: the trap below must be set in the
# batch shell itself, the process the scheduler signals.  See jobs/README.md.
#
# Directives every wrapper carries, and why:
#   SLURM  --job-name=<app>, --output=%x-%j.log: the log is <app>-<jobid>.log.
#          --ntasks only (no --nodes): the ranks may span any number of nodes;
#          nothing here assumes one node, but the submit directory (result,
#          log, checkpoint, this file) must be on a filesystem every node of
#          the job can reach, as usual for MPI jobs.
#          --requeue, --open-mode=append: a requeued run (same job id) appends
#          to the same log and continues the same result.
#          --signal=TERM@120: SIGTERM to every rank 120 s before the time
#          limit, so the app checkpoints and exits 3; the shell then requeues
#          the job.  Deliberately without B: (batch shell only): srun does not
#          pass SIGTERM on to the ranks, it kills the step (ranks die by
#          SIGKILL, no checkpoint), so the shell would have to re-signal the
#          step itself; signalling the steps directly needs no relay.  The
#          trap below still covers B:-style signals (`scancel --batch -s TERM`).
#   PBS    -N <app>; -l select=N:ncpus=1:mpiprocs=1 with -l place=free: N
#          ranks placed wherever there is room, one node or many; -r y:
#          rerunnable, so qrerun (or PBS's own requeue) keeps the job id.
#          PBS has no "signal before the time limit" option: the watchdog
#          below stands in for it.
#
# Environment (all optional): MPMAP_BIN, MPMAP_ARGS, MPMAP_OUTDIR,
# MPMAP_OUTPUT, MPMAP_MAX_REQUEUE (SLURM), MPMAP_NPROCS, MPMAP_WALLTIME,
# MPMAP_LEAD_S, MPMAP_KILL_GRACE_S (PBS), MPMAP_JOBS_DIR (where this file is;
# the wrappers look for it).

set -uo pipefail

: "${APP:?the job script must set APP before sourcing mpmap_job.sh}"
: "${SCHEDULER:?the job script must set SCHEDULER (slurm or pbs) before sourcing mpmap_job.sh}"

note() { printf '[%s %s] %s\n' "$(date '+%F %T')" "$APP" "$*"; }

case "$SCHEDULER" in
slurm)
    SUBMIT_DIR=${SLURM_SUBMIT_DIR:-$PWD}
    JOB_NUM=${SLURM_JOB_ID:-local}
    RESTARTS=${SLURM_RESTART_COUNT:-0}
    MAX_REQUEUE=${MPMAP_MAX_REQUEUE:-10}
    ;;
pbs)
    SUBMIT_DIR=${PBS_O_WORKDIR:-$PWD}
    JOB_NUM=${PBS_JOBID:-local}
    JOB_NUM=${JOB_NUM%%.*}
    RESTARTS=0 # PBS does not tell a rerun apart; the files beside the result do
    NPROCS=${MPMAP_NPROCS:-}              # default: one rank per line of $PBS_NODEFILE
    WALLTIME=${MPMAP_WALLTIME:-01:00:00}  # used only if qstat cannot tell the real one
    LEAD_S=${MPMAP_LEAD_S:-180}
    # Open MPI's mpirun answers SIGTERM with SIGCONT, this many seconds of grace,
    # SIGTERM to the ranks, the same grace again, then SIGKILL: the ranks get the
    # second grace period to write their checkpoint.
    KILL_GRACE_S=${MPMAP_KILL_GRACE_S:-30}
    # PBS starts the job in $HOME.
    cd "$SUBMIT_DIR" || exit 2
    ;;
*)
    note "SCHEDULER must be slurm or pbs, not '$SCHEDULER'"
    exit 2
    ;;
esac
BIN_DIR=${MPMAP_BIN:-$SUBMIT_DIR/build/release/apps}
OUT_DIR=${MPMAP_OUTDIR:-$SUBMIT_DIR}
OUT=${MPMAP_OUTPUT:-$OUT_DIR/${APP}_${JOB_NUM}.h5}
JOBS_DIR=${MPMAP_JOBS_DIR:-$SUBMIT_DIR/jobs}
JOB_SCRIPT=$JOBS_DIR/$APP.$SCHEDULER

# Script arguments win (sbatch passes them; so does Torque's `qsub -F`; PBS
# Pro has only MPMAP_ARGS), then MPMAP_ARGS, then the wrapper's problem.
if [ "$#" -gt 0 ]; then
    ARGS=("$@")
elif [ -n "${MPMAP_ARGS:-}" ]; then
    # eval so that quoted arguments in MPMAP_ARGS stay single words.
    eval "ARGS=($MPMAP_ARGS)"
else
    ARGS=("${DEFAULT_ARGS[@]}")
fi

if [ ! -x "$BIN_DIR/$APP" ]; then
    note "no executable $BIN_DIR/$APP (set MPMAP_BIN to the directory holding it)"
    exit 2
fi

# --resume or --force: the body adds --resume itself (below) unless the user
# chose one.  A user's --force was meant for the first run only: a requeued
# run must continue that run's checkpoint, not start over (and be interrupted
# again, and again).
user_flag=""
for a in "${ARGS[@]}"; do
    case "$a" in --resume | --force) user_flag=$a ;; esac
done
if [ "$user_flag" = --force ] && [ "$RESTARTS" -gt 0 ]; then
    kept=()
    for a in "${ARGS[@]}"; do
        [ "$a" = --force ] || kept+=("$a")
    done
    ARGS=("${kept[@]}")
    user_flag=""
    note "restart $RESTARTS: dropping --force so the run continues instead of starting over"
fi

# A checkpoint beside the result means an earlier run of this job was
# interrupted: continue it.  A result without one means an earlier run of
# this job (or the run MPMAP_OUTPUT names) finished: --resume makes the app
# check that it is complete with these arguments and exit 0 ("already
# complete") — a requeue after the app had finished (a node failure in the
# epilogue, `scontrol requeue` of a finished job, `qrerun`) is a success, not
# a refusal to overwrite; with other arguments the app refuses (exit 2).
# A requeue with neither (node failure before any checkpoint) starts afresh:
# --resume would be refused there, and nothing is lost by starting over.
RUN_FLAGS=()
had_ckpt=0
[ -e "$OUT.ckpt" ] && had_ckpt=1
if [ -n "$user_flag" ]; then
    note "keeping $user_flag from the arguments"
elif [ -e "$OUT.ckpt" ]; then
    RUN_FLAGS=(--resume)
    note "resuming from $OUT.ckpt (restart $RESTARTS)"
elif [ -e "$OUT" ]; then
    RUN_FLAGS=(--resume)
    note "$OUT exists: --resume (exit 0 if it is already complete with these arguments)"
elif [ "$RESTARTS" -gt 0 ]; then
    note "restart $RESTARTS without a checkpoint: starting from scratch"
fi

# Launchers run in the background so the trap fires at once: bash defers traps
# while a foreground command runs, which would swallow the lead time.
launcher_pid=""
term_seen=0      # the batch shell got SIGTERM
watchdog_fired=0 # PBS: our own walltime watchdog went off
watchdog_pid=""

case "$SCHEDULER" in
slurm)
    note "job $JOB_NUM on ${SLURM_JOB_NODELIST:-?}, ${SLURM_NTASKS:-?} tasks: $BIN_DIR/$APP ${ARGS[*]} ${RUN_FLAGS[*]} --output $OUT"

    # shellcheck disable=SC2317 # called by the trap
    forward_term() {
        term_seen=1
        note "SIGTERM to the batch shell: asking the ranks to checkpoint"
        # Not `kill -TERM $srun_pid`: srun answers SIGTERM by killing the step.
        # scancel reaches the step's ranks on every node of the job.
        scancel --signal=TERM "${SLURM_JOB_ID:-}" || note "scancel --signal=TERM ${SLURM_JOB_ID:-} failed"
    }
    trap forward_term TERM

    srun --mpi=pmix --kill-on-bad-exit=1 "$BIN_DIR/$APP" "${ARGS[@]}" \
        "${RUN_FLAGS[@]}" --output "$OUT" &
    launcher_pid=$!
    ;;
pbs)
    if [ -z "$NPROCS" ]; then
        if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then
            NPROCS=$(wc -l <"$PBS_NODEFILE")
        else
            NPROCS=1
        fi
    fi
    # One line per rank, on whichever nodes PBS chose.
    HOSTFILE=()
    if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then
        HOSTFILE=(--hostfile "$PBS_NODEFILE")
    fi

    # Seconds until the walltime: ask the server (covers qsub -l overrides).
    walltime=$(qstat -f "${PBS_JOBID:-none}" 2>/dev/null |
        awk -F' = ' '/Resource_List.walltime/ { print $2; exit }')
    walltime=${walltime:-$WALLTIME}
    wall_s=$(printf '%s\n' "$walltime" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')

    note "job $JOB_NUM, $NPROCS ranks, walltime $walltime: $BIN_DIR/$APP ${ARGS[*]} ${RUN_FLAGS[*]} --output $OUT"

    # shellcheck disable=SC2317 # these three are called by the traps
    stop_ranks() {
        if [ -n "$launcher_pid" ]; then
            kill -TERM "$launcher_pid" 2>/dev/null
        fi
    }
    # SIGTERM from outside (qdel, preemption, the server's own walltime kill):
    # checkpoint, but do not rerun — a deleted job must stay deleted, and a
    # job PBS requeues itself is rerun by PBS (-r y) and resumes.
    # shellcheck disable=SC2317
    on_term() {
        term_seen=1
        note "SIGTERM: asking the ranks to checkpoint"
        stop_ranks
    }
    # The watchdog signals USR1, so only its stop leads to qrerun/resubmission.
    # shellcheck disable=SC2317
    on_watchdog() {
        term_seen=1
        watchdog_fired=1
        note "$LEAD_S s before the walltime: asking the ranks to checkpoint"
        stop_ranks
    }
    trap on_term TERM
    trap on_watchdog USR1

    mpirun --mca odls_base_sigkill_timeout "$KILL_GRACE_S" -np "$NPROCS" \
        "${HOSTFILE[@]}" "$BIN_DIR/$APP" "${ARGS[@]}" "${RUN_FLAGS[@]}" \
        --output "$OUT" &
    launcher_pid=$!

    if [ "$wall_s" -gt "$LEAD_S" ]; then
        # The watchdog's trap ends its sleep too, so no stray sleep outlives the job.
        (
            trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
            sleep $((wall_s - LEAD_S)) &
            sleep_pid=$!
            wait "$sleep_pid" && kill -USR1 $$
        ) &
        watchdog_pid=$!
    fi
    ;;
esac

# Whether a file the ranks wrote is there.  Rank 0 may run on another node
# than this shell; on NFS this shell's own look-up before the launch can stay
# cached as "absent" for a while, and opening the directory revalidates it.
seen() {
    [ -e "$1" ] && return 0
    ls -a "$(dirname "$1")" >/dev/null 2>&1
    [ -e "$1" ]
}

rc=0
wait "$launcher_pid" || rc=$?
# wait returns early (>128) when the trap ran; the step is still finishing.
while [ "$rc" -gt 128 ] && kill -0 "$launcher_pid" 2>/dev/null; do
    rc=0
    wait "$launcher_pid" || rc=$?
done
if [ -n "$watchdog_pid" ]; then
    kill "$watchdog_pid" 2>/dev/null
fi
# srun has been seen to exit 0 when its step failed to launch at all.
if [ "$rc" = 0 ] && ! seen "$OUT"; then
    note "launcher reported success but $OUT does not exist"
    rc=1
fi
# mpirun reports a rank's exit 3 as 1 when it was signalled itself, so under
# PBS judge by the signal and the checkpoint.
if [ "$SCHEDULER" = pbs ] && [ "$rc" != 0 ] && [ "$term_seen" = 1 ] && seen "$OUT.ckpt"; then
    rc=3
fi

case "$rc" in
0)
    if [ "$had_ckpt" = 0 ] && [ "${RUN_FLAGS[*]}" = --resume ]; then
        note "already complete: $OUT"
    else
        note "finished: $OUT"
    fi
    ;;
3)
    if ! seen "$OUT.ckpt"; then
        note "interrupted without a checkpoint"
    elif [ "$SCHEDULER" = slurm ]; then
        if [ "$RESTARTS" -lt "$MAX_REQUEUE" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
            note "interrupted with checkpoint $OUT.ckpt: requeueing job $SLURM_JOB_ID"
            # The requeue ends this run; the job goes back to pending, same id.
            if scontrol requeue "$SLURM_JOB_ID"; then
                exit 0
            fi
            note "requeue failed; to continue: MPMAP_OUTPUT=$OUT sbatch $JOB_SCRIPT"
        else
            note "interrupted without requeue (restart $RESTARTS of at most $MAX_REQUEUE)"
        fi
    elif [ "$watchdog_fired" = 1 ]; then
        note "interrupted with checkpoint $OUT.ckpt"
        # qrerun keeps the job id (and so the result name); where users may not
        # rerun their own jobs, resubmit with the result name pinned instead.
        if [ -n "${PBS_JOBID:-}" ] && qrerun "$PBS_JOBID" 2>/dev/null; then
            note "rerun requested for $PBS_JOBID"
        elif [ -n "${PBS_JOBID:-}" ] && [ -f "$JOB_SCRIPT" ] &&
            MPMAP_OUTPUT=$OUT MPMAP_JOBS_DIR=$JOBS_DIR qsub -V "$JOB_SCRIPT"; then
            note "resubmitted $JOB_SCRIPT to continue $OUT"
        else
            note "to continue: qsub -v MPMAP_OUTPUT=$OUT $JOB_SCRIPT"
        fi
    else
        note "interrupted with checkpoint $OUT.ckpt; a rerun of this job resumes, or: qsub -v MPMAP_OUTPUT=$OUT $JOB_SCRIPT"
    fi
    ;;
*)
    note "failed with exit code $rc"
    ;;
esac
exit "$rc"
