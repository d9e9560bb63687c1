# Sourced by the benchmarks that drive a running embedded cell with abk (bench-peers.sh, bench-large.sh).
# Expects $tmp (the benchmark's own folder). Gives: publish_cell (the node and abk as operators get them, ReadyToRun,
# into $tmp; sets $abk), start_node (a fresh all-roles embedded cell in $tmp/node, ready when lib1 takes writes;
# sets $pid, ABK_NODE, ABK_CERTS), stop_node, peak_rss_mib (the node's VmHWM), now, elapsed, median.
pid=""
publish_cell() {
  dotnet publish src/ActorBackup.Node -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -clp:ErrorsOnly -o "$tmp/bin" >/dev/null
  dotnet publish src/ActorBackup.Shell -c Release -nologo -clp:ErrorsOnly -o "$tmp/shell" >/dev/null
  abk=$tmp/shell/abk
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_node() {
  rm -rf "$tmp/node"
  local port ops
  port=$(free_port); ops=$(free_port)
  "$tmp/bin/actorbackup" --data "$tmp/node" --port "$port" --set "actorbackup.ops.port=$ops" \
    --set "akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@127.0.0.1:$port\"]" > "$tmp/node.log" 2>&1 &
  pid=$!
  export ABK_NODE=127.0.0.1:$ops ABK_CERTS=$tmp/node/certs
  for _ in $(seq 90); do
    "$abk" library list 2>/dev/null | grep -q "^lib1 .* yes .* yes" && return 0
    sleep 1
  done
  echo "bench: the node did not get ready:" >&2; cat "$tmp/node.log" >&2; exit 1
}
stop_node() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
peak_rss_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
