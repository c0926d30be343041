#!/bin/sh
# mpirun on an emulated multi-node cluster on this one machine.
#
#   mpirun_cluster.sh NODES R1,R2,...,RNODES APP [ARGS...]
#
# runs APP on NODES emulated nodes named mpmap-n1 ... mpmap-nNODES with R1 ranks
# on the first, R2 on the second, ... (ranks 0..R1-1 on mpmap-n1, and so on).
# Each node is a UTS namespace with its own host name, created by agent.sh,
# which Open MPI's rsh launcher uses instead of ssh; see agent.sh.
#
# What it does:
#   - adds "127.0.0.(100+k) mpmap-nk" to /etc/hosts when the name does not
#     resolve yet (idempotent, under a lock; needs root), so that Open MPI can
#     resolve the node names and does not mistake them for this host;
#   - writes a hostfile with "mpmap-nk slots=Rk" lines (under
#     ${TMPDIR:-/tmp}/mpmap-cluster, one file per layout, rewritten atomically);
#   - execs mpirun (so signals, pid and exit status are mpirun's own) with
#       --mca plm_rsh_agent agent.sh --mca plm_rsh_no_tree_spawn 1
#       --mca btl self,vader,tcp --mca btl_tcp_if_include lo
#       --mca oob_tcp_if_include lo --map-by slot --bind-to none --oversubscribe
#     : every byte of MPI and of Open MPI's own traffic stays on loopback.
#     No PML or MTL is chosen, so the apps see the environment a real
#     multi-node job gives them.
#   - runs mpirun in a network namespace of its own that has only a loopback
#     interface, when the machine allows it (MPMAP_CLUSTER_NETNS=0: don't);
#   - sets OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 for root.
#
# Environment: MPMAP_MPIEXEC (default: mpirun on PATH); MPMAP_CLUSTER_MPIRUN_ARGS
# (extra mpirun options, word-split, placed before APP).
# Exit status: mpirun's; 2 for bad usage; 77 when the machine cannot emulate
# nodes (no unshare, no permission for a UTS namespace, /etc/hosts not writable).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
agent="$here/agent.sh"

usage() {
    echo "usage: mpirun_cluster.sh NODES R1,R2,...,RNODES APP [ARGS...]" >&2
    exit 2
}
[ $# -ge 3 ] || usage
nodes=$1
layout=$2
shift 2
case "$nodes" in ''|*[!0-9]*) usage ;; esac
if [ "$nodes" -lt 1 ] || [ "$nodes" -gt 150 ]; then usage; fi

# --- the rank counts ---------------------------------------------------------
old_ifs=$IFS
IFS=,
set -f
# shellcheck disable=SC2086
set -- $layout -- "$@"
set +f
IFS=$old_ifs
counts=""
total=0
k=0
while [ "$1" != "--" ]; do
    case "$1" in ''|*[!0-9]*) echo "mpirun_cluster.sh: bad rank count '$1' in '$layout'" >&2; exit 2 ;; esac
    [ "$1" -ge 1 ] || { echo "mpirun_cluster.sh: every node needs at least one rank" >&2; exit 2; }
    counts="$counts $1"
    total=$((total + $1))
    k=$((k + 1))
    shift
done
shift
[ "$k" -eq "$nodes" ] || { echo "mpirun_cluster.sh: $nodes nodes but $k rank counts in '$layout'" >&2; exit 2; }
[ $# -ge 1 ] || usage

# --- can this machine emulate nodes? ----------------------------------------
if ! command -v unshare >/dev/null 2>&1; then
    echo "mpirun_cluster.sh: unshare(1) not found (util-linux): cannot emulate nodes" >&2
    exit 77
fi
if ! unshare --uts -- /bin/sh -c 'hostname mpmap-probe' >/dev/null 2>&1; then
    echo "mpirun_cluster.sh: cannot create a UTS namespace and set its host name (needs root or CAP_SYS_ADMIN): cannot emulate nodes" >&2
    exit 77
fi

# --- node names resolve ------------------------------------------------------
missing=""
i=1
while [ "$i" -le "$nodes" ]; do
    getent hosts "mpmap-n$i" >/dev/null 2>&1 || missing="$missing $i"
    i=$((i + 1))
done
if [ -n "$missing" ]; then
    if [ ! -w /etc/hosts ]; then
        echo "mpirun_cluster.sh: mpmap-n1..n$nodes do not resolve and /etc/hosts is not writable: cannot emulate nodes" >&2
        exit 77
    fi
    # Under a lock, re-checked: concurrent runs add each name once.
    (
        flock 9 2>/dev/null || true
        for i in $missing; do
            if ! grep -Eq "^[^#]*[[:space:]]mpmap-n$i([[:space:]]|\$)" /etc/hosts; then
                printf '127.0.0.%d\tmpmap-n%d\t# mpmap emulated cluster (tests/cluster)\n' \
                    $((100 + i)) "$i" >>/etc/hosts
            fi
        done
    ) 9>>/tmp/.mpmap-cluster-hosts.lock
fi

# --- hostfile ----------------------------------------------------------------
dir="${TMPDIR:-/tmp}/mpmap-cluster"
mkdir -p "$dir"
name=$(echo "$counts" | sed 's/^ //; s/ /-/g')
hostfile="$dir/hosts.$name"
tmp=$(mktemp "$dir/.hosts.XXXXXX")
i=1
for c in $counts; do
    echo "mpmap-n$i slots=$c" >>"$tmp"
    i=$((i + 1))
done
mv -f "$tmp" "$hostfile"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpiexec=${MPMAP_MPIEXEC:-mpirun}

# A network namespace of its own with only the loopback interface, when the
# machine allows it: then nothing but loopback exists for Open MPI to use, and
# its listening sockets (the TCP BTL binds to the wildcard address) cannot be
# reached from outside. The node namespaces made by agent.sh inherit it.
# MPMAP_CLUSTER_NETNS=0 keeps the machine's network namespace (the interface
# selection below still keeps the traffic on loopback).
netns=""
if [ "${MPMAP_CLUSTER_NETNS:-1}" != 0 ] && command -v ip >/dev/null 2>&1 &&
    unshare --net -- /bin/sh -c 'ip link set lo up' >/dev/null 2>&1; then
    netns=1
fi

# shellcheck disable=SC2086
set -- "$mpiexec" -n "$total" --hostfile "$hostfile" \
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
    --map-by slot --bind-to none --oversubscribe \
    ${MPMAP_CLUSTER_MPIRUN_ARGS:-} "$@"
if [ -n "$netns" ]; then
    # unshare without --fork execs: mpirun keeps this script's pid.
    exec unshare --net -- /bin/sh -c 'ip link set lo up && exec "$@"' mpirun_cluster "$@"
fi
exec "$@"
