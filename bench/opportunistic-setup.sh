#!/usr/bin/env bash
# What opportunistic mode (docs/transparent.md, "Opportunistic mode") adds to setting up a TCP connection to a
# NON-mobile destination: the time from connect() to the first byte back (client sends 1 byte, the server answers
# 1 byte), with transparent mode off (the anchor), with opportunistic mode on and a cold owner cache (every
# connection to an address the daemon never looked up), and warm (the same address again, its "no owner" answer
# cached). Two network namespaces joined by a veth pair: the server side runs a mobilityd with its embedded GNS
# (publishing only 10.18.0.1) and a one-byte echo server on every address; the destinations are other addresses of
# that namespace (10.18.1.x), which no mobile host claims, so each cold lookup is one GNS reverse query over the veth.
# Rounds alternate off / cold / warm so that the load of a shared machine hits all three alike; each round gives
# the median of its connections, the summary the median over rounds and the ratio to "off" of the same round.
#
#   bench/opportunistic-setup.sh [--rounds N] [--connects N]
#   (SAMPLES=1 prints every connection's time on stderr; CLIENT_ARGS adds options to the client's mobilityd)
#
# Needs root (namespaces, nftables), python3, curl, and the built mobilityd (MOBILITYD, default the Release build of
# this checkout: dotnet build src/Mobility.Daemon.Host -c Release).
set -euo pipefail

ROUNDS=5
CONNECTS=100
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --connects) CONNECTS="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

SCRIPT=opportunistic-setup.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=$(mktemp -d /tmp/opportunistic-setup.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
MOBILITYD="${MOBILITYD:-$ROOT/src/Mobility.Daemon.Host/bin/Release/net10.0/mobilityd}"
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables)"
require_tools "apt-get install python3 curl nftables iproute2" python3 curl nft ip
[[ -x "$MOBILITYD" ]] || die "no mobilityd at $MOBILITYD (dotnet build src/Mobility.Daemon.Host -c Release, or set MOBILITYD)"
(( CONNECTS <= 250 )) || die "--connects at most 250 (one fresh address per cold connection)"

CLI=obs-c-$$
SRV=obs-s-$$
cleanup_namespaces() { ip netns del "$CLI" 2>/dev/null || true; ip netns del "$SRV" 2>/dev/null || true; }
bench_init
trap 'bench_cleanup; cleanup_namespaces' EXIT

ip netns add "$CLI"
ip netns add "$SRV"
ip link add eth0 netns "$CLI" type veth peer name eth0 netns "$SRV"
ip -n "$CLI" link set lo up
ip -n "$SRV" link set lo up
ip -n "$CLI" link set eth0 up
ip -n "$SRV" link set eth0 up
ip -n "$CLI" addr add 10.18.0.2/24 dev eth0
ip -n "$SRV" addr add 10.18.0.1/24 dev eth0
# Every destination through one next hop, so that a fresh destination costs no ARP exchange of its own.
ip -n "$CLI" route add 10.18.0.0/16 via 10.18.0.1
# One destination address per cold connection of a round (the rounds use different ones: 10.18.<round>.<n>).
for r in $(seq 1 "$ROUNDS"); do
    for n in $(seq 1 "$CONNECTS"); do echo "addr add 10.18.$((r + 100)).$n/32 dev eth0"; done
done | ip -n "$SRV" -batch -
ip -n "$SRV" addr add 10.18.1.1/32 dev eth0

# The one-byte echo server: accept, read one byte, answer it, close.
cat >"$WORK/echo.py" <<'EOF'
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9000)); s.listen(512)
print("echo ready", flush=True)
def serve(c):
    with c:
        b = c.recv(1)
        if b: c.sendall(b)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
ip netns exec "$SRV" python3 "$WORK/echo.py" >"$WORK/echo.log" 2>&1 &
bench_track $!

