#!/usr/bin/env bash
# Compares nfs4d serving an S3 bucket prefix with what a user would otherwise
# run on one machine: s3fs-fuse (Debian s3fs) mounting the same bucket and
# NFS-Ganesha's VFS FSAL (Debian nfs-ganesha nfs-ganesha-vfs) exporting that
# mount. Both talk to the same S3 server; nfs4d-bench drives both over
# loopback, one server after the other.
#
#   conformance/bench/s3compare.sh --endpoint URL --bucket B [--region R]
#       [--workloads smallfile,readdir,seqwrite,seqread] [--ops N]
#       [--dir-entries N] [--file-size SIZE] [--metrics URL] [--out DIR]
#       [--bin-dir DIR]
#
# Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the
# environment (s3fs gets them through a temporary passwd file).
# --metrics URL: a Prometheus endpoint of the S3 server that counts its
#   requests by S3 operation (Garage: http://127.0.0.1:3903/metrics, with
#   its metrics_token in $S3_METRICS_TOKEN); the script then reports the
#   PUT/GET/LIST/HEAD/other requests each workload cost, per item (file
#   created, read or listed).
# Results: DIR/results.jsonl (nfs4d-bench JSON lines, with the request
# counts added as fields) and DIR/summary.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENDPOINT= BUCKET= REGION=us-east-1 METRICS= OUT= BINDIR="$ROOT/target/release"
WORKLOADS=smallfile,readdir,seqwrite,seqread
OPS=2000 DIR_ENTRIES=2000 FILE_SIZE=64M
while [ $# -gt 0 ]; do
    case $1 in
        --endpoint) ENDPOINT=$2; shift ;;
        --bucket) BUCKET=$2; shift ;;
        --region) REGION=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --ops) OPS=$2; shift ;;
        --dir-entries) DIR_ENTRIES=$2; shift ;;
        --file-size) FILE_SIZE=$2; shift ;;
        --metrics) METRICS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --bin-dir) BINDIR=$2; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "s3compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$ENDPOINT" ] && [ -n "$BUCKET" ] || { echo "s3compare.sh: --endpoint and --bucket are required" >&2; exit 2; }
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is not set}" "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is not set}"
for tool in s3fs ganesha.nfsd fusermount python3; do
    command -v $tool >/dev/null || { echo "s3compare.sh: $tool not found (apt-get install s3fs nfs-ganesha nfs-ganesha-vfs fuse3 python3)" >&2; exit 2; }
done
[ -e /dev/fuse ] || { echo "s3compare.sh: no /dev/fuse: s3fs cannot mount here" >&2; exit 2; }

WORK=$(mktemp -d /tmp/s3compare.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT" "$WORK/mnt"
: >"$OUT/results.jsonl"
SRV_PID= MOUNTED=0
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    [ "$MOUNTED" = 1 ] && fusermount -u "$WORK/mnt" 2>/dev/null
    rm -f "$WORK/passwd"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "s3compare.sh: nothing listens on port $1" >&2; exit 1
}

# Request counters of the S3 server, "op count" lines.
snapshot() {
    [ -n "$METRICS" ] || return 0
    curl -sf -H "Authorization: Bearer ${S3_METRICS_TOKEN:-}" "$METRICS" |
        sed -n 's/^api_s3_request_counter{api_endpoint="\([A-Za-z0-9]*\)"[^}]*} \([0-9.e+]*\)$/\1 \2/p'
}

# Items of a result and their rate: the streaming workloads count bytes
# (items 0), reported here in MiB.
AMOUNT='import json, sys
def amount(r):
    if r["item_unit"] == "bytes":
        return r["bytes"] / 2**20, "MiB", r["mib_per_s"]
    return r["items"], r["item_unit"], r["items_per_s"]'

