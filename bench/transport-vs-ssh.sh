#!/usr/bin/env bash
# Throughput of an unmodified TCP application (iperf3) through two mobilityd (`mob forward` on one
# side, `mob expose` on the other) against the same iperf3 through an `ssh -L` port forward and
# over plain TCP, side by side, all on loopback. Rounds alternate plain / ssh -L / mob so that the
# load of a shared machine hits all three alike; the summary gives the ratios mob/plain, mob/ssh.
#
#   bench/transport-vs-ssh.sh [--rounds N] [--duration S] [--parallel P] [--reverse] [--warmup S] [--quick]
#   (--warmup S: an unmeasured iperf3 run of S seconds through each system first; default 0)
#
# Besides Gbit/s, each round reports the CPU the relaying processes used (utime + stime from
# /proc/PID/stat over the round: ssh + the sshd session for ssh -L; mob forward + both mobilityd for
# mob) per GB moved, which a busy machine disturbs far less than the rate.
#
# Needs: dotnet, iperf3, openssh-server (/usr/sbin/sshd) and openssh-client, jq. Root is fine (the
# sshd runs with a throw-away host key, StrictModes and PAM off, in a temporary folder).
# ARTIFACTS_PATH (default /tmp/art-transport) is the build's artifacts folder.
set -euo pipefail

ROUNDS=3
DURATION=5
PARALLEL=1
REVERSE=""
WARMUP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --parallel) PARALLEL="$2"; shift 2 ;;
        --reverse) REVERSE="-R"; shift ;;
        --warmup) WARMUP="$2"; shift 2 ;;   # untimed iperf3 run of this many seconds per system first (JIT, pools)
        --quick) ROUNDS=1; DURATION=2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ART="${ARTIFACTS_PATH:-/tmp/art-transport}"
for tool in dotnet iperf3 ssh ssh-keygen jq; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || { echo "missing: /usr/sbin/sshd (apt-get install -y openssh-server)" >&2; exit 1; }

TMP="$(mktemp -d /tmp/transport-vs-ssh.XXXXXX)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== build (Release, $ART)"
for p in src/Mobility.Gns.Host src/Mobility.Daemon.Host src/Mobility.Cli; do
    dotnet build "$ROOT/$p" -c Release --artifacts-path "$ART" -v q -nologo >"$TMP/build.log" 2>&1 \
        || { cat "$TMP/build.log"; exit 1; }
done
BIN="$ART/bin"
GNS="$BIN/Mobility.Gns.Host/release/gns.dll"
MOBILITYD="$BIN/Mobility.Daemon.Host/release/mobilityd.dll"
MOB="$BIN/Mobility.Cli/release/mob.dll"

