#!/usr/bin/env bash
# Benchmarks. Usage:
#   scripts/bench.sh engine SOURCE_DIR    the engine on its own against a fresh disk library, side by side
#                                         with restic (and Borg, when installed) on the same data
#   scripts/bench.sh cell SOURCE_DIR      the engine's three steps, then the same through a running embedded
#                                         cell driven by abk, then across two node processes (client on one,
#                                         media agent on the other), each compared with the one before
#   scripts/bench.sh peers [sdk|small|image]...  the product path (abk against a running embedded cell) beside
#                                         restic and Borg on the same data: full, unchanged, after changes, restore;
#                                         medians of 3 (scripts/bench-peers.sh says how)
#   scripts/bench.sh large [FILES...]     a generated tree of 100,000 and 1,000,000 small files through abk against a
#                                         running embedded cell: full, unchanged, ls of a deep folder, the reference
#                                         lists' size and a prune's time, restore, and the node's peak RSS
#                                         (scripts/bench-large.sh says how)
#   scripts/bench.sh shell                the shell's wall time against a running node: median of 20 `abk job
#                                         list` and of 20 `abk --help` (published: the node ReadyToRun, abk native)
#   scripts/bench.sh queue [ARGS]         the manager's queue under a rush: 200 backup sets on 20 clients and
#                                         two libraries of 2 drives, all due at the same second; prints the
#                                         makespan, slot-to-start median and p99, and the manager's CPU
#                                         (ARGS: --sets N --clients N --drives N); then the schedule decision
#                                         over 10,000 sets (bench-schedule)
#   scripts/bench.sh tape [ARGS]          a restore of 1,000 files spread over 10 cartridges of a simulated tape
#                                         library (LTO timings) in file order and in tape order: mounts and
#                                         simulated seconds (ARGS: --files N --cartridges N)
#   scripts/bench.sh prune-race [ROUNDS]  backups started at random moments while a prune runs (20 rounds):
#                                         each round's snapshot restored and compared with its source
#   scripts/bench.sh lifecycle [ARGS]     prune of a library of 1 million chunks (4 KiB on average) of which half
#                                         are dead, every volume half dead (ARGS: --chunks N); then through a
#                                         running node: restore, verify and copy of one snapshot of
#                                         $BENCH_SOURCE (default /usr/share/dotnet), each timed; abk find's
#                                         search over file indexes of 10 million file versions (bench-find),
#                                         and abk find through the node
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
if [ "$mode" = shell ]; then
  exec bash scripts/bench-shell.sh
fi
if [ "$mode" = peers ]; then
  shift
  exec bash scripts/bench-peers.sh "$@"
fi
if [ "$mode" = large ]; then
  shift
  exec bash scripts/bench-large.sh "$@"
fi
if [ "$mode" = prune-race ]; then
  shift
  exec bash scripts/bench-prune-race.sh "$@"
fi
if [ "$mode" = queue ] || [ "$mode" = lifecycle ] || [ "$mode" = tape ]; then
  shift
  bin=$(mktemp -d /var/tmp/abk-bench-bin.XXXXXX)
  trap 'rm -rf "$bin"' EXIT
  dotnet publish src/ActorBackup.Node -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -nologo -clp:ErrorsOnly -o "$bin" >/dev/null
  if [ "$mode" = tape ]; then
    "$bin/actorbackup" bench-tape "$@"
    exit 0
  fi
  if [ "$mode" = lifecycle ]; then
    "$bin/actorbackup" bench-prune "$@"
    "$bin/actorbackup" bench-find --versions 10000000
    bash scripts/bench-lifecycle.sh "${BENCH_SOURCE:-/usr/share/dotnet}"
    exit 0
  fi
  "$bin/actorbackup" bench-queue "$@"
  "$bin/actorbackup" bench-schedule --sets 10000
  exit 0
fi
if [ "$mode" != engine ] && [ "$mode" != cell ] || [ -z "$src" ]; then
  echo "usage: scripts/bench.sh engine|cell SOURCE_DIR, or scripts/bench.sh peers|large|shell|queue|lifecycle|prune-race|tape" >&2
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
# Published as operators get it: the node ReadyToRun, so that start-up is not spent in the JIT; abk native (Native AOT).
dotnet publish src/ActorBackup.Node -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -nologo -clp:ErrorsOnly -o "$tmp/bin" >/dev/null
abk=$tmp/bin/actorbackup
if [ "$mode" = cell ]; then
  dotnet publish src/ActorBackup.Shell -c Release -nologo -clp:ErrorsOnly -o "$tmp/shell" >/dev/null
  shell=$tmp/shell/abk
