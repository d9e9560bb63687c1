# Sourced by the cell benchmarks (bench-shell.sh, bench-lifecycle.sh, bench-prune-race.sh): publishes node and
# shell as operators get them (ReadyToRun), starts one embedded-cell node in $tmp with the libraries given, and
# waits until each is registered and reachable. Sets: tmp, pid, abk, ABK_NODE, ABK_CERTS; the EXIT trap stops
# the node and removes $tmp. Usage: source scripts/bench-node.sh NAME [LIBRARY...] (default lib1).
bench_name=$1
shift
bench_libraries=("${@:-lib1}")
[ ${#bench_libraries[@]} -eq 0 ] && bench_libraries=(lib1)
tmp=$(mktemp -d "/var/tmp/abk-bench-$bench_name.XXXXXX")
pid=""
cleanup() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
dotnet publish src/ActorBackup.Node -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -clp:ErrorsOnly -o "$tmp/bin" >/dev/null
dotnet publish src/ActorBackup.Shell -c Release -nologo -clp:ErrorsOnly -o "$tmp/shell" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ops=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hocon_libraries=$(printf '{id=%s},' "${bench_libraries[@]}")
"$tmp/bin/actorbackup" --data "$tmp/node" --port "$port" --set "actorbackup.ops.port=$ops" \
  --set "akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@127.0.0.1:$port\"]" \
  --set "actorbackup.libraries=[${hocon_libraries%,}]" > "$tmp/node.log" 2>&1 &
pid=$!
export ABK_NODE=127.0.0.1:$ops ABK_CERTS=$tmp/node/certs
abk=$tmp/shell/abk
for _ in $(seq 90); do
  ready=0
  listing=$("$abk" library list 2>/dev/null || true)
  for l in "${bench_libraries[@]}"; do
    if printf '%s\n' "$listing" | grep -q "^$l .* yes .* yes"; then ready=$((ready + 1)); fi
  done
  [ "$ready" = ${#bench_libraries[@]} ] && break
  sleep 1
done
"$abk" job list >/dev/null || { echo "bench: the node did not get ready:"; cat "$tmp/node.log"; exit 1; } >&2
now() { echo "$EPOCHREALTIME"; }