# bench LABEL PORT EXPORT: every workload, with the requests each cost.
bench() {
    local label=$1 port=$2 export=$3 w before after
    for w in ${WORKLOADS//,/ }; do
        before=$(snapshot)
        "$BINDIR/nfs4d-bench" --server "127.0.0.1:$port" --export "$export" --label "$label" \
            --workload "$w" --ops "$OPS" --dir-entries "$DIR_ENTRIES" --file-size "$FILE_SIZE" \
            --connections 2 --server-pid "$SRV_PID" --json >"$WORK/one.json"
        after=$(snapshot)
        python3 - "$WORK/one.json" "$before" "$after" >>"$OUT/results.jsonl" <<'PY'
import json, sys
rec = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
def parse(t):
    d = {}
    for line in t.splitlines():
        op, n = line.split()
        d[op] = d.get(op, 0) + float(n)
    return d
b, a = parse(sys.argv[2]), parse(sys.argv[3])
kind = {"PutObject": "put", "UploadPart": "put", "CompleteMultipartUpload": "put",
        "CreateMultipartUpload": "put", "CopyObject": "put", "GetObject": "get",
        "ListObjectsV2": "list", "ListObjects": "list", "HeadObject": "head"}
if a:
    req = {"put": 0, "get": 0, "list": 0, "head": 0, "other": 0}
    for op, n in a.items():
        req[kind.get(op, "other")] += n - b.get(op, 0)
    rec["s3_requests"] = {k: int(v) for k, v in req.items()}
print(json.dumps(rec))
PY
        tail -n 1 "$OUT/results.jsonl" | python3 -c "$AMOUNT"'
r=json.load(sys.stdin); n, unit, rate = amount(r)
print(r["label"], r["workload"], round(n, 1), unit, round(rate, 1), "/s", r.get("s3_requests",""), "errors", r["errors"])'
    done
}

# --- nfs4d on the bucket prefix nfs4d-bench/ -----------------------------------
PORT=$(free_port)
"$BINDIR/nfs4d" serve --listen "127.0.0.1:$PORT" --state-dir "$WORK/state" \
    --export "s3://$BUCKET/nfs4d-bench" --s3-endpoint "$ENDPOINT" --s3-region "$REGION" \
    >"$WORK/nfs4d.out" 2>"$WORK/nfs4d.log" &
SRV_PID=$!
wait_port "$PORT"
bench nfs4d-s3 "$PORT" /
kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=

# --- s3fs mount of bucket:/s3fs-bench exported by Ganesha's VFS FSAL ------------
printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$WORK/passwd"
chmod 600 "$WORK/passwd"
# s3fs mounts a bucket path only if it exists: create it through the bucket.
s3fs "$BUCKET" "$WORK/mnt" -o passwd_file="$WORK/passwd" -o url="$ENDPOINT" \
    -o use_path_request_style -o endpoint="$REGION" -o allow_other
MOUNTED=1
mkdir -p "$WORK/mnt/s3fs-bench"
fusermount -u "$WORK/mnt"; MOUNTED=0
s3fs "$BUCKET:/s3fs-bench" "$WORK/mnt" -o passwd_file="$WORK/passwd" -o url="$ENDPOINT" \
    -o use_path_request_style -o endpoint="$REGION" -o allow_other
MOUNTED=1
GPORT=$(free_port)
sed -e "s|/tmp/ganesha/export|$WORK/mnt|" -e "s|12049|$GPORT|" "$ROOT/conformance/bench/ganesha-s3fs.conf" >"$WORK/ganesha.conf"
ganesha.nfsd -F -f "$WORK/ganesha.conf" -L "$WORK/ganesha.log" -p "$WORK/ganesha.pid" -N NIV_EVENT &
SRV_PID=$!
wait_port "$GPORT"
bench s3fs-ganesha "$GPORT" /export

{
    echo "| server | workload | items | per s | PUT | GET | LIST | HEAD | other | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    python3 - "$OUT/results.jsonl" <<PY
$AMOUNT
for line in open(sys.argv[1]):
    r = json.loads(line)
    q = r.get("s3_requests")
    items, unit, rate = amount(r)
    n = max(items, 1)
    per = (lambda k: f"{q[k] / n:.2f}") if q else (lambda k: "-")
    print(f"| {r['label']} | {r['workload']} | {items:g} {unit} | {rate:.1f} | "
          f"{per('put')} | {per('get')} | {per('list')} | {per('head')} | {per('other')} | {r['errors']} |")
PY
} | tee "$OUT/summary.md"
echo "results in $OUT"
