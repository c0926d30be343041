#!/usr/bin/env bash
# Node dispatch against flat dispatch: sleeping tasks (bench/scale.c) at 32
# and 128 ranks, fake nodes of MPMAP_NODE_SIZE ranks on this one machine.
# Runs alternate between the modes (flat, nodes/16, nodes/32, flat, ...) so
# that the machine's load drifts over all of them alike; the summary gives
# medians. Writes bench/results/scale_nodes.jsonl and prints a table.
#
#     bench/scale_nodes.sh [--reps R] [--ranks "32 128"] [--cases "10ms:guided ..."]
#
# Needs a build with libmpmap.a: MPMAP_SCALE_BUILD (default build/release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build="${MPMAP_SCALE_BUILD:-$root/build/release}"
reps=3; ranks="32 128"
cases="10ms:guided 10ms:dynamic 1ms:guided 1ms:dynamic"
while [ $# -gt 0 ]; do
  arg=$1; shift
  case "$arg" in
    --reps) reps=${1:?}; shift ;;
    --ranks) ranks=${1:?}; shift ;;
    --cases) cases=${1:?}; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale_nodes.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

exe="$build/bench/scale_nodes"
mkdir -p "$build/bench"
read -r -a h5flags <<<"$(pkg-config --cflags --libs hdf5-openmpi)"
mpicc -std=c17 -O2 -DNDEBUG -Wall -Wextra -Werror -I"$root/include" "$here/scale.c" \
  "$build/src/libmpmap.a" "${h5flags[@]}" -lm -o "$exe"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1
jsonl="$here/results/scale_nodes.jsonl"
: >"$jsonl"
read -r -a case_list <<<"$cases"
for rep in $(seq 1 "$reps"); do
  for n in $ranks; do
    for mode in flat nodes:16 nodes:32; do
      dispatch=${mode%%:*}; size=${mode#*:}
      [ "$dispatch" = flat ] && size=""
      echo "scale_nodes: rep $rep, $n ranks, $mode ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
      MPMAP_DISPATCH=$dispatch MPMAP_NODE_SIZE=$size \
        mpirun -n "$n" --bind-to none "$exe" --reps 1 "${case_list[@]}" | tee -a "$jsonl"
    done
  done
done
/usr/bin/python3 - "$jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{"kind"')]
groups = {}
for r in rows:
    mode = r["dispatch"] + (f'/{r["node_size"]}' if r["dispatch"] == "nodes" else "")
    groups.setdefault((r["ranks"], r["kind"], r["schedule"], mode), []).append(r["efficiency"])
print("| ranks | tasks | schedule | dispatch | efficiency (median) | runs |")
print("|---|---|---|---|---|---|")
for (n, kind, sched, mode), effs in sorted(groups.items()):
    runs = ", ".join(f"{e:.2f}" for e in effs)
    print(f"| {n} | {kind} | {sched} | {mode} | {statistics.median(effs):.2f} | {runs} |")
PY
