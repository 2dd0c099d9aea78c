#!/usr/bin/env bash
# Metadata and `ls -l` throughput of nfs4d with its handle map on etcd
# (docs/cluster.md) against sled, over loopback, with nfs4d-bench.
#
#   conformance/bench/cluster.sh [--rounds R] [--duration S] [--warmup S]
#                                [--connections N] [--slots M] [--workloads a,b]
#                                [--first-listing] [--bin-dir DIR] [--out DIR] [--lock FILE] [--keep]
#
# Starts a three-member etcd (the `etcd` binary of Debian's etcd-server) on
# 127.0.0.1 with its data directories under a temporary directory in /tmp,
# then, for every round, three set-ups one after the other (their order
# rotating from round to round):
#   sled   one nfs4d without [cluster]: the handle map in sled;
#   etcd1  one head (`a`) of a cluster on that etcd;
#   etcd2  two heads (`a`, `b`) of that cluster on the same export
#          directory, each driven by its own nfs4d-bench at the same time.
# The servers of a set-up are started fresh, run every workload (default
# metadata and readdir), and are stopped. Each workload runs once for
# --warmup seconds (not recorded) and then for --duration seconds; with
# --first-listing, readdir is preceded by one full listing on a single slot
# per head (a head starts with empty caches). Around
# each measured run the script reads the etcd members' CPU time from /proc
# and their Prometheus metrics (WAL fsyncs, backend commits, gRPC requests
# by method) from their client ports. The readdir directory is made once per
# export before the first round. With --lock FILE every round runs under
# `flock FILE`, so it does not overlap other benchmarks on the machine.
# Results: DIR/results.jsonl (nfs4d-bench lines plus set-up, head and the
# etcd deltas), DIR/summary.md (medians over the rounds). Every process the
# script starts is stopped at exit; the temporary directory is removed
# unless --keep.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=3
DURATION=8
WARMUP=2
CONNECTIONS=4
SLOTS=16
WORKLOADS=metadata,readdir
BINDIR=
OUT=
LOCK=
KEEP=0
FIRST_LISTING=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --slots) SLOTS=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --bin-dir) BINDIR=$2; shift ;;
        --out) OUT=$2; shift ;;
        --lock) LOCK=$2; shift ;;
        --keep) KEEP=1 ;;
        --first-listing) FIRST_LISTING=1 ;;
        -h|--help) usage 0 ;;
        *) echo "cluster.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done

log() { printf '[cluster] %s\n' "$*" >&2; }

