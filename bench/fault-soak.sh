#!/usr/bin/env bash
# The fault soak of docs/benchmarks.md ("Faults lose nothing"): builds soak-bench, gns and mobilityd
# (Release) and runs soak-bench with the arguments given, for example
#
#   bench/fault-soak.sh --store sqlite --moves 50 --size-mib 256                 # SIGKILL of gns in the middle
#   bench/fault-soak.sh --store redis --moves 50 --size-mib 256                  # and a Redis failover at 3/4
#   bench/fault-soak.sh --minutes 30 --interval-ms 10000 --no-gns-kill \
#                       --csv docs/benchmarks/soak-fault-long.csv --svg docs/benchmarks/soak-fault-long.svg
#
# soak-bench starts everything itself in a temporary folder (gns; with --store redis a durable
# redis-server primary and replica; two mobilityd on a random 127.x.y.0/24) and stops it on exit; all
# traffic stays on loopback. Options are listed at the top of bench/Mobility.Bench.Soak/Program.cs.
# Needs redis-server and redis-cli on PATH for --store redis. Exit status is soak-bench's: 0 when no
# byte was lost, duplicated or corrupted and every move resumed.
set -euo pipefail

case "${1:-}" in -h|--help) sed -n 2,15p "$0"; exit 0 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-fault-soak}
for arg in "$@"; do
  if [[ $arg == redis ]]; then
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
      || { echo "fault-soak: redis-server and redis-cli are needed (apt-get install redis-server)" >&2; exit 1; }
  fi
done

echo "fault-soak: building (Release, artifacts in $ART)" >&2
dotnet build "$ROOT/bench/Mobility.Bench.Soak/Mobility.Bench.Soak.csproj" -c Release --artifacts-path "$ART" -v q -nologo -clp:ErrorsOnly >&2
exec dotnet "$ART/bin/Mobility.Bench.Soak/release/soak-bench.dll" "$@"
