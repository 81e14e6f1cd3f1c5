# Shared by the GNS benchmark scripts (gns-vs-knot.sh, gns-scale.sh, gns-soak.sh): sourced, not run.
#
# The sourcing script sets SCRIPT (its name, for messages) and WORK (a temporary folder it owns), then
# calls bench_init; every process started with bench_track (and by start_redis, start_knot, start_gns) is
# stopped by the EXIT trap, with a bounded wait before SIGKILL, and WORK is removed.

PIDS=()

bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # Bounded wait, then force.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

bench_init() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_track() { PIDS+=("$1"); }

die() { echo "$SCRIPT: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# utime + stime of a process, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

require_tools() { # hint, then tools
  local hint=$1 tool; shift
  for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool not found ($hint)"; done
}

# Builds gns and gns-bench (Release) into ART; sets GNS and BENCH.
build_gns_and_bench() {
  log "building (Release, artifacts in $ART)"
  dotnet build "$ROOT/src/Mobility.Gns.Host/Mobility.Gns.Host.csproj" -c Release --artifacts-path "$ART" -v q -nologo >"$WORK/build-gns.log" 2>&1 \
    || { cat "$WORK/build-gns.log" >&2; exit 1; }
  dotnet build "$ROOT/bench/Mobility.Bench.Gns/Mobility.Bench.Gns.csproj" -c Release --artifacts-path "$ART" -v q -nologo >"$WORK/build-bench.log" 2>&1 \
    || { cat "$WORK/build-bench.log" >&2; exit 1; }
  GNS=$ART/bin/Mobility.Gns.Host/release/gns
  BENCH=$ART/bin/Mobility.Bench.Gns/release/gns-bench
}

# redis-server on a free loopback port in WORK/redis, durable (appendonly yes, appendfsync always);
# sets RPORT and REDIS_PID.
start_redis() {
  RPORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$WORK/redis" --appendonly yes --appendfsync always \
    --save "" --protected-mode yes --daemonize no --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  bench_track "$REDIS_PID"
  for i in $(seq 1 100); do
    redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && break
    kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis/redis.log" >&2; exit 1; }
    [[ $i == 100 ]] && die "redis-server did not start"
    sleep 0.1
  done
  log "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$RPORT (appendonly yes, appendfsync always)"
}

# knotd serving zone ZONE from WORK/knot/zones/ZONE.zone on a free loopback port; sets KPORT and KNOT_PID.
start_knot() { # records (for the message)
  KPORT=$(free_udp_port)
  mkdir -p "$WORK/knot/zones" "$WORK/knot/db" "$WORK/knot/run"
  cat >"$WORK/knot/knot.conf" <<CONF
server:
    rundir: "$WORK/knot/run"
    listen: 127.0.0.1@$KPORT
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
control:
    listen: "$WORK/knot/run/knot.sock"
database:
    storage: "$WORK/knot/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$WORK/knot/zones"
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: $ZONE
CONF
  knotd -c "$WORK/knot/knot.conf" >"$WORK/knot/knotd.log" 2>&1 &
  KNOT_PID=$!
  bench_track "$KNOT_PID"
  for i in $(seq 1 120); do
    if knotc -c "$WORK/knot/knot.conf" zone-status "$ZONE" 2>/dev/null | grep -q 'serial: 1'; then break; fi
    kill -0 "$KNOT_PID" 2>/dev/null || { cat "$WORK/knot/knotd.log" >&2; exit 1; }
    [[ $i == 120 ]] && { cat "$WORK/knot/knotd.log" >&2; die "knotd did not load the zone"; }
    sleep 0.5
  done
  log "knotd $(knotd --version | awk '{print $NF}') on 127.0.0.1:$KPORT serving $1 A records"
}

# `gns serve` on loopback ports chosen by the kernel, output in WORK/NAME. Arguments: NAME, then any
# VAR=value settings (passed as environment), then gns flags (--data DIR, --redis HOST:PORT, --dns ...).
# The per-source rate limit (20/s by default) would refuse a load generator, so it is raised; everything
# else is default. Sets GNS_PID[NAME], GNS_UDP[NAME], GNS_GRPC[NAME], GNS_DNS[NAME].
declare -A GNS_PID GNS_UDP GNS_GRPC GNS_DNS
start_gns() {
  local name=$1; shift
  local settings=() flags=() a pid i
  for a in "$@"; do if [[ $a == *=* && $a != --* ]]; then settings+=("$a"); else flags+=("$a"); fi; done
  mkdir -p "$WORK/$name"
  env GNS_Gns__RequestsPerSecond=1000000000 GNS_Gns__Burst=1000000 Logging__LogLevel__Default=Warning "${settings[@]}" \
    "$GNS" serve --udp 127.0.0.1:0 --http 127.0.0.1:0 --grpc 127.0.0.1:0 "${flags[@]}" \
    >"$WORK/$name/stdout" 2>"$WORK/$name/stderr" &
  pid=$!
  bench_track "$pid"
  for i in $(seq 1 240); do
    if grep -q '^gns listening' "$WORK/$name/stdout"; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name/stderr" >&2; exit 1; }
    [[ $i == 240 ]] && die "gns ($name) did not start"
    sleep 0.25
  done
  GNS_PID[$name]=$pid
  GNS_UDP[$name]=$(grep -o 'udp=[^ ]*' "$WORK/$name/stdout" | cut -d= -f2)
  GNS_GRPC[$name]=$(grep -o 'grpc=[^ ]*' "$WORK/$name/stdout" | cut -d= -f2)
  GNS_DNS[$name]=$(grep -o 'dns=[^ ]*' "$WORK/$name/stdout" | cut -d= -f2 || true)
  log "$(head -1 "$WORK/$name/stdout")"
}

# Counts the errors and warnings gns NAME logged, and prints the first few with the lines that follow
# them (message, exception), before WORK is removed.
gns_log_summary() {
  local name=$1 file=$WORK/$1/stderr
  log "gns ($name) logged $(grep -c '^fail:' "$file" || true) errors, $(grep -c '^warn:' "$file" || true) warnings"
  grep -E -A6 '^(fail|warn):' "$file" | head -40 >&2 || true
}
