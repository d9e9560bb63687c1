#!/usr/bin/env bash
# scripts/bench.sh large [FILES...]: a large tree through the product path (abk against a running embedded cell).
# For each count (default: 100000 1000000) it generates that many small files (a few hundred bytes to 4 KiB, each
# different) in 1,000 files per folder, 100 folders per parent, then, against a fresh all-roles node:
#   (1) a full backup, (2) three unchanged backups, one after another (their median against the goal: under a tenth
#   of the full; the first is printed too: on this VM one run swings by 10-20% with its neighbours), (3) `abk ls` of one folder deep
#   in the tree (median of 5; goal: under 0.2 s), then the size of the four snapshots' reference lists (refs/) and the
#   time of `abk prune lib1` (nothing to sweep: the mark of those lists), (4) a restore, checked with diff -r
#   (BENCH_LARGE_RESTORE=0 skips it)
# and the node's peak RSS (VmHWM) after each step: it should stay flat in the number of files. Prints a table and
# one JSON line per count: {"files","bytes","full_s","noop_s" (the median),"noop_runs_s","ls_s","restore_s","verified","rss_full_mib",
# "rss_noop_mib","rss_peak_mib","refs_mib","prune_s"}.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(100000 1000000)
tmp=$(mktemp -d /var/tmp/abk-bench-large.XXXXXX)
source scripts/bench-cell-lib.sh
cleanup() { stop_node; rm -rf "$tmp"; }
trap cleanup EXIT

publish_cell
timed() { # what command... -> seconds; a failed step ends the run
  local t0 t1 rc=0
  sync; sleep 1; t0=$(now)
  "$@" >/dev/null || rc=$?
  t1=$(now)
  if [ "$rc" != 0 ]; then echo "bench: $* failed (exit $rc)" >&2; kill -TERM $$; exit 1; fi
  elapsed "$t0" "$t1"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
for n in "${counts[@]}"; do
  src=$tmp/data
  rm -rf "$src"
  t0=$(now)
  python3 - "$src" "$n" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(n)
per_dir, per_parent = 1000, 100
for i in range(n):
    if i % per_dir == 0:
        d = os.path.join(root, f"p{i // (per_dir * per_parent):04d}", f"d{(i // per_dir) % per_parent:03d}")
        os.makedirs(d, exist_ok=True)
    body = (f"file {i} " * rnd.randint(20, 400)).encode()[: rnd.randint(200, 4096)]
    fd = os.open(os.path.join(d, f"f{i % per_dir:04d}.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, body)
    os.close(fd)
EOF
  bytes=$(du -sb --apparent-size "$src" | cut -f1)
  echo "== $n files made in $(elapsed "$t0" "$(now)") s ($(awk -v b="$bytes" 'BEGIN { printf "%.0f MiB", b / 1048576 }'))"
  start_node
  full=$(timed "$abk" backup "$src"); rss_full=$(peak_rss_mib)
  noops=()
  for _ in 1 2 3; do noops+=("$(timed "$abk" backup "$src")"); done
  noop=$(median "${noops[@]}"); rss_noop=$(peak_rss_mib)
  deep="$src/p$(printf '%04d' $(( (n - 1) / 100000 )))/d$(printf '%03d' $(( ((n - 1) / 1000) % 100 )))"
  lss=()
  for _ in 1 2 3 4 5; do lss+=("$(timed "$abk" ls latest "$deep")"); done
  ls_s=$(median "${lss[@]}")
  entries=$("$abk" ls latest "$deep" | wc -l)
  # What the four snapshots' reference lists take beside the volumes, and a prune's mark of them (nothing to sweep).
  refs_mib=$(du -sb "$tmp/node/libraries/lib1/refs" | awk '{ printf "%.1f", $1 / 1048576 }')
  prune_s=$(timed "$abk" prune lib1)
  restore_s=null verified=null
  if [ "${BENCH_LARGE_RESTORE:-1}" != 0 ]; then
    rm -rf "$tmp/restored"
    restore_s=$(timed "$abk" restore latest --to "$tmp/restored")
    if diff -r --no-dereference "$src" "$tmp/restored$src" >/dev/null 2>&1; then verified=true; else verified=false; fi
    rm -rf "$tmp/restored"
  fi
  peak=$(peak_rss_mib)
  stop_node
  echo "  full $full s, unchanged $noop s (median of ${noops[*]}: $(awk -v a="$noop" -v b="$full" 'BEGIN { printf "%.3f", a / b }') of the full; goal < 0.10)," \
    "ls of a folder of $entries entries $ls_s s (goal < 0.2), restore $restore_s s (verified $verified)"
  echo "  node peak RSS: $rss_full MiB after the full, $rss_noop after the unchanged, $peak at the end"
  echo "  reference lists of the 4 snapshots: $refs_mib MiB; a prune of lib1 with nothing to sweep $prune_s s"
  echo "{\"files\":$n,\"bytes\":$bytes,\"full_s\":$full,\"noop_s\":$noop,\"noop_runs_s\":[$(IFS=,; echo "${noops[*]}")],\"ls_s\":$ls_s,\"restore_s\":$restore_s,\"verified\":$verified,\"rss_full_mib\":$rss_full,\"rss_noop_mib\":$rss_noop,\"rss_peak_mib\":$peak,\"refs_mib\":$refs_mib,\"prune_s\":$prune_s}"
  rm -rf "$src"
done