start_daemon() { # ns, role, args...
    local ns=$1 role=$2; shift 2
    mkdir -p "$WORK/$role"
    ip netns exec "$ns" "$MOBILITYD" --state-dir "$WORK/$role" --socket "$WORK/$role/api.sock" --grpc-socket off --grpc off --socks off --http off \
        --Transparent:Dns off --Transparent:Resolver none "$@" >"$WORK/$role/log" 2>&1 &
    bench_track $!
    for _ in $(seq 1 600); do grep -q "mobilityd ready" "$WORK/$role/log" && return 0; sleep 0.1; done
    cat "$WORK/$role/log" >&2; die "$role mobilityd did not start"
}
start_daemon "$SRV" server --embedded-gns --address 10.18.0.1
start_daemon "$CLI" client --gns 10.18.0.1:7353 ${CLIENT_ARGS:-}
grep -q "echo ready" "$WORK/echo.log" || sleep 1

transparent() { # on|off [opportunistic]
    local body='{"enabled":false}'
    [[ $1 == on ]] && body='{"enabled":true,"opportunistic":true}'
    curl -sf --unix-socket "$WORK/client/api.sock" -X PUT -H 'Content-Type: application/json' -d "$body" http://mobilityd/v1/transparent >/dev/null \
        || die "PUT /v1/transparent $body failed"
}

# Connects to each address given (one per connect), prints the median connect-to-first-byte time in microseconds.
cat >"$WORK/connect.py" <<'EOF'
import socket, statistics, sys, time
samples = []
for address in sys.argv[1:]:
    t0 = time.perf_counter_ns()
    with socket.create_connection((address, 9000), timeout=10) as s:
        s.sendall(b"x")
        if s.recv(1) != b"x": sys.exit("no echo from " + address)
    samples.append((time.perf_counter_ns() - t0) / 1000)
import os
if os.environ.get("SAMPLES"): print(" ".join(f"{x:.0f}" for x in samples), file=sys.stderr)
print(f"{statistics.median(samples):.0f}")
EOF
measure() { ip netns exec "$CLI" python3 "$WORK/connect.py" "$@"; }
warm_list() { for _ in $(seq 1 "$CONNECTS"); do echo 10.18.1.1; done; }

log "mobilityd $MOBILITYD, $ROUNDS rounds x $CONNECTS connects, load $(loadavg)"
printf '%-6s %10s %10s %10s %8s %8s\n' round off_us cold_us warm_us cold/off warm/off
OFFS=(); COLDS=(); WARMS=()
for r in $(seq 1 "$ROUNDS"); do
    transparent off
    measure 10.18.1.1 >/dev/null   # untimed: ARP, the server's first accept
    off=$(measure $(warm_list))
    transparent on
    cold=$(measure $(for n in $(seq 1 "$CONNECTS"); do echo "10.18.$((r + 100)).$n"; done))
    measure 10.18.1.1 >/dev/null   # the address's "no owner" answer is now cached
    warm=$(measure $(warm_list))
    OFFS+=("$off"); COLDS+=("$cold"); WARMS+=("$warm")
    printf '%-6s %10s %10s %10s %8s %8s\n' "$r" "$off" "$cold" "$warm" \
        "$(python3 -c "print(f'{$cold/$off:.2f}')")" "$(python3 -c "print(f'{$warm/$off:.2f}')")"
done
transparent off
python3 - "${OFFS[*]}" "${COLDS[*]}" "${WARMS[*]}" <<'EOF'
import statistics, sys
off, cold, warm = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print(f"median over rounds: off {statistics.median(off):.0f} us, cold {statistics.median(cold):.0f} us, warm {statistics.median(warm):.0f} us; "
      f"per-round ratios (median): cold/off {statistics.median(c / o for c, o in zip(cold, off)):.2f}, "
      f"warm/off {statistics.median(w / o for w, o in zip(warm, off)):.2f}")
EOF
grep -c "Opportunistic mode on" "$WORK/client/log" >/dev/null || log "the client daemon never logged 'Opportunistic mode on'"
