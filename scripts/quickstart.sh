#!/usr/bin/env bash
# Builds ActorBackup, starts the embedded cell in the background (one node with every role, SQLite and one
# disk library under ./data, listening on 127.0.0.1:4053) unless it already runs, and backs up FOLDER.
# The node's output goes to data/node.log; scripts/stop.sh stops it.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/quickstart.sh FOLDER..." >&2
  exit 2
fi
# The folders as given, from where the script was run (before it moves to the repository).
folders=()
for f in "$@"; do
  if ! folders+=("$(cd "$f" 2>/dev/null && pwd)"); then
    echo "quickstart: $f is not a folder this user can enter" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
dotnet build ActorBackup.sln -c Release -nologo -clp:ErrorsOnly >/dev/null
node=src/ActorBackup.Node/bin/Release/net10.0/actorbackup
abk=src/ActorBackup.Shell/bin/Release/net10.0/abk
mkdir -p data
if ! "$abk" library list >/dev/null 2>&1; then
  nohup "$node" > data/node.log 2>&1 &
  echo $! > data/node.pid
  echo "started the embedded cell (pid $(cat data/node.pid), log data/node.log)"
  for _ in $(seq 60); do
    if "$abk" library list 2>/dev/null | grep -q "lib1 .* yes"; then break; fi
    sleep 1
  done
  # The node says so in its log when it makes the cell key; said here too, where a newcomer looks.
  if grep -q "made the cell key" data/node.log 2>/dev/null; then
    echo "made the cell key in data/keys: every backup is encrypted under it and nothing restores without it; copy data/keys off this host now"
  fi
fi
exec "$abk" backup "${folders[@]}"
