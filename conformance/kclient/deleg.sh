#!/usr/bin/env bash
# deleg.sh - delegation recalls with the Linux kernel client: a guest holds
# a write delegation on a file it has written and keeps open; a second NFS
# client (libnfs on the host), then a local process on the host, open the
# file and must see the guest's data.
#
#   deleg.sh --nfs4d BIN [--vers 4.0|4.1|4.2] [--listen ADDR] [--cb-port N]
#            [--timeout S] [--log-dir DIR] [--verbose]
#
# Starts BIN (nfs4d) with a fresh export and state directory on ADDR
# (default 127.0.0.1:0, a free port) with debug logging, then boots the
# kclient guest (run.sh) with the workload of deleg_checks.sh. For 4.0 the
# guest's callback service listens on port N (default: a free one), which
# run.sh --cb-port forwards from the host's 127.0.0.1:N: the callback
# address the guest announces (clientaddr=127.0.0.1). At each guest line
# "KCLIENT-SYNC STEP PATH SIZE MD5" this script checks (deleg_checks.sh
# explains the steps):
#
#   ready            the server's callback path to the guest is up
#   held-R, closed-R the guest holds PATH open (held) or has closed it; the
#                    server log shows a write delegation granted for it since
#                    the last step (closed: and not yet returned). Reader R
#                    opens it: remote = nfs-cat (libnfs) over NFS, retried
#                    while the server answers NFS4ERR_DELAY; local = cat of
#                    the backing file, which the server's file lease holds
#                    back. The reader must get through in well under the
#                    kernel's lease-break-time, the server log must show the
#                    recall (remote: "recalling delegation", local: "local
#                    process opened a delegated file") and then the
#                    DELEGRETURN for that file; closed: the reader gets SIZE
#                    bytes with md5 MD5. held: whatever it got is recorded.
#   reread-R         the guest has closed PATH: reader R gets SIZE bytes with
#                    md5 MD5, and what it got in held-R is a prefix of them
#
# and answers "go" or "fail <reason>" on the guest's second serial port
# (run.sh --serial2), which becomes the guest check's result. Output:
# run.sh's CHECK lines and summary plus "deleg: ..." lines with timings;
# exit status as run.sh's (0 all passed, 1 some check failed, 2 harness
# trouble), 1 also when the server revoked a delegation or died.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

bin= vers=4.1 listen=127.0.0.1:0 cb_port= timeout=150 log_dir= verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --nfs4d) bin=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --listen) listen=${2:-}; shift 2 ;;
        --cb-port) cb_port=${2:-}; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        -v|--verbose) verbose=--verbose; shift ;;
        -h|--help) usage 0 ;;
        *) echo "deleg.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -x "$bin" ] || { echo "deleg.sh: --nfs4d BIN (the nfs4d binary) is required" >&2; usage; }
case $vers in 4.0|4.1|4.2) ;; *) echo "deleg.sh: --vers must be 4.0, 4.1 or 4.2" >&2; usage ;; esac
for tool in nfs-cat md5sum timeout; do
    command -v "$tool" >/dev/null || { echo "deleg.sh: $tool not found (nfs-cat: apt-get install libnfs-utils)" >&2; exit 2; }
done

# The longest a reader may wait for the recall: the guest has to answer it
# and return the delegation, a few round trips through an emulated
# guest. The kernel would let a local opener through only after
# /proc/sys/fs/lease-break-time (45 s by default), and an unreturned
# delegation is revoked after the server's lease (90 s by default), so
# anything near those means the recall did not work.
max_wait_ms=15000

work=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-deleg.XXXXXX") || exit 2
# run.sh's directory is found below log_dir: one of our own, so an earlier
# run's console in a shared --log-dir is never taken for this one's.
if [ -n "$log_dir" ]; then
    mkdir -p "$log_dir" && log_dir=$(mktemp -d "$log_dir/deleg-v$vers.XXXXXX") || exit 2
else
    log_dir=$work/runs
fi
mkdir -p "$work/export" "$log_dir"
server_log=$work/nfs4d.log
. "$here/server.sh"

# A 4.0 server calls back to the address the client announces; the forward
# needs a port nothing on the host uses. Probe a few random ones above the
# usual ephemeral range's start.
if [ "$vers" = 4.0 ] && [ -z "$cb_port" ]; then
    for _ in $(seq 20); do
        p=$((40000 + RANDOM % 20000))
        if ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
            cb_port=$p
            break
        fi
    done
    [ -n "$cb_port" ] || { echo "deleg.sh: no free port for the callback forward" >&2; exit 2; }
