#!/bin/sh
# xarray_all.sh APPS_DIR MPIEXEC: every app's output opens in h5py, h5netcdf
# and xarray with a coordinate on every axis (tests/check_xarray.py).
set -eu
apps=$1 mpiexec=$2
check=$(cd "$(dirname "$0")/.." && pwd)/check_xarray.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$mpiexec" -n 2 "$apps/kde_sweep" --cv 3 --samples 800 --widths 0.2:1:5 --point 0,0 --point 1,1 \
  --output kde.h5 --quiet
"$mpiexec" -n 2 "$apps/param_sweep" --model linear --param p1=0:1:3 --param p2=1,2 --length 4 \
  --output param.h5 --quiet
"$mpiexec" -n 2 "$apps/mc_pi" --samples 1e5 --tasks 10 --output pi.h5 --quiet
"$mpiexec" -n 2 "$apps/knn_query" --points 500 --queries-count 20 -k 3 --output knn.h5 --quiet
passed=0 failed=0
for f in kde.h5 param.h5 pi.h5 knn.h5; do
  set +e
  /usr/bin/python3 "$check" "$f" >"$f.log" 2>&1
  rc=$?
  set -e
  case $rc in
    0) passed=$((passed + 1)) ;;
    77) cat "$f.log"; exit 77 ;;
    *) failed=$((failed + 1)); echo "FAIL $f"; cat "$f.log" ;;
  esac
done
echo "xarray_all: $passed passed, $failed failed"
[ "$failed" = 0 ]
