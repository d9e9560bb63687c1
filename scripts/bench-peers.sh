#!/usr/bin/env bash
# scripts/bench.sh peers [sdk|small|image]...: the product path (abk against a running embedded cell, wall time of
# each whole abk command, as an operator sees it) beside restic and Borg (lz4) on the same data, in one run.
# Datasets it makes or copies (default: all three):
#   sdk    a copy of /usr/share/dotnet (a software tree)
#   small  a copy of /usr/share without dotnet (tens of thousands of small files)
#   image  a 1 GiB disk image, half compressible (each 4 KiB block half random, half zeros)
# Each round, each tool side by side on the same states of the data: (1) full backup, (2) backup with nothing
# changed, (3) backup after changes (sdk, small: 2% of the files rewritten, 200 new ones, 100 deleted; image:
# 1% of its 4 KiB blocks rewritten at random places), for the image also (4) after 16 KiB inserted at 8 places
# (the rest shifts), then a restore of the last state, checked with diff -r. Nothing the run made is deleted before
# its end but the change's own 100 files: every round's data, repositories, node folder and restores get folders of
# their own, all deleted at exit.
# On a file system that skips recently deleted inodes when it makes new ones (ext4 without a journal, as this VM's
# disk: each new inode is checked against every free one before it whose deletion is under 60 s old, or 360 s once
# the block of the inode table it sits in is dirty again, as a restore makes it), a restore after a mass delete
# times the delete's aftermath for whichever tool comes: on sdk after small's deletes, a third of the restore's CPU
# went to that scan (perf: recently_deleted, find_get_block_common), for abk and restic alike. A run needs about
# 50 GiB free for the three datasets at 3 rounds; with less than BENCH_KEEP_GIB (default 30) GiB free when a dataset
# begins, the datasets before it are deleted first and it waits BENCH_AFTER_DELETE seconds (default 370) for that
# window to pass. A fresh cell and fresh repositories
# every round; medians of BENCH_ROUNDS (default 3). Prints a table per dataset and one JSON line per dataset:
# {"dataset","bytes","files","rounds","tools":{"actorbackup":{"full_s","noop_s","change_s","insert_s","restore_s","added_change","added_insert","stored","verified","peak_rss_mib"},...}} (the ratios against restic are printed on the "against restic" line)
# "added_*" is what the repository grew by in that step. The node's peak RSS (VmHWM) is the all-roles node's.
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=("$@")
[ ${#datasets[@]} -eq 0 ] && datasets=(sdk small image)
rounds=${BENCH_ROUNDS:-3}
tmp=$(mktemp -d /var/tmp/abk-bench-peers.XXXXXX)
source scripts/bench-cell-lib.sh
cleanup() { stop_node; rm -rf "$tmp"; }
trap cleanup EXIT

if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  if [ "$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup) >/dev/null 2>&1 || true; fi
fi
tools=(actorbackup)
command -v restic >/dev/null && tools+=(restic)
command -v borg >/dev/null && tools+=(borg)
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

publish_cell

settle() { sync; sleep "${BENCH_SETTLE:-2}"; }
size_of() { du -sb "$1" | cut -f1; }

repo_of() { case $1 in actorbackup) echo "$tmp/node/libraries/lib1";; restic) echo "$tmp/restic-repo";; borg) echo "$tmp/borg-repo";; esac; }
init_tool() {
  case $1 in
    actorbackup) start_node;;
    restic) restic init -q --repo "$tmp/restic-repo" >/dev/null;;
    borg) borg init -e repokey "$tmp/borg-repo" >/dev/null 2>&1;;
  esac
}
backup() { # tool source -> seconds (wall time of the whole command)
  local t0 t1
  local rc=0
  settle; t0=$(now)
  case $1 in
    actorbackup) "$abk" backup "$2" >/dev/null || rc=$?;;
    restic) restic -q --repo "$tmp/restic-repo" backup "$2" >/dev/null || rc=$?;;
    borg) borg create --compression lz4 "$tmp/borg-repo::s$(date +%s%N)" "$2" >/dev/null 2>"$tmp/borg.err" || rc=$?
          [ "$rc" = 1 ] && rc=0;; # 1: warnings (a file changed while read), the archive is written
  esac
  t1=$(now)
  failed "$rc" "$1 backup of $2"
  elapsed "$t0" "$t1"
}
# A step that failed ends the run (it is timed in a subshell: its figure would otherwise be taken as real).
failed() { # exit-code what
  if [ "$1" != 0 ]; then echo "bench: $2 failed (exit $1)" >&2; kill -TERM $$; exit 1; fi
}
restore() { # tool source round -> seconds; the copy lands in $tmp/restored-DATASET-TOOL-ROUND (a new folder), checked after
  local t0 t1 to=$tmp/restored-$ds-$1-$3
  mkdir -p "$to"
  local rc=0
  settle; t0=$(now)
  case $1 in
    actorbackup) "$abk" restore latest --to "$to" >/dev/null || rc=$?;;
    restic) restic -q --repo "$tmp/restic-repo" restore latest --target "$to" >/dev/null || rc=$?;;
    borg) local last; last=$(borg list --last 1 --short "$tmp/borg-repo")
          (cd "$to" && borg extract "$tmp/borg-repo::$last" >/dev/null 2>&1) || rc=$?;; # borg drops the leading '/'
  esac
  t1=$(now)
  failed "$rc" "$1 restore"
  elapsed "$t0" "$t1"
}
verified() { if diff -r --no-dereference "$2" "$tmp/restored-$ds-$1-$3$2" >/dev/null 2>&1; then echo true; else echo false; fi; } # tool source round

