#!/usr/bin/env bash
# End-to-end test of mpmap's batch scripts: starts a private one-node SLURM
# cluster (scripts/slurm-local.sh), submits every jobs/*.slurm script with a
# tiny problem and checks the job state, the job-id-named log and result, then
# interrupts a longer run the way the time-limit signal does and checks that
# the job leaves a checkpoint, requeues itself and finishes with --resume.
# The PBS scripts get a syntax and directive check plus one run outside PBS.
#
#   tests/slurm/run_jobs_test.sh BUILD_DIR
#
# Binaries come from BUILD_DIR/apps (MPMAP_SLURM_TEST_BIN overrides it).
# MPMAP_SLURM_TEST_LONG_ARGS: arguments that make the interrupted app run for
# 10-30 s on 2 ranks (default: a kde_sweep with cross-validation, about 20 s
# of CPU). The test signals it once its checkpoint file exists, i.e. once the
# sweep has begun, never after a fixed delay.
# MPMAP_SLURM_TEST_TIMELIMIT=1 adds a real time-limit run (about 2 more minutes).
# Exit: 0 all passed, 1 a check failed, 77 slurm cannot be installed or no app
# binary exists (skip).
set -u

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD_DIR=$(cd "$1" && pwd) || exit 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${MPMAP_SLURM_TEST_BIN:-$BUILD_DIR/apps}
APPS=(kde_sweep param_sweep mc_pi knn_query task_list)
LONG_ARGS=${MPMAP_SLURM_TEST_LONG_ARGS:---samples 10000 --widths 0.05:1.0:1000 --kernel gaussian --cv 5 --quiet}

# Small problems: a second or two each on 2 ranks.
small_args() {
    case "$1" in
    kde_sweep) echo "--samples 2000 --widths 0.1:1.0:8 --quiet" ;;
    param_sweep) echo "--model lorenz --param rho=0:50:6 --param sigma=5:15:3 --length 2000 --quiet" ;;
    mc_pi) echo "--samples 1e7 --tasks 100 --quiet" ;;
    knn_query) echo "--points 20000 --queries-count 1000 -k 5 --quiet" ;;
    task_list) echo "--tasks $WORK/task_list_tasks.txt --schedule dynamic --quiet" ;;
    esac
}

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$ROOT/tests/slurm/lib.sh"
slurm_pick_dir_and_ports 1
trap slurm_cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- PBS scripts: no PBS server on Debian, so check syntax and directives ---
# Directives must come before the first command (qsub stops reading there) and
# use options and resources PBS Pro knows, with well-formed values.
pbs_directives_ok() {
    local f=$1 line seen_cmd=0 bad_lines=0 opt val
    while IFS= read -r line; do
        case "$line" in
        '#!'* | '') continue ;;
        '#PBS'*)
            if [ "$seen_cmd" = 1 ]; then
                echo "  $f: directive after the first command: $line"
                bad_lines=$((bad_lines + 1))
            fi
            opt=$(printf '%s\n' "$line" | awk '{ print $2 }')
            val=$(printf '%s\n' "$line" | cut -d' ' -f3-)
            case "$opt" in
            -N) [[ "$val" =~ ^[A-Za-z][A-Za-z0-9_.-]{0,235}$ ]] || { echo "  $f: bad -N $val"; bad_lines=$((bad_lines + 1)); } ;;
            -j) [[ "$val" =~ ^(oe|eo|n)$ ]] || { echo "  $f: bad -j $val"; bad_lines=$((bad_lines + 1)); } ;;
            -r) [[ "$val" =~ ^[yn]$ ]] || { echo "  $f: bad -r $val"; bad_lines=$((bad_lines + 1)); } ;;
            -l)
                if [[ "$val" =~ ^walltime=([0-9]+:)?([0-9]+:)?[0-9]+$ ]] ||
                    [[ "$val" =~ ^select=[0-9]+(:(ncpus|mpiprocs|ompthreads|mem|ngpus)=[0-9]+[kmgt]?b?)+$ ]] ||
                    [[ "$val" =~ ^place=(free|pack|scatter|vscatter)(:(excl|shared|exclhost))?$ ]]; then
                    :
                else
                    echo "  $f: bad resource -l $val"
                    bad_lines=$((bad_lines + 1))
                fi
                ;;
            -q | -A | -m | -M | -o | -e | -W | -v | -V) ;;
            *)
                echo "  $f: unknown directive $line"
                bad_lines=$((bad_lines + 1))
                ;;
            esac
            ;;
        '#'*) continue ;;
        *) seen_cmd=1 ;;
        esac
    done <"$f"
    grep -q '^#PBS -l walltime=' "$f" && grep -q '^#PBS -l select=' "$f" &&
        grep -q '^#PBS -r y' "$f" && [ "$bad_lines" = 0 ]
}

