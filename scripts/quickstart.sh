#!/usr/bin/env bash
# Builds ActorBackup and backs up FOLDER into a repository under ./data (created on first use, with a
# random key file as its key: keep data/master.keyfile safe, without it nothing restores).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: scripts/quickstart.sh FOLDER..." >&2
  exit 2
fi
dotnet build src/ActorBackup.Node -c Release -nologo -clp:ErrorsOnly
abk=src/ActorBackup.Node/bin/Release/net10.0/actorbackup
data=${ABK_DATA:-data}
mkdir -p "$data"
if [ ! -f "$data/master.keyfile" ]; then
  (umask 077 && head -c 64 /dev/urandom > "$data/master.keyfile")
  echo "created the key file $data/master.keyfile: keep a copy somewhere safe"
fi
if [ ! -f "$data/repo/repository.json" ]; then
  "$abk" engine init --repo "$data/repo" --key-file "$data/master.keyfile"
fi
exec "$abk" engine backup --repo "$data/repo" --key-file "$data/master.keyfile" "$@"
