#!/usr/bin/env bash
# Compares nfs4d with NFS-Ganesha (Debian nfs-ganesha + nfs-ganesha-vfs) on
# this machine, over loopback, with nfs4d-bench.
#
#   conformance/bench/compare.sh [--quick] [--rounds R] [--duration S] [--warmup S]
#                                [--connections N] [--slots M] [--workloads a,b,...]
#                                [--out DIR] [--no-build] [--bin-dir DIR] [--before-bin DIR] [--keep]
#                                [--durability sync|async] [--bigdir-entries N] [--dirsync-fs]
#
# Both servers export a directory under the same temporary directory in
# ${TMPDIR:-/tmp} (same filesystem). For every round and workload the two
# servers run one after the other, nfs4d first then Ganesha, each freshly
# started (so the peak RSS of a workload is not inflated by an earlier one)
# and stopped afterwards. The loopback TCP ceiling is measured once per round. Results
# (JSON Lines from nfs4d-bench) go to DIR/results.jsonl; the summary (medians
# over the rounds, ratios nfs4d/Ganesha, streaming as a fraction of the TCP
# ceiling, server CPU per 1000 ops and peak RSS) is printed and written to
# DIR/summary.md. --bin-dir DIR takes nfs4d and nfs4d-bench from DIR instead
# of target/release (e.g. a build of an earlier commit, for before/after
# comparisons in one session). --before-bin DIR adds a third server to every
# round: the nfs4d in DIR (an earlier build), labelled "before", driven by the
# same nfs4d-bench; the order of the servers rotates from round to round so
# that a slow drift of the machine does not favour one of them.
# --durability async serves the nfs4d under test with async exports
# (docs/durability.md), the durability Ganesha's VFS back end gives; the
# default, sync, makes every namespace change durable before its reply,
# which Ganesha does not. --dirsync-fs (root) compares like with like for
# sync: each server's export is an ext4 file system of its own on a loop
# device, made alike, and Ganesha's is mounted with `dirsync`, so that its
# directory changes are synchronous as nfs4d's sync exports promise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=3
DURATION=4
WARMUP=1
CONNECTIONS=4
SLOTS=16
WORKLOADS=metadata,readdir,smallfile,seqread,seqwrite,randread,randwrite,openhold
OUT=
BUILD=1
BINDIR=
BEFOREDIR=
DURABILITY=sync
DIRSYNC=0
KEEP=0
QUICK=0
EXTRA=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --slots) SLOTS=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        --bin-dir) BINDIR=$2; BUILD=0; shift ;;
        --before-bin) BEFOREDIR=$2; shift ;;
        --durability) DURABILITY=$2; shift ;;
        --dirsync-fs) DIRSYNC=1 ;;
        --bigdir-entries) EXTRA+=(--bigdir-entries "$2"); shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    # A smoke run of about half a minute: one round, short phases, small inputs.
    ROUNDS=1 DURATION=1 WARMUP=0
    EXTRA+=(--file-size 64M --dir-entries 2000 --open-files 2000 --hold 1 --bigdir-entries 2000)
fi

log() { printf '[compare] %s\n' "$*" >&2; }

port_free() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

# --- prerequisites -----------------------------------------------------------
if ! command -v ganesha.nfsd >/dev/null || ! ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1; then
    log "installing nfs-ganesha and nfs-ganesha-vfs"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nfs-ganesha nfs-ganesha-vfs >/dev/null
fi
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed for the summary" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p nfs4d --bins -q)
fi
for b in nfs4d nfs4d-bench; do
    [ -x "${BINDIR:-$ROOT/target/release}/$b" ] || { echo "compare.sh: no $b in ${BINDIR:-target/release}: build it first" >&2; exit 1; }
done

if pgrep -x rustc >/dev/null; then
    log "warning: rustc is running; figures will be noisier than usual"
fi

