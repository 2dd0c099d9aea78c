#!/usr/bin/env bash
# migrate.sh - what the Linux kernel client does when the export it mounted
# from head A of a two-head nfs4d cluster moves to head B.
#
#   migrate.sh --nfs4d BIN --etcd URL[,URL...] --port-a N [--vers V]
#              [--opts a,b] [--timeout S] [--log-dir DIR] [--verbose]
#
# Starts head "a" on 127.0.0.1:PORT-A and head "b" on 127.0.0.1:2049 with
# `location = "10.0.2.2"` (the guest reaches the host only as 10.0.2.2, and
# fs_locations carries no port, so the client can follow only to port
# 2049), sharing one export; boots the guest on a hard mount of head A
# (plus --opts, e.g. "migration" for 4.0) with migrate_checks.sh. At
# "KCLIENT-SYNC migrate" it runs `nfs4d ctl migrate --export / --to-head b`
# on head A. Prints the guest's "mg_after" lines, and
#
#   migrate: head a answered MOVED N times; head b ran N operations after the move
#
# Exit status as run.sh's; 2 also when port 2049 is taken.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

bin= vers=4.1 etcd= port_a= opts=hard timeout=240 log_dir= verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --nfs4d) bin=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --etcd) etcd=${2:-}; shift 2 ;;
        --port-a) port_a=${2:-}; shift 2 ;;
        --opts) opts="hard,${2:-}"; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        -v|--verbose) verbose=--verbose; shift ;;
        -h|--help) usage 0 ;;
        *) echo "migrate.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -x "$bin" ] || { echo "migrate.sh: --nfs4d BIN is required" >&2; usage; }
[ -n "$etcd" ] || { echo "migrate.sh: --etcd URLS is required" >&2; usage; }
[[ $port_a =~ ^[0-9]+$ ]] || { echo "migrate.sh: --port-a wants a number" >&2; usage; }
if (exec 3<>/dev/tcp/127.0.0.1/2049) 2>/dev/null; then
    echo "migrate.sh: 127.0.0.1:2049 is taken; head b needs it" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-migrate.XXXXXX") || exit 2
[ -n "$log_dir" ] || log_dir=$work/runs
mkdir -p "$work/export" "$log_dir"
server_log=$work/nfs4d.log
. "$here/server.sh"

head_log=info,nfs4d_core::compound=debug
me=migrate
. "$here/heads.sh"

start_head a "$port_a"; pid_a=$pid
start_head b 2049 10.0.2.2; pid_b=$pid
echo "migrate: heads a (port $port_a) and b (port 2049, location 10.0.2.2), work $work"

moved_at=
on_sync() {
    case $1 in
        migrate)
            echo "migrate: host: $("$bin" ctl migrate --state-dir "$work/a/state" --export / --to-head b 2>&1)"
            moved_at=$(wc -l <"$work/b/nfs4d.log") ;;
        *) echo "migrate: unknown host step '$1'" >&2; exit 2 ;;
    esac
}

# shellcheck disable=SC2086
drive_guest on_sync --port "$port_a" --vers "$vers" --timeout "$timeout" \
    --opts "$opts" --keep --check-timeout 200 --extra "$here/migrate_checks.sh" $verbose

console=$(ls "$log_dir"/kclient-*/console.log 2>/dev/null | head -n 1)
tr -d '\r' <"${console:-/dev/null}" | grep -a '^INFO mg_across_migration: ' | sed 's/^INFO mg_across_migration: /migrate: guest: /'
moved=$(sed 's/\x1b\[[0-9;]*m//g' "$work/a/nfs4d.log" | grep -c 'file system moved: MOVED')
after=0
[ -n "$moved_at" ] && after=$(tail -n +"$((moved_at + 1))" "$work/b/nfs4d.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -c 'compound')
echo "migrate: head a answered MOVED $moved times; head b ran $after operations after the move"
echo "migrate: head logs $work/a/nfs4d.log $work/b/nfs4d.log"
exit $rc