fi

RUST_LOG=info,nfs4d=debug start_server "$listen"
echo "deleg: nfs4d pid $srv_pid port $port vers $vers${cb_port:+ callback port $cb_port} work $work"

# log_since LINE: the server log from line LINE on, without colour codes.
log_since() { tail -n "+$1" "$server_log" | sed 's/\x1b\[[0-9;]*m//g'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

mark=1          # first server log line of the current step
verdict=        # "go" or "fail <reason>" for the guest

# host_fail REASON: the step's verdict, unless an earlier failure stands.
host_fail() {
    echo "deleg: host: FAIL: $1"
    [ -n "$verdict" ] || verdict="fail $1"
}

# read_with READER REL OUT: READER (remote|local) reads REL into OUT; sets
# $took_ms and $tries, returns non-zero when it could not.
read_with() {
    local t0
    t0=$(now_ms)
    tries=0
    case $1 in
        remote)
            # libnfs gives up on NFS4ERR_DELAY at once; retry as an
            # application would, until the recall is through.
            local url="nfs://127.0.0.1//$2?version=4&nfsport=$port"
            while :; do
                tries=$((tries + 1))
                if timeout 20 nfs-cat "$url" >"$3" 2>"$3.err"; then
                    took_ms=$(($(now_ms) - t0))
                    return 0
                fi
                [ $(($(now_ms) - t0)) -lt "$max_wait_ms" ] || break
                sleep 0.2
            done
            ;;
        local)
            # An open for reading breaks the server's write lease: the
            # kernel holds it back until the server lets go of the lease.
            tries=1
            if timeout 60 cat "$work/export/$2" >"$3" 2>"$3.err"; then
                took_ms=$(($(now_ms) - t0))
                return 0
            fi
            ;;
    esac
    took_ms=$(($(now_ms) - t0))
    return 1
}

# callback_up: the server's last word on its callback path to the guest.
callback_up() {
    if [ "$vers" = 4.0 ]; then
        log_since 1 | grep '4.0 callback path probed' | tail -n 1 | grep -q 'up=true'
    else
        log_since 1 | grep 'back channel probe up=' | tail -n 1 | grep -q 'up=true'
    fi
}

declare -A granted held_out

