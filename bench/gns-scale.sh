#!/usr/bin/env bash
# The GNS at scale, side by side in one run on this machine (docs/benchmarks.md, docs/scaling.md).
#
#   bench/gns-scale.sh [--records N] [--duration S] [--clients C] [--outstanding Q] [--rounds R]
#                      [--watch-updates W] [--no-dns] [--quick]
#
# Starts, all on 127.0.0.1 in a temporary folder: redis-server on a free port (appendonly yes,
# appendfsync always), gns "sqlite" (default store, with --dns), gns "redis-a" (--redis, with --dns) and
# gns "redis-b" (--redis, the same Redis), and knotd serving the same names as A records.
#   1. Signed updates/s: the N signed records preloaded over UDP into SQLite and into Redis (through A).
#   2. Lookups/s by GUID, p50/p99, alternating ROUNDS times, same total clients and outstanding:
#      (a) gns on SQLite, (b) gns A on Redis, (c) gns A + gns B on the same Redis, two gns-bench at once,
#      each with half the clients and half the outstanding queries; rates summed.
#   3. Update -> watch push latency: gns-bench watch-latency, W updates sent to A over UDP, the watcher
#      subscribed through B's gRPC Watch (cross-process, via Redis pub/sub); and A -> A for reference.
#   4. DNS: dnsperf against Knot, gns(sqlite) --dns and gns(redis-a) --dns, same settings, alternating.
# Prints tables with load averages and ratios, writes artifacts/bench/gns-scale.json. Everything it
# started is stopped on exit (trap). Traffic goes to 127.0.0.1 only; every load loop is bounded in time.
set -euo pipefail

RECORDS=10000 DURATION=5 CLIENTS=4 OUTSTANDING=100 ROUNDS=2 WATCH_UPDATES=200 DNS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --records) RECORDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --outstanding) OUTSTANDING=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --watch-updates) WATCH_UPDATES=$2; shift 2 ;;
    --no-dns) DNS=0; shift ;;
    --quick) RECORDS=5000 DURATION=3 ROUNDS=1 WATCH_UPDATES=100; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "gns-scale: unknown option $1" >&2; exit 2 ;;
  esac
done
(( CLIENTS >= 2 )) || { echo "gns-scale: --clients must be at least 2 (split across two gns)" >&2; exit 2; }

SCRIPT=gns-scale
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-scale}
OUT_DIR=$ROOT/artifacts/bench
WORK=$(mktemp -d /tmp/gns-scale.XXXXXX)
ZONE=gns.test
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init

TOOLS=(dotnet redis-server redis-cli python3 jq)
[[ $DNS == 1 ]] && TOOLS+=(knotd knotc dnsperf)
require_tools "apt-get install -y redis-server knot dnsperf" "${TOOLS[@]}"
# CPU ticks of gns sqlite, gns redis-a, gns redis-b and redis-server, space separated.
cpus() { echo "$(cputicks "${GNS_PID[sqlite]}") $(cputicks "${GNS_PID[redis-a]}") $(cputicks "${GNS_PID[redis-b]}") $(cputicks "$REDIS_PID")"; }

build_gns_and_bench
HOSTS=$WORK/hosts.bin

log "deriving $RECORDS hosts, signing their records, writing the zone"
mkdir -p "$WORK/knot/zones" "$WORK/knot/db" "$WORK/knot/run"
"$BENCH" zone --records "$RECORDS" --zone "$ZONE" --data-cache "$HOSTS" \
  --zone-file "$WORK/knot/zones/$ZONE.zone" --query-file "$WORK/queries.txt"

