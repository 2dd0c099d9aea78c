#!/usr/bin/env bash
# failover.sh - the Linux kernel client on a hard mount of head A of a
# two-head nfs4d cluster keeps writing and reading a file while holding a
# byte-range lock on it; head A is killed and head B takes over A's address.
#
#   failover.sh --nfs4d BIN --etcd URL[,URL...] --port-a N --port-b N
#               [--vers 4.0|4.1|4.2] [--lease S] [--head-lease S]
#               [--timeout S] [--log-dir DIR] [--verbose]
#
# The etcd cluster is the caller's (conformance/tests/kclient_failover.rs
# starts three members on loopback). This script starts heads "a" and "b"
# (cluster "fo-<random>") on 127.0.0.1:PORT-A and :PORT-B, sharing one
# fresh export directory, with an NFS lease of --lease seconds (default 10)
# and an etcd lease of --head-lease seconds (default 3), then boots the
# kclient guest (run.sh, mount option "hard", mounting head A) with
# failover_checks.sh. At the guest's
#
#   KCLIENT-SYNC failover DIR    it kills head A (SIGKILL) and answers "go"
#                                at once: head B must take A's address over
#   KCLIENT-SYNC checklock DIR   a host process tries to lock the file on the
#                                export; the answer is "go" if it is refused
#                                (the guest's lock was reclaimed and is held
#                                by head B), "fail <why>" otherwise
#
# Afterwards it checks that the export's file holds exactly what the guest
# wrote, and reports
#
#   failover: guest I/O resumed N ms after the kill
#   failover: grace over elapsed_ms=N reclaims=N since_last_reclaim_ms=N
#
# Exit status as run.sh's (0 all passed, 1 some check failed, 2 harness
# trouble); 1 too when the file is wrong or B never took over.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

bin= vers=4.1 lease=10 head_lease=3 etcd= port_a= port_b= timeout=240 log_dir= verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --nfs4d) bin=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --lease) lease=${2:-}; shift 2 ;;
        --head-lease) head_lease=${2:-}; shift 2 ;;
        --etcd) etcd=${2:-}; shift 2 ;;
        --port-a) port_a=${2:-}; shift 2 ;;
        --port-b) port_b=${2:-}; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        -v|--verbose) verbose=--verbose; shift ;;
        -h|--help) usage 0 ;;
        *) echo "failover.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -x "$bin" ] || { echo "failover.sh: --nfs4d BIN is required" >&2; usage; }
[ -n "$etcd" ] || { echo "failover.sh: --etcd URLS is required" >&2; usage; }
for n in "$lease" "$head_lease" "$port_a" "$port_b"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "failover.sh: --lease, --head-lease, --port-a, --port-b want numbers" >&2; usage; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-failover.XXXXXX") || exit 2
[ -n "$log_dir" ] || log_dir=$work/runs
mkdir -p "$work/export" "$log_dir"
server_log=$work/nfs4d.log
. "$here/server.sh"

me=failover
. "$here/heads.sh"

start_head a "$port_a"; pid_a=$pid
start_head b "$port_b"; pid_b=$pid
echo "failover: heads a (pid $pid_a, port $port_a) and b (pid $pid_b, port $port_b), lease ${lease}s, head lease ${head_lease}s, work $work"

dir= killed_at= lock_refused=
on_sync() {
    local what=$1
    dir=$2
    case $dir in kclient-*/fo) ;; *) echo "failover: bad sync line '$sync_line'" >&2; exit 2 ;; esac
    case $what in
        failover)
            echo "failover: host: SIGKILL head a mid-write"
            kill -KILL "$pid_a"
            killed_at=$(date +%s.%N)
            wait "$pid_a" 2>/dev/null
            pid_a= ;;
        checklock)
            # A host process must not get the lock the guest holds (and
            # reclaimed on head b).
            if python3 - "$work/export/$dir/stream" <<'PY'
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
except OSError:
    sys.exit(0)
sys.exit(1)
PY
            then
                lock_refused=1
                echo "failover: host: the guest's lock is held: a host process cannot take it"
            else
                answer="fail a host process got the lock the guest holds"
            fi ;;
        *) echo "failover: unknown host step '$what'" >&2; exit 2 ;;
    esac
}

# shellcheck disable=SC2086
drive_guest on_sync --port "$port_a" --vers "$vers" --timeout "$timeout" \
    --opts hard --keep --check-timeout 200 --extra "$here/failover_checks.sh" $verbose

console=$(ls "$log_dir"/kclient-*/console.log 2>/dev/null | head -n 1)
info=$(tr -d '\r' <"${console:-/dev/null}" | grep -a '^INFO fo_write_across_failover: ' | sed 's/^INFO [a-z_]*: //')
if [ -n "$dir" ] && [ -f "$work/export/$dir/stream" ]; then
    n=$(($(wc -c <"$work/export/$dir/stream") / 64))
    for i in $(seq 0 $((n - 1))); do
        printf 'line %07d written across a head failover 0123456789abcdefghi\n' "$i"
    done >"$work/expected"
    lines=$(sed -n 's/^fo_lines \([0-9]*\).*/\1/p' <<<"$info" | tail -n 1)
    if [ -n "$lines" ] && [ "$lines" = "$n" ] && cmp -s "$work/expected" "$work/export/$dir/stream"; then
        echo "failover: export file $dir/stream: $n lines, exactly as written"
    else
        echo "failover: export file $dir/stream ($n lines, guest wrote ${lines:-?}) differs from what the guest wrote"
        [ "$rc" = 0 ] && rc=1
    fi
else
    echo "failover: the guest never wrote its file"
    [ "$rc" = 0 ] && rc=1
fi
[ -n "$lock_refused" ] || { echo "failover: the lock was not checked from the host"; [ "$rc" = 0 ] && rc=1; }
gap=$(sed -n 's/^fo_resumed_ms \([0-9]*\).*/\1/p' <<<"$info" | tail -n 1)
[ -n "$gap" ] && echo "failover: guest I/O resumed $gap ms after the kill"
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$work/b/nfs4d.log")
grep -q 'took over a dead head' <<<"$plain" || { echo "failover: head b never took over"; [ "$rc" = 0 ] && rc=1; }
over=$(grep 'grace period over' <<<"$plain" | tail -n 1)
if [ -n "$over" ]; then
    echo "failover: grace over $(grep -o 'elapsed_ms=[0-9]* reclaims=[0-9]* since_last_reclaim_ms=[0-9]*' <<<"$over")"
else
    echo "failover: grace did not end before the run finished"
    [ "$rc" = 0 ] && rc=1
fi
echo "failover: head logs $work/a/nfs4d.log $work/b/nfs4d.log"
exit $rc
