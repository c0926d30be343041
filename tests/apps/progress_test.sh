#!/bin/sh
# progress_test.sh APPS_DIR MPIEXEC: rank 0 reports progress as plain lines
# when stderr is a file (batch logs), as a bar with rate and ETA on a
# terminal, and not at all with --quiet.
set -eu
apps=$1 mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
args="--kernel gaussian --cv 3 --samples 3000 --widths 0.05:1:40 --force"
passed=0 failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $*"; fi; }

"$mpiexec" -n 2 "$apps/kde_sweep" $args --output a.h5 --progress-interval 0.02 2>log.txt >/dev/null
check grep -q '^kde_sweep: progress [0-9]*/40 tasks ([0-9.]*%), .* tasks/s, elapsed .*, ETA ' log.txt
check grep -q '^kde_sweep: progress 40/40 tasks (100.0%)' log.txt
check sh -c "! grep -q \"$(printf '\r')\" log.txt"

# A pseudo-terminal: util-linux script(1) runs the job with a tty as stderr.
if command -v script >/dev/null 2>&1; then
  script -qec "'$mpiexec' -n 2 '$apps/kde_sweep' $args --output b.h5" /dev/null >tty.txt 2>&1 </dev/null
  check grep -q "$(printf '\r')kde_sweep \[[#.]*\] *[0-9.]*% [0-9]*/40 " tty.txt
  check grep -q 'tasks/s  ETA ' tty.txt
fi

"$mpiexec" -n 2 "$apps/kde_sweep" $args --output c.h5 --progress-interval 0.02 --quiet 2>quiet.txt >/dev/null
check sh -c "! grep -q progress quiet.txt"
echo "progress_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
