#!/usr/bin/env bash
# Fuzzes every decoder that reads from disk or network (volumes, chunk index, reference lists, file indexes,
# manifests, trees, the operator wire) with CsCheck-driven byte mutation for SECONDS each (default 60), after
# replaying the kept corpus (tests/ActorBackup.Cluster.Tests/Fuzz/corpus/TARGET/: every input that once broke a
# decoder). Prints, per target, the inputs run, the slowest input and the most memory one took; an input that
# breaks a decoder (an exception other than its damage error, or memory beyond a bound tied to its size) fails
# the run and is written to the corpus, to be committed as a regression test. The test suite runs the same
# fuzzing for 2 s a target. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ABK_FUZZ_SECONDS=${1:-60}
dotnet build tests/ActorBackup.Cluster.Tests -c Release -nologo -clp:ErrorsOnly >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test tests/ActorBackup.Cluster.Tests -c Release --no-build --filter "Category=Fuzz" --logger "console;verbosity=detailed" >"$log" 2>&1 || status=$?
grep -E "^ *fuzz |Passed!|Failed!|inputs broke" "$log" | sed 's/^ *//'
exit $status
