#!/bin/sh
# test_plots.sh APPS_DIR MPIEXEC: runs kde_sweep and a 2-D param_sweep, then
# every plot tool on their outputs; each must write a non-empty PNG, and a
# wrong input must give a one-line error and exit 2.
set -eu
apps=$1 mpiexec=$2
tools=$(cd "$(dirname "$0")/../../tools" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
passed=0 failed=0
check() { # name, command...
  name=$1; shift
  if "$@" >"$work/out.txt" 2>&1; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL $name"; cat "$work/out.txt"; fi
}
png() { [ -s "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = "211PNG" ]; }

"$mpiexec" -n 2 "$apps/kde_sweep" --kernel gaussian --cv 3 --samples 1500 --widths 0.1:1:24 \
  --output kde.h5 --quiet
"$mpiexec" -n 2 "$apps/param_sweep" --model lorenz --param rho=10:40:7 --param sigma=8:12:5 \
  --length 3000 --output lorenz.h5 --quiet
check "plot_kde runs" /usr/bin/python3 "$tools/plot_kde.py" kde.h5 -o kde.png
check "plot_kde writes a PNG" png kde.png
check "plot_trace runs" /usr/bin/python3 "$tools/plot_trace.py" kde.h5 -o trace.png
check "plot_trace writes a PNG" png trace.png
check "plot_heatmap runs" /usr/bin/python3 "$tools/plot_heatmap.py" lorenz.h5 --field max_z -o heat.png
check "plot_heatmap writes a PNG" png heat.png
# Wrong inputs: exit 2 and one line naming the problem.
set +e
/usr/bin/python3 "$tools/plot_heatmap.py" kde.h5 -o x.png 2>err.txt; rc=$?
set -e
check "plot_heatmap refuses a kde file with exit 2" [ "$rc" = 2 ]
check "and says why in one line" sh -c "[ \$(wc -l <err.txt) = 1 ] && grep -q 'not a param_sweep output' err.txt"
set +e
/usr/bin/python3 "$tools/plot_heatmap.py" lorenz.h5 --field nope -o x.png 2>err.txt; rc=$?
set -e
check "unknown --field is refused" sh -c "[ $rc = 2 ] && grep -q -- \"--field: unknown field 'nope'\" err.txt"
# The two best widths (vs the true density, by cross-validation) are
# different things: their legend labels must say which is which.
cat >labels.py <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import plot_kde
figures = []
plot_kde.save = lambda fig, args: figures.append(fig)
sys.argv = ["plot_kde.py", "kde.h5", "-o", "labels.png"]
plot_kde.main()
labels = [t.get_text() for ax in figures[0].axes if ax.get_legend()
          for t in ax.get_legend().get_texts()]
best = [label for label in labels if "best width" in label]
print(best)
assert len(best) == 2, best
assert any("true density" in label for label in best), best
assert any("3-fold cross-validation" in label for label in best), best
assert all(label.split()[:2] == ["best", "width"] and label != "best width" for label in best), best
assert not any(label.rsplit(" ", 1)[0] == best[0].rsplit(" ", 1)[0] for label in best[1:]), best
PY
check "plot_kde names the two best widths apart" /usr/bin/python3 labels.py "$tools"
# `cmake --install` puts the apps (and so the tools' inputs) in PREFIX/bin.
installed() {
  cmake --install "$(dirname "$apps")" --prefix "$work/prefix" >/dev/null &&
    for app in kde_sweep param_sweep mc_pi knn_query; do
      [ -x "$work/prefix/bin/$app" ] || { echo "not installed: bin/$app"; return 1; }
    done
}
check "cmake --install puts the apps in bin/" installed
echo "test_plots: $passed passed, $failed failed"
[ "$failed" = 0 ]
