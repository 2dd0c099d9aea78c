#!/usr/bin/env bash
# Profiles nfs4d under one nfs4d-bench workload with perf.
#
#   conformance/bench/profile.sh [--workload readdir] [--duration 6] [--out DIR] [--no-build]
#                                [--bin-dir DIR] [-- extra nfs4d-bench options]
#
# Starts a release nfs4d on a temporary export, prepares the workload's
# inputs with a first short run, then samples the server (all threads, with
# DWARF call graphs) during a second run. Prints the hottest functions by
# self time and the hottest nfs4d functions by inclusive time; the raw data
# stays in DIR/perf.data for `perf report -i` (delete it when done: DWARF
# call graphs make it hundreds of MiB). --bin-dir DIR takes nfs4d and
# nfs4d-bench from DIR instead of target/release.
#
# Hardware counters are used when the machine has them; in a VM without a
# PMU (`perf stat -e instructions true` says "not supported") the sampling
# event is the cpu-clock timer. callgrind cannot run the daemon: valgrind
# 3.19 (Debian 12) does not know openat2(2), which the local store needs.
# The core's own instructions per COMPOUND are counted instead with the
# generator serving in its own process (memory store, no socket):
#   valgrind --tool=callgrind --toggle-collect='nfs4d_core::compound::process*' \
#     target/release/nfs4d-bench --inproc --workload metadata --connections 1 --slots 4 --ops 5000
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORKLOAD=readdir
DURATION=6
OUT=
BUILD=1
BINDIR=
while [ $# -gt 0 ]; do
    case "$1" in
        --workload) WORKLOAD=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        --bin-dir) BINDIR=$2; BUILD=0; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

command -v perf >/dev/null || {
    echo "profile.sh: perf is missing (apt-get install linux-perf)" >&2
    exit 1
}
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p nfs4d --bins -q)
fi
BASE=$(mktemp -d /tmp/nfs4d-profile.XXXXXX)
OUT=${OUT:-$BASE}
mkdir -p "$OUT" "$BASE/export" "$BASE/state"
PORT=12090
listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
while listening "$PORT"; do PORT=$((PORT + 1)); done

# Private copies: a rebuild of the shared target directory during the run
# would otherwise leave perf without the symbols of the running binary.
SRCBIN=${BINDIR:-$ROOT/target/release}
cp "$SRCBIN/nfs4d" "$SRCBIN/nfs4d-bench" "$OUT/"
RUST_LOG=warn setsid "$OUT/nfs4d" serve --listen "127.0.0.1:$PORT" --export "$BASE/export" \
    --state-dir "$BASE/state" >"$OUT/nfs4d.log" 2>&1 </dev/null &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$BASE/export" "$BASE/state"' EXIT
for _ in $(seq 100); do
    listening "$PORT" && break
    sleep 0.05
done

BENCH=("$OUT/nfs4d-bench" --server "127.0.0.1:$PORT" --export / --workload "$WORKLOAD" "$@")
echo "[profile] preparing $WORKLOAD inputs" >&2
"${BENCH[@]}" --ops 1 >/dev/null

EVENT=cpu-clock
if [[ $(perf stat -e instructions true 2>&1) == *"not supported"* ]]; then
    echo "[profile] no hardware counters here: sampling the cpu-clock timer" >&2
else
    EVENT=cycles
fi
echo "[profile] sampling nfs4d ($EVENT) during ${DURATION}s of $WORKLOAD" >&2
perf record -q -e "$EVENT" -F 1999 --call-graph dwarf,16384 -p "$PID" -o "$OUT/perf.data" \
    -- sleep "$((DURATION + 2))" 2>"$OUT/perf-record.log" &
PERF=$!
sleep 0.5
"${BENCH[@]}" --duration "$DURATION" --server-pid "$PID" | tee "$OUT/bench.txt"
wait "$PERF" || true

# `head` closes the pipes early: perf's SIGPIPE is not a failure here.
set +o pipefail
{
    echo "## Self time (top 30)"
    perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
        | grep '%' | head -30
    echo
    echo "## Inclusive time of nfs4d functions (top 40)"
    perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
        | grep '%' | grep -E 'nfs4d(_[a-z]+)?::|sled::' | head -40
} | tee "$OUT/profile.txt"
echo "[profile] raw data: $OUT/perf.data" >&2
