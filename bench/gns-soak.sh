#!/usr/bin/env bash
# A long, steady mix of lookups and signed updates against one gns process (docs/benchmarks.md).
#
#   bench/gns-soak.sh [--store sqlite|redis] [--duration S] [--lookup-rate L] [--update-rate U] [--hosts K]
#                     [--sample S] [--out DIR]
#
# Builds Release, starts on 127.0.0.1 in a temporary folder one `gns serve` (default store SQLite; with
# --store redis, a durable redis-server too), then `gns-bench soak`: L lookups/s by GUID and U signed
# updates/s (open loop, default 2000 + 200, 1000 hosts, 600 s), sampling every S s (default 5) the gns
# process's VmRSS and CPU and the lookup/update p50/p99 and errors. At the end every host is looked up
# and compared with its last acknowledged version (lost = an acknowledged update a lookup does not
# return). Writes DIR/gns-soak-STORE.csv, .svg and .json (DIR defaults to artifacts/bench). Everything
# it started is stopped on exit (trap). Traffic goes to 127.0.0.1 only; the run is bounded in time.
set -euo pipefail

STORE=sqlite DURATION=600 LOOKUP_RATE=2000 UPDATE_RATE=200 HOSTS=1000 SAMPLE=5 OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) STORE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --lookup-rate) LOOKUP_RATE=$2; shift 2 ;;
    --update-rate) UPDATE_RATE=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --sample) SAMPLE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "gns-soak: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $STORE == sqlite || $STORE == redis ]] || { echo "gns-soak: --store is sqlite or redis" >&2; exit 2; }

SCRIPT=gns-soak
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-soak}
OUT=${OUT:-$ROOT/artifacts/bench}
WORK=$(mktemp -d /tmp/gns-soak.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init

TOOLS=(dotnet python3)
[[ $STORE == redis ]] && TOOLS+=(redis-server redis-cli)
require_tools "apt-get install -y redis-server" "${TOOLS[@]}"
build_gns_and_bench

if [[ $STORE == redis ]]; then
  start_redis
  start_gns gns --redis "127.0.0.1:$RPORT"
else
  start_gns gns --data "$WORK/gns/data"
fi

mkdir -p "$OUT"
log "soak: $STORE, $LOOKUP_RATE lookups/s + $UPDATE_RATE updates/s, $HOSTS hosts, $DURATION s (load $(loadavg))"
status=0
"$BENCH" soak --gns "${GNS_UDP[gns]}" --pid "${GNS_PID[gns]}" --duration "$DURATION" --lookup-rate "$LOOKUP_RATE" \
  --update-rate "$UPDATE_RATE" --hosts "$HOSTS" --sample "$SAMPLE" --label "$STORE" \
  --csv "$OUT/gns-soak-$STORE.csv" --svg "$OUT/gns-soak-$STORE.svg" --json "$OUT/gns-soak-$STORE.json" || status=$?
log "soak done (load $(loadavg))"
gns_log_summary gns
kill -0 "${GNS_PID[gns]}" 2>/dev/null || { log "gns died during the soak"; status=1; }
log "wrote $OUT/gns-soak-$STORE.csv, .svg, .json"
exit "$status"
