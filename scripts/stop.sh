#!/usr/bin/env bash
# Stops the embedded cell that scripts/quickstart.sh started (SIGTERM: coordinated shutdown).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f data/node.pid ] || ! kill -0 "$(cat data/node.pid)" 2>/dev/null; then
  echo "no embedded cell runs from this folder"
  exit 0
fi
pid=$(cat data/node.pid)
kill -TERM "$pid"
for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
rm -f data/node.pid
echo "stopped the embedded cell (pid $pid)"