for app in "${APPS[@]}"; do
    check "jobs/$app.pbs: bash -n" bash -n "$ROOT/jobs/$app.pbs"
    check "jobs/$app.pbs: #PBS directives" pbs_directives_ok "$ROOT/jobs/$app.pbs"
    check "jobs/$app.slurm: bash -n" bash -n "$ROOT/jobs/$app.slurm"
done

# --- the cluster ---
have_app=0
for app in "${APPS[@]}"; do
    [ -x "$BIN/$app" ] && have_app=1
done
if [ "$have_app" = 0 ]; then
    echo "SKIP: no app binary in $BIN"
    exit 77
fi

slurm_start_or_skip
ok "slurm-local.sh start: one-node cluster idle (port $MPMAP_SLURM_PORT)"
check "srun --mpi=list offers pmix" bash -c 'srun --mpi=list 2>&1 | grep -qw pmix'

WORK=$MPMAP_SLURM_DIR/work
mkdir -p "$WORK"
cd "$WORK" || exit 1
export MPMAP_BIN=$BIN
# Root runs the jobs here; Open MPI needs these to accept that.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# Whether every value of an integer dataset is 0 (task_list's /status).
h5_all_zero() {
    /usr/bin/python3 -c 'import sys, h5py; sys.exit(int(h5py.File(sys.argv[1], "r")[sys.argv[2]][...].any()))' "$1" "$2"
}

# --- every app's batch script with a tiny problem ---
# task_list's: 20 short commands, the last one failing (recorded; the job succeeds).
{ for i in $(seq 1 19); do echo "echo task $i; sleep 0.05"; done; echo "exit 3"; } \
    >"$WORK/task_list_tasks.txt"
for app in "${APPS[@]}"; do
    if [ ! -x "$BIN/$app" ]; then
        echo "SKIP $app: no $BIN/$app"
        continue
    fi
    # shellcheck disable=SC2046
    jid=$(timeout 300 sbatch --wait --parsable --ntasks=2 --time=5 \
        "$ROOT/jobs/$app.slurm" $(small_args "$app"))
    rc=$?
    jid=${jid%%;*}
    check "$app: sbatch --wait exit 0 (job $jid)" [ "$rc" = 0 ]
    check "$app: JobState=COMPLETED ExitCode=0:0" \
        [ "$(job_field "$jid" JobState) $(job_field "$jid" ExitCode)" = "COMPLETED 0:0" ]
    check "$app: log $app-$jid.log exists" [ -s "$WORK/$app-$jid.log" ]
    check "$app: result ${app}_$jid.h5 opens" h5_opens "$WORK/${app}_$jid.h5"
    [ "$rc" = 0 ] || show_log "$WORK/$app-$jid.log"
    if [ "$app" = task_list ]; then
        check "task_list: joblog task_list_$jid.h5.joblog has a header and 20 lines" \
            [ "$(wc -l <"$WORK/task_list_$jid.h5.joblog")" = 21 ]
        check "task_list: joblog shows the failing command's exit code 3" \
            awk -F'\t' '$1 == 19 && $6 == 3 { found = 1 } END { exit !found }' \
            "$WORK/task_list_$jid.h5.joblog"
    fi
done

# --- interrupted run: checkpoint, exit 3, requeue, --resume ---
long_app=""
for app in kde_sweep mc_pi param_sweep knn_query; do
    if [ -x "$BIN/$app" ]; then
        long_app=$app
        break
    fi
done
# shellcheck disable=SC2086
jid=$(sbatch --parsable --ntasks=2 --time=10 "$ROOT/jobs/$long_app.slurm" $LONG_ARGS)
jid=${jid%%;*}
log=$WORK/$long_app-$jid.log
out=$WORK/${long_app}_$jid.h5
if wait_for 60 step_running "$jid" && wait_for 120 sweep_begun "$out"; then
    # What --signal=TERM@120 does before the time limit: SIGTERM to the steps.
    scancel --signal=TERM "$jid"
    check "$long_app requeue: job $jid requeued itself after SIGTERM" wait_for 60 restarted "$jid"
    check "$long_app requeue: checkpoint ${long_app}_$jid.h5.ckpt left" [ -e "$out.ckpt" ]
    check "$long_app requeue: app printed 'interrupted: D/N tasks done'" grep -q 'interrupted: [0-9]*/[0-9]* tasks done' "$log"
    check "$long_app requeue: srun saw exit code 3" grep -q 'exit code 3' "$log"
    # Slurm holds a requeued job back for about two minutes; skip the wait,
    # but only once the old step's slurmstepd has cleaned up: a new step
    # 0 cannot bind its PMIx socket while the old one's still exists.
    wait_for 60 step_gone "$jid"
    scontrol update JobId="$jid" StartTime=now
    check "$long_app requeue: second run completed" wait_for 400 state_is "$jid" COMPLETED
    check "$long_app requeue: second run used --resume" grep -q -- '--resume --output' "$log"
    check "$long_app requeue: ExitCode=0:0, Restarts=1" \
        [ "$(job_field "$jid" ExitCode) $(job_field "$jid" Restarts)" = "0:0 1" ]
    check "$long_app requeue: result ${long_app}_$jid.h5 opens" h5_opens "$out"
