#!/usr/bin/env bash
# GNS lookups and updates against Knot DNS, side by side on this machine (docs/benchmarks.md).
#
#   bench/gns-vs-knot.sh [--records N] [--duration S] [--clients C] [--outstanding Q] [--rounds R] [--no-memory] [--no-tuned] [--quick]
#
# Builds Release, writes the same N hosts as a Knot zone (<guid>.gns.test. A 10.x.y.z) and as signed GNS
# records, starts knotd and `gns serve` on 127.0.0.1 in a temporary folder (SQLite with default
# settings; --memory; "sqlite-cache": a record cache that holds every record; "sqlite-tuned": that cache
# and inline socket completions -- settings only, no code change),
# preloads the GNS with signed datagram updates, then alternates, ROUNDS times, with the same
# clients (UDP sockets), outstanding queries and duration:
#   dnsperf -> Knot, gns-bench dns -> Knot (the GNS client speaking DNS), gns-bench -> each gns
# and prints one table with ratios to Knot, writes artifacts/bench/gns-vs-knot.json. Every server is
# stopped on exit. Traffic goes to 127.0.0.1 only; every load loop is bounded in time.
set -euo pipefail

RECORDS=100000 DURATION=10 CLIENTS=4 OUTSTANDING=100 ROUNDS=2 MEMORY=1 TUNED=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --records) RECORDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --outstanding) OUTSTANDING=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-memory) MEMORY=0; shift ;;
    --no-tuned) TUNED=0; shift ;;
    --quick) RECORDS=10000 DURATION=3 ROUNDS=1; shift ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "gns-vs-knot: unknown option $1" >&2; exit 2 ;;
  esac
done

SCRIPT=gns-vs-knot
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ART=${ARTIFACTS_PATH:-/tmp/art-bench}
OUT_DIR=$ROOT/artifacts/bench
WORK=$(mktemp -d /tmp/gns-vs-knot.XXXXXX)
ZONE=gns.test
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init

require_tools "apt-get install -y knot dnsperf" dotnet knotd knotc dnsperf python3
build_gns_and_bench
HOSTS=$WORK/hosts.bin

log "deriving $RECORDS hosts, signing their records, writing the zone"
mkdir -p "$WORK/knot/zones" "$WORK/knot/db" "$WORK/knot/run"
"$BENCH" zone --records "$RECORDS" --zone "$ZONE" --data-cache "$HOSTS" \
  --zone-file "$WORK/knot/zones/$ZONE.zone" --query-file "$WORK/queries.txt"

# ---- Knot ---------------------------------------------------------------------------------------
start_knot "$RECORDS"

# ---- GNS ------------------------------------------------------------------------------------------
STORES=(sqlite)
[[ $MEMORY == 1 ]] && STORES+=(memory)
[[ $TUNED == 1 ]] && STORES+=(sqlite-cache sqlite-tuned)
CACHE=$(( RECORDS * 2 > 65536 ? RECORDS * 2 : 65536 ))
for store in "${STORES[@]}"; do
  data=(--data "$WORK/gns-$store/data")
  case $store in
    memory) start_gns "gns-$store" "${data[@]}" --memory ;;
    sqlite-cache) start_gns "gns-$store" "GNS_Gns__Sqlite__CacheCapacity=$CACHE" "${data[@]}" ;;
    sqlite-tuned) start_gns "gns-$store" "GNS_Gns__Sqlite__CacheCapacity=$CACHE" DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "${data[@]}" ;;
    *) start_gns "gns-$store" "${data[@]}" ;;
  esac
  p=${GNS_PID[gns-$store]} u=${GNS_UDP[gns-$store]}
  GNS_PID[$store]=$p GNS_UDP[$store]=$u
  log "gns ($store) on $u: preloading $RECORDS signed updates, 256 in flight (load $(loadavg))"
  c0=$(cputicks "$p")
  "$BENCH" run --gns "$u" --records "$RECORDS" --data-cache "$HOSTS" --update-concurrency 256 --sockets "$CLIENTS" \
    --concurrency "$OUTSTANDING" --warmup 0 --duration 2 --label "$store" --json "$WORK/preload-$store.json" >&2
  echo "$(( $(cputicks "$p") - c0 ))" >"$WORK/preload-$store.cpu"
done

