#!/usr/bin/env bash
# The test command: builds everything (warnings are errors) and runs every test project.
# Prints one closing line "tests: N passed, N failed, N skipped" and exits non-zero on any failure.
# The PostgreSQL tests use the server in $ABK_TEST_POSTGRES (a connection string with a role that may create
# databases); without it this script starts a private one on 127.0.0.1 (scripts/postgres.sh, installing
# PostgreSQL first when it is missing and we are root) and stops it at the end. Where none can be had, those
# tests are skipped, except under CI (CI=true), where that is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
pgdir=""
cleanup() {
  rm -f "$log"
  if [ -n "$pgdir" ]; then bash scripts/postgres.sh stop "$pgdir"; rm -rf "$pgdir"; fi
}
trap cleanup EXIT
# libfaketime moves a node's clock in the retention-over-days test (Debian's faketime package).
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime)) >/dev/null 2>&1 \
    || echo "faketime could not be installed: the retention-over-days test will fail under CI" >&2
fi
# mkfs.btrfs makes the btrfs the file-flags and compression tests restore onto (Debian's btrfs-progs; the kernel has
# btrfs); filefrag (e2fsprogs) tells which extents btrfs compressed.
if ! { command -v mkfs.btrfs && command -v filefrag; } >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq btrfs-progs e2fsprogs || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq btrfs-progs e2fsprogs)) >/dev/null 2>&1 \
    || echo "btrfs-progs or e2fsprogs could not be installed: the btrfs tests are skipped or fail" >&2
fi
if [ -z "${ABK_TEST_POSTGRES:-}" ]; then
  pgdir=$(mktemp -d /var/tmp/abk-test-pg.XXXXXX)
  chmod 755 "$pgdir" # the server runs as the postgres user when we are root
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if cs=$(bash scripts/postgres.sh start "$pgdir/data" "$pgport" 2>"$pgdir/start.err"); then
    export ABK_TEST_POSTGRES="${cs/Database=actorbackup/Database=postgres}"
    echo "PostgreSQL for the tests on 127.0.0.1:$pgport"
  else
    echo "no PostgreSQL for the tests: $(cat "$pgdir/start.err")" >&2
    if [ "${CI:-}" = true ]; then
      echo "tests: 0 passed, 1 failed (CI needs PostgreSQL)"
      exit 1
    fi
    echo "the PostgreSQL tests will be skipped" >&2
  fi
fi
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
if grep -q "Test Run Aborted" "$log"; then
  # A test host that crashed (a stack overflow, say) loses the tests it had not run: that is a failure.
  echo "a test host crashed: see 'The active test run was aborted' above" >&2
  failed=$(( ${failed:-0} + 1 ))
  status=1
fi
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "${passed:-0}" -eq 0 ] && [ $status -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit $status
