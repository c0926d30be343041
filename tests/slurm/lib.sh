# shellcheck shell=bash
# What the SLURM tests share: pass/fail counting, a private cluster on free
# ports (scripts/slurm-local.sh), and polling of jobs, steps and files.
# Sourced by run_jobs_test.sh (one node) and run_two_node_test.sh (two).
# The caller sets ROOT (the source tree) and traps EXIT to slurm_cleanup.

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
summary() { # prints the counts; true when nothing failed
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

# Whether ports $1 .. $1+$2-1 on 127.0.0.1 are all free.
ports_free() {
    local p
    for ((p = $1; p < $1 + $2; p++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 1
    done
    return 0
}

# Chooses a private directory and a run of free ports for a cluster of $1
# nodes (slurmctld plus one slurmd each), so a developer's own cluster, a
# second copy of a test or the other SLURM test are left alone.
slurm_pick_dir_and_ports() {
    local nodes=$1 count=$(($1 + 1)) port tries=0
    export MPMAP_SLURM_DIR=${MPMAP_SLURM_TEST_DIR:-/tmp/mpmap-slurm-test.$$}
    export MPMAP_SLURM_NODES=$nodes
    port=$((17000 + ($$ % 500) * count))
    while ! ports_free "$port" "$count" && [ "$tries" -lt 50 ]; do
        port=$((port + count))
        tries=$((tries + 1))
    done
    export MPMAP_SLURM_PORT=$port
}

slurm_cleanup() {
    "$ROOT/scripts/slurm-local.sh" stop >/dev/null 2>&1 || true
}

# Starts the cluster chosen by slurm_pick_dir_and_ports and sources its
# env.sh.  Exits 77 (skip) with one line when this machine cannot run it,
# 1 when it should but does not start.
slurm_start_or_skip() {
    local out rc
    out=$("$ROOT/scripts/slurm-local.sh" start 2>&1)
    rc=$?
    case "$rc" in
    0) ;;
    2)
        echo "$out"
        echo "SKIP: slurm cannot be installed here"
        exit 77
        ;;
    4)
        echo "SKIP: $(printf '%s\n' "$out" | grep -m1 'cannot emulate' | sed 's/^slurm-local: //')"
        exit 77
        ;;
    *)
        echo "$out"
        bad "slurm-local.sh start (exit $rc)"
        summary
        exit 1
        ;;
    esac
    # shellcheck disable=SC1091
    . "$MPMAP_SLURM_DIR/env.sh"
}

job_field() { # job_field JOBID FIELD -> value from scontrol show job
    scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
h5_opens() {
    [ -s "$1" ] && h5dump -H "$1" >/dev/null 2>&1
}
wait_for() { # wait_for SECONDS command... : poll every half second
    local limit=$(($1 * 2)) i
    shift
    for ((i = 0; i < limit; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}
state_is() { [ "$(job_field "$1" JobState)" = "$2" ]; }
restarted() { [ "$(job_field "$1" Restarts)" -ge 1 ] 2>/dev/null && state_is "$1" PENDING; }
step_running() { squeue -h -s -j "$1" -o %i 2>/dev/null | grep -q "^$1\.0$"; }
# The spool of every node (one node: $DIR/spool; several: $DIR/nodes/*/spool)
# keeps a step's sockets until its slurmstepd has cleaned up.
step_gone() {
    ! compgen -G "$MPMAP_SLURM_DIR/spool/*$1.0*" >/dev/null &&
        ! compgen -G "$MPMAP_SLURM_DIR/nodes/*/spool/*$1.0*" >/dev/null
}
show_log() { [ -e "$1" ] && sed 's/^/  | /' "$1"; }
# The app opens OUT.ckpt when its sweep begins (signal handlers long set):
# from then on a SIGTERM must leave a checkpoint, whatever the machine's load.
sweep_begun() { [ -e "$1.ckpt" ]; }