# ---- Side by side ---------------------------------------------------------------------------------
TICKS=$(getconf CLK_TCK)
: >"$WORK/runs.tsv"
record() { # round system client store pid file cpu0 load
  local cpu=$(( $(cputicks "$5") - $7 ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$6" "$cpu" "$8" >>"$WORK/runs.tsv"
}
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS: $DURATION s each, $CLIENTS clients, $OUTSTANDING outstanding"
  load=$(loadavg); c0=$(cputicks "$KNOT_PID")
  dnsperf -d "$WORK/queries.txt" -s 127.0.0.1 -p "$KPORT" -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" -t 1 \
    >"$WORK/dnsperf-$round.txt" 2>&1
  record "$round" knot dnsperf zone "$KNOT_PID" "$WORK/dnsperf-$round.txt" "$c0" "$load"
  log "  knot/dnsperf   $(grep 'Queries per second' "$WORK/dnsperf-$round.txt" | awk '{print $4}') q/s (load $load)"

  load=$(loadavg); c0=$(cputicks "$KNOT_PID")
  "$BENCH" dns --server "127.0.0.1:$KPORT" --zone "$ZONE" --records "$RECORDS" --data-cache "$HOSTS" \
    --sockets "$CLIENTS" --concurrency "$OUTSTANDING" --duration "$DURATION" --json "$WORK/knot-bench-$round.json" >"$WORK/knot-bench-$round.txt"
  record "$round" knot gns-bench zone "$KNOT_PID" "$WORK/knot-bench-$round.json" "$c0" "$load"
  log "  knot/gns-bench $(jq '.[0].perSecond' "$WORK/knot-bench-$round.json") q/s (load $load)"

  for store in "${STORES[@]}"; do
    load=$(loadavg); c0=$(cputicks "${GNS_PID[$store]}")
    "$BENCH" run --skip-preload --gns "${GNS_UDP[$store]}" --records "$RECORDS" --data-cache "$HOSTS" \
      --sockets "$CLIENTS" --concurrency "$OUTSTANDING" --duration "$DURATION" --label "$store" \
      --json "$WORK/gns-$store-$round.json" >"$WORK/gns-$store-$round.txt"
    record "$round" gns gns-bench "$store" "${GNS_PID[$store]}" "$WORK/gns-$store-$round.json" "$c0" "$load"
    log "  gns/$store     $(jq '.[0].perSecond' "$WORK/gns-$store-$round.json") q/s (load $load)"
  done
done

# ---- Table and JSON -------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
python3 - "$WORK" "$OUT_DIR/gns-vs-knot.json" "$TICKS" "$RECORDS" "$DURATION" "$CLIENTS" "$OUTSTANDING" "${STORES[*]}" <<'PY'
import json, re, sys, statistics, platform, os, subprocess
work, out, ticks, records, duration, clients, outstanding, stores = sys.argv[1:]
ticks = int(ticks)
rows = []
for line in open(f"{work}/runs.tsv"):
    rnd, system, client, store, path, cpu, load = line.rstrip("\n").split("\t")
    row = dict(round=int(rnd), system=system, client=client, store=store, load=load, server_cpu_s=int(cpu) / ticks)
    if client == "dnsperf":
        text = open(path).read()
        num = lambda pat: float(re.search(pat, text).group(1))
        row.update(qps=num(r"Queries per second:\s+([\d.]+)"),
                   mean_ms=num(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
                   max_ms=num(r"Average Latency \(s\):.*max ([\d.]+)") * 1000,
                   p50_ms=None, p99_ms=None,
                   lost=int(num(r"Queries lost:\s+(\d+)")),
                   seconds=num(r"Run time \(s\):\s+([\d.]+)"))
    else:
        r = json.load(open(path))[0]
        row.update(qps=r["perSecond"], mean_ms=r["meanMs"], p50_ms=r["p50Ms"], p99_ms=r["p99Ms"], max_ms=r["maxMs"],
                   lost=r["timeouts"] + r["lostAtEnd"], seconds=r["seconds"],
                   errors=sum(v for k, v in r["outcomes"].items() if k != "Ok"),
                   verified=f'{r["verifiedSamples"]}/{r["verifiedSamples"] + r["verifyFailures"]}')
    # Queries per second of server CPU: less sensitive than q/s to what else the machine runs.
    row["queries_per_cpu_s"] = row["qps"] * row["seconds"] / row["server_cpu_s"] if row["server_cpu_s"] > 0 else None
    rows.append(row)

for row in rows:
    same = [r for r in rows if r["round"] == row["round"] and r["system"] == "knot"]
    knot_dnsperf = next(r for r in same if r["client"] == "dnsperf")
    knot_bench = next(r for r in same if r["client"] == "gns-bench")
    row["ratio_to_knot_dnsperf"] = row["qps"] / knot_dnsperf["qps"]
    row["ratio_to_knot_same_client"] = row["qps"] / knot_bench["qps"]
    if row["queries_per_cpu_s"] and knot_bench["queries_per_cpu_s"]:
        row["cpu_efficiency_vs_knot"] = row["queries_per_cpu_s"] / knot_bench["queries_per_cpu_s"]

updates = []
for store in stores.split():
    r = json.load(open(f"{work}/preload-{store}.json"))
    u = next(x for x in r if x["phase"] == "update")
    cpu = int(open(f"{work}/preload-{store}.cpu").read()) / ticks
    updates.append(dict(store=store, updates=u["ok"] + u["staleAfterRetry"], seconds=u["seconds"], per_s=u["okPerSecond"],
                        p50_ms=u["p50Ms"], p99_ms=u["p99Ms"], max_ms=u["maxMs"], retries=u["retries"], failed=u["failedItems"],
                        timeouts=u["timeouts"], load=u["loadAverageAfter"], server_cpu_s=cpu,
                        updates_per_cpu_s=(u["ok"] / cpu if cpu else None)))

def f(v, fmt):
    return "-" if v is None else format(v, fmt)

print()
print(f"Lookups: {records} names, {clients} clients, {outstanding} outstanding, {duration} s per run; nproc={os.cpu_count()}")
print(f"{'round':>5}  {'system':<6} {'store':<12} {'client':<10} {'q/s':>9} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7} {'lost':>6} {'q/CPU-s':>8} {'/knot':>6} {'/knot*':>6}  load avg")
for r in rows:
    print(f"{r['round']:>5}  {r['system']:<6} {r['store']:<12} {r['client']:<10} {r['qps']:>9.0f} {r['mean_ms']:>8.3f} {f(r['p50_ms'], '7.3f'):>7} "
          f"{f(r['p99_ms'], '7.3f'):>7} {r['lost']:>6} {f(r['queries_per_cpu_s'], '8.0f'):>8} {r['ratio_to_knot_dnsperf']:>6.2f} {r['ratio_to_knot_same_client']:>6.2f}  {r['load']}")
print("  /knot = q/s over Knot's q/s with dnsperf in the same round; /knot* = over Knot's with the same client (gns-bench dns).")
summary = []
for key in sorted({(r["system"], r["store"], r["client"]) for r in rows}):
    rs = [r for r in rows if (r["system"], r["store"], r["client"]) == key]
    summary.append(dict(system=key[0], store=key[1], client=key[2], qps=statistics.mean(r["qps"] for r in rs),
                        ratio_to_knot_dnsperf=statistics.mean(r["ratio_to_knot_dnsperf"] for r in rs),
                        ratio_to_knot_same_client=statistics.mean(r["ratio_to_knot_same_client"] for r in rs),
                        cpu_efficiency_vs_knot=statistics.mean(r.get("cpu_efficiency_vs_knot") or 0 for r in rs)))
print()
print(f"{'mean of rounds':<33} {'q/s':>9} {'/knot':>6} {'/knot*':>6} {'CPU eff.':>8}")
for s in summary:
    print(f"{s['system'] + ' ' + s['store'] + ' ' + s['client']:<33} {s['qps']:>9.0f} {s['ratio_to_knot_dnsperf']:>6.2f} {s['ratio_to_knot_same_client']:>6.2f} {s['cpu_efficiency_vs_knot']:>8.2f}")
print()
print(f"Signed datagram updates (preload of {records} records, 256 in flight):")
print(f"{'store':<12} {'updates':>8} {'seconds':>8} {'upd/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'retries':>7} {'failed':>6} {'upd/CPU-s':>9}  load avg")
for u in updates:
    print(f"{u['store']:<12} {u['updates']:>8} {u['seconds']:>8.2f} {u['per_s']:>8.0f} {u['p50_ms']:>8.3f} {u['p99_ms']:>8.3f} {u['max_ms']:>8.1f} "
          f"{u['retries']:>7} {u['failed']:>6} {f(u['updates_per_cpu_s'], '9.0f'):>9}  {u['load']}")
json.dump(dict(records=int(records), duration_s=float(duration), clients=int(clients), outstanding=int(outstanding),
               machine=dict(nproc=os.cpu_count(), kernel=platform.release()),
               lookups=rows, lookup_summary=summary, updates=updates), open(out, "w"), indent=2)
print(f"\nwrote {out}")
PY
