#!/usr/bin/env bash
# scripts/bench.sh prune-race [ROUNDS]: backups that run while a prune sweeps and compacts, at random moments
# (issue 9: "a backup running during a prune restores byte-identical, 20 runs with random timing"). One node,
# one library. Each round (default 20): ten new files of 2 MiB of random data beside ten kept from the first
# round; the round before's snapshot deleted (its new chunks dead, the kept ones dead too until this round's
# backup names them again); `abk prune lib1` started; a random wait of 0 to 2 s; this round's backup, which
# runs while the prune does; then the prune awaited and this round's snapshot restored and compared with its
# source (diff -r). One line per round, a summary; exit 1 when any restore differs.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
source scripts/bench-node.sh prune-race lib1
mkdir -p "$tmp/src"
new_files() { for i in $(seq 10 19); do head -c 2097152 /dev/urandom > "$tmp/src/f$i"; done; }
last_snapshot() { "$abk" --json snapshot list | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])'; }
for i in $(seq 0 9); do head -c 2097152 /dev/urandom > "$tmp/src/f$i"; done
new_files
"$abk" backup --library lib1 "$tmp/src" >/dev/null
prev=$(last_snapshot)
bad=0
for r in $(seq 1 "$rounds"); do
  new_files
  "$abk" snapshot delete "$prev" >/dev/null
  job=$("$abk" --json prune lib1 --no-wait | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
  wait_s=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r / 32767 * 2 }')
  sleep "$wait_s"
  if ! "$abk" backup --library lib1 "$tmp/src" >/dev/null; then
    echo "round $r: the backup ${wait_s} s after the prune began FAILED"
    bad=$((bad + 1))
    continue
  fi
  snap=$(last_snapshot)
  "$abk" job watch "$job" >/dev/null 2>&1 || true
  pruned=$("$abk" --json job show "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); p=j.get("prune",{}); print(j["state"] + ",", int(p.get("chunksDead",0)), "chunks dead,", int(p.get("bytesFreed",0))//1000000, "MB freed")')
  rm -rf "$tmp/restored"
  if "$abk" restore "$snap" --to "$tmp/restored" >/dev/null && diff -r "$tmp/src" "$tmp/restored$tmp/src" >/dev/null; then same=yes
  else same=NO; bad=$((bad + 1)); fi
  echo "round $r: backup ${wait_s} s after the prune began; prune $pruned; restored identical: $same"
  prev=$snap
done
echo "prune race: $rounds rounds on $(nproc) cores, $((rounds - bad)) restored identical, $bad differed"
[ "$bad" = 0 ]