# $TMPDIR picks the file system both exports share (e.g. a tmpfs, to take
# the disk and ext4's inode allocator out of a comparison).
BASE=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-bench-cmp.XXXXXX")
OUT=${OUT:-$BASE/out}
mkdir -p "$OUT" "$BASE/ganesha/export" "$BASE/ganesha/recov" "$BASE/nfs4d/export" "$BASE/nfs4d/state"
LOOPS=()
# loop_fs DIR OPTS: an ext4 file system of its own mounted on DIR.
loop_fs() {
    local img=$BASE/$(basename "$(dirname "$1")").img dev
    truncate -s 4G "$img"
    mkfs.ext4 -q -F "$img"
    dev=$(losetup -f --show "$img")
    LOOPS+=("$dev")
    mount ${2:+-o "$2"} "$dev" "$1"
}
if [ "$DIRSYNC" = 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "compare.sh: --dirsync-fs needs root (loop devices)" >&2; exit 1; }
    loop_fs "$BASE/nfs4d/export" ""
    loop_fs "$BASE/ganesha/export" dirsync
fi
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

# Run private copies: the shared target directory may be rebuilt by someone
# else while the comparison runs, which would change the server mid-way.
mkdir -p "$BASE/bin"
SRCBIN=${BINDIR:-$ROOT/target/release}
cp "$SRCBIN/nfs4d" "$SRCBIN/nfs4d-bench" "$BASE/bin/"
NFS4D=$BASE/bin/nfs4d
SERVERS=(nfs4d ganesha)
if [ -n "$BEFOREDIR" ]; then
    [ -x "$BEFOREDIR/nfs4d" ] || { echo "compare.sh: no nfs4d in $BEFOREDIR" >&2; exit 1; }
    cp "$BEFOREDIR/nfs4d" "$BASE/bin/nfs4d-before"
    SERVERS=(nfs4d before ganesha)
fi
BENCH=$BASE/bin/nfs4d-bench
BUILT=$(date -u -r "$SRCBIN/nfs4d" '+%Y-%m-%d %H:%M UTC')
if [ -n "$BINDIR" ]; then
    COMMIT="binaries from $BINDIR"
else
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        COMMIT="$COMMIT + uncommitted changes"
    fi
fi
GPORT=$(pick_port 12071)
NPORT=$(pick_port $((GPORT + 1)))

