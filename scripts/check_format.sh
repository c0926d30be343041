#!/usr/bin/env bash
# Checks that every C/C++ source of the repository is as .clang-format lays
# it out (hand-laid tables sit inside clang-format off/on fences). Prints the
# files that differ and exits 1; exits 77 (skipped) outside a git checkout or
# without clang-format.
#
#     scripts/check_format.sh            # clang-format 14, as Debian 12 ships it
#     CLANG_FORMAT=clang-format-16 scripts/check_format.sh
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null 2>&1 || { echo "check_format: $cf not found: skipped"; exit 77; }
cd "$root" || exit 1
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "check_format: not a git checkout: skipped"; exit 77; }

bad=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  "$cf" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' '*.cpp')

if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} file(s) differ from .clang-format (run: $cf -i FILE):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check_format: every source file follows .clang-format ($("$cf" --version | head -1))"
