#!/usr/bin/env bash
# Measures what Kerberos costs nfs4d: randread and seqread with nfs4d-bench
# under AUTH_SYS and under RPCSEC_GSS krb5, krb5i and krb5p, against one
# nfs4d on loopback, in alternating runs.
#
#   conformance/bench/krb5.sh [--rounds R] [--duration S] [--warmup S]
#                             [--connections N] [--slots M] [--file-size SIZE]
#                             [--workloads a,b] [--out DIR] [--no-build]
#
# A throwaway MIT realm (Debian krb5-kdc, krb5-admin-server, krb5-user) is
# made in a temporary directory, as the tests of server/gss do: the KDC
# listens on a free loopback port, nfs4d gets the key of
# nfs/localhost@NFS4D.TEST, the generator a credential cache holding a
# ticket for it; its principal maps to uid 0, so every flavor runs as the
# same user. Each round runs every workload under each flavor in turn
# (sys, krb5, krb5i, krb5p) for --duration seconds after --warmup. Results
# (JSON Lines) go to DIR/results.jsonl; the medians over the rounds and
# the ratios to sys are printed and written to DIR/summary.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=3
DURATION=5
WARMUP=1
CONNECTIONS=4
SLOTS=16
FILE_SIZE=256M
WORKLOADS=randread,seqread
OUT=
BUILD=1

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --slots) SLOTS=$2; shift ;;
        --file-size) FILE_SIZE=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage 0 ;;
        *) echo "krb5.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done

tool() {
    local t
    for t in "$(command -v "$1" 2>/dev/null)" "/usr/sbin/$1" "/sbin/$1"; do
        [ -n "$t" ] && [ -x "$t" ] && { echo "$t"; return; }
    done
    echo "krb5.sh: $1 not found (apt-get install krb5-kdc krb5-admin-server krb5-user)" >&2
    exit 2
}
KDB5_UTIL=$(tool kdb5_util); KADMIN=$(tool kadmin.local); KRB5KDC=$(tool krb5kdc)
KINIT=$(tool kinit); KVNO=$(tool kvno)

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p nfs4d --bin nfs4d -p nfs4d-bench)
fi
NFS4D=$ROOT/target/release/nfs4d
BENCH=$ROOT/target/release/nfs4d-bench

WORK=$(mktemp -d /tmp/nfs4d-krb5-bench.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT" "$WORK/realm" "$WORK/export" "$WORK/state"
KDC_PID=
SRV_PID=
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    [ -n "$KDC_PID" ] && kill "$KDC_PID" 2>/dev/null && wait "$KDC_PID" 2>/dev/null
    rm -rf "$WORK/realm" "$WORK/export" "$WORK/state"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The realm.
R=$WORK/realm
KPORT=$(free_port)
cat >"$R/krb5.conf" <<EOF
[libdefaults]
 default_realm = NFS4D.TEST
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
[realms]
 NFS4D.TEST = {
  kdc = 127.0.0.1:$KPORT
 }
EOF
cat >"$R/kdc.conf" <<EOF
[kdcdefaults]
 kdc_listen = 127.0.0.1:$KPORT
 kdc_tcp_listen = 127.0.0.1:$KPORT
[realms]
 NFS4D.TEST = {
  database_name = $R/principal
  key_stash_file = $R/stash
  acl_file = $R/kadm5.acl
 }
[logging]
 kdc = FILE:$R/kdc.log
EOF
export KRB5_CONFIG=$R/krb5.conf KRB5_KDC_PROFILE=$R/kdc.conf
"$KDB5_UTIL" create -s -r NFS4D.TEST -P throwaway-master-key >/dev/null
"$KADMIN" >/dev/null 2>&1 <<EOF
addprinc -randkey nfs/localhost
ktadd -k $R/nfs.keytab nfs/localhost
addprinc -randkey bench
ktadd -k $R/bench.keytab bench
EOF
"$KRB5KDC" -n >/dev/null 2>&1 &
KDC_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && break; sleep 0.05; done
CC=FILE:$R/bench.ccache
"$KINIT" -k -t "$R/bench.keytab" -c "$CC" bench@NFS4D.TEST
"$KVNO" -c "$CC" nfs/localhost@NFS4D.TEST >/dev/null

# The server.
PORT=$(free_port)
cat >"$WORK/nfs4d.toml" <<EOF
listen = "127.0.0.1:$PORT"
state_dir = "$WORK/state"
[gss]
keytab = "$R/nfs.keytab"
principal = "nfs/localhost@NFS4D.TEST"
[[gss.map]]
principal = "bench@NFS4D.TEST"
uid = 0
gid = 0
[[export]]
path = "/"
dir = "$WORK/export"
sec = ["krb5p", "krb5i", "krb5", "sys"]
EOF
"$NFS4D" serve --config "$WORK/nfs4d.toml" >"$OUT/nfs4d.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
grep -q "serving Kerberos" "$OUT/nfs4d.log" || { echo "krb5.sh: nfs4d does not serve Kerberos:"; cat "$OUT/nfs4d.log"; exit 1; }

echo "nfs4d pid $SRV_PID on 127.0.0.1:$PORT; results in $OUT"
: >"$OUT/results.jsonl"
for r in $(seq "$ROUNDS"); do
    for sec in sys krb5 krb5i krb5p; do
        echo "round $r/$ROUNDS: $sec"
        "$BENCH" --server "127.0.0.1:$PORT" --export / --workload "$WORKLOADS" \
            --connections "$CONNECTIONS" --slots "$SLOTS" --duration "$DURATION" \
            --warmup "$WARMUP" --file-size "$FILE_SIZE" --server-pid "$SRV_PID" \
            --sec "$sec" --krb5-ccache "$CC" --krb5-target nfs/localhost@NFS4D.TEST \
            --label "round$r" --json | tee -a "$OUT/results.jsonl" >/dev/null
    done
done

python3 - "$OUT/results.jsonl" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    if r.get("failed"):
        print(f"FAILED: {r}")
        continue
    by.setdefault((r["workload"], r["sec"]), []).append(r)
print("| workload | flavor | MiB/s (median) | ops/s (median) | ratio to sys (median of rounds) | range | CPU s per 1000 ops, server / generator | errors |")
print("|---|---|---:|---:|---:|---|---:|---:|")
for w in sorted({k[0] for k in by}):
    base = {r["label"]: r["ops_per_s"] for r in by.get((w, "sys"), [])}
    for sec in ["sys", "krb5", "krb5i", "krb5p"]:
        rs = by.get((w, sec), [])
        if not rs:
            continue
        ratios = [r["ops_per_s"] / base[r["label"]] for r in rs if base.get(r["label"])]
        cpu = [r["server_cpu_s_per_kop"] for r in rs if "server_cpu_s_per_kop" in r]
        gen = [r["client_cpu_s"] / r["ops"] * 1000 for r in rs if r["ops"]]
        print(f"| {w} | {sec} | {statistics.median(r['mib_per_s'] for r in rs):,.1f} "
              f"| {statistics.median(r['ops_per_s'] for r in rs):,.0f} "
              f"| {statistics.median(ratios):.2f}× | {min(ratios):.2f}–{max(ratios):.2f} "
              f"| {statistics.median(cpu) if cpu else float('nan'):.3f} / {statistics.median(gen):.3f} "
              f"| {sum(r['errors'] for r in rs)} |")
EOF