# handle STEP REL SIZE MD5: the host's side of one step; sets $verdict.
handle() {
    local step=$1 rel=$2 size=$3 md5=$4
    local mode=${step%%-*} reader=${step#*-}
    local out=$work/read.$step key got_size got_md5 log
    verdict=
    if [ "$mode" = ready ]; then
        for _ in $(seq 150); do callback_up && break; sleep 0.1; done
        if callback_up; then
            echo "deleg: host: the callback path to the guest is up"
        else
            host_fail "the server's callback path to the guest is not up after 15 s: $(log_since 1 | grep -E 'callback|back channel' | tail -n 2 | cut -c1-200 | tr '\n' ' ')"
        fi
        [ -n "$verdict" ] || verdict=go
        return
    fi
    if [ "$mode" = reread ]; then
        read_with "$reader" "$rel" "$out" ||
            host_fail "$reader reader failed: $(tr '\n' ' ' <"$out.err" | cut -c1-150)"
        got_size=$(stat -c %s "$out") got_md5=$(md5sum <"$out" | cut -d' ' -f1)
        echo "deleg: host: $step: read $got_size bytes in $took_ms ms"
        [ "$got_size $got_md5" = "$size $md5" ] ||
            host_fail "after the guest's close the $reader reader got $got_size bytes (md5 $got_md5), the guest wrote $size (md5 $md5)"
        local h=${held_out[$rel]:-}
        if [ -n "$h" ] && ! cmp -s -n "$(stat -c %s "$h")" "$h" "$out"; then
            host_fail "what the $reader reader got while the guest held the file is not a prefix of the guest's data"
        fi
        [ -n "$verdict" ] || verdict=go
        return
    fi
    # held / closed. The grant: the last write delegation since the last
    # step (the guest opened nothing else for writing in between).
    key=$(log_since "$mark" | grep 'delegation granted' | grep 'ty=Write' | tail -n 1 |
          sed -n 's/.*file=\(([^)]*))\).*/\1/p')
    if [ -z "$key" ]; then
        host_fail "no write delegation was granted for $rel"
        return
    fi
    echo "deleg: host: $step: write delegation granted for $rel, file=$key"
    if [ "$mode" = closed ] && log_since "$mark" | grep -F "file=$key" | grep -q 'delegation returned'; then
        host_fail "the guest returned the delegation at close: there is nothing to recall"
        return
    fi
    # (stat does not break the server's lease)
    echo "deleg: host: $step: the backing file holds $(stat -c %s "$work/export/$rel") of the guest's $size bytes before the recall"
    read_with "$reader" "$rel" "$out" ||
        host_fail "$reader reader failed after $took_ms ms ($tries tries): $(tr '\n' ' ' <"$out.err" | cut -c1-150)"
    got_size=$(stat -c %s "$out") got_md5=$(md5sum <"$out" | cut -d' ' -f1)
    echo "deleg: host: $step: the $reader reader got $got_size of $size bytes after $took_ms ms ($tries tries)"
    [ "$took_ms" -lt "$max_wait_ms" ] ||
        host_fail "the $reader reader took $took_ms ms, more than ${max_wait_ms} ms"
    if [ "$mode" = held ]; then
        held_out[$rel]=$out
    elif [ "$got_size $got_md5" != "$size $md5" ]; then
        host_fail "the $reader reader got $got_size bytes (md5 $got_md5), the guest wrote $size (md5 $md5)"
    fi
    # The server's account, for this file. DELEGRETURN may be logged just
    # after the reader got through: wait a little.
    local want_recall='recalling delegation'
    [ "$reader" = local ] && want_recall='local process opened a delegated file'
    for _ in $(seq 50); do
        log=$(log_since "$mark")
        grep -F "file=$key" <<<"$log" | grep -q 'delegation returned' && break
        sleep 0.1
    done
    local l_recall l_return
    l_recall=$(grep -nF "file=$key" <<<"$log" | grep -F "$want_recall" | head -n 1 | cut -d: -f1)
    l_return=$(grep -nF "file=$key" <<<"$log" | grep -F 'delegation returned' | head -n 1 | cut -d: -f1)
    [ -n "$l_recall" ] || host_fail "server log has no '$want_recall' for file=$key"
    [ -n "$l_return" ] || host_fail "server log has no 'delegation returned' for file=$key"
    if [ -n "$l_recall" ] && [ -n "$l_return" ] && [ "$l_return" -lt "$l_recall" ]; then
        host_fail "the delegation of file=$key was returned before it was recalled"
    fi
    [ -n "$verdict" ] || verdict=go
}

# on_sync STEP PATH SIZE MD5: the guest's host steps (deleg_checks.sh).
on_sync() {
    local step=$1 rel=$2 size=$3 md5=$4
    case $step:$rel in
        ready:kclient-*) ;;
        held-remote:kclient-*/file | held-local:kclient-*/file) ;;
        reread-remote:kclient-*/file | reread-local:kclient-*/file) ;;
        closed-remote:kclient-*/file | closed-local:kclient-*/file) ;;
        *) echo "deleg: bad sync line '$sync_line'" >&2; exit 2 ;;
    esac
    case $rel in *..*) echo "deleg: bad path in '$sync_line'" >&2; exit 2 ;; esac
    handle "$step" "$rel" "$size" "$md5"
    echo "deleg: host: $step: $verdict"
    mark=$(($(wc -l <"$server_log") + 1))
    answer=$verdict
}

run_args=(--port "$port" --vers "$vers" --timeout "$timeout" --extra "$here/deleg_checks.sh")
[ -n "$cb_port" ] && run_args+=(--cb-port "$cb_port")
# shellcheck disable=SC2086
drive_guest on_sync "${run_args[@]}" $verbose
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$server_log")
echo "deleg: server: $(grep -c 'delegation granted' <<<"$plain") delegations granted ($(grep 'delegation granted' <<<"$plain" | grep -c 'ty=Write') write), $(grep -c 'recalling delegation' <<<"$plain") recalled, $(grep -c 'delegation returned' <<<"$plain") returned"
if grep -q 'revoked' <<<"$plain"; then
    echo "deleg: FAIL: the server revoked a delegation:"
    grep 'revoked' <<<"$plain" | head -n 3
    rc=1
fi
if ! kill -0 "$srv_pid" 2>/dev/null; then
    echo "deleg: FAIL: nfs4d died"
    rc=1
fi
[ "$handled" = 7 ] || echo "deleg: the guest reached $handled of 7 host steps"
echo "deleg: server log $server_log"
exit $rc
