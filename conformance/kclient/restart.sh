#!/usr/bin/env bash
# restart.sh - the Linux kernel client keeps a file open on a hard mount and
# writes through it while the server is killed and restarted.
#
#   restart.sh --nfs4d BIN [--vers 4.0|4.1|4.2] [--lease S] [--port N]
#              [--timeout S] [--log-dir DIR] [--verbose]
#
# Starts BIN (nfs4d) on loopback port N (default: a free one) with a fresh export and state
# directory and a lease of --lease seconds (default 10), then boots the
# kclient guest (run.sh, mount option "hard") with restart_checks.sh. When
# the guest, mid-write, prints
#
#   KCLIENT-SYNC restart DIR   this script kills the server with SIGKILL and
#                              starts it again on the same port and
#                              directories, then releases the guest ("go" on
#                              its second serial port, run.sh --serial2)
#
# Afterwards it checks the file on the export holds exactly the lines the
# guest wrote, and reports from the server log when grace ended and how long
# after the last reclaim:
#
#   restart: grace over elapsed_ms=N reclaims=N since_last_reclaim_ms=N
#
# Exit status as run.sh's (0 all passed, 1 some check failed, 2 harness
# trouble); 1 too when the export's file is wrong or no reclaim happened.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

bin= vers=4.1 lease=10 listen_port=0 timeout=150 log_dir= verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --nfs4d) bin=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --lease) lease=${2:-}; shift 2 ;;
        --port) listen_port=${2:-}; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        -v|--verbose) verbose=--verbose; shift ;;
        -h|--help) usage 0 ;;
        *) echo "restart.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -x "$bin" ] || { echo "restart.sh: --nfs4d BIN (the nfs4d binary) is required" >&2; usage; }
[[ $lease =~ ^[0-9]+$ ]] || { echo "restart.sh: --lease wants seconds" >&2; usage; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-restart.XXXXXX") || exit 2
[ -n "$log_dir" ] || log_dir=$work/runs
mkdir -p "$work/export" "$log_dir"
server_log=$work/nfs4d.log
. "$here/server.sh"

# serve LISTEN: nfs4d on LISTEN with this run's lease (server.sh).
serve() { RUST_LOG=info start_server "$1" --lease-time "$lease"; }

[[ $listen_port =~ ^[0-9]+$ ]] || { echo "restart.sh: --port wants a number" >&2; usage; }
serve "127.0.0.1:$listen_port"
echo "restart: nfs4d pid $srv_pid port $port lease ${lease}s work $work"

# on_sync WHAT DIR: the guest's host steps (restart_checks.sh).
dir=
on_sync() {
    local what=$1
    dir=$2
    case $dir in kclient-*/rs) ;; *) echo "restart: bad sync line '$sync_line'" >&2; exit 2 ;; esac
    case $what in
        restart)
            echo "restart: host: SIGKILL nfs4d mid-write, start it again on port $port"
            stop_server
            serve "127.0.0.1:$port" ;;
        *) echo "restart: unknown host step '$what'" >&2; exit 2 ;;
    esac
}

# shellcheck disable=SC2086
drive_guest on_sync --port "$port" --vers "$vers" --timeout "$timeout" \
    --opts hard --keep --extra "$here/restart_checks.sh" $verbose

# The file on the export: exactly the guest's lines (same format as
# restart_checks.sh's rs_line).
if [ -n "$dir" ]; then
    for i in $(seq 0 599); do
        printf 'line %05d written across a server restart 0123456789abcdefghijklmnopqrstuvwxyz\n' "$i"
    done >"$work/expected"
    if cmp -s "$work/expected" "$work/export/$dir/stream"; then
        echo "restart: export file $dir/stream: $(wc -c <"$work/expected") bytes, exactly as written"
    else
        echo "restart: export file $dir/stream differs from what the guest wrote"
        cmp "$work/expected" "$work/export/$dir/stream"
        [ "$rc" = 0 ] && rc=1
    fi
else
    echo "restart: the guest never asked for the restart"
    [ "$rc" = 0 ] && rc=1
fi

# (the log may carry ANSI colour codes)
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$server_log")
over=$(grep 'grace period over' <<<"$plain" | tail -n 1)
if [ -n "$over" ]; then
    echo "restart: grace over $(grep -o 'elapsed_ms=[0-9]* reclaims=[0-9]* since_last_reclaim_ms=[0-9]*' <<<"$over")"
else
    echo "restart: grace did not end before the run finished"
fi
grep -q 'reclaims=[1-9]' <<<"$over" || { echo "restart: no reclaim seen"; [ "$rc" = 0 ] && rc=1; }
echo "restart: server log $server_log"
exit $rc
