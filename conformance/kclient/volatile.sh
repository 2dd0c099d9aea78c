#!/usr/bin/env bash
# volatile.sh - the Linux kernel client on a volatile-filehandle export,
# across an out-of-band directory rename and a server restart.
#
#   volatile.sh --nfs4d BIN [--expired-error auto|fhexpired|stale]
#               [--vers 4.0|4.1|4.2] [--timeout S] [--log-dir DIR] [--verbose]
#
# Starts BIN (nfs4d) on a free loopback port with a fresh export and state
# directory, `--filehandles volatile` (expire on rename, migration and
# reboot) and the given --expired-error (default auto), then boots the
# kclient guest (run.sh) with the phased workload of volatile_checks.sh.
# Between the guest's phases this script acts on the host:
#
#   KCLIENT-SYNC oob-rename DIR  mv EXPORT/DIR/d EXPORT/DIR/d-moved, with
#                                the server running (an out-of-band rename
#                                of a directory the client has cached)
#   KCLIENT-SYNC restart DIR     kill -KILL the server, start it again on the
#                                same port and directories
#
# and then releases the guest by writing "go" to its second serial port
# (run.sh --serial2). Output: run.sh's CHECK lines and summary; exit status
# as run.sh's (0 all passed, 1 some check failed, 2 harness trouble).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

bin= expired=auto vers=4.1 timeout=150 log_dir= verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --nfs4d) bin=${2:-}; shift 2 ;;
        --expired-error) expired=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        -v|--verbose) verbose=--verbose; shift ;;
        -h|--help) usage 0 ;;
        *) echo "volatile.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -x "$bin" ] || { echo "volatile.sh: --nfs4d BIN (the nfs4d binary) is required" >&2; usage; }
case $expired in auto|fhexpired|stale) ;; *) echo "volatile.sh: bad --expired-error" >&2; usage ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-volatile.XXXXXX") || exit 2
[ -n "$log_dir" ] || log_dir=$work/runs
mkdir -p "$work/export" "$log_dir"
server_log=$work/nfs4d.log
. "$here/server.sh"

# serve LISTEN: nfs4d on LISTEN with volatile handles (server.sh), with
# delegations on (the default): the directory renamed behind the server's
# back is watched for the guest's delegated files below it, whose
# delegations are recalled, so the guest meets the expired handles instead
# of its cached view (docs/delegations.md).
serve() {
    start_server "$1" --filehandles volatile --expired-error "$expired"
}

serve 127.0.0.1:0
echo "volatile: nfs4d pid $srv_pid port $port expired_error=$expired work $work"

# on_sync WHAT DIR: the guest's host steps (volatile_checks.sh).
on_sync() {
    local what=$1 dir=$2
    case $dir in kclient-*/vol) ;; *) echo "volatile: bad sync line '$sync_line'" >&2; exit 2 ;; esac
    case $what in
        oob-rename)
            echo "volatile: host: mv $dir/d $dir/d-moved behind the server's back"
            mv "$work/export/$dir/d" "$work/export/$dir/d-moved" || exit 2 ;;
        restart)
            echo "volatile: host: restarting nfs4d (SIGKILL, then start on port $port)"
            stop_server
            serve "127.0.0.1:$port" ;;
        *) echo "volatile: unknown host step '$what'" >&2; exit 2 ;;
    esac
}

# shellcheck disable=SC2086
drive_guest on_sync --port "$port" --vers "$vers" --timeout "$timeout" \
    --extra "$here/volatile_checks.sh" $verbose
# (the log may carry ANSI colour codes)
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$server_log")
fhexp=$(grep -c 'volatile filehandle expired.*answer="NFS4ERR_FHEXPIRED"' <<<"$plain")
stale=$(grep -c 'volatile filehandle expired.*answer="NFS4ERR_STALE"' <<<"$plain")
echo "volatile: server answered $stale expired handles with NFS4ERR_STALE and $fhexp with NFS4ERR_FHEXPIRED"
echo "volatile: server log $server_log"
exit $rc
