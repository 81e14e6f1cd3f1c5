#!/usr/bin/env bash
# TCP through transparent mode against `ssh -L` and plain TCP, side by side (issue 17, "Benchmarks"): two
# network namespaces joined by a veth pair. The server side runs one `iperf3 -s` (all three systems reach the
# same server), an sshd, a one-byte echo server and mobilityd (embedded GNS, name "peer", TCP 5201 and 9000
# exposed); the client side runs mobilityd with transparent mode on and an `ssh -N -L` to the server's sshd.
# Each round runs the same unmodified `iperf3 -c -t DURATION` three times, alternating: to the server's real
# address (plain TCP over the veth), to the local end of `ssh -L` (iperf3 -> ssh -> veth -> sshd -> iperf3),
# and to the peer's virtual address from the stub (`peer.mob`: iperf3 -> nftables REDIRECT -> client
# mobilityd -> mobile connection over the veth -> server mobilityd -> iperf3). Then, the connection set-up:
# CONNECTS short connections (connect, one byte each way, close) to the echo server over plain TCP and
# through interception (a new mobile connection each), alternating by round.
#
#   [ROUNDS=5] [DURATION=5] [PARALLEL=1] [CONNECTS=100] [REVERSE=1] [SAMPLES=1] [SETUP_ONLY=1] [LOG_LEVEL=Debug]
#   [KEEP=DIR] [GNS_DLL=PATH] [CAPTURE_RST=1] bench/transparent-tcp.sh
#
# Reports per round and as medians of rounds: Gbit/s (iperf3's receiver figure), CPU-seconds per GB moved of
# the relaying processes (ssh + the sshd session; both mobilityd) and of all processes involved (those plus
# both iperf3 ends), the ratios transparent/ssh and transparent/plain of the same round; for set-up, the median
# and p90 of the connect-to-echo time of each system and their ratio. CPU is utime + stime from /proc/PID/stat
# (processes and their children) over each iperf3 run; the iperf3 client's from its rusage.
# REVERSE=1 passes -R (the server side sends). SAMPLES=1 prints every set-up sample on stderr. SETUP_ONLY=1 skips the
# throughput part (no sshd, no ssh, no iperf3 runs). LOG_LEVEL sets both daemons' log level (--Logging:LogLevel:Default;
# their logs are WORK/server/log and WORK/client/log). KEEP=DIR copies the temporary folder (logs, samples) to DIR on
# exit, whatever the outcome. A set-up connection that fails (reset, no echo) is reported with its round, system and
# index, and the run goes on; the summary counts the failures. GNS_DLL names a built gns.dll: then a standalone GNS
# runs in the server namespace (UDP 10.32.0.1:7353, gRPC 10.32.0.1:7381) in place of the server daemon's embedded one,
# and both daemons use it with --gns-grpc, so the client daemon watches the peer's record as a deployed daemon does
# (the embedded GNS serves gRPC on loopback only: without GNS_DLL the client cannot watch, and every connect looks
# the peer up). CAPTURE_RST=1 records every TCP RST in both namespaces (tcpdump, WORK/rst-*.txt, with KEEP).
#
# Needs root (namespaces, nftables), dotnet, iperf3, jq, dig, python3, openssh-server and -client. Builds
# src/Mobility.Daemon.Host (Release) in place unless MOBILITYD names a built mobilityd.dll. Leaves nothing
# behind: the namespaces, processes and temporary folder go on exit.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5}"
PARALLEL="${PARALLEL:-1}"
CONNECTS="${CONNECTS:-100}"
REVERSE_FLAG=""
[[ "${REVERSE:-0}" == 1 ]] && REVERSE_FLAG="-R"
SETUP_ONLY="${SETUP_ONLY:-0}"
LOG_ARGS=()
[[ -n "${LOG_LEVEL:-}" ]] && LOG_ARGS=(--Logging:LogLevel:Default "$LOG_LEVEL")
[[ $# -eq 0 ]] || { sed -n '2,35p' "$0"; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT=transparent-tcp.sh
WORK="$(mktemp -d /tmp/transparent-tcp.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
require_tools "apt-get install iperf3 jq dnsutils openssh-client python3" dotnet iperf3 jq dig nft ssh ssh-keygen python3
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd not found (apt-get install openssh-server)"
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables)"

SRV="tcpb$$s"
CLI="tcpb$$c"
cleanup_all() {
    if [[ -n "${KEEP:-}" ]]; then
        for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        sleep 1
        mkdir -p "$KEEP" && cp -a "$WORK"/. "$KEEP"/ 2>/dev/null || true
    fi
    bench_cleanup
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

if [[ -z "${MOBILITYD:-}" ]]; then
    log "building mobilityd (Release)"
    dotnet build "$ROOT/src/Mobility.Daemon.Host" -c Release -nologo -v q >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
    MOBILITYD="$ROOT/src/Mobility.Daemon.Host/bin/Release/net10.0/mobilityd.dll"
fi

ip netns add "$SRV"
ip netns add "$CLI"
ip link add eth0 netns "$SRV" type veth peer name eth0 netns "$CLI"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
ip -n "$SRV" addr add 10.32.0.1/24 dev eth0
ip -n "$CLI" addr add 10.32.0.2/24 dev eth0

# Starts mobilityd in namespace $1 with state folder $2 and the remaining arguments; waits for its ready line.
start_daemon() {
    local ns=$1 dir=$2; shift 2
    mkdir -p "$dir"
    ip netns exec "$ns" dotnet "$MOBILITYD" --state-dir "$dir" --socket "$dir/api.sock" --grpc-socket off --grpc off --socks off --http off \
        "${LOG_ARGS[@]}" "$@" >"$dir/ready" 2>"$dir/log" &
    bench_track $!
    for _ in $(seq 1 600); do grep -q "mobilityd ready" "$dir/ready" 2>/dev/null && return 0; sleep 0.1; done
    cat "$dir/log" >&2
    die "mobilityd in $ns did not start"
}

api() { # dir method path body
    curl -sS --fail --unix-socket "$1/api.sock" -X "$2" -H 'Content-Type: application/json' -d "$4" "http://localhost$3" >/dev/null
}

# One iperf3 server for all three systems: on every address of the server namespace.
ip netns exec "$SRV" iperf3 -s -p 5201 >"$WORK/iperf-server.log" 2>&1 &
IPERF_SERVER=$!
bench_track "$IPERF_SERVER"

# The one-byte echo server of the set-up measurement: accept, read one byte, answer it, close.
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

if [[ -n "${GNS_DLL:-}" ]]; then
    mkdir -p "$WORK/gns"
    ip netns exec "$SRV" dotnet "$GNS_DLL" serve --data "$WORK/gns/data" --udp 10.32.0.1:7353 --udp-reflect 10.32.0.1:7354 \
        --http 127.0.0.1:7380 --grpc 10.32.0.1:7381 >"$WORK/gns/ready" 2>"$WORK/gns/log" &
    bench_track $!
    for _ in $(seq 1 600); do [[ -s "$WORK/gns/ready" ]] && break; sleep 0.1; done
    [[ -s "$WORK/gns/ready" ]] || { cat "$WORK/gns/log" >&2; die "gns did not start"; }
    GNS_ARGS=(--gns 10.32.0.1:7353 --gns-grpc http://10.32.0.1:7381)
    start_daemon "$SRV" "$WORK/server" "${GNS_ARGS[@]}" --name peer
else
    GNS_ARGS=(--gns 10.32.0.1:7353)
    start_daemon "$SRV" "$WORK/server" --embedded-gns --name peer
fi
if [[ "${CAPTURE_RST:-0}" == 1 ]]; then
    for ns in "$SRV" "$CLI"; do
        ip netns exec "$ns" tcpdump -i any -nn -tttt -l 'tcp[tcpflags] & tcp-rst != 0' >"$WORK/rst-$ns.txt" 2>/dev/null &
        bench_track $!
    done
fi
SERVER_PID=${PIDS[-1]}
api "$WORK/server" POST /v1/exposed '{"port":5201}'
api "$WORK/server" POST /v1/exposed '{"port":9000}'
start_daemon "$CLI" "$WORK/client" "${GNS_ARGS[@]}" --Transparent:Resolver none
CLIENT_PID=${PIDS[-1]}
api "$WORK/client" PUT /v1/transparent '{"enabled":true}'
VIRTUAL=""
for _ in $(seq 1 50); do
    VIRTUAL=$(ip netns exec "$CLI" dig +short +time=1 +tries=1 @127.77.0.1 peer.mob A || true)
    [[ $VIRTUAL == 100.* ]] && break
    sleep 0.5
done
[[ $VIRTUAL == 100.* ]] || die "peer.mob did not resolve through the stub"

SSH_CIPHER=none
if [[ $SETUP_ONLY != 1 ]]; then
# sshd in the server namespace with throw-away keys; ssh -L in the client namespace to the same iperf3 server.
mkdir -p "$WORK/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/client_key"
cp "$WORK/ssh/client_key.pub" "$WORK/ssh/authorized_keys"
cat >"$WORK/ssh/sshd_config" <<EOF
ListenAddress 10.32.0.1
Port 2222
HostKey $WORK/ssh/host_key
AuthorizedKeysFile $WORK/ssh/authorized_keys
PidFile $WORK/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
AllowTcpForwarding yes
EOF
ip netns exec "$SRV" /usr/sbin/sshd -D -e -f "$WORK/ssh/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!
bench_track "$SSHD_PID"
for _ in $(seq 1 100); do ip netns exec "$CLI" bash -c 'exec 3<>/dev/tcp/10.32.0.1/2222' 2>/dev/null && break; sleep 0.1; done
ip netns exec "$CLI" ssh -N -T -L 127.0.0.1:15201:127.0.0.1:5201 -p 2222 -i "$WORK/ssh/client_key" \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \
    -o ExitOnForwardFailure=yes "$(id -un)@10.32.0.1" </dev/null 2>"$WORK/ssh.log" &
SSH_PID=$!
bench_track "$SSH_PID"
for _ in $(seq 1 100); do ip netns exec "$CLI" bash -c 'exec 3<>/dev/tcp/127.0.0.1/15201' 2>/dev/null && break; sleep 0.1; done
SSH_CIPHER=$(ssh -G -p 2222 10.32.0.1 2>/dev/null | awk '$1 == "ciphers" {split($2, c, ","); print c[1]}')

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

# Runs iperf3 -c in the client namespace; writes its JSON to $WORK/iperf3.json and prints the client's CPU seconds.
cat >"$WORK/run.py" <<'EOF'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.3f}")
sys.exit(code)
EOF
iperf() { # target port
    ip netns exec "$CLI" python3 "$WORK/run.py" "$WORK/iperf3.json" iperf3 -c "$1" -p "$2" -t "$DURATION" -P "$PARALLEL" $REVERSE_FLAG -J \
        || { echo "iperf3 to $1:$2 failed:" >&2; cat "$WORK/iperf3.json" >&2; exit 1; }
}

log "peer.mob is $VIRTUAL; ssh cipher $SSH_CIPHER; mobilityd $MOBILITYD; load $(loadavg)"
log "warm-up: one untimed iperf3 -t 2 through each system (JIT, first connections)"
for target in "10.32.0.1 5201" "127.0.0.1 15201" "$VIRTUAL 5201"; do
    # shellcheck disable=SC2086
    DURATION=2 iperf $target >/dev/null
done

RESULTS="$WORK/results"
: >"$RESULTS"
printf '%-6s %-12s %8s %14s %12s %s\n' round system Gbit/s 'relay CPU-s/GB' 'all CPU-s/GB' 'load average' >&2
for round in $(seq 1 "$ROUNDS"); do
    for system in plain ssh transparent; do
        case $system in
            plain) target=10.32.0.1; port=5201; relays=() ;;
            ssh) target=127.0.0.1; port=15201; relays=("$SSH_PID" "$SSHD_PID") ;;
            transparent) target=$VIRTUAL; port=5201; relays=("$CLIENT_PID" "$SERVER_PID") ;;
        esac
        relay_before=0
        [[ ${#relays[@]} -gt 0 ]] && relay_before=$(cpu_ticks "${relays[@]}")
        server_before=$(cpu_ticks "$IPERF_SERVER")
        client_cpu=$(iperf "$target" "$port")
        server_after=$(cpu_ticks "$IPERF_SERVER")
        relay_after=0
        [[ ${#relays[@]} -gt 0 ]] && relay_after=$(cpu_ticks "${relays[@]}")
        bps=$(jq '.end.sum_received.bits_per_second' "$WORK/iperf3.json")
        bytes=$(jq '.end.sum_received.bytes' "$WORK/iperf3.json")
        read -r gbps relay_gb all_gb < <(awk -v bps="$bps" -v b="$bytes" -v hz="$HZ" -v r=$((relay_after - relay_before)) \
            -v s=$((server_after - server_before)) -v c="$client_cpu" \
            'BEGIN {gb = b / 1e9; printf "%.3f %.3f %.3f\n", bps / 1e9, (r / hz) / gb, (r / hz + s / hz + c) / gb}')
        load=$(loadavg)
        echo "$round $system $gbps $relay_gb $all_gb" >>"$RESULTS"
        printf '%-6s %-12s %8s %14s %12s %s\n' "$round" "$system" "$gbps" "$relay_gb" "$all_gb" "$load" >&2
    done
done
else
    log "peer.mob is $VIRTUAL; mobilityd $MOBILITYD; set-up only; load $(loadavg)"
fi

# Connection set-up: connect, send one byte, read it back, close; every sample in microseconds.
cat >"$WORK/connect.py" <<'EOF'
import socket, sys, time
# address count [label]: prints the samples of the connections that completed; each failure goes to stderr as
# "FAIL label index error after-us at-UTC" and the run goes on.
address, count = sys.argv[1], int(sys.argv[2])
label = sys.argv[3] if len(sys.argv) > 3 else address
samples = []
for i in range(count):
    t0 = time.perf_counter_ns()
    try:
        with socket.create_connection((address, 9000), timeout=10) as s:
            s.sendall(b"x")
            if s.recv(1) != b"x": raise ConnectionError("no echo")
        samples.append((time.perf_counter_ns() - t0) / 1000)
    except OSError as e:
        at = time.strftime("%H:%M:%S", time.gmtime()) + f".{time.time_ns() // 1000 % 1000000:06d}"
        print(f"FAIL {label} {i} {type(e).__name__} {(time.perf_counter_ns() - t0) / 1000:.0f}us {at}", file=sys.stderr, flush=True)
print(" ".join(f"{x:.0f}" for x in samples))
EOF
log "set-up: $ROUNDS rounds x $CONNECTS connects per system, alternating; load $(loadavg)"
# Untimed first: ARP, the first accepts, and the JIT of the interception path (its tier-1 code comes after some
# tens of connections; a perf profile of a cold run shows the daemons' CPU mostly in the JIT).
FAILURES="$WORK/failures"
: >"$FAILURES"
ip netns exec "$CLI" python3 "$WORK/connect.py" 10.32.0.1 50 "warm-up plain" >/dev/null 2>>"$FAILURES"
ip netns exec "$CLI" python3 "$WORK/connect.py" "$VIRTUAL" 50 "warm-up transparent" >/dev/null 2>>"$FAILURES"
SETUP="$WORK/setup"
: >"$SETUP"
for round in $(seq 1 "$ROUNDS"); do
    for system in plain transparent; do
        target=10.32.0.1
        [[ $system == transparent ]] && target=$VIRTUAL
        samples=$(ip netns exec "$CLI" python3 "$WORK/connect.py" "$target" "$CONNECTS" "$round $system" 2>>"$FAILURES")
        [[ "${SAMPLES:-0}" == 1 ]] && echo "$round $system $samples" >&2
        echo "$round $system $samples" >>"$SETUP"
    done
done

if [[ $SETUP_ONLY != 1 ]]; then
echo
echo "== throughput: iperf3 -t $DURATION -P $PARALLEL $REVERSE_FLAG, $ROUNDS rounds alternating plain / ssh -L / transparent; ssh cipher $SSH_CIPHER"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, system, g, relay, total in rows:
    by.setdefault(int(r), {})[system] = (float(g), float(relay), float(total))
print(f"{'round':<6} {'plain':>7} {'ssh -L':>7} {'transp.':>7}  {'t/ssh':>6} {'t/plain':>7}  {'relay CPU-s/GB ssh':>18} {'transp.':>7} {'t/ssh':>6}  {'all CPU-s/GB plain':>18} {'ssh':>6} {'transp.':>7} {'t/ssh':>6}")
ratios = {k: [] for k in ("ts", "tp", "rc", "ac")}
for r in sorted(by):
    p, s, t = by[r]["plain"], by[r]["ssh"], by[r]["transparent"]
    ts, tp, rc, ac = t[0] / s[0], t[0] / p[0], t[1] / s[1], t[2] / s[2]
    for k, v in zip(("ts", "tp", "rc", "ac"), (ts, tp, rc, ac)): ratios[k].append(v)
    print(f"{r:<6} {p[0]:7.2f} {s[0]:7.2f} {t[0]:7.2f}  {ts:6.2f} {tp:7.2f}  {s[1]:18.2f} {t[1]:7.2f} {rc:6.2f}  {p[2]:18.2f} {s[2]:6.2f} {t[2]:7.2f} {ac:6.2f}")
med = lambda system, i: statistics.median(by[r][system][i] for r in by)
m = {k: statistics.median(v) for k, v in ratios.items()}
print(f"{'median':<6} {med('plain', 0):7.2f} {med('ssh', 0):7.2f} {med('transparent', 0):7.2f}  {m['ts']:6.2f} {m['tp']:7.2f}  "
      f"{med('ssh', 1):18.2f} {med('transparent', 1):7.2f} {m['rc']:6.2f}  {med('plain', 2):18.2f} {med('ssh', 2):6.2f} {med('transparent', 2):7.2f} {m['ac']:6.2f}")
print("(ratios: median of the per-round ratios; Gbit/s and CPU-s/GB: median of the rounds)")
EOF
fi
echo
echo "== connection set-up (connect, 1 byte each way, close), $ROUNDS rounds x $CONNECTS per system"
python3 - "$SETUP" <<'EOF'
import statistics, sys
samples = {"plain": [], "transparent": []}
per_round = {}
for line in open(sys.argv[1]):
    r, system, *xs = line.split()
    xs = [float(x) for x in xs]
    samples[system] += xs
    per_round.setdefault(r, {})[system] = statistics.median(xs)
p90 = lambda xs: statistics.quantiles(xs, n=10)[-1]
for system, xs in samples.items():
    print(f"{system:<12} n={len(xs):<5} median {statistics.median(xs):8.0f} us  p90 {p90(xs):8.0f} us")
ratio = statistics.median(v["transparent"] / v["plain"] for v in per_round.values())
print(f"transparent/plain: median {statistics.median(samples['transparent']) / statistics.median(samples['plain']):.2f}, "
      f"p90 {p90(samples['transparent']) / p90(samples['plain']):.2f}, median of per-round median ratios {ratio:.2f}")
EOF
echo "set-up connections that failed (reset, no echo, timeout), warm-up included: $(grep -c '^FAIL' "$FAILURES" || true)"
grep '^FAIL' "$FAILURES" || true
echo "load at the end: $(loadavg)"
