#!/usr/bin/env bash
# scripts/bench.sh shell: how long one `abk` command takes against a running node, wall time of the whole
# process as an operator's script sees it. Publishes node and shell as operators get them (the node ReadyToRun, abk native),
# starts one embedded-cell node in a temporary folder, runs each command 20 times and prints the medians:
#   abk job list     one round trip to the manager through the node's operator endpoint
#   abk --help       no cell at all
# Goal (issue 7): job list <= 0.25 s, --help <= 0.1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-node.sh shell lib1
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
measure() { # args... -> median wall seconds of 20 runs (after 2 unmeasured ones)
  local times=() t0 t1
  for i in $(seq 22); do
    t0=$EPOCHREALTIME; "$abk" "$@" >/dev/null 2>&1 || true; t1=$EPOCHREALTIME
    [ "$i" -gt 2 ] && times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  median "${times[@]}"
}
list=$(measure job list)
help=$(measure --help)
echo "machine: $(nproc) cores; abk published native (Native AOT); node $(sed -n 1p "$tmp/node.log" | cut -c1-60)..."
printf '  abk job list  median %.3f s (goal 0.25)\n  abk --help    median %.3f s (goal 0.10)\n' "$list" "$help"
printf '{"job_list_s":%s,"help_s":%s}\n' "$list" "$help"