# Waits until FILE has a line matching REGEX (or the process PID died) and prints that line.
wait_line() {
    local file="$1" regex="$2" pid="$3" i
    for ((i = 0; i < 300; i++)); do
        if grep -m1 -E "$regex" "$file" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { echo "process $pid died; its output:" >&2; cat "$file" "$file.err" >&2 2>/dev/null; return 1; }
        sleep 0.1
    done
    echo "timeout waiting for /$regex/ in $file" >&2
    cat "$file" "$file.err" >&2 2>/dev/null
    return 1
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

wait_port() {
    local port="$1" i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== gns"
dotnet "$GNS" serve --data "$TMP/gns" --udp 127.0.0.1:0 --http 127.0.0.1:0 --grpc 127.0.0.1:0 \
    >"$TMP/gns.out" 2>"$TMP/gns.out.err" &
PIDS+=($!)
line=$(wait_line "$TMP/gns.out" '^gns listening' "${PIDS[-1]}")
GNS_UDP=$(field "$line" udp)
GNS_GRPC=$(field "$line" grpc)

start_daemon() { # name address socks -> ready line in $TMP/name.out
    local name="$1" address="$2" socks="$3"
    mkdir -p "$TMP/$name"
    dotnet "$MOBILITYD" --state-dir "$TMP/$name" --gns "$GNS_UDP" --gns-grpc "$GNS_GRPC" \
        --address "$address" --allow-loopback --control "$address:0" --transport "$address:0" \
        --socks "$socks" --http off --grpc off --socket "$TMP/$name/d.sock" --grpc-socket off \
        >"$TMP/$name.out" 2>"$TMP/$name.out.err" &
    PIDS+=($!)
}

echo "== mobilityd x2"
start_daemon server 127.0.0.3 off
SERVER_PID=${PIDS[-1]}
start_daemon client 127.0.0.2 127.0.0.1:0
CLIENT_PID=${PIDS[-1]}
server_line=$(wait_line "$TMP/server.out" '^mobilityd ready' "$SERVER_PID")
client_line=$(wait_line "$TMP/client.out" '^mobilityd ready' "$CLIENT_PID")
SERVER_GUID=$(field "$server_line" guid)
SOCKS=$(field "$client_line" socks)

echo "== iperf3 server"
IPERF_PORT=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >"$TMP/iperf3-server.log" 2>&1 &
PIDS+=($!)
wait_port "$IPERF_PORT"

dotnet "$MOB" expose "$IPERF_PORT" --socket "$TMP/server/d.sock" >/dev/null
dotnet "$MOB" forward 0 "$SERVER_GUID:$IPERF_PORT" --socks "$SOCKS" >"$TMP/forward.out" 2>"$TMP/forward.out.err" &
PIDS+=($!)
MOB_PID=${PIDS[-1]}
line=$(wait_line "$TMP/forward.out" '^forwarding ' "$MOB_PID")
MOB_PORT=$(awk '{print $2}' <<<"$line" | sed 's/.*://')

echo "== sshd (throw-away keys in $TMP/ssh)"
mkdir -p "$TMP/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$TMP/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$TMP/ssh/client_key"
cp "$TMP/ssh/client_key.pub" "$TMP/ssh/authorized_keys"
SSH_PORT=$(free_port)
cat >"$TMP/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $TMP/ssh/host_key
AuthorizedKeysFile $TMP/ssh/authorized_keys
PidFile $TMP/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
AllowTcpForwarding yes
EOF
/usr/sbin/sshd -D -e -f "$TMP/ssh/sshd_config" 2>"$TMP/sshd.log" &
PIDS+=($!)
SSHD_PID=${PIDS[-1]}
wait_port "$SSH_PORT"
SSHL_PORT=$(free_port)
ssh -N -T -L "127.0.0.1:$SSHL_PORT:127.0.0.1:$IPERF_PORT" -p "$SSH_PORT" -i "$TMP/ssh/client_key" \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \
    -o ExitOnForwardFailure=yes "$(id -un)@127.0.0.1" </dev/null 2>"$TMP/ssh.log" &
PIDS+=($!)
SSH_PID=${PIDS[-1]}
wait_port "$SSHL_PORT"
SSH_CIPHER=$(ssh -G -T -p "$SSH_PORT" 127.0.0.1 2>/dev/null | awk '$1 == "ciphers" {split($2, c, ","); print c[1]}')

# CPU ticks (utime + stime) of the given processes and all their descendants.
cpu_ticks() {
    local total=0 pid child
    local -a queue=("$@")
    while [[ ${#queue[@]} -gt 0 ]]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        if [[ -r /proc/$pid/stat ]]; then
            total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
            for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do queue+=("$child"); done
        fi
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

declare -A SUM
declare -A N
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
if [[ "$WARMUP" -gt 0 ]]; then
    echo "== warm-up: iperf3 -t $WARMUP through each system, not measured"
    for port in "$IPERF_PORT" "$SSHL_PORT" "$MOB_PORT"; do
        iperf3 -c 127.0.0.1 -p "$port" -t "$WARMUP" -P "$PARALLEL" $REVERSE >/dev/null 2>&1 || true
    done
fi
echo "== $ROUNDS rounds x (plain, ssh -L, mob), iperf3 -t $DURATION -P $PARALLEL $REVERSE; ssh cipher: $SSH_CIPHER"
printf '%-6s %-7s %10s %12s %s\n' round system Gbit/s 'CPU-s/GB' 'load average'
for ((r = 1; r <= ROUNDS; r++)); do
    for system in plain ssh mob; do
        case $system in
            plain) port=$IPERF_PORT; relays=() ;;
            ssh) port=$SSHL_PORT; relays=("$SSH_PID" "$SSHD_PID") ;;
            mob) port=$MOB_PORT; relays=("$MOB_PID" "$CLIENT_PID" "$SERVER_PID") ;;
        esac
        before=0
        [[ ${#relays[@]} -gt 0 ]] && before=$(cpu_ticks "${relays[@]}")
        iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -P "$PARALLEL" $REVERSE -J >"$TMP/iperf3.json" 2>&1 \
            || { echo "iperf3 against $system failed:" >&2; cat "$TMP/iperf3.json" >&2; exit 1; }
        after=0
        [[ ${#relays[@]} -gt 0 ]] && after=$(cpu_ticks "${relays[@]}")
        bps=$(jq '.end.sum_received.bits_per_second' "$TMP/iperf3.json")
        bytes=$(jq '.end.sum_received.bytes' "$TMP/iperf3.json")
        gbps=$(awk -v b="$bps" 'BEGIN {printf "%.2f", b / 1e9}')
        cpu="-"
        if [[ ${#relays[@]} -gt 0 ]]; then
            cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v b="$bytes" 'BEGIN {printf "%.2f", (t / hz) / (b / 1e9)}')
        fi
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        printf '%-6s %-7s %10s %12s %s\n' "$r" "$system" "$gbps" "$cpu" "$load"
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$system" "$gbps" "$cpu" "$load" >>"$RESULTS"
    done
done

echo
echo "== per round ratios, then the mean"
awk -F'\t' '
    { g[$1, $2] = $3; c[$1, $2] = $4; if ($1 > rounds) rounds = $1 }
    END {
        printf "%-6s %10s %10s %14s\n", "round", "mob/plain", "mob/ssh", "CPU mob/ssh"
        for (r = 1; r <= rounds; r++) {
            mp = g[r, "mob"] / g[r, "plain"]; ms = g[r, "mob"] / g[r, "ssh"]; cs = c[r, "mob"] / c[r, "ssh"]
            printf "%-6s %10.2f %10.2f %14.2f\n", r, mp, ms, cs
            smp += mp; sms += ms; scs += cs
            sp += g[r, "plain"]; ss += g[r, "ssh"]; sm += g[r, "mob"]
        }
        printf "%-6s %10.2f %10.2f %14.2f\n", "mean", smp / rounds, sms / rounds, scs / rounds
        printf "\nmean Gbit/s: plain %.2f, ssh -L %.2f, mob %.2f\n", sp / rounds, ss / rounds, sm / rounds
    }' "$RESULTS"
echo "uptime: $(uptime)"
