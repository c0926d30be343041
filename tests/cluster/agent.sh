#!/bin/sh
# Open MPI rsh/ssh launch agent for an emulated cluster on one machine.
#
# Open MPI's rsh launcher calls its agent like ssh:  agent [OPTIONS] HOST COMMAND...
# Instead of logging in to HOST, this agent runs COMMAND (Open MPI's orted,
# which then starts the ranks of HOST) in a new UTS namespace whose host name
# is HOST. Every process started from there -- the orted and its ranks --
# reports gethostname() == HOST, so Open MPI treats each host of the hostfile
# as a separate node: MPI_COMM_TYPE_SHARED splits by host, the shared-memory
# BTL (vader) is used only inside a host, and the ranks of different hosts talk
# over TCP. Only the UTS namespace is new: the network (loopback), /dev/shm,
# /tmp and the file system stay shared, so every byte of MPI traffic goes over
# the loopback interface (see mpirun_cluster.sh for the interface selection).
#
# Needs root (or CAP_SYS_ADMIN) for unshare --uts; exits 255 (as ssh does when
# it cannot connect) with a message when the namespace cannot be created.
set -u

# ssh-style options before the host name (Open MPI passes none to a custom
# agent, but accept the usual ones so that "-x" or "-o Opt=val" do no harm).
while [ $# -gt 0 ]; do
    case "$1" in
        -o|-p|-l|-i|-F|-E|-b|-c|-m|-J) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "mpmap cluster agent: usage: agent.sh [options] HOST COMMAND..." >&2
    exit 255
fi
host=$1
shift

# ssh hands the remote shell the words of the command joined by spaces.
# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --uts -- /bin/sh -c '
    hostname "$1" || { echo "mpmap cluster agent: cannot set host name $1" >&2; exit 255; }
    shift
    exec /bin/sh -c "$*"
' mpmap-agent "$host" "$@"
