#!/usr/bin/env bash
# UDP through transparent mode against plain UDP, side by side: two network namespaces joined by a
# veth pair; in one, iperf3 -s and mobilityd (embedded GNS, name "peer", TCP and UDP 5201 exposed);
# in the other, mobilityd with transparent mode on. Each round runs, for each rate, the same
# `iperf3 -u -b RATE -t DURATION` twice, alternating: to the peer's real address (plain UDP over the
# veth) and to its virtual address (intercepted: TPROXY, a mobile session, DATAGRAM frames). The
# summary gives per rate the medians of the received rate and the loss, and the ratio mobile/plain.
#
#   [ROUNDS=5] [DURATION=5] [RATES="5M 50M 200M"] [LENGTH=1200] bench/transparent-udp.sh
#
# Needs root (namespaces, nftables), dotnet, iperf3, jq, dig. Builds src/Mobility.Daemon.Host (Release)
# in place. Leaves nothing behind: the namespaces, processes and temporary folder go on exit.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5}"
RATES="${RATES:-5M 50M 200M}"
LENGTH="${LENGTH:-1200}"
[[ $# -eq 0 ]] || { sed -n '2,13p' "$0"; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT=transparent-udp.sh
WORK="$(mktemp -d /tmp/transparent-udp.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
require_tools "apt-get install iperf3 jq dnsutils" dotnet iperf3 jq dig nft
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables)"

SRV="udpb$$s"
CLI="udpb$$c"
cleanup_all() {
    bench_cleanup
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

log "building mobilityd (Release)"
dotnet build "$ROOT/src/Mobility.Daemon.Host" -c Release -nologo -v q >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
MOBILITYD="$ROOT/src/Mobility.Daemon.Host/bin/Release/net10.0/mobilityd.dll"

ip netns add "$SRV"
ip netns add "$CLI"
ip link add eth0 netns "$SRV" type veth peer name eth0 netns "$CLI"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
ip -n "$SRV" addr add 10.31.0.1/24 dev eth0
ip -n "$CLI" addr add 10.31.0.2/24 dev eth0

# Starts mobilityd in namespace $1 with state folder $2 and the remaining arguments; waits for its ready line.
start_daemon() {
    local ns=$1 dir=$2; shift 2
    mkdir -p "$dir"
    ip netns exec "$ns" dotnet "$MOBILITYD" --state-dir "$dir" --socket "$dir/api.sock" --grpc-socket off --grpc off --socks off --http off \
        "$@" >"$dir/ready" 2>"$dir/log" &
    bench_track $!
    for _ in $(seq 1 600); do grep -q "mobilityd ready" "$dir/ready" 2>/dev/null && return 0; sleep 0.1; done
    cat "$dir/log" >&2
    die "mobilityd in $ns did not start"
}

# PUT/POST on the daemon's Unix socket.
api() { # dir method path body
    curl -sS --fail --unix-socket "$1/api.sock" -X "$2" -H 'Content-Type: application/json' -d "$4" "http://localhost$3" >/dev/null
}

ip netns exec "$SRV" iperf3 -s -B 127.0.0.1 -p 5201 >"$WORK/iperf-mobile.log" 2>&1 &
bench_track $!
ip netns exec "$SRV" iperf3 -s -B 10.31.0.1 -p 5202 >"$WORK/iperf-plain.log" 2>&1 &
bench_track $!
start_daemon "$SRV" "$WORK/server" --embedded-gns --name peer
api "$WORK/server" POST /v1/exposed '{"port":5201}'
api "$WORK/server" POST /v1/exposed '{"port":5201,"udp":true}'
start_daemon "$CLI" "$WORK/client" --gns 10.31.0.1:7353 --Transparent:Resolver none
api "$WORK/client" PUT /v1/transparent '{"enabled":true}'
VIRTUAL=""
for _ in $(seq 1 50); do
    VIRTUAL=$(ip netns exec "$CLI" dig +short +time=1 +tries=1 @127.77.0.1 peer.mob A || true)
    [[ $VIRTUAL == 100.* ]] && break
    sleep 0.5
done
[[ $VIRTUAL == 100.* ]] || die "peer.mob did not resolve through the stub"
log "peer.mob is $VIRTUAL; load $(loadavg)"

# One iperf3 -u run; prints "received_mbps lost_percent".
run() { # target port rate
    local out
    out=$(ip netns exec "$CLI" iperf3 -u -c "$1" -p "$2" -b "$3" -l "$LENGTH" -t "$DURATION" --json)
    jq -r --argjson len "$LENGTH" '.end.sum as $s | "\((($s.packets - $s.lost_packets) * $len * 8 / $s.seconds / 1e6)) \($s.lost_percent)"' <<<"$out"
}

# Warm-up (JIT, first session): not measured.
run "$VIRTUAL" 5201 5M >/dev/null
RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for rate in $RATES; do
        read -r pm pl < <(run 10.31.0.1 5202 "$rate")
        read -r mm ml < <(run "$VIRTUAL" 5201 "$rate")
        echo "$rate plain $pm $pl" >>"$RESULTS"
        echo "$rate mobile $mm $ml" >>"$RESULTS"
        log "round $round rate $rate: plain ${pm} Mbit/s lost ${pl}%, mobile ${mm} Mbit/s lost ${ml}%"
    done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "iperf3 -u -l $LENGTH -t $DURATION, $ROUNDS rounds, medians; load at the end $(loadavg)"
printf '%-8s %14s %10s %14s %10s %8s\n' rate "plain Mbit/s" "plain loss" "mobile Mbit/s" "mob. loss" "ratio"
for rate in $RATES; do
    pm=$(awk -v r="$rate" '$1 == r && $2 == "plain" {print $3}' "$RESULTS" | median)
    pl=$(awk -v r="$rate" '$1 == r && $2 == "plain" {print $4}' "$RESULTS" | median)
    mm=$(awk -v r="$rate" '$1 == r && $2 == "mobile" {print $3}' "$RESULTS" | median)
    ml=$(awk -v r="$rate" '$1 == r && $2 == "mobile" {print $4}' "$RESULTS" | median)
    printf '%-8s %14.1f %9.2f%% %14.1f %9.2f%% %8.2f\n' "$rate" "$pm" "$pl" "$mm" "$ml" "$(awk -v a="$mm" -v b="$pm" 'BEGIN {print (b > 0) ? a / b : 0}')"
done
