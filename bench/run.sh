#!/usr/bin/env bash
# Performance harness of mpmap: builds the Release tree and the benchmark
# programs, then runs bench/harness.py, which writes bench/results/.
#
#     bench/run.sh [--quick] [--only KEY,...] [--hog]
#
# --quick runs fewer repetitions and smaller problems (a few minutes);
# --only KEY,... runs some benchmarks (keys: kde_pool kde_gridsearch mc_pi knn
# omp dispatch scaling imbalance memory scale wordcount knn_nanoflann
# philox_bound).
# --hog (or MPMAP_BENCH_HOG=1) runs one busy process beside the bench and
# writes bench/results/hog/, then compares its verdicts with the quiet run's
# bench/results/results.json: no PASS may turn into FAIL or back (NOISY may
# appear). Exits 0 whatever the figures are (results.md says which targets
# hold); non-zero only when the harness itself cannot run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build="$root/build/bench"
progs="$root/build/bench-progs"
harness_args=()
if [ "${MPMAP_BENCH_HOG:-0}" = 1 ]; then harness_args+=(--hog); fi
while [ $# -gt 0 ]; do
  arg=$1; shift
  case "$arg" in
    --quick) harness_args+=(--quick) ;;
    --only) harness_args+=(--only "${1:?--only needs KEY,KEY,...}"); shift ;;
    --hog) harness_args+=(--hog) ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=../scripts/deps.sh
source "$root/scripts/deps.sh"
mpmap_require_packages "${MPMAP_BUILD_PACKAGES[@]}" python3 python3-numpy python3-scipy \
  python3-sklearn python3-h5py python3-matplotlib time libmrmpi-dev g++ libnanoflann-dev

mkdir -p "$progs"
log="$progs/build.log"
: >"$log"
echo "bench: building Release in $build (log: $log)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPMAP_BUILD_TESTS=OFF >>"$log" 2>&1 \
  || { echo "bench: cmake configure failed, see $log" >&2; exit 1; }
cmake --build "$build" -j2 --target mpmap_static mpmap_kit_static kde_sweep >>"$log" 2>&1 \
  || { echo "bench: building kde_sweep failed, see $log" >&2; exit 1; }

# Apps written later: build each one that the tree knows, skip the others
# (their benchmark rows then say "n/a (app missing)").
targets=$(cmake --build "$build" --target help 2>/dev/null || true)
for app in mc_pi knn_query param_sweep word_count; do
  if grep -qE "^\.\.\. $app( |$)" <<<"$targets"; then
    cmake --build "$build" -j2 --target "$app" >>"$log" 2>&1 \
      || echo "bench: warning: building $app failed (its rows will be n/a), see $log" >&2
  fi
done

# The benchmark programs link the static libraries built above directly
# (the kit for its CLI value parsers, the runtime under it).
lib="$build/src/kit/libmpmap_kit.a $build/src/libmpmap.a"
read -r -a h5flags <<<"$(pkg-config --cflags --libs hdf5-openmpi)"
cflags=(-std=c17 -O3 -march=native -DNDEBUG -Wall -Wextra -Werror
        -I"$root/include" -I"$root/apps")
build_prog() { # name extra-args...
  local name=$1; shift
  # shellcheck disable=SC2086 # $lib is two paths
  mpicc "${cflags[@]}" "$@" $lib "${h5flags[@]}" -lm -o "$progs/$name" >>"$log" 2>&1 \
    || { echo "bench: warning: compiling $name failed (its rows will be n/a), see $log" >&2
         rm -f "$progs/$name"; }
}
build_prog dispatch "$here/dispatch.c"
build_prog imbalance "$here/imbalance.c"
build_prog omp_kde_cv -fopenmp "$here/omp_kde_cv.c" "$root/apps/kde_kernels.c"
# The yardsticks of rows 12-13. philox_bound is compiled as the apps are
# (baseline x86-64; its vector paths are chosen at run time, apps/isa.h).
# knn_nanoflann gets the flags that suit nanoflann best here, with FMA
# contraction off so its distances round exactly as knn_query's.
build_prog philox_bound -march=x86-64 -mtune=generic "$here/philox_bound.c"
mpicxx -std=c++17 -O3 -march=native -ffp-contract=off -DNDEBUG -Wall -Wextra -Werror -pthread \
  "$here/knn_nanoflann.cpp" "${h5flags[@]}" -o "$progs/knn_nanoflann" >>"$log" 2>&1 \
  || { echo "bench: warning: compiling knn_nanoflann failed (its rows will be n/a), see $log" >&2
       rm -f "$progs/knn_nanoflann"; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec /usr/bin/python3 "$here/harness.py" --build "$build" --progs "$progs" \
  --out "$here/results" --work "$root/build/bench-work" "${harness_args[@]}"
