#!/usr/bin/env bash
# Runs a private SLURM cluster on this machine so mpmap's batch scripts
# (jobs/*.slurm) can be submitted and tested for real without a site cluster:
# one node, or several nodes emulated on this one machine.  Everything
# (config, munge key and socket, state, spool, logs, pid files) lives in one
# directory, so it never touches /etc/slurm or a system munged and `stop`
# leaves nothing behind.
#
#   scripts/slurm-local.sh start [--nodes N]
#                                   install slurm-wlm+munge if missing, start
#                                   munged, slurmctld and one slurmd per node;
#                                   wait for the nodes to be idle; print
#                                   `export SLURM_CONF=..`
#   scripts/slurm-local.sh stop     cancel jobs, stop the daemons, remove the dir
#   scripts/slurm-local.sh status   show daemons, sinfo and squeue
#
#   eval "$(scripts/slurm-local.sh start)"   # or: . "$MPMAP_SLURM_DIR/env.sh"
#
# One node is this machine under its own host name.  With N >= 2 the nodes
# are n1..nN: each slurmd runs in a mount and UTS namespace of its own
# (unshare), so its jobs see the node's name as their host name and a TmpFS
# of their own (two slurmd sharing one collide on PMIx's per-job directory
# and every MPI step fails), while all of them listen on 127.0.0.1, each on
# its own port.  `srun -N 2` then puts ranks on n1 and n2, and Open MPI
# treats them as two nodes.  Every node offers all of this machine's CPUs, so
# N nodes oversubscribe it N times.
#
# Environment: MPMAP_SLURM_DIR (default /tmp/mpmap-slurm), MPMAP_SLURM_PORT
# (slurmctld port, default 6817; the slurmd of node i listens on that plus
# i), MPMAP_SLURM_NODES (node count, default 1; --nodes wins),
# MPMAP_SLURM_WAIT (seconds to wait for the nodes, default 60).
# Exit codes: 0 ok, 1 failure, 2 slurm/munge missing and cannot be installed
# (so tests can skip), 3 `status` found no running cluster, 4 several nodes
# asked for but this machine cannot give a process its own mount and UTS
# namespace (so tests can skip).
#
# Needs root: the daemons run as root (SlurmUser=root) because the machines
# this is meant for are containers without systemd or a slurm user.
set -euo pipefail

DIR=${MPMAP_SLURM_DIR:-/tmp/mpmap-slurm}
CTLD_PORT=${MPMAP_SLURM_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1))
WAIT_S=${MPMAP_SLURM_WAIT:-60}
NODES=${MPMAP_SLURM_NODES:-1}
CONF="$DIR/etc/slurm.conf"
SOCK="$DIR/munge/munge.socket"
HOST=$(hostname -s)

log() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The node names: this machine's for one node, n1..nN for several.
node_names() {
    local i
    if [ "$NODES" = 1 ]; then
        echo "$HOST"
    else
        for ((i = 1; i <= NODES; i++)); do echo "n$i"; done
    fi
}