make_data() { # dataset round -> $tmp/data/<dataset>-<round>, fresh
  local d=$tmp/data/$1-$2
  rm -rf "$d"; mkdir -p "$d"
  case $1 in
    sdk) cp -a /usr/share/dotnet/. "$d/";;
    small) (cd /usr/share && tar --exclude=./dotnet -cf - .) | (cd "$d" && tar -xf -);;
    image) python3 - "$d/disk.img" <<'EOF'
import os, sys
block, blocks = 4096, 262144
with open(sys.argv[1], "wb") as f:
    for i in range(0, blocks, 256):
        f.write(b"".join(os.urandom(block // 2) + bytes(block // 2) for _ in range(256)))
EOF
    ;;
  esac
}
change_data() { # dataset step(change|insert) round: the same change for every tool (applied once, between their backups)
  local d=$tmp/data/$1-$3
  python3 - "$d" "$1" "$2" "$3" <<'EOF'
import os, random, sys
root, dataset, step, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rnd = random.Random(seed)
if dataset == "image":
    path = os.path.join(root, "disk.img")
    size = os.path.getsize(path)
    if step == "change":  # 1% of the 4 KiB blocks rewritten, scattered
        blocks = size // 4096
        with open(path, "r+b") as f:
            for b in rnd.sample(range(blocks), blocks // 100):
                f.seek(b * 4096)
                f.write(os.urandom(2048) + bytes(2048))
    else:  # 16 KiB inserted at 8 places: everything after each shifts
        with open(path, "rb") as f:
            data = bytearray(f.read())
        for at in sorted(rnd.sample(range(len(data)), 8), reverse=True):
            data[at:at] = os.urandom(8192) + bytes(8192)
        with open(path, "wb") as f:
            f.write(data)
else:
    files = sorted(os.path.join(dp, n) for dp, _, ns in os.walk(root) for n in ns if not os.path.islink(os.path.join(dp, n)))
    for p in rnd.sample(files, max(1, len(files) // 50)):
        with open(p, "ab") as f:
            f.write(os.urandom(512))
    for p in rnd.sample(files, 100):
        if os.path.exists(p):
            os.remove(p)
    os.makedirs(os.path.join(root, "bench-new"), exist_ok=True)
    for i in range(200):
        with open(os.path.join(root, "bench-new", f"n{i}.bin"), "wb") as f:
            f.write(os.urandom(rnd.randint(100, 200_000)))
EOF
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); tools: ${tools[*]}" \
  "($(command -v restic >/dev/null && restic version | awk '{ print "restic " $2 }') $(command -v borg >/dev/null && borg --version))"
mkdir -p "$tmp/old"
for ds in "${datasets[@]}"; do
  if [ "$ds" != "${datasets[0]}" ] && [ "$(df -B1M --output=avail "$tmp" | tail -1 | tr -d ' ')" -lt $(( ${BENCH_KEEP_GIB:-30} * 1024 )) ]; then
    echo "bench: less than ${BENCH_KEEP_GIB:-30} GiB free: the datasets before $ds are deleted, and it waits ${BENCH_AFTER_DELETE:-370} s for ext4's recently deleted window" >&2
    rm -rf "$tmp"/restored-* "$tmp"/data/* "$tmp"/old/*
    sync; sleep "${BENCH_AFTER_DELETE:-370}"
  fi
  declare -A series=()
  add() { series[$1]="${series[$1]:-} $2"; }
  for r in $(seq "$rounds"); do
    make_data "$ds" "$r"
    src=$tmp/data/$ds-$r
    bytes=$(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    files=$(find "$src" -type f | wc -l)
    find "$src" -type f -exec cat {} + >/dev/null # the page cache warmed the same way for every tool
    steps=(change); [ "$ds" = image ] && steps+=(insert)
    for t in "${tools[@]}"; do init_tool "$t"; done
    # The actorbackup node stays up through the round (its repository is the node's library); the peers are processes.
    for t in "${tools[@]}"; do add "$t.full_s" "$(backup "$t" "$src")"; done
    for t in "${tools[@]}"; do add "$t.noop_s" "$(backup "$t" "$src")"; done
    for s in "${steps[@]}"; do
      change_data "$ds" "$s" "$r"
      for t in "${tools[@]}"; do
        before=$(size_of "$(repo_of "$t")")
        add "$t.${s}_s" "$(backup "$t" "$src")"
        add "$t.added_$s" "$(( $(size_of "$(repo_of "$t")") - before ))"
      done
    done
    for t in "${tools[@]}"; do
      add "$t.restore_s" "$(restore "$t" "$src" "$r")"
      add "$t.verified" "$(verified "$t" "$src" "$r")"
      add "$t.stored" "$(size_of "$(repo_of "$t")")"
      [ "$t" = actorbackup ] && add "$t.peak_rss_mib" "$(peak_rss_mib)"
    done
    stop_node
    # Moved aside, not deleted (start_node's rm of $tmp/node then finds nothing): see the top.
    for x in node restic-repo borg-repo; do if [ -e "$tmp/$x" ]; then mv "$tmp/$x" "$tmp/old/$x-$ds-$r"; fi; done
    echo "== $ds round $r of $rounds done"
  done
  m() { local v; v=${series[$1]:-}; [ -z "$v" ] && { echo null; return; }; median $v; }
  mb() { if [ "$1" = null ]; then echo -; else awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; fi; }
  allv() { case " ${series[$1]:-} " in *" false "*) echo false;; *) echo true;; esac; }
  echo "== $ds: $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }'); medians of $rounds rounds (wall seconds; MB)"
  printf '  %-12s %8s %8s %8s %8s %8s %10s %10s %9s %6s\n' tool full noop change insert restore "+change" "+insert" stored ok
  for t in "${tools[@]}"; do
    printf '  %-12s %8s %8s %8s %8s %8s %10s %10s %9s %6s\n' "$t" "$(m "$t.full_s")" "$(m "$t.noop_s")" "$(m "$t.change_s")" "$(m "$t.insert_s")" "$(m "$t.restore_s")" \
      "$(mb "$(m "$t.added_change")")" "$(mb "$(m "$t.added_insert")")" "$(mb "$(m "$t.stored")")" "$(allv "$t.verified")"
  done
  [ -n "${series[actorbackup.peak_rss_mib]:-}" ] && echo "  actorbackup node peak RSS: $(median ${series[actorbackup.peak_rss_mib]}) MiB (goal 150)"
  if [ -n "${series[restic.full_s]:-}" ]; then
    awk -v f="$(m actorbackup.full_s)" -v F="$(m restic.full_s)" -v n="$(m actorbackup.noop_s)" -v N="$(m restic.noop_s)" \
        -v r="$(m actorbackup.restore_s)" -v R="$(m restic.restore_s)" -v a="$(m actorbackup.added_change)" -v A="$(m restic.added_change)" \
        -v s="$(m actorbackup.stored)" -v S="$(m restic.stored)" \
      'BEGIN { printf "  against restic: full %.2fx (goal 2), unchanged %.2fx (goal 3), restore %.2fx (goal 2) its speed; added by the change %.0f%% of its; stored %.0f%% of its\n", F / f, N / n, R / r, 100 * a / (A > 0 ? A : 1), 100 * s / S }'
  fi
  json="{\"dataset\":\"$ds\",\"bytes\":$bytes,\"files\":$files,\"rounds\":$rounds,\"tools\":{"
  first=1
  for t in "${tools[@]}"; do
    [ $first = 1 ] || json+=","; first=0
    json+="\"$t\":{"
    fields=""
    for k in full_s noop_s change_s insert_s restore_s added_change added_insert stored peak_rss_mib; do fields+="\"$k\":$(m "$t.$k"),"; done
    json+="${fields}\"verified\":$(allv "$t.verified")}"
  done
  json+="}}"
  echo "$json"
  unset series
done
