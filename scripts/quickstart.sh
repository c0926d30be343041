#!/usr/bin/env bash
# Installs what is missing, builds mpmap (Release) and runs the main job:
# kde_sweep on 8 ranks over its built-in synthetic data, writing kde_sweep.h5
# in the current folder and printing a short summary.
#   scripts/quickstart.sh [extra kde_sweep flags]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deps.sh
source "$here/scripts/deps.sh"

mpmap_require_packages "${MPMAP_BUILD_PACKAGES[@]}"
build="$here/build/release"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPMAP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

mpmap_mpi_env
ranks=8
# A workstation with fewer cores still runs 8 ranks (Open MPI would refuse
# without --oversubscribe); mpmap's idle ranks sleep instead of spinning.
extra=()
if [ "$(nproc 2>/dev/null || echo 1)" -lt "$ranks" ]; then
  extra+=(--oversubscribe)
fi
# Each run of the quick start replaces the previous kde_sweep.h5.
exec mpirun "${extra[@]}" -n "$ranks" "$build/apps/kde_sweep" --force "$@"
