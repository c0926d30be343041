#!/usr/bin/env bash
# Dispatch at scale: sleeping tasks on 8..128 ranks, every schedule, plus the
# calibration runs of the simulator (bench/sim_dispatch.py). Writes
# bench/results/scale.jsonl (one JSON line per run), scale.json and
# scale.png (bench/scale_plot.py).
#
#     bench/scale_run.sh [--quick] [--ranks "8 32 64 128"] [--reps R] [--no-build]
#
# --quick: 8 and 128 ranks, 10 ms tasks (every schedule) and heavy-tailed
# tasks (guided), one repetition: under 2 minutes. Without it: 8, 32, 64,
# 128 ranks x {1, 10, 100 ms, Pareto} x {guided, dynamic 1, factoring,
# static}, 2 repetitions (10-15 minutes on a loaded 2-core machine).
# Each rank count is one mpirun (start-up paid once); every run's ideal
# makespan is about 1 s (tasks = P x 1 s / mean task time).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build="${MPMAP_SCALE_BUILD:-$root/build/scale}"
out="$here/results"
quick=0; reps=2; ranks=""; do_build=1
while [ $# -gt 0 ]; do
  arg=$1; shift
  case "$arg" in
    --quick) quick=1 ;;
    --ranks) ranks=${1:?}; shift ;;
    --reps) reps=${1:?}; shift ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale_run.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

if [ "$do_build" = 1 ]; then
  mkdir -p "$build/bench"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPMAP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j2 --target mpmap_static >/dev/null
  read -r -a h5flags <<<"$(pkg-config --cflags --libs hdf5-openmpi)"
  mpicc -std=c17 -O2 -DNDEBUG -Wall -Wextra -Werror -I"$root/include" "$here/scale.c" \
    "$build/src/libmpmap.a" "${h5flags[@]}" -lm -o "$build/bench/scale"
fi
exe="$build/bench/scale"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1
run() { # ranks args...
  local n=$1; shift
  mpirun -n "$n" --bind-to none "$exe" "$@"
}

mkdir -p "$out"
jsonl="$out/scale.jsonl"
[ "$quick" = 1 ] && jsonl="$out/scale_quick.jsonl"
: >"$jsonl"
t_start=$(date +%s)

# Calibration: raw one-way latency, and the dispatch rate of empty tasks
# (dynamic, chunk 1), where the manager's time per request is the limit;
# per rank count, a null run (empty:P:static) gives the fixed cost T0.
run 2 --pingpong 20000 | tee -a "$jsonl"
for n in 2 8; do
  run "$n" --reps 3 empty:200000:dynamic | tee -a "$jsonl"
done

if [ "$quick" = 1 ]; then
  [ -n "$ranks" ] || ranks="8 128"
  cases=(10ms:guided 10ms:dynamic 10ms:factoring 10ms:static pareto:guided)
  reps=1
else
  [ -n "$ranks" ] || ranks="8 32 64 128"
  cases=()
  for k in 10ms 1ms 100ms pareto; do
    for s in guided dynamic factoring static; do cases+=("$k:$s"); done
  done
fi
for n in $ranks; do
  echo "scale: $n ranks ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
  # empty:P:static first: one empty task per rank, the fixed cost of a run (T0)
  run "$n" --reps "$reps" "empty:$n:static" "${cases[@]}" | tee -a "$jsonl"
done
echo "scale: sweep took $(( $(date +%s) - t_start )) s" >&2
/usr/bin/python3 "$here/scale_plot.py" "$jsonl" --out "$out"