# The slurmd pid files of the cluster in $DIR, whatever its node count
# (stop and status are not told it).
slurmd_pid_files() {
    local f
    for f in "$DIR"/run/slurmd.pid "$DIR"/nodes/*/slurmd.pid; do
        [ -e "$f" ] && echo "$f"
    done
    return 0
}

# True if the pid in file $1 names a live process.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Debian 12 ships slurm 22.05 as slurm-wlm (slurmctld+slurmd+clients+plugins,
# including mpi_pmix which Debian's Open MPI needs since it has PMIx only).
ensure_installed() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sbatch srun sinfo scontrol munged mungekey; do
        command -v "$cmd" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" = 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "slurm-wlm/munge are not installed and cannot be installed (need root and apt-get)"
        exit 2
    fi
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run may hold the dpkg lock; wait for it instead of failing.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! "${apt[@]}" install --no-install-recommends slurm-wlm munge >"/tmp/slurm-local-apt.$$.log" 2>&1; then
        "${apt[@]}" update >>"/tmp/slurm-local-apt.$$.log" 2>&1 || true
        if ! "${apt[@]}" install --no-install-recommends slurm-wlm munge >>"/tmp/slurm-local-apt.$$.log" 2>&1; then
            tail -n 5 "/tmp/slurm-local-apt.$$.log" >&2
            log "apt-get install slurm-wlm munge failed (log: /tmp/slurm-local-apt.$$.log)"
            exit 2
        fi
    fi
    rm -f "/tmp/slurm-local-apt.$$.log"
    for cmd in slurmctld slurmd sbatch srun munged mungekey; do
        command -v "$cmd" >/dev/null 2>&1 || { log "$cmd still missing after install"; exit 2; }
    done
}

# The slurmd settings and the node and partition lines of slurm.conf.
node_conf() {
    local cpus=$1 mem=$2 i
    if [ "$NODES" = 1 ]; then
        cat <<EOF
SlurmdPort=$SLURMD_PORT
SlurmdSpoolDir=$DIR/spool
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
        return
    fi
    # Every slurmd sees its own $DIR/nodes/nI mounted on $DIR/node
    # (start_slurmd), so these paths are per node: spool (step sockets), pid
    # file, log and TmpFS; from outside they are read under $DIR/nodes.
    cat <<EOF
SlurmdSpoolDir=$DIR/node/spool
SlurmdPidFile=$DIR/node/slurmd.pid
SlurmdLogFile=$DIR/node/slurmd.log
TmpFS=$DIR/node/tmp
# $NODES nodes on one machine: one host name and address, a port each.
EOF
    for ((i = 1; i <= NODES; i++)); do
        echo "NodeName=n$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((CTLD_PORT + i))" \
            "CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=n[1-$NODES] Default=YES MaxTime=INFINITE State=UP"
}

write_conf() {
    local cpus mem
    cpus=$(nproc)
    # Leave a tenth of the memory to the system so slurmd does not report less
    # than configured (which would drain the node).
    mem=$(free -m | awk '/^Mem:/ { printf "%d", $2 * 0.9 }')
    cat >"$CONF" <<EOF
# Generated by scripts/slurm-local.sh: a private $NODES-node cluster.
ClusterName=mpmap
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
# A private munged: its own key and socket, so no system munge is needed.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$DIR/state
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in the container: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Debian's Open MPI is built against PMIx only (no PMI2), so srun must use pmix.
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
# Bring the node back by itself after a daemon restart.
ReturnToService=2
# Generous timeouts: a busy 2-core machine must not mark its only node down.
SlurmctldTimeout=300
SlurmdTimeout=300
MessageTimeout=30
InactiveLimit=0
KillWait=30
Waittime=0
# Keep finished jobs visible to scontrol for a while (no slurmdbd/sacct here).
MinJobAge=600
JobRequeue=1
$(node_conf "$cpus" "$mem")
EOF
    printf 'export SLURM_CONF=%s\n' "$CONF" >"$DIR/env.sh"
}

tail_logs() {
    local f
    for f in "$DIR"/log/munged.log "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log \
        "$DIR"/nodes/*/slurmd.log; do
        [ -e "$f" ] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
}

running() {
    local f files
    pid_alive "$DIR/run/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" || return 1
    mapfile -t files < <(slurmd_pid_files)
    for f in "${files[@]}"; do
        pid_alive "$f" || return 1
    done
    [ "${#files[@]}" = "$NODES" ]
}

# "idle" when the cluster has exactly the wanted nodes and all are idle,
# else every node's state ("n1:idle n2:down*").
nodes_state() {
    local got want
    got=$(SLURM_CONF="$CONF" sinfo -h -N -o '%N:%T' 2>/dev/null | sort -u | tr '\n' ' ')
    want=$(node_names | sed 's/$/:idle/' | sort | tr '\n' ' ')
    if [ -n "$got" ] && [ "$got" = "$want" ]; then echo idle; else echo "${got% }"; fi
}

# Whether this machine lets a process have its own mount and UTS namespace
# and set its host name there (a container may forbid it).
can_unshare() {
    command -v unshare >/dev/null 2>&1 &&
        unshare --mount --uts sh -c 'hostname mpmap-probe && mount --bind /tmp /tmp' \
            </dev/null >/dev/null 2>&1
}

