#!/usr/bin/env bash
# The test command: builds everything (warnings are errors) and runs every test project.
# Prints one closing line "tests: N passed, N failed, N skipped" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
dotnet build ActorBackup.sln -c Release -nologo -clp:ErrorsOnly
build=$?
if [ $build -ne 0 ]; then
  echo "tests: 0 passed, 1 failed (the build failed)"
  exit $build
fi
dotnet test ActorBackup.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
sum() { grep -oE "$1: +[0-9]+" "$log" | awk '{ s += $2 } END { print s + 0 }'; }
passed=$(sum Passed); failed=$(sum Failed); skipped=$(sum Skipped)
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "${passed:-0}" -eq 0 ] && [ $status -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit $status
