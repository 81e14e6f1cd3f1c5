#!/usr/bin/env bash
# Address-change detection, IPv6 against IPv4 (docs/evaluation.md, "IPv6").
#
#   bench/address-events.sh [--runs N] [--mobilityd PATH]
#
# Builds mobilityd (Release) unless --mobilityd names one (its apphost or .dll), makes a network
# namespace of its own with IPv6 on and a veth pair a0/a1, and starts mobilityd in it (embedded GNS
# on 127.0.0.1, nothing else). Each run adds an IPv4 and an IPv6 address (nodad) to a0, one after the
# other (the order alternates between runs), then deletes them. Detection is the time from just
# before `ip addr add|del` starts to the timestamp of the daemon's "Host addresses are now [...]"
# line that shows the change (ms resolution). Prints every run, then the medians and the IPv6/IPv4
# ratio of the medians. Root only; traffic stays in the namespace; the namespace, the daemon and the
# temporary folder are removed on exit (trap).
set -euo pipefail

RUNS=10 MOBILITYD=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --mobilityd) MOBILITYD=$2; shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "address-events: unknown option $1" >&2; exit 2 ;;
  esac
done

SCRIPT=address-events
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-address-events}
WORK=$(mktemp -d /tmp/address-events.XXXXXX)
NS=addrbench-$$
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init
trap 'bench_cleanup; ip netns del "$NS" 2>/dev/null || true' EXIT

if [[ -z "$MOBILITYD" ]]; then
  log "building mobilityd (Release, artifacts in $ART)"
  dotnet build "$ROOT/src/Mobility.Daemon.Host/Mobility.Daemon.Host.csproj" -c Release --artifacts-path "$ART" -v q -nologo >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; exit 1; }
  MOBILITYD=$ART/bin/Mobility.Daemon.Host/release/mobilityd
fi
RUN=("$MOBILITYD"); [[ "$MOBILITYD" == *.dll ]] && RUN=(dotnet "$MOBILITYD")

ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
ip -n "$NS" link add a0 type veth peer name a1
ip -n "$NS" link set a0 up
ip -n "$NS" link set a1 up

ip netns exec "$NS" "${RUN[@]}" --state-dir "$WORK/state" --embedded-gns --embedded-gns-udp 127.0.0.1:7353 \
  --socket "$WORK/api.sock" --grpc-socket off --http off --grpc off --socks off --transport '[::]:7391' \
  >"$WORK/daemon.out" 2>"$WORK/daemon.log" &
bench_track $!
for _ in $(seq 1 600); do grep -q '^mobilityd ready' "$WORK/daemon.out" && break; sleep 0.1; done
grep -q '^mobilityd ready' "$WORK/daemon.out" || { cat "$WORK/daemon.log" >&2; die "mobilityd did not start"; }
log "mobilityd ready in $NS; load $(loadavg)"

# Milliseconds from $1 (ns since the epoch) to the first "Host addresses are now" line after line $2 of
# the log whose list does (want=1) or does not (want=0) hold address $3.
detect_ms() {
  local since=$1 from=$2 address=$3 want=$4 line stamp
  for _ in $(seq 1 3000); do
    line=$(tail -n +"$((from + 1))" "$WORK/daemon.log" | grep 'Host addresses are now \[' \
      | awk -v a="$address" -v w="$want" '{ s = $0; sub(/.*now \[/, "", s); sub(/\].*/, "", s); n = split(s, l, " "); h = 0;
          for (i = 1; i <= n; i++) if (l[i] == a) h = 1; if (h == w) { print; exit } }')
    if [[ -n "$line" ]]; then
      stamp=$(grep -o '^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]*' <<<"$line")
      echo $(( ($(date -d "$(date +%F) $stamp" +%s%N) - since) / 1000 ))
      return
    fi
    sleep 0.01
  done
  echo "timeout"
}

measure() { # add|del, address with prefix, extra ip flags
  local op=$1 cidr=$2; shift 2
  local from since
  from=$(wc -l <"$WORK/daemon.log")
  since=$(date +%s%N)
  ip -n "$NS" addr "$op" "$cidr" dev a0 "$@"
  detect_ms "$since" "$from" "${cidr%/*}" "$([[ $op == add ]] && echo 1 || echo 0)"
}

us_to_ms() { awk -v u="$1" 'BEGIN { if (u == "timeout") print u; else printf "%.0f", u / 1000 }'; }

printf 'run  v4-add  v6-add  v4-del  v6-del   (ms)\n'
V4=() V6=()
for run in $(seq 1 "$RUNS"); do
  v4=192.0.2.$((10 + run))/32 v6=2001:db8:1::$run/64
  if (( run % 2 )); then
    a4=$(measure add "$v4"); a6=$(measure add "$v6" nodad); d4=$(measure del "$v4"); d6=$(measure del "$v6")
  else
    a6=$(measure add "$v6" nodad); a4=$(measure add "$v4"); d6=$(measure del "$v6"); d4=$(measure del "$v4")
  fi
  printf '%3d  %6s  %6s  %6s  %6s\n' "$run" "$(us_to_ms "$a4")" "$(us_to_ms "$a6")" "$(us_to_ms "$d4")" "$(us_to_ms "$d6")"
  V4+=("$a4" "$d4") V6+=("$a6" "$d6")
done

median() { printf '%s\n' "$@" | grep -v timeout | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m4=$(median "${V4[@]}") m6=$(median "${V6[@]}")
awk -v a="$m4" -v b="$m6" -v l="$(loadavg)" 'BEGIN { printf "median detection (add and delete): IPv4 %.1f ms, IPv6 %.1f ms, IPv6/IPv4 %.2f; load %s\n", a / 1000, b / 1000, (a > 0 ? b / a : 0), l }'