# Starts the slurmd of node $1 (n1, n2, ...).  In its own UTS namespace the
# node's name is the host name its jobs see; in its own mount namespace
# $DIR/nodes/$1 is its $DIR/node.  Namespaces only, not a PID namespace:
# the pid file holds the daemon's pid as everyone sees it.
start_slurmd() {
    local node=$1
    mkdir -p "$DIR/node" "$DIR/nodes/$node"/{spool,tmp}
    chmod 0700 "$DIR/nodes/$node/spool"
    chmod 1777 "$DIR/nodes/$node/tmp"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --uts bash -c 'hostname "$1" && mount --bind "$2" "$3" &&
        exec slurmd -f "$4" -N "$1"' slurmd-ns "$node" "$DIR/nodes/$node" "$DIR/node" "$CONF" \
        </dev/null >/dev/null 2>&1
}

do_start() {
    ensure_installed
    [[ "$NODES" =~ ^[1-9][0-9]?$ ]] || die "--nodes: expected a count from 1 to 99, got '$NODES'"
    if [ "$NODES" != 1 ] && ! can_unshare; then
        log "cannot emulate $NODES nodes here: unshare --mount --uts is missing or not permitted"
        exit 4
    fi
    if [ -e "$CONF" ] && running && [ "$(nodes_state)" = idle ]; then
        log "already running in $DIR"
        printf 'export SLURM_CONF=%s\n' "$CONF"
        return 0
    fi
    # Leftovers of a crashed start: clear them so the new cluster is fresh.
    if [ -e "$DIR" ]; then
        do_stop_quiet
    fi
    [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
    mkdir -p "$DIR"/{etc,munge,state,spool,log,run}
    # munged refuses group/world-writable directories on its paths.
    chmod 0700 "$DIR" "$DIR"/munge "$DIR"/state "$DIR"/spool
    chmod 0755 "$DIR"/etc "$DIR"/log "$DIR"/run
    write_conf
    # Every process started below carries SLURM_CONF, so the clients find the
    # private cluster, and MPMAP_SLURM_DAEMON, so `stop` can recognise strays.
    export SLURM_CONF="$CONF"
    export MPMAP_SLURM_DAEMON="$DIR"

    mungekey --create --keyfile="$DIR/munge/munge.key" --bits=1024 >/dev/null 2>&1 ||
        die "mungekey could not create $DIR/munge/munge.key"
    chmod 0600 "$DIR/munge/munge.key"
    # munged daemonises itself and writes its pid file; --force lets it run
    # as root and with the seed file in a private directory.
    munged --force --socket="$SOCK" --key-file="$DIR/munge/munge.key" \
        --log-file="$DIR/log/munged.log" --pid-file="$DIR/run/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" </dev/null >/dev/null 2>&1 ||
        { tail_logs; die "munged did not start"; }
    for _ in $(seq 1 50); do
        [ -S "$SOCK" ] && break
        sleep 0.1
    done
    munge -S "$SOCK" -n </dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 ||
        { tail_logs; die "munge round trip through $SOCK failed"; }

    # The daemons fork into the background on their own; stdio goes to
    # /dev/null so a caller capturing our output (ctest, $(...)) does not hang.
    # -i ignores saved state from an earlier cluster in the same directory.
    slurmctld -f "$CONF" -i </dev/null >/dev/null 2>&1 ||
        { tail_logs; die "slurmctld did not start"; }
    local node
    if [ "$NODES" = 1 ]; then
        slurmd -f "$CONF" </dev/null >/dev/null 2>&1 ||
            { tail_logs; die "slurmd did not start"; }
    else
        for node in $(node_names); do
            start_slurmd "$node" || { tail_logs; die "slurmd of node $node did not start"; }
        done
    fi

    local state=""
    for _ in $(seq 1 $((WAIT_S * 2))); do
        state=$(nodes_state || true)
        [ "$state" = idle ] && break
        sleep 0.5
    done
    if [ "$state" != idle ]; then
        log "nodes are '${state:-unknown}' after ${WAIT_S}s, not all idle"
        tail_logs
        exit 1
    fi
    if [ "$NODES" = 1 ]; then
        log "one-node cluster up in $DIR (node $HOST, $(nproc) CPUs)"
    else
        log "$NODES-node cluster up in $DIR (nodes n[1-$NODES] on $HOST, $(nproc) CPUs each)"
    fi
    printf 'export SLURM_CONF=%s\n' "$CONF"
}

# Sends TERM to the live pids named by the pid files given, then KILL to
# those that outlive a short grace period.  All at once: a slurm daemon takes
# about two seconds to exit.
stop_pids() {
    local f pids=() pid left
    for f in "$@"; do
        pid_alive "$f" && pids+=("$(cat "$f")")
    done
    [ "${#pids[@]}" -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 1 50); do
        left=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && left=1
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

do_stop_quiet() {
    local files pid p env
    if [ -e "$CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
        # Cancel jobs first so slurmstepd and the tasks end through slurm.
        SLURM_CONF="$CONF" scancel --full --quiet --signal=KILL --state=running 2>/dev/null || true
        SLURM_CONF="$CONF" scancel --quiet --state=pending 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(SLURM_CONF="$CONF" squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    # The slurmd first, while slurmctld and munged still answer them.
    mapfile -t files < <(slurmd_pid_files)
    stop_pids "${files[@]}"
    stop_pids "$DIR/run/slurmctld.pid" "$DIR/run/munged.pid"
    # Processes left behind (slurmstepd outlives slurmd, and tasks outlive a
    # killed slurmstepd under proctrack/linuxproc) are recognised exactly by
    # their environment: the daemons' children carry MPMAP_SLURM_DAEMON, job
    # tasks carry a SLURM_JOB_ID together with this cluster's SLURM_CONF.
    # The caller itself may have SLURM_CONF set, so that alone is not enough.
    if [ -d /proc ]; then
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ] && continue
            env=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null) || continue
            if printf '%s\n' "$env" | grep -qxF "MPMAP_SLURM_DAEMON=$DIR" ||
                { printf '%s\n' "$env" | grep -qxF "SLURM_CONF=$CONF" &&
                    printf '%s\n' "$env" | grep -q '^SLURM_JOB_ID='; }; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    rm -rf "$DIR"
}

do_stop() {
    if [ ! -e "$DIR" ]; then
        log "not running ($DIR absent)"
        return 0
    fi
    do_stop_quiet
    log "stopped and removed $DIR"
}

do_status() {
    local f name rc=0 files
    mapfile -t files < <(slurmd_pid_files)
    [ "${#files[@]}" -gt 0 ] || files=("$DIR/run/slurmd.pid")
    for f in "$DIR/run/munged.pid" "$DIR/run/slurmctld.pid" "${files[@]}"; do
        name=$(basename "$f" .pid)
        # A node's slurmd: $DIR/nodes/<node>/slurmd.pid
        [ "$(basename "$(dirname "$(dirname "$f")")")" = nodes ] &&
            name="slurmd $(basename "$(dirname "$f")")"
        if pid_alive "$f"; then
            printf '%-10s running (pid %s)\n' "$name" "$(cat "$f")"
        else
            printf '%-10s not running\n' "$name"
            rc=3
        fi
    done
    if [ "$rc" = 0 ]; then
        printf 'export SLURM_CONF=%s\n' "$CONF"
        SLURM_CONF="$CONF" sinfo -N -l || rc=3
        SLURM_CONF="$CONF" squeue || rc=3
    fi
    return "$rc"
}

usage() {
    echo "usage: $0 start [--nodes N] | stop | status" >&2
    exit 1
}

cmd=${1:-}
[ "$#" -gt 0 ] && shift
while [ "$#" -gt 0 ]; do
    case "$cmd $1" in
    "start --nodes") [ "$#" -ge 2 ] || usage; NODES=$2; shift 2 ;;
    "start --nodes="*) NODES=${1#--nodes=}; shift ;;
    *) usage ;;
    esac
done
case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) usage ;;
esac
