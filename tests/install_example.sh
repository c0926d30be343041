#!/bin/sh
# install_example.sh BUILD_DIR EXAMPLES_DIR SCRATCH MPIEXEC: installs the
# library from BUILD_DIR into SCRATCH/prefix, builds the example with CMake
# (find_package) and with pkg-config, runs both on 2 ranks, and runs the
# app-kit example through an interrupt and --resume (example_resume.py).
set -eu
build=$1 examples=$2 scratch=$3 mpiexec=$4
tests=$(cd "$(dirname "$0")" && pwd)
rm -rf "$scratch"
mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
for f in include/mpmap.h include/mpmap_h5.h include/mpmap_app.h lib/cmake/mpmap/mpmapConfig.cmake \
         lib/pkgconfig/mpmap.pc lib/pkgconfig/mpmap_kit.pc; do
  found=$(find "$scratch/prefix" -path "*$f" | head -n 1)
  [ -n "$found" ] || { echo "install is missing $f"; exit 1; }
done
cmake -S "$examples" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
cd "$scratch"
libdir=$(dirname "$(find "$scratch/prefix" -name libmpmap.so | head -n 1)")
LD_LIBRARY_PATH="$libdir" "$mpiexec" -n 2 "$scratch/cmake-build/damped_sweep" | tee run.txt
grep -q "resonance at omega" run.txt
[ -f damped_sweep.h5 ] || { echo "no damped_sweep.h5"; exit 1; }
# The same program through pkg-config, as a Makefile user would build it.
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists mpmap
mpicc -std=c17 -O2 "$examples/damped_sweep.c" -o damped_pc \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs mpmap_kit) -lm
LD_LIBRARY_PATH="$libdir" "$mpiexec" -n 2 ./damped_pc | grep -q "resonance at omega"
# The app-kit example (--resume, schedules, bad flags) from the same install.
LD_LIBRARY_PATH="$libdir" /usr/bin/python3 "$tests/example_resume.py" "$scratch/cmake-build"
mpicc -std=c17 -O2 "$examples/oscillator_sweep.c" -o oscillator_pc \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs mpmap_kit) -lm
LD_LIBRARY_PATH="$libdir" "$mpiexec" -n 2 ./oscillator_pc --zetas 0.1:0.2:3 --omegas 1:1:1 --output pc.h5 |
  grep -q "resonance at omega"
echo "install_and_example: 5 passed, 0 failed"