ETCD=$(command -v etcd || true)
[ -n "$ETCD" ] || { echo "cluster.sh: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
for p in python3 curl ss; do
    command -v "$p" >/dev/null || { echo "cluster.sh: $p is needed" >&2; exit 1; }
done
SRCBIN=${BINDIR:-$ROOT/target/release}
for b in nfs4d nfs4d-bench; do
    [ -x "$SRCBIN/$b" ] || { echo "cluster.sh: no $b in $SRCBIN: build it first" >&2; exit 1; }
done

BASE=$(mktemp -d /tmp/nfs4d-bench-cluster.XXXXXX)
OUT=${OUT:-$BASE/out}
mkdir -p "$OUT" "$BASE/bin" "$BASE/sled/export" "$BASE/sled/state" "$BASE/cluster/export"
# Private copies: the target directory may be rebuilt while this runs.
cp "$SRCBIN/nfs4d" "$SRCBIN/nfs4d-bench" "$BASE/bin/"
NFS4D=$BASE/bin/nfs4d
BENCH=$BASE/bin/nfs4d-bench
RESULTS=$OUT/results.jsonl
# READDIRs of 64 KiB that list the 10,000-entry directory once (about 315
# entries each with the ls -l attributes), with room to spare.
FIRST_LISTING_OPS=48
: >"$RESULTS"

PIDS=()          # every process started, stopped at exit
ETCD_PIDS=()
SERVER_PIDS=()
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    SERVER_PIDS=()
}
cleanup() {
    local pid
    stop_servers
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$KEEP" = 0 ]; then
        case "$OUT" in
            "$BASE"/*) find "$BASE" -mindepth 1 -maxdepth 1 ! -path "$OUT" -exec rm -rf {} + ;;
            *) rm -rf "$BASE" ;;
        esac
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, held until all are known so none is handed out twice.
read -r -a PORTS <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
CPORTS=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}")
PPORTS=("${PORTS[3]}" "${PORTS[4]}" "${PORTS[5]}")
HPORTS=("${PORTS[6]}" "${PORTS[7]}")    # head a (also the sled server), head b

# --- etcd --------------------------------------------------------------------
INITIAL=
for i in 0 1 2; do INITIAL+="${INITIAL:+,}m$i=http://127.0.0.1:${PPORTS[$i]}"; done
ENDPOINTS=
for i in 0 1 2; do ENDPOINTS+="${ENDPOINTS:+, }\"http://127.0.0.1:${CPORTS[$i]}\""; done
for i in 0 1 2; do
    # Same timing as the tests' clusters (server/cluster/src/testing.rs).
    setsid "$ETCD" --name "m$i" --data-dir "$BASE/etcd/m$i" \
        --listen-client-urls "http://127.0.0.1:${CPORTS[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${CPORTS[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${PPORTS[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${PPORTS[$i]}" \
        --initial-cluster "$INITIAL" --initial-cluster-token "nfs4d-bench-$$" \
        --initial-cluster-state new --heartbeat-interval 100 --election-timeout 1000 \
        --logger zap --log-outputs stderr >"$OUT/etcd-m$i.log" 2>&1 </dev/null &
    PIDS+=($!)
    ETCD_PIDS+=($!)
done
healthy=0
for _ in $(seq 300); do
    healthy=0
    for i in 0 1 2; do
        curl -fsS "http://127.0.0.1:${CPORTS[$i]}/health" 2>/dev/null | grep -q '"health":"true"' && healthy=$((healthy + 1))
    done
    [ "$healthy" = 3 ] && break
    sleep 0.1
done
[ "$healthy" = 3 ] || { echo "cluster.sh: etcd did not become healthy, see $OUT/etcd-m*.log" >&2; exit 1; }

# etcd_snapshot FILE: CPU ticks of the members and the metrics of interest.
etcd_snapshot() {
    local i
    {
        for i in 0 1 2; do
            echo "m$i cpu $(awk '{print $14 + $15}' "/proc/${ETCD_PIDS[$i]}/stat")"
            curl -fsS "http://127.0.0.1:${CPORTS[$i]}/metrics" |
                grep -E '^(etcd_disk_wal_fsync_duration_seconds|etcd_disk_backend_commit_duration_seconds|etcd_server_proposals_committed_total|etcd_server_is_leader|grpc_server_handled_total|etcd_network_peer_round_trip_time_seconds)' |
                sed "s/^/m$i /"
        done
    } >"$1"
}

# --- servers -----------------------------------------------------------------
wait_listening() {
    local port=$1 pid=$2
    for _ in $(seq 600); do
        [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# start_server SETUP HEAD: writes its configuration and starts it.
start_server() {
    local setup=$1 head=$2 port dir conf
    port=${HPORTS[0]}
    [ "$head" = b ] && port=${HPORTS[1]}
    dir=$BASE/$setup-$head
    mkdir -p "$dir/state"
    conf=$dir/nfs4d.toml
    if [ "$setup" = sled ]; then
        printf 'listen = "127.0.0.1:%s"\nstate_dir = "%s"\n\n[[export]]\npath = "/"\ndir = "%s"\n' \
            "$port" "$BASE/sled/state" "$BASE/sled/export" >"$conf"
    else
        printf 'listen = "127.0.0.1:%s"\nstate_dir = "%s"\n\n[[export]]\npath = "/"\ndir = "%s"\n\n[cluster]\netcd = [%s]\nname = "bench"\nhead = "%s"\n' \
            "$port" "$dir/state" "$BASE/cluster/export" "$ENDPOINTS" "$head" >"$conf"
    fi
    RUST_LOG=warn setsid "$NFS4D" serve --config "$conf" >>"$OUT/$setup-$head.log" 2>&1 </dev/null &
    local pid=$!
    SERVER_PIDS+=("$pid")
    wait_listening "$port" "$pid" || { echo "cluster.sh: $setup head $head did not start, see $OUT/$setup-$head.log" >&2; return 1; }
    # Its address, for the caller.
    echo "$port $pid" >"$dir/addr"
}

bench() {  # bench PORT PID LABEL WORKLOAD SECONDS ARGS...: one nfs4d-bench run
    local port=$1 pid=$2 label=$3 w=$4 secs=$5
    shift 5
    "$BENCH" --server "127.0.0.1:$port" --export / --workload "$w" --json --label "$label" \
        --connections "$CONNECTIONS" --slots "$SLOTS" --duration "$secs" --server-pid "$pid" "$@" \
        2>>"$OUT/bench.stderr"
}

# run_setup ROUND SETUP: starts the set-up's servers, runs every workload, stops them.
run_setup() {
    local round=$1 setup=$2 heads=(a) h w port pid n
    [ "$setup" = etcd2 ] && heads=(a b)
    for h in "${heads[@]}"; do start_server "$setup" "$h" || { stop_servers; return 1; }; done
    for w in ${WORKLOADS//,/ }; do
        log "round $round: $w on $setup"
        if [ "$w" = readdir ] && [ "$FIRST_LISTING" = 1 ]; then
            # A head starts with empty caches: one listing on a single slot
            # first, so the measured listings meet the steady state.
            for h in "${heads[@]}"; do
                read -r port pid <"$BASE/$setup-$h/addr"
                "$BENCH" --server "127.0.0.1:$port" --export / --workload readdir --json \
                    --connections 1 --slots 1 --ops "$FIRST_LISTING_OPS" >/dev/null 2>>"$OUT/bench.stderr" &
                BENCH_PIDS+=($!)
            done
            wait_benches
        fi
        for h in "${heads[@]}"; do
            read -r port pid <"$BASE/$setup-$h/addr"
            bench "$port" "$pid" "$setup-$h" "$w" "$WARMUP" >/dev/null &
            BENCH_PIDS+=($!)
        done
        wait_benches
        [ "$setup" = sled ] || etcd_snapshot "$BASE/before"
        n=0
        for h in "${heads[@]}"; do
            read -r port pid <"$BASE/$setup-$h/addr"
            bench "$port" "$pid" "$setup-$h" "$w" "$DURATION" >"$BASE/out-$h" &
            BENCH_PIDS+=($!)
            n=$((n + 1))
        done
        wait_benches
        [ "$setup" = sled ] || etcd_snapshot "$BASE/after"
        for h in "${heads[@]}"; do
            line=$(cat "$BASE/out-$h")
            [ -n "$line" ] || line="{\"workload\":\"$w\",\"failed\":\"no output\"}"
            extra="\"round\":$round,\"setup\":\"$setup\",\"head\":\"$h\",\"heads\":$n"
            if [ "$setup" != sled ] && [ "$h" = a ]; then
                extra+=",\"etcd\":$(python3 - "$BASE/before" "$BASE/after" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
def load(p):
    d = {}
    for line in open(p):
        m, key, val = line.split(" ", 2)
        d[(m, key)] = float(val)
    return d
b, a, tck = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
delta = {k: a[k] - b.get(k, 0.0) for k in a}
out = {"cpu_s": sum(v for k, v in delta.items() if k[1] == "cpu") / tck}
leader = [m for (m, k), v in a.items() if k == "etcd_server_is_leader" and v == 1]
out["leader"] = leader[0] if leader else None
def per(m, name):
    return delta.get((m, name), 0.0)
for m in ("m0", "m1", "m2"):
    c = per(m, "etcd_disk_wal_fsync_duration_seconds_count")
    s = per(m, "etcd_disk_wal_fsync_duration_seconds_sum")
    bc = per(m, "etcd_disk_backend_commit_duration_seconds_count")
    bs = per(m, "etcd_disk_backend_commit_duration_seconds_sum")
    out[m] = {"wal_fsyncs": c, "wal_fsync_mean_ms": 1000 * s / c if c else None,
              "backend_commits": bc, "backend_commit_mean_ms": 1000 * bs / bc if bc else None,
              "proposals": per(m, "etcd_server_proposals_committed_total")}
grpc = {}
for (m, k), v in delta.items():
    if k.startswith("grpc_server_handled_total{") and 'grpc_code="OK"' in k:
        meth = k.split('grpc_method="')[1].split('"')[0]
        grpc[meth] = grpc.get(meth, 0.0) + v
out["grpc_ok"] = {k: v for k, v in grpc.items() if v}
# WAL fsync latency distribution on the leader (bucket deltas).
if out["leader"]:
    buckets = sorted(((float(k.split('le="')[1].split('"')[0]), v) for (m, k), v in delta.items()
                      if m == out["leader"] and k.startswith("etcd_disk_wal_fsync_duration_seconds_bucket")
                      and 'le="+Inf"' not in k))
    out["leader_fsync_buckets"] = buckets
print(json.dumps(out))
EOF
)"
            fi
            printf '%s\n' "$line" | sed "s/^{/{$extra,/" >>"$RESULTS"
        done
    done
    stop_servers
}
BENCH_PIDS=()
wait_benches() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" || log "nfs4d-bench exited with an error (see $OUT/bench.stderr)"; done
    BENCH_PIDS=()
}

# --- inputs: the readdir directory of each export, made once -----------------
lock() { [ -z "$LOCK" ] || { exec 9>"$LOCK"; log "waiting for $LOCK"; flock 9; }; }
unlock() { [ -z "$LOCK" ] || { flock -u 9; exec 9>&-; }; }
prepare() {
    local s
    for s in sled etcd1; do
        start_server "$s" a
        read -r port pid <"$BASE/$s-a/addr"
        log "preparing the readdir directory on $s"
        bench "$port" "$pid" prepare readdir 1 >/dev/null
        stop_servers
    done
}

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$BINDIR" ] && COMMIT="binaries from $BINDIR"
log "results in $OUT; etcd $("$ETCD" --version | head -1 | awk '{print $3}') with its WAL in $BASE/etcd ($(df --output=fstype "$BASE" | tail -1))"
START=$(date +%s)
if [[ ",$WORKLOADS," == *,readdir,* ]]; then lock; prepare; unlock; fi
SETUPS=(sled etcd1 etcd2)
for ROUND in $(seq "$ROUNDS"); do
    order=()
    for i in 0 1 2; do order+=("${SETUPS[$(((i + ROUND - 1) % 3))]}"); done
    lock
    for s in "${order[@]}"; do run_setup "$ROUND" "$s" || log "round $ROUND: $s failed"; done
    unlock
done
log "done in $(($(date +%s) - START)) s"

{
    echo "nfs4d at $COMMIT (binary built $(date -u -r "$SRCBIN/nfs4d" '+%Y-%m-%d %H:%M UTC')); $("$ETCD" --version | head -1);"
    echo "etcd data directories (WAL included) on $(df --output=source,fstype "$BASE" | tail -1 | tr -s ' '); $(nproc) CPUs, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC');"
    echo "$ROUNDS round(s), ${DURATION} s measured after ${WARMUP} s of warm-up, $CONNECTIONS connections x $SLOTS slots per nfs4d-bench."
    echo
    python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda xs: statistics.median(xs) if xs else None
def f(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"
by = {}
for r in rows:
    by.setdefault((r["workload"], r["setup"], r["round"]), []).append(r)
for w in sorted({r["workload"] for r in rows}):
    unit = "entries/s" if w == "readdir" else "files/s"
    print(f"### {w}\n")
    print(f"| set-up | ops/s (median) | rounds | {unit} | p50 / p99 ms | nfs4d CPU s per 1000 ops | etcd CPU s per 1000 ops | errors / retries |")
    print("|---|---:|---|---:|---|---:|---:|---|")
    base = None
    for s in ("sled", "etcd1", "etcd2"):
        rounds = sorted({k[2] for k in by if k[0] == w and k[1] == s})
        if not rounds:
            continue
        tot, items, heads, cpu, ecpu, p50, p99, err, ret = [], [], {}, [], [], [], [], 0, 0
        for rd in rounds:
            rs = by[(w, s, rd)]
            ops = sum(r.get("ops_per_s", 0) for r in rs)
            tot.append(ops)
            items.append(sum(r.get("items_per_s", 0) for r in rs))
            for r in rs:
                heads.setdefault(r["head"], []).append(r.get("ops_per_s", 0))
                p50.append(r.get("p50_ms")); p99.append(r.get("p99_ms"))
                err += r.get("errors", 0); ret += r.get("retries", 0)
            n = sum(r.get("ops", 0) for r in rs)
            c = sum(r.get("server_cpu_s", 0) for r in rs)
            if n:
                cpu.append(1000 * c / n)
                e = [r["etcd"] for r in rs if "etcd" in r]
                if e:
                    ecpu.append(1000 * e[0]["cpu_s"] / n)
        m = med(tot)
        if s == "sled":
            base = m
        ratio = f" ({m / base:.2f}× sled)" if base and s != "sled" else ""
        each = "" if len(heads) < 2 else " = " + " + ".join(f"{h} {f(med(v))}" for h, v in sorted(heads.items()))
        p50 = [x for x in p50 if x is not None]; p99 = [x for x in p99 if x is not None]
        print(f"| {s} | {f(m)}{ratio}{each} | {', '.join(f(x) for x in tot)} | {f(med(items))} | "
              f"{f(med(p50), 1)} / {f(med(p99), 1)} | {f(med(cpu), 3)} | {f(med(ecpu), 3)} | {err} / {ret} |")
    print()
    print("etcd per NFS op (medians over the rounds; leader's WAL):\n")
    print("| set-up | WAL fsyncs per op | mean WAL fsync ms | backend commits per op | gRPC requests per op, all members (by method) |")
    print("|---|---:|---:|---:|---|")
    for s in ("etcd1", "etcd2"):
        fs, fm, bc, grpc = [], [], [], {}
        for (w2, s2, rd), rs in sorted(by.items()):
            if w2 != w or s2 != s:
                continue
            n = sum(r.get("ops", 0) for r in rs)
            e = [r["etcd"] for r in rs if "etcd" in r]
            if not e or not n or not e[0].get("leader"):
                continue
            L = e[0][e[0]["leader"]]
            fs.append(L["wal_fsyncs"] / n)
            if L["wal_fsync_mean_ms"] is not None:
                fm.append(L["wal_fsync_mean_ms"])
            bc.append(L["backend_commits"] / n)
            for k, v in e[0]["grpc_ok"].items():
                grpc.setdefault(k, []).append(v / n)
        if not fs:
            continue
        g = ", ".join(f"{k} {med(v):.2f}" for k, v in sorted(grpc.items()))
        print(f"| {s} | {med(fs):.2f} | {f(med(fm), 2)} | {med(bc):.3f} | {g} |")
    print()
EOF
} | tee "$OUT/summary.md"
