#!/usr/bin/env bash
# GNS lookup latency over TLS against UDP on loopback (docs/benchmarks.md, "GNS over TLS"): one gns serve --memory
# with a TLS endpoint (self-signed certificate made here by openssl), then `gns-bench tls-latency`: lookups of one
# record, one at a time, over UDP and over TLS in alternating rounds; per-round medians, their median, tls/udp.
#
#   [ROUNDS=R] [LOOKUPS=N] bench/gns-tls-latency.sh
#
# Uses the Release builds in the tree (dotnet build src/Mobility.Gns.Host bench/Mobility.Bench.Gns -c Release).
# Everything it started is stopped on exit (trap).
set -euo pipefail

# Settings from the environment: ROUNDS (default 5), LOOKUPS per transport and round (default 2000).
ROUNDS=${ROUNDS:-5}
LOOKUPS=${LOOKUPS:-2000}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GNS=$ROOT/src/Mobility.Gns.Host/bin/Release/net10.0/gns.dll
BENCH=$ROOT/bench/Mobility.Bench.Gns/bin/Release/net10.0/gns-bench.dll
WORK=$(mktemp -d /tmp/gns-tls-latency.XXXXXX)
GNS_PID=""
cleanup() { [[ -n $GNS_PID ]] && kill "$GNS_PID" 2>/dev/null && wait "$GNS_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=gns \
  -keyout "$WORK/gns.key" -out "$WORK/gns.crt" </dev/null 2>/dev/null
PIN=$(openssl x509 -in "$WORK/gns.crt" -noout -fingerprint -sha256 | cut -d= -f2)

GNS_Gns__RequestsPerSecond=1000000000 GNS_Gns__Burst=1000000 dotnet "$GNS" serve --memory --udp 127.0.0.1:0 \
  --http 127.0.0.1:0 --grpc off --tls-listen 127.0.0.1:0 --tls-cert "$WORK/gns.crt" --tls-key "$WORK/gns.key" \
  >"$WORK/ready" 2>"$WORK/gns.log" &
GNS_PID=$!
for _ in $(seq 1 600); do grep -q "gns listening" "$WORK/ready" && break; sleep 0.1; done
READY=$(cat "$WORK/ready")
UDP=$(sed -n 's/.* udp=\([^ ]*\).*/\1/p' <<<"$READY")
TLS=$(sed -n 's/.* tls=\([^ ]*\).*/\1/p' <<<"$READY")
[[ -n $UDP && -n $TLS ]] || { echo "gns-tls-latency: gns did not start: $READY $(cat "$WORK/gns.log")" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet "$BENCH" tls-latency --gns "$UDP" --tls "$TLS" --pin "$PIN" --lookups "$LOOKUPS" --rounds "$ROUNDS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