fi
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
run_engine() { # restore-parent -> sets full_s noop_s restore_s verified stored; wall times, process start included
  local repo=$tmp/abk-repo out=$1/abk-restore
  "$abk" engine init --repo "$repo" >/dev/null
  settle; t0=$(now); "$abk" engine backup --repo "$repo" --level full "$src" >/dev/null; t1=$(now)
  settle; t2=$(now); "$abk" engine backup --repo "$repo" --level incremental "$src" >/dev/null; t3=$(now)
  settle; t4=$(now); "$abk" engine restore --repo "$repo" latest --to "$out" >/dev/null; t5=$(now)
  full_s=$(elapsed "$t0" "$t1"); noop_s=$(elapsed "$t2" "$t3"); restore_s=$(elapsed "$t4" "$t5")
  verified=$(check "$out")
  stored=$(du -sb "$repo/library" | cut -f1)
  echo "actorbackup engine (zstd 3, 1 MiB average chunks, AES-256-GCM; wall time, process start included):"
  step full "$full_s"; step noop "$noop_s"; step restore "$restore_s"
  echo "  stored   $(awk -v b="$stored" 'BEGIN { printf "%.1f MB", b / 1e6 }'), verified: $verified"
  rm -rf "$out" "$repo"
}

if [ "$mode" = cell ]; then
  # ---- ActorBackup cell ------------------------------------------------------------------------------------
  # Rounds (BENCH_ROUNDS, default 3), each: the engine on the data (the yardstick), a fresh embedded cell, a
  # fresh pair of nodes. Medians over the rounds: on this machine kind one run's figures swing by 20-30%.
  rounds=${BENCH_ROUNDS:-3}
  pids=()
  stop_nodes() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
  cleanup() { stop_nodes; rm -rf "$tmp"; }
  trap cleanup EXIT
  # One CA for every node of the bench (as an operator adds hosts: 'actorbackup ca issue'), and abk's operator certificate.
  "$abk" ca init --dir "$tmp/ca" --name bench >/dev/null
  "$abk" ca issue --ca "$tmp/ca" --role operator --name bench --out "$tmp/certs" >/dev/null
  # and, the CA made apart, the cell key made once by hand (keys init), shared by every node's client as the cell's.
  "$abk" keys init --keys "$tmp/keys" >/dev/null 2>&1
  export ABK_CERTS=$tmp/certs
  ops() { echo "127.0.0.1:$(( $1 + 1000 ))"; } # a node's operator endpoint: its cluster port + 1000
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  start_node() { # name port seed-port roles libraries args...
    local name=$1 port=$2 seed=$3 roles=$4 libraries=$5; shift 5
    mkdir -p "$tmp/$name"
    "$abk" ca issue --ca "$tmp/ca" --role node --name "$name" --roles "$roles" --libraries "$libraries" --out "$tmp/$name/certs" >/dev/null
    "$abk" --data "$tmp/$name" --port "$port" --set "akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@127.0.0.1:$seed\"]" \
      --set "actorbackup.client-id=$name" --set "actorbackup.roles=[$roles]" --set "actorbackup.libraries=[{id=$libraries}]" \
      --set "actorbackup.key-dir=$tmp/keys" "$@" \
      > "$tmp/$name/node.log" 2>&1 &
    pids+=($!)
  }
  wait_ready() { # port library
    for _ in $(seq 90); do
      if "$shell" --node "$(ops $1)" library list 2>/dev/null | grep -q "^$2 .* yes"; then return 0; fi
      sleep 1
    done
    echo "bench: node on port $1 did not get ready" >&2; exit 1
  }
  job_seconds() { # node-port job -> seconds from queued to finished, as the manager recorded them
    "$shell" --node "$(ops $1)" --json job show "$2" | python3 -c 'import json,sys; j=json.load(sys.stdin); print((int(j["finishedUnixMs"])-int(j["queuedUnixMs"]))/1000)'
  }
  run_cell() { # node-port client restore-dir -> sets full_s noop_s restore_s
    local port=$1 client=$2 out=$3 j
    settle; j=$("$shell" --node "$(ops $port)" backup --no-wait --level full --client "$client" "$src"); "$shell" --node "$(ops $port)" job watch "$j" >/dev/null
    full_s=$(job_seconds "$port" "$j")
    settle; j=$("$shell" --node "$(ops $port)" backup --no-wait --client "$client" "$src"); "$shell" --node "$(ops $port)" job watch "$j" >/dev/null
    noop_s=$(job_seconds "$port" "$j")
    settle; "$shell" --node "$(ops $port)" restore latest --to "$out" --client "$client" >/dev/null
    j=$("$shell" --node "$(ops $port)" --json job list | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][-1]["id"])')
    restore_s=$(job_seconds "$port" "$j")
  }
  median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
  # Restores go to BENCH_RESTORE_TMP when set (e.g. /dev/shm): on this machine kind the cost of creating
  # files on ext4 swings tenfold over minutes, which would swamp the comparison of the two data planes.
  rtmp=${BENCH_RESTORE_TMP:-$tmp}
  ef=(); en=(); er=(); cf=(); cn=(); cr=(); tf=(); tn=(); tr=(); all_verified=true
  for r in $(seq "$rounds"); do
    echo "== round $r of $rounds"
    run_engine "$rtmp"
    ef+=("$full_s"); en+=("$noop_s"); er+=("$restore_s"); [ "$verified" = true ] || all_verified=false

    p1=$(free_port)
    start_node "one$r" "$p1" "$p1" manager,media,client lib1
    wait_ready "$p1" lib1
    run_cell "$p1" "one$r" "$rtmp/cell-restore"
    verified=$(check "$rtmp/cell-restore"); [ "$verified" = true ] || all_verified=false
    stored=$(du -sb "$tmp/one$r/libraries/lib1" | cut -f1)
    stop_nodes
    rm -rf "$rtmp/cell-restore"
    echo "embedded cell (a fresh node; job times as the manager recorded them, queued to finished):"
    step full "$full_s"; step noop "$noop_s"; step restore "$restore_s"
    echo "  stored   $(awk -v b="$stored" 'BEGIN { printf "%.1f MB", b / 1e6 }'), verified: $verified"
    cf+=("$full_s"); cn+=("$noop_s"); cr+=("$restore_s")

    # Two processes: the media agent (and manager) on one node, the client on another.
    p2=$(free_port); p3=$(free_port)
    start_node "media$r" "$p2" "$p2" manager,media libm
    wait_ready "$p2" libm
    start_node "client$r" "$p3" "$p2" client libm
    for _ in $(seq 60); do "$shell" --node "$(ops $p2)" client list 2>/dev/null | grep -q "^client$r .* yes" && break; sleep 1; done
    run_cell "$p2" "client$r" "$rtmp/two-restore"
    verified=$(check "$rtmp/two-restore"); [ "$verified" = true ] || all_verified=false
    stop_nodes
    rm -rf "$rtmp/two-restore" "$tmp/one$r" "$tmp/media$r" "$tmp/client$r"
    echo "two processes (client on one node, media agent on another, socket data plane):"
    step full "$full_s"; step noop "$noop_s"; step restore "$restore_s"
    echo "  verified: $verified"
    tf+=("$full_s"); tn+=("$noop_s"); tr+=("$restore_s")
  done

  mef=$(median "${ef[@]}"); men=$(median "${en[@]}"); mer=$(median "${er[@]}")
  mcf=$(median "${cf[@]}"); mcn=$(median "${cn[@]}"); mcr=$(median "${cr[@]}")
  mtf=$(median "${tf[@]}"); mtn=$(median "${tn[@]}"); mtr=$(median "${tr[@]}")
  echo "== medians of $rounds rounds"
  echo "engine (wall time, process start included):"; step full "$mef"; step noop "$men"; step restore "$mer"
  echo "embedded cell (job time):"; step full "$mcf"; step noop "$mcn"; step restore "$mcr"
  echo "two processes (job time):"; step full "$mtf"; step noop "$mtn"; step restore "$mtr"
  awk -v a="$mef" -v b="$mcf" -v c="$men" -v d="$mcn" -v e="$mer" -v f="$mcr" \
    'BEGIN { printf "embedded cell against the engine, time: full %+.0f%%, noop %+.0f%%, restore %+.0f%%\n", 100 * (b / a - 1), 100 * (d / c - 1), 100 * (f / e - 1) }'
  awk -v a="$mcf" -v b="$mtf" -v c="$mcr" -v d="$mtr" \
    'BEGIN { printf "two processes keep %.0f%% of the single-process backup throughput, %.0f%% of the restore throughput\n", 100 * a / b, 100 * c / d }'
  printf '{"bytes":%s,"files":%s,"full_s":%s,"noop_s":%s,"restore_s":%s,"stored_bytes":%s,"verified":%s}\n' \
    "$bytes" "$files" "$mcf" "$mcn" "$mcr" "$stored" "$all_verified"
  exit 0
fi

run_engine "$tmp"

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