# Ganesha configuration: the shared baseline with its own port, export
# directory and recovery directory (so it clashes with no other instance).
GCONF=$BASE/ganesha/ganesha.conf
cat >"$GCONF" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $GPORT;
    Protocols = 4;
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 {
    RecoveryRoot = $BASE/ganesha/recov;
    Grace_Period = 5;
    Lease_Lifetime = 10;
    Minor_Versions = 0, 1, 2;
}
EXPORT {
    Export_Id = 1;
    Path = $BASE/ganesha/export;
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF

SERVER_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() {
    stop_server
    for dev in "${LOOPS[@]}"; do
        umount "$dev" 2>/dev/null || true
        losetup -d "$dev" 2>/dev/null || true
    done
    rm -f "$BASE"/*.img
    if [ "$KEEP" = 0 ]; then
        rm -rf "$BASE/ganesha/export" "$BASE/nfs4d" "$BASE/before" "$BASE/bin"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    for _ in $(seq 200); do
        port_free "$1" || return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_nfs4d [LABEL]: nfs4d (or the before build) on its own export and
# state directory, kept from run to run like Ganesha's export (the inputs
# of the streaming and listing workloads are reused).
start_nfs4d() {
    local label=${1:-nfs4d} bin=$NFS4D mode=()
    if [ "$label" = before ]; then
        bin=$BASE/bin/nfs4d-before
    fi
    # The before build serves with the same durability as the build under
    # test, so that their ratio measures the change and nothing else.
    if [ "$DURABILITY" != sync ]; then
        mode=(--durability "$DURABILITY")
    fi
    mkdir -p "$BASE/$label/export" "$BASE/$label/state"
    RUST_LOG=warn setsid "$bin" serve --listen "127.0.0.1:$NPORT" --export "$BASE/$label/export" \
        --state-dir "$BASE/$label/state" "${mode[@]}" >>"$OUT/$label.log" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_port "$NPORT" || { echo "compare.sh: $label did not start, see $OUT/$label.log" >&2; return 1; }
}

start_ganesha() {
    local glog=$BASE/ganesha/ganesha.log attempt
    for attempt in 1 2; do
        : >"$glog"
        setsid ganesha.nfsd -F -f "$GCONF" -L "$glog" -p "$BASE/ganesha/ganesha.pid" -N NIV_EVENT \
            >/dev/null 2>&1 </dev/null &
        SERVER_PID=$!
        if wait_port "$GPORT"; then
            # OPEN is refused until the (short, reclaim-less) grace period ends.
            for _ in $(seq 150); do
                grep -q "NOT IN GRACE" "$glog" && break
                sleep 0.1
            done
            cat "$glog" >>"$OUT/ganesha.log"
            return 0
        fi
        cat "$glog" >>"$OUT/ganesha.log"
        stop_server
        # Some builds insist on registering with rpcbind: start it and retry.
        if [ "$attempt" = 1 ] && command -v rpcbind >/dev/null && ! pgrep -x rpcbind >/dev/null; then
            log "Ganesha did not start; starting rpcbind and retrying"
            rpcbind -w || rpcbind || true
        fi
    done
    echo "compare.sh: Ganesha did not start, see $OUT/ganesha.log" >&2
    return 1
}

# run_bench LABEL WORKLOAD ARGS...: one bench run, its JSON line appended to results.
run_bench() {
    local label=$1 w=$2
    shift 2
    local line
    if line=$("$BENCH" --workload "$w" --json --label "$label" --connections "$CONNECTIONS" --slots "$SLOTS" \
        --duration "$DURATION" --warmup "$WARMUP" "${EXTRA[@]}" "$@" 2>>"$OUT/bench.stderr"); then :; else
        log "$label $w: nfs4d-bench exited with an error (see $OUT/bench.stderr)"
    fi
    [ -n "$line" ] || line="{\"workload\":\"$w\",\"label\":\"$label\",\"failed\":\"no output\"}"
    printf '%s\n' "$line" | sed "s/^{/{\"round\":$ROUND,/" >>"$RESULTS"
}

log "results in $OUT; ganesha on port $GPORT, nfs4d on port $NPORT"
log "$ROUNDS round(s) of: tcp-ceiling $WORKLOADS (${DURATION}s each + ${WARMUP}s warm-up); nfs4d exports $DURABILITY"
START=$(date +%s)
for ROUND in $(seq "$ROUNDS"); do
    log "round $ROUND: tcp-ceiling"
    # The streams into and from files of the exports' file system too:
    # seqwrite's and seqread's ceilings with no NFS in them.
    run_bench loopback tcp-ceiling --ceiling-dir "$BASE"
    # Rotate the order of the servers from round to round.
    n=${#SERVERS[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((i + ROUND - 1) % n))]}"); done
    for w in ${WORKLOADS//,/ }; do
        for server in "${order[@]}"; do
            log "round $ROUND: $w on $server"
            if [ "$server" = nfs4d ] || [ "$server" = before ]; then
                start_nfs4d "$server" || { run_bench "$server" "$w" --server 127.0.0.1:1; continue; }
                run_bench "$server" "$w" --server "127.0.0.1:$NPORT" --export / --server-pid "$SERVER_PID"
            else
                start_ganesha || { run_bench ganesha "$w" --server 127.0.0.1:1; continue; }
                run_bench ganesha "$w" --server "127.0.0.1:$GPORT" --export /export --server-pid "$SERVER_PID"
            fi
            stop_server
        done
    done
done
log "done in $(($(date +%s) - START)) s"

{
    fs="exports on the same file system"
    [ "$DIRSYNC" = 1 ] && fs="exports on ext4 file systems of their own, Ganesha's mounted dirsync"
    echo "nfs4d at $COMMIT (binary built $BUILT), $DURABILITY exports; $(ganesha.nfsd -v 2>&1 | head -1 | tr -s ' '); $fs;"
    echo "$(nproc) CPUs, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    python3 "$ROOT/conformance/bench/summarize.py" "$RESULTS"
} | tee "$OUT/summary.md"
