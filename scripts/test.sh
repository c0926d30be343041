#!/usr/bin/env bash
# Installs what is missing, builds mpmap and runs the whole test suite.
#   scripts/test.sh            Release build, every test (unit, MPI, HDF5, apps)
#   scripts/test.sh --all      also the AddressSanitizer+UBSan build and the fuzzer (CI)
#   scripts/test.sh --sanitize also the sanitizer build
#   scripts/test.sh --fuzz     also the libFuzzer targets (clang)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deps.sh
source "$here/scripts/deps.sh"

sanitize=0 fuzz=0
for arg in "$@"; do
  case "$arg" in
    --all) sanitize=1 fuzz=1 ;;
    --sanitize) sanitize=1 ;;
    --fuzz) fuzz=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

mpmap_require_packages "${MPMAP_BUILD_PACKAGES[@]}" "${MPMAP_TEST_PACKAGES[@]}"
mpmap_mpi_env
jobs=$(nproc 2>/dev/null || echo 2)

run_suite() { # name, build dir, extra cmake args...
  local name="$1" dir="$2"; shift 2
  echo "== $name: configure and build in $dir"
  cmake -S "$here" -B "$dir" -DMPMAP_WERROR=ON "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j"$jobs" ${build_target:+--target "$build_target"}
}
build_target=""

mkdir -p "$here/build"
status=0
run_suite release "$here/build/test" -DCMAKE_BUILD_TYPE=Release &&
  (cd "$here/build/test" && ctest --output-on-failure -j"$jobs") || status=1

if [ "$sanitize" = 1 ]; then
  # Unit tests run with leak checking; under mpirun it is off, because Open
  # MPI's components leak at exit from libraries already unloaded (so they
  # cannot be suppressed by name). Address and UB errors still fail every test.
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # An impossible allocation (e.g. --widths 0:1:1e15) must reach the app's
  # own "does not fit in memory" check, as it does without the sanitizer.
  export ASAN_OPTIONS=allocator_may_return_null=1
  export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0"
  # The whole-system tests (label "system": the red-team table, the SLURM
  # cluster) exercise processes and files, not memory; they run once, in the
  # Release suite above.
  if run_suite sanitize "$here/build/asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPMAP_SANITIZE=ON; then
    (cd "$here/build/asan" &&
      ctest --output-on-failure -j"$jobs" -L unit &&
      ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0 ctest --output-on-failure -j"$jobs" \
        -LE 'unit|system') || status=1
  else
    status=1
  fi
fi

if [ "$fuzz" = 1 ]; then
  # The flag and range parsers under libFuzzer for a short while, from the
  # seed corpus in tests/fuzz_corpus.
  if build_target=fuzz_cli run_suite fuzz "$here/build/fuzz" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
      -DMPMAP_FUZZ=ON; then
    (cd "$here/build/fuzz" && ctest --output-on-failure -R '^fuzz_') || status=1
  else
    status=1
  fi
fi
exit $status
