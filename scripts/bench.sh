#!/usr/bin/env bash
# Benchmarks. Usage:
#   scripts/bench.sh engine SOURCE_DIR    the engine on its own against a fresh disk library, side by side
#                                         with restic (and Borg, when installed) on the same data
# Each run: (1) full backup, (2) backup with nothing changed, (3) full restore into a temporary folder,
# checked byte for byte with diff -r. Prints each step's wall time and MB/s; the last line is one JSON object:
# {"bytes","files","full_s","noop_s","restore_s","stored_bytes","verified"} for ActorBackup.
# Environment: BENCH_PEERS="restic borg" (default: those installed; restic is installed when missing and
# we are root), BENCH_TMP (default: a new folder under /var/tmp, removed at the end; on this machine kind
# /tmp creates files about 30x slower than any other folder of the same file system, which would make
# every restore measure that instead).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
src=${2:-}
if [ "$mode" != engine ] || [ -z "$src" ]; then
  echo "usage: scripts/bench.sh engine SOURCE_DIR" >&2
  exit 2
fi
if [ ! -d "$src" ]; then
  echo "bench: $src is not a directory" >&2
  exit 2
fi
src=$(cd "$src" && pwd)

tmp=${BENCH_TMP:-$(mktemp -d /var/tmp/abk-bench.XXXXXX)}
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
# Published as operators get it: ReadyToRun, so that start-up is not spent in the JIT.
dotnet publish src/ActorBackup.Node -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -nologo -clp:ErrorsOnly -o "$tmp/bin" >/dev/null
abk=$tmp/bin/actorbackup
export ABK_PASSPHRASE=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

bytes=$(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
files=$(find "$src" -type f | wc -l)
# Warm the page cache the same way for every tool.
find "$src" -type f -exec cat {} + >/dev/null

now() { echo "$EPOCHREALTIME"; }
# Before every timed step: flush what earlier steps wrote and give the file system a moment, so that one
# step (or one tool) does not pay for the write-back and discards of the one before it.
settle() { sync; sleep "${BENCH_SETTLE:-3}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
step() { # name seconds
  printf '  %-8s %8.2f s %8s MB/s\n' "$1" "$2" "$(rate "$2")"
}
check() { # restored-root -> true/false
  if diff -r --no-dereference "$src" "$1$src" >/dev/null 2>&1; then echo true; else echo false; fi
}

echo "data: $src, $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }'); machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"

# ---- ActorBackup engine ---------------------------------------------------------------------------------
repo=$tmp/abk-repo
"$abk" engine init --repo "$repo" >/dev/null
settle; t0=$(now); "$abk" engine backup --repo "$repo" --level full "$src" >/dev/null; t1=$(now)
settle; t2=$(now); "$abk" engine backup --repo "$repo" --level incremental "$src" >/dev/null; t3=$(now)
settle; t4=$(now); "$abk" engine restore --repo "$repo" latest --to "$tmp/abk-restore" >/dev/null; t5=$(now)
full_s=$(elapsed "$t0" "$t1"); noop_s=$(elapsed "$t2" "$t3"); restore_s=$(elapsed "$t4" "$t5")
verified=$(check "$tmp/abk-restore")
stored=$(du -sb "$repo/library" | cut -f1)
echo "actorbackup (zstd 3, 1 MiB average chunks, AES-256-GCM):"
step full "$full_s"; step noop "$noop_s"; step restore "$restore_s"
echo "  stored   $(awk -v b="$stored" 'BEGIN { printf "%.1f MB", b / 1e6 }'), verified: $verified"
rm -rf "$tmp/abk-restore"

# ---- peers -------------------------------------------------------------------------------------------
peers=${BENCH_PEERS:-}
if [ -z "$peers" ]; then
  if ! command -v restic >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq restic) >/dev/null 2>&1 || true
  fi
  command -v restic >/dev/null && peers="restic"
  command -v borg >/dev/null && peers="$peers borg"
fi
for peer in $peers; do
  case $peer in
    restic)
      r=$tmp/restic-repo
      restic init -q --repo "$r" >/dev/null
      settle; t0=$(now); restic -q --repo "$r" backup "$src" >/dev/null; t1=$(now)
      settle; t2=$(now); restic -q --repo "$r" backup "$src" >/dev/null; t3=$(now)
      settle; t4=$(now); restic -q --repo "$r" restore latest --target "$tmp/restic-restore" >/dev/null; t5=$(now)
      label="restic $(restic version | awk '{ print $2 }') (defaults)";;
    borg)
      r=$tmp/borg-repo
      borg init -e repokey "$r" >/dev/null 2>&1
      settle; t0=$(now); borg create --compression lz4 "$r::one" "$src" >/dev/null 2>&1; t1=$(now)
      settle; t2=$(now); borg create --compression lz4 "$r::two" "$src" >/dev/null 2>&1; t3=$(now)
      mkdir -p "$tmp/borg-restore"
      settle; t4=$(now); (cd "$tmp/borg-restore" && borg extract "$r::two" >/dev/null 2>&1); t5=$(now)
      # borg extract drops the leading '/'
      label="borg $(borg --version | awk '{ print $2 }') (lz4)";;
    *) echo "unknown peer $peer" >&2; continue;;
  esac
  pf=$(elapsed "$t0" "$t1"); pn=$(elapsed "$t2" "$t3"); pr=$(elapsed "$t4" "$t5")
  echo "$label:"
  step full "$pf"; step noop "$pn"; step restore "$pr"
  echo "  stored   $(awk -v b="$(du -sb "$r" | cut -f1)" 'BEGIN { printf "%.1f MB", b / 1e6 }'), verified: $(check "$tmp/$peer-restore")"
  awk -v a="$full_s" -v b="$pf" -v c="$noop_s" -v d="$pn" -v e="$restore_s" -v f="$pr" -v p="$peer" \
    'BEGIN { printf "  actorbackup vs %s: full %.2fx, noop %.2fx, restore %.2fx faster\n", p, b / a, d / c, f / e }'
  rm -rf "$tmp/$peer-restore" "$r"
done

echo "micro (one core, MB/s):"
"$abk" engine micro --mib 128 | sed 's/^/  /'

printf '{"bytes":%s,"files":%s,"full_s":%s,"noop_s":%s,"restore_s":%s,"stored_bytes":%s,"verified":%s}\n' \
  "$bytes" "$files" "$full_s" "$noop_s" "$restore_s" "$stored" "$verified"