else
    bad "$long_app requeue: job $jid never started its step or its sweep"
fi
if [ "$failed" != 0 ]; then show_log "$log"; fi

# --- the same through the batch shell (what --signal=B:TERM would do) ---
# shellcheck disable=SC2086
jid=$(sbatch --parsable --ntasks=2 --time=10 "$ROOT/jobs/$long_app.slurm" $LONG_ARGS)
jid=${jid%%;*}
log=$WORK/$long_app-$jid.log
if wait_for 60 step_running "$jid" && wait_for 120 sweep_begun "$WORK/${long_app}_$jid.h5"; then
    scancel --batch --signal=TERM "$jid"
    check "$long_app batch-shell SIGTERM: relayed, checkpointed, requeued" wait_for 60 restarted "$jid"
    check "$long_app batch-shell SIGTERM: checkpoint left" [ -e "$WORK/${long_app}_$jid.h5.ckpt" ]
    scancel "$jid"
else
    bad "$long_app batch-shell SIGTERM: job $jid never started its step or its sweep"
fi

# --- optionally the real thing: a 1-minute limit with the signal lead ---
if [ "${MPMAP_SLURM_TEST_TIMELIMIT:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    jid=$(sbatch --parsable --ntasks=2 --time=1 --signal=TERM@55 \
        "$ROOT/jobs/$long_app.slurm" $LONG_ARGS)
    jid=${jid%%;*}
    check "$long_app time limit: requeued before the limit" wait_for 100 restarted "$jid"
    check "$long_app time limit: checkpoint left" [ -e "$WORK/${long_app}_$jid.h5.ckpt" ]
    wait_for 60 step_gone "$jid"
    # Give the resumed run room, or it is signalled again at once and loops.
    scontrol update JobId="$jid" TimeLimit=10
    scontrol update JobId="$jid" StartTime=now
    check "$long_app time limit: resumed run completed" wait_for 400 state_is "$jid" COMPLETED
fi

# --- task_list: interrupted (its commands signalled too), requeued, --resume-failed ---
if [ -x "$BIN/task_list" ]; then
    for i in $(seq 0 39); do echo "sleep 0.5; echo $i"; done >"$WORK/task_list_long.txt"
    jid=$(sbatch --parsable --ntasks=2 --time=10 "$ROOT/jobs/task_list.slurm" \
        --tasks "$WORK/task_list_long.txt" --schedule dynamic --quiet)
    jid=${jid%%;*}
    log=$WORK/task_list-$jid.log
    out=$WORK/task_list_$jid.h5
    if wait_for 60 step_running "$jid" && wait_for 120 sweep_begun "$out"; then
        scancel --signal=TERM "$jid"
        check "task_list requeue: job $jid requeued itself after SIGTERM" wait_for 60 restarted "$jid"
        check "task_list requeue: checkpoint and tails kept" test -e "$out.ckpt" -a -e "$out.tails"
        wait_for 60 step_gone "$jid"
        scontrol update JobId="$jid" StartTime=now
        check "task_list requeue: second run completed" wait_for 400 state_is "$jid" COMPLETED
        check "task_list requeue: every task is in the joblog" \
            [ "$(awk -F'\t' 'NR > 1 { print $1 }' "$out.joblog" | sort -u | wc -l)" = 40 ]
        # Commands the signal reached are recorded with /status -3; rerun them.
        MPMAP_OUTPUT=$out timeout 300 sbatch --wait --ntasks=2 --time=5 \
            "$ROOT/jobs/task_list.slurm" --tasks "$WORK/task_list_long.txt" --resume-failed \
            --quiet >/dev/null
        check "task_list --resume-failed job: exit 0" [ "$?" = 0 ]
        check "task_list --resume-failed job: every /status is 0" h5_all_zero "$out" /status
    else
        bad "task_list requeue: job $jid never started its step or its sweep"
    fi
    if [ "$failed" != 0 ]; then show_log "$log"; fi
fi

# --- a PBS script outside PBS (mpirun on this machine) ---
if [ -x "$BIN/$long_app" ]; then
    # shellcheck disable=SC2086
    env -u SLURM_CONF -u SLURM_JOB_ID MPMAP_NPROCS=2 MPMAP_OUTPUT="$WORK/pbs_local.h5" \
        MPMAP_ARGS="$(small_args "$long_app")" \
        timeout 120 bash "$ROOT/jobs/$long_app.pbs" >"$WORK/pbs_local.log" 2>&1
    rc=$?
    check "jobs/$long_app.pbs runs with mpirun outside PBS" [ "$rc" = 0 ]
    check "jobs/$long_app.pbs result opens" h5_opens "$WORK/pbs_local.h5"
    [ "$rc" = 0 ] || show_log "$WORK/pbs_local.log"
fi

summary