# ---- Redis ----------------------------------------------------------------------------------------
start_redis
REDIS_MEM0=$(redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')

# ---- Knot -----------------------------------------------------------------------------------------
[[ $DNS == 1 ]] && start_knot "$RECORDS"

# ---- GNS ------------------------------------------------------------------------------------------
DNS_FLAGS=()
[[ $DNS == 1 ]] && DNS_FLAGS=(--dns 127.0.0.1:0 --zone "$ZONE")
start_gns sqlite --data "$WORK/sqlite/data" "${DNS_FLAGS[@]}"
start_gns redis-a --redis "127.0.0.1:$RPORT" "${DNS_FLAGS[@]}"
start_gns redis-b --redis "127.0.0.1:$RPORT"

# ---- 1. Signed updates (the preload) --------------------------------------------------------------
for store in sqlite redis-a; do
  log "preloading $RECORDS signed updates into $store, 256 in flight (load $(loadavg))"
  c0=$(cpus)
  "$BENCH" run --gns "${GNS_UDP[$store]}" --records "$RECORDS" --data-cache "$HOSTS" --update-concurrency 256 \
    --sockets "$CLIENTS" --concurrency "$OUTSTANDING" --warmup 0 --duration 1 --label "$store" \
    --json "$WORK/preload-$store.json" >"$WORK/preload-$store.txt"
  echo "$c0	$(cpus)" >"$WORK/preload-$store.cpu"
  cat "$WORK/preload-$store.txt" >&2
done
REDIS_MEM1=$(redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
REDIS_KEYS=$(redis-cli -p "$RPORT" dbsize | tr -d '\r')
{ redis-cli -p "$RPORT" --scan --pattern 'gns:{*}' || true; } | head -20 >"$WORK/redis-sample-keys.txt" || true
: >"$WORK/redis-sample-usage.txt"
while read -r key; do redis-cli -p "$RPORT" memory usage "$key" >>"$WORK/redis-sample-usage.txt"; done <"$WORK/redis-sample-keys.txt"
SQLITE_BYTES=$(du -sb "$WORK/sqlite/data" | cut -f1)
AOF_BYTES=$(du -sb "$WORK/redis" | cut -f1)

# ---- 2. Lookups -----------------------------------------------------------------------------------
: >"$WORK/lookups.tsv"
half_c=$(( CLIENTS / 2 )) half_q=$(( OUTSTANDING / 2 ))
lookup() { # label gns-name sockets outstanding json
  "$BENCH" run --skip-preload --gns "${GNS_UDP[$2]}" --records "$RECORDS" --data-cache "$HOSTS" \
    --sockets "$3" --concurrency "$4" --duration "$DURATION" --label "$1" --json "$5" >"$5.txt"
}
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS: lookups, $DURATION s each, $CLIENTS clients, $OUTSTANDING outstanding in total"
  load=$(loadavg); c0=$(cpus); lookup sqlite sqlite "$CLIENTS" "$OUTSTANDING" "$WORK/l-sqlite-$round.json"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "(a) 1 gns, SQLite" "$load" "$WORK/l-sqlite-$round.json" "$c0" "$(cpus)" >>"$WORK/lookups.tsv"
  log "  sqlite   $(jq '.[0].perSecond' "$WORK/l-sqlite-$round.json") q/s (load $load)"
  load=$(loadavg); c0=$(cpus); lookup redis-a redis-a "$CLIENTS" "$OUTSTANDING" "$WORK/l-redis1-$round.json"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "(b) 1 gns, Redis" "$load" "$WORK/l-redis1-$round.json" "$c0" "$(cpus)" >>"$WORK/lookups.tsv"
  log "  redis x1 $(jq '.[0].perSecond' "$WORK/l-redis1-$round.json") q/s (load $load)"
  load=$(loadavg); c0=$(cpus)
  lookup redis-a redis-a "$half_c" "$half_q" "$WORK/l-redis2a-$round.json" & b1=$!
  lookup redis-b redis-b "$half_c" "$half_q" "$WORK/l-redis2b-$round.json" & b2=$!
  wait "$b1"; wait "$b2"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "(c) 2 gns, same Redis" "$load" "$WORK/l-redis2a-$round.json,$WORK/l-redis2b-$round.json" "$c0" "$(cpus)" >>"$WORK/lookups.tsv"
  log "  redis x2 $(jq '.[0].perSecond' "$WORK/l-redis2a-$round.json") + $(jq '.[0].perSecond' "$WORK/l-redis2b-$round.json") q/s (load $load)"
done

# ---- 3. Update -> watch push ----------------------------------------------------------------------
log "watch latency: $WATCH_UPDATES updates to redis-a, watcher on redis-b (load $(loadavg))"
"$BENCH" watch-latency --gns "${GNS_UDP[redis-a]}" --watch-grpc "${GNS_GRPC[redis-b]}" --updates "$WATCH_UPDATES" \
  --json "$WORK/watch-cross.json" >&2 || log "watch-latency (A -> B) reported missed pushes"
log "watch latency: $WATCH_UPDATES updates to redis-a, watcher on redis-a (load $(loadavg))"
"$BENCH" watch-latency --gns "${GNS_UDP[redis-a]}" --watch-grpc "${GNS_GRPC[redis-a]}" --updates "$WATCH_UPDATES" \
  --json "$WORK/watch-same.json" >&2 || log "watch-latency (A -> A) reported missed pushes"
log "watch latency: $WATCH_UPDATES updates to sqlite, watcher on sqlite (load $(loadavg))"
"$BENCH" watch-latency --gns "${GNS_UDP[sqlite]}" --watch-grpc "${GNS_GRPC[sqlite]}" --updates "$WATCH_UPDATES" \
  --json "$WORK/watch-sqlite.json" >&2 || log "watch-latency (sqlite) reported missed pushes"

# ---- 4. DNS front end vs Knot ---------------------------------------------------------------------
: >"$WORK/dns.tsv"
if [[ $DNS == 1 ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS: dnsperf -c $CLIENTS -q $OUTSTANDING -l $DURATION"
    for target in knot sqlite redis-a; do
      if [[ $target == knot ]]; then port=$KPORT; else port=${GNS_DNS[$target]##*:}; fi
      load=$(loadavg)
      dnsperf -d "$WORK/queries.txt" -s 127.0.0.1 -p "$port" -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" -t 1 \
        >"$WORK/dnsperf-$target-$round.txt" 2>&1 || true
      printf '%s\t%s\t%s\t%s\n' "$round" "$target" "$load" "$WORK/dnsperf-$target-$round.txt" >>"$WORK/dns.tsv"
      log "  $target $(grep 'Queries per second' "$WORK/dnsperf-$target-$round.txt" | awk '{print $4}') q/s (load $load)"
    done
  done
fi

for name in sqlite redis-a redis-b; do gns_log_summary "$name"; done

# ---- Tables and JSON ------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
python3 - "$WORK" "$OUT_DIR/gns-scale.json" "$RECORDS" "$DURATION" "$CLIENTS" "$OUTSTANDING" \
  "$REDIS_MEM0" "$REDIS_MEM1" "$REDIS_KEYS" "$SQLITE_BYTES" "$AOF_BYTES" <<'PY'
import json, os, re, sys, statistics, platform
work, out, records, duration, clients, outstanding, mem0, mem1, keys, sqlite_bytes, aof_bytes = sys.argv[1:]
records = int(records)
res = dict(records=records, duration_s=float(duration), clients=int(clients), outstanding=int(outstanding),
           machine=dict(nproc=os.cpu_count(), kernel=platform.release()))

print(f"\nSigned datagram updates ({records} records, 256 in flight):")
print(f"{'store':<10} {'updates':>8} {'seconds':>8} {'upd/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} {'gns CPU-s':>9} {'redis CPU-s':>11} {'upd/gns-CPU-s':>13}  load avg")
ticks = os.sysconf("SC_CLK_TCK")
res["updates"] = []
for store in ("sqlite", "redis-a"):
    u = next(x for x in json.load(open(f"{work}/preload-{store}.json")) if x["phase"] == "update")
    row = dict(store="SQLite" if store == "sqlite" else "Redis", updates=u["ok"] + u["staleAfterRetry"], seconds=u["seconds"],
               per_s=u["okPerSecond"], p50_ms=u["p50Ms"], p99_ms=u["p99Ms"], failed=u["failedItems"], load=u["loadAverageAfter"])
    c0, c1 = open(f"{work}/preload-{store}.cpu").read().strip().split("\t")
    d = [(int(b) - int(a)) / ticks for a, b in zip(c0.split(), c1.split())]
    # The preload run also does a 1 s lookup tail; CPU covers both (an upper bound for the updates).
    row.update(gns_cpu_s=d[0] + d[1] + d[2], redis_cpu_s=d[3], updates_per_gns_cpu_s=row["updates"] / (d[0] + d[1] + d[2]) if d[0] + d[1] + d[2] else None)
    res["updates"].append(row)
    print(f"{row['store']:<10} {row['updates']:>8} {row['seconds']:>8.2f} {row['per_s']:>8.0f} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['failed']:>6} {row['gns_cpu_s']:>9.2f} {row['redis_cpu_s']:>11.2f} {row['updates_per_gns_cpu_s'] or 0:>13.0f}  {row['load']}")
if len(res["updates"]) == 2 and res["updates"][0]["per_s"]:
    print(f"  Redis / SQLite = {res['updates'][1]['per_s'] / res['updates'][0]['per_s']:.2f}; CPU-s include the preload's 1 s lookup tail, so upd/gns-CPU-s is a lower bound.")

print(f"\nLookups by GUID ({records} records, {clients} clients, {outstanding} outstanding in total, {duration} s per run):")
print(f"{'round':>5}  {'setup':<22} {'q/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'lost':>5} {'/(a)':>6} {'gns CPU-s':>9} {'redis CPU-s':>11}  load avg (before)")
ticks = os.sysconf("SC_CLK_TCK")
rows = []
for line in open(f"{work}/lookups.tsv"):
    rnd, setup, load, paths, c0, c1 = line.rstrip("\n").split("\t")
    d = [(int(b) - int(a)) / ticks for a, b in zip(c0.split(), c1.split())]
    parts = [json.load(open(p))[0] for p in paths.split(",")]
    qps = sum(p["perSecond"] for p in parts)
    # Two instances: p50/p99 are the worse of the two.
    rows.append(dict(round=int(rnd), setup=setup, qps=qps, p50_ms=max(p["p50Ms"] for p in parts), p99_ms=max(p["p99Ms"] for p in parts),
                     per_instance=[p["perSecond"] for p in parts],
                     errors=sum(v for p in parts for k, v in p["outcomes"].items() if k != "Ok"),
                     lost=sum(p["timeouts"] + p["lostAtEnd"] for p in parts), load=load,
                     gns_cpu_s=d[0] + d[1] + d[2], redis_cpu_s=d[3]))
for r in rows:
    base = next(x for x in rows if x["round"] == r["round"] and x["setup"].startswith("(a)"))
    r["ratio_to_sqlite"] = r["qps"] / base["qps"]
    print(f"{r['round']:>5}  {r['setup']:<22} {r['qps']:>9.0f} {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['errors']:>6} {r['lost']:>5} {r['ratio_to_sqlite']:>6.2f} {r['gns_cpu_s']:>9.2f} {r['redis_cpu_s']:>11.2f}  {r['load']}")
res["lookups"] = rows
print(f"  CPU-s = CPU seconds used during the run (warm-up + {duration} s window) by all gns processes / by redis-server.")
print("  (c) sums two gns-bench instances run at once (each half the clients and outstanding); p50/p99 = the worse instance.")

print("\nUpdate -> watch push (one update at a time, UDP to the first gns, gRPC Watch on the second):")
print(f"{'path':<34} {'n':>4} {'missed':>6} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'ack p50':>7} {'push-ack p50':>12} {'p99':>7}  load avg (after)")
res["watch"] = []
for name, label in (("cross", "Redis: update A -> watch B"), ("same", "Redis: update A -> watch A"), ("sqlite", "SQLite: update -> watch, 1 gns")):
    path = f"{work}/watch-{name}.json"
    if not os.path.exists(path):
        print(f"{label:<34} (no result)")
        continue
    w = json.load(open(path)); w["path"] = label
    res["watch"].append(w)
    print(f"{label:<34} {w['received']:>4} {w['missed']:>6} {w['pushP50Ms']:>7.3f} {w['pushP90Ms']:>7.3f} {w['pushP99Ms']:>7.3f} {w['pushMaxMs']:>7.2f} {w['ackP50Ms']:>7.3f} {w['pushAfterAckP50Ms']:>12.3f} {w['pushAfterAckP99Ms']:>7.3f}  {w['loadAverageAfter']}")

res["dns"] = []
if os.path.getsize(f"{work}/dns.tsv"):
    print(f"\nDNS A queries, dnsperf -c {clients} -q {outstanding} -l {duration} (same query file, alternating):")
    print(f"{'round':>5}  {'server':<16} {'q/s':>9} {'mean ms':>8} {'lost':>6} {'/knot':>6}  load avg (before)")
    for line in open(f"{work}/dns.tsv"):
        rnd, target, load, path = line.rstrip("\n").split("\t")
        text = open(path).read()
        def num(pat):
            m = re.search(pat, text); return float(m.group(1)) if m else float("nan")
        res["dns"].append(dict(round=int(rnd), server={"knot": "Knot", "sqlite": "gns --dns SQLite", "redis-a": "gns --dns Redis"}[target],
                               qps=num(r"Queries per second:\s+([\d.]+)"), mean_ms=num(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
                               lost=int(num(r"Queries lost:\s+(\d+)")), completed=num(r"Queries completed:\s+(\d+)"), load=load))
    for d in res["dns"]:
        knot = next(x for x in res["dns"] if x["round"] == d["round"] and x["server"] == "Knot")
        d["ratio_to_knot"] = d["qps"] / knot["qps"] if knot["qps"] else float("nan")
        print(f"{d['round']:>5}  {d['server']:<16} {d['qps']:>9.0f} {d['mean_ms']:>8.3f} {d['lost']:>6} {d['ratio_to_knot']:>6.2f}  {d['load']}")

usage = [int(x) for x in open(f"{work}/redis-sample-usage.txt").read().split() if x.strip().isdigit()]
res["footprint"] = dict(redis_used_memory_delta=int(mem1) - int(mem0), redis_keys=int(keys),
                        redis_bytes_per_record=(int(mem1) - int(mem0)) / records,
                        redis_memory_usage_record_hash_mean=statistics.mean(usage) if usage else None,
                        sqlite_dir_bytes=int(sqlite_bytes), sqlite_bytes_per_record=int(sqlite_bytes) / records,
                        redis_dir_bytes_aof=int(aof_bytes))
f = res["footprint"]
print(f"\nFootprint after the preload of {records} records:")
print(f"  Redis used_memory delta {f['redis_used_memory_delta']} B = {f['redis_bytes_per_record']:.0f} B/record ({f['redis_keys']} keys: record hash + address index);"
      f" MEMORY USAGE of a record hash (mean of {len(usage)}): {f['redis_memory_usage_record_hash_mean'] or 0:.0f} B")
print(f"  SQLite data folder {f['sqlite_dir_bytes']} B = {f['sqlite_bytes_per_record']:.0f} B/record; Redis folder (AOF) {f['redis_dir_bytes_aof']} B")
json.dump(res, open(out, "w"), indent=2)
print(f"\nwrote {out}")
PY
