#!/usr/bin/env bash
# Address claims under flood (docs/benchmarks.md, docs/protocol.md "Address claims").
#
#   bench/gns-claims.sh [--flood N] [--spread K] [--lookups L] [--no-redis]
#
# For each store (SQLite, Redis unless --no-redis), on 127.0.0.1 in a temporary folder: starts gns
# (and redis-server on a free port), then runs `gns-bench claims`: the owner registers its address
# from that address (127.0.0.10), L reverse lookups of it are timed, the attacker (127.0.0.66) sends N
# throw-away keys claiming it and K keys of 8 other addresses each, and L lookups are timed again;
# each answer must list the owner first. Everything it started is stopped on exit (trap). Traffic
# goes to loopback only.
set -euo pipefail

FLOOD=10000 SPREAD=1000 LOOKUPS=2000 REDIS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --flood) FLOOD=$2; shift 2 ;;
    --spread) SPREAD=$2; shift 2 ;;
    --lookups) LOOKUPS=$2; shift 2 ;;
    --no-redis) REDIS=0; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "gns-claims: unknown option $1" >&2; exit 2 ;;
  esac
done

SCRIPT=gns-claims
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-claims}
WORK=$(mktemp -d /tmp/gns-claims.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init
build_gns_and_bench

run_store() { # name, then gns flags
  local name=$1; shift
  start_gns "$name" "$@"
  log "$name: $(loadavg)"
  echo "## $name"
  "$BENCH" claims --gns "${GNS_UDP[$name]}" --flood "$FLOOD" --spread "$SPREAD" --lookups "$LOOKUPS"
  gns_log_summary "$name"
}

run_store sqlite --data "$WORK/sqlite-data"
if (( REDIS )); then
  require_tools "apt-get install redis-server" redis-server
  start_redis
  run_store redis --redis "127.0.0.1:$RPORT"
fi
