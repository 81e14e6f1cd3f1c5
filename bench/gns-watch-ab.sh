#!/usr/bin/env bash
# Update -> watch push across two gns processes on one Redis, A/B: a baseline gns build against this tree,
# alternating in the same minutes so that both see the same machine load (docs/benchmarks.md).
#
#   bench/gns-watch-ab.sh --baseline PATH_TO_GNS [--rounds R] [--updates N]
#
# Builds this tree (Release, into $ARTIFACTS_PATH, default /tmp/art-scale), starts two durable redis-servers
# and, on each, two `gns serve --redis` (A and B): one pair from the baseline binary, one from this tree.
# Then ROUNDS times, alternating: `gns-bench watch-latency --updates N`, updates sent to A over UDP, the
# watch opened through B's gRPC. A baseline build of another commit: copy the tree at that commit to a
# folder and `dotnet build src/Mobility.Gns.Host -c Release --artifacts-path /tmp/art-old` there; its gns
# is /tmp/art-old/bin/Mobility.Gns.Host/release/gns. Everything it started is stopped on exit (trap).
set -euo pipefail

BASELINE="" ROUNDS=3 UPDATES=200
while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline) BASELINE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --updates) UPDATES=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "gns-watch-ab: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x $BASELINE ]] || { echo "gns-watch-ab: --baseline PATH_TO_GNS (an executable gns) is required" >&2; exit 2; }

SCRIPT=gns-watch-ab
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-scale}
WORK=$(mktemp -d /tmp/gns-watch-ab.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init

require_tools "apt-get install -y redis-server" dotnet redis-server redis-cli python3
build_gns_and_bench
CURRENT=$GNS
for v in baseline current; do
  start_redis
  if [[ $v == baseline ]]; then GNS=$BASELINE; else GNS=$CURRENT; fi
  start_gns "$v-a" --redis "127.0.0.1:$RPORT"
  start_gns "$v-b" --redis "127.0.0.1:$RPORT"
done

printf '%-6s %-9s %8s %8s %8s %8s %12s %7s  %s\n' round build "p50 ms" "p90 ms" "p99 ms" "ack p50" "push-ack p50" missed "load avg (after)"
for r in $(seq 1 "$ROUNDS"); do
  for v in baseline current; do
    "$BENCH" watch-latency --gns "${GNS_UDP[$v-a]}" --watch-grpc "${GNS_GRPC[$v-b]}" --updates "$UPDATES" \
      --json "$WORK/$v-$r.json" >"$WORK/$v-$r.txt" 2>&1 || log "watch-latency ($v, round $r) reported missed pushes"
    python3 - "$WORK/$v-$r.json" "$r" "$v" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<6} {sys.argv[3]:<9} {w['pushP50Ms']:>8.3f} {w['pushP90Ms']:>8.3f} {w['pushP99Ms']:>8.3f} {w['ackP50Ms']:>8.3f} {w['pushAfterAckP50Ms']:>12.3f} {w['missed']:>7}  {w['loadAverageAfter']}")
PY
  done
done
for v in baseline current; do gns_log_summary "$v-a"; gns_log_summary "$v-b"; done
