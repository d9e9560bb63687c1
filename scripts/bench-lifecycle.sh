#!/usr/bin/env bash
# scripts/bench.sh lifecycle, the cell part: through a running node with two disk libraries, the same snapshot
# of SOURCE (default /usr/share/dotnet) restored, verified, and copied lib1 -> lib2, each timed as an operator's
# `abk` sees it (wall time of the command, which waits for its job). Goal (issue 9): aux copy and verify within
# 80% of restore throughput. Page cache warm for all three (the backup just wrote the data).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-/usr/share/dotnet}
source scripts/bench-node.sh lifecycle lib1 lib2
bytes=$(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
timed() { local t0 t1; t0=$(now); "$abk" "$@" >/dev/null; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
backup=$(timed backup --library lib1 "$src")
snap=$("$abk" --json snapshot list | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
sync; sleep 2
restore=$(timed restore "$snap" --to "$tmp/restored")
sync; sleep 2
verify=$(timed verify "$snap")
sync; sleep 2
copy=$(timed snapshot copy "$snap" --to lib2)
# abk find: the first finds the index the backup wrote; then a second backup, and a find over both.
find1=$(timed find '*.dll')
"$abk" backup --library lib1 "$src" >/dev/null
find2=$(timed find '*.dll')
diff -r "$src" "$tmp/restored$src" >/dev/null && verified=yes || verified=NO
echo "lifecycle through the cell: $(nproc) cores; $src, $((bytes / 1000000)) MB, $(find "$src" -type f | wc -l) files"
printf '  backup   %6.2f s %5s MB/s\n  restore  %6.2f s %5s MB/s (restored tree identical: %s)\n  verify   %6.2f s %5s MB/s (%s%% of restore)\n  copy     %6.2f s %5s MB/s (%s%% of restore)\n' \
  "$backup" "$(rate "$backup")" "$restore" "$(rate "$restore")" "$verified" "$verify" "$(rate "$verify")" \
  "$(awk -v r="$restore" -v v="$verify" 'BEGIN { printf "%.0f", r / v * 100 }')" "$copy" "$(rate "$copy")" \
  "$(awk -v r="$restore" -v v="$copy" 'BEGIN { printf "%.0f", r / v * 100 }')"
printf '  find *.dll  %6.2f s (1 snapshot), %6.2f s (2 snapshots), the whole abk command\n' "$find1" "$find2"

# Backups while a prune runs: a library whose every volume is half dead (100 files of 4 MiB backed up, the odd
# ones deleted and backed up again, the first snapshot deleted), then a backup of 200 MB of new random data
# alone, and another of the same size while the prune of lib1 compacts it.
mkdir -p "$tmp/half" "$tmp/e1" "$tmp/e2"
for i in $(seq 0 99); do head -c 4194304 /dev/urandom > "$tmp/half/f$i"; done
for i in $(seq 0 49); do head -c 4194304 /dev/urandom > "$tmp/e1/f$i"; head -c 4194304 /dev/urandom > "$tmp/e2/f$i"; done
"$abk" backup --library lib1 "$tmp/half" >/dev/null
h1=$("$abk" --json snapshot list | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
for i in $(seq 1 2 99); do rm "$tmp/half/f$i"; done
"$abk" backup --library lib1 "$tmp/half" >/dev/null
"$abk" snapshot delete "$h1" >/dev/null
sync; sleep 2
alone=$(timed backup --library lib1 "$tmp/e1")
t0=$(now)
job=$("$abk" --json prune lib1 --no-wait | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
during=$(timed backup --library lib1 "$tmp/e2")
"$abk" job watch "$job" >/dev/null || true
prune=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
freed=$("$abk" --json job show "$job" | python3 -c 'import json,sys; p=json.load(sys.stdin).get("prune",{}); print(int(p.get("bytesFreed",0))//1000000)')
echo "backups during a prune of lib1 (every volume half dead, $freed MB freed in ${prune} s, the whole prune job):"
awk -v a="$alone" -v d="$during" 'BEGIN { printf "  backup of 200 MB alone %6.2f s %4.0f MB/s; during the prune %6.2f s %4.0f MB/s (%.0f%%)\n", a, 209.7/a, d, 209.7/d, (209.7/d)/(209.7/a)*100 }'
