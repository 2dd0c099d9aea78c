#!/usr/bin/env bash
# Process control for an nfs4d started by run.sh, and pynfs's --serverhelper.
#
#   serverhelper.sh WORKDIR start      start nfs4d (run.sh)
#   serverhelper.sh WORKDIR stop       stop it (run.sh)
#   serverhelper.sh WORKDIR alive      exit 0 if it is still running (run.sh)
#   serverhelper.sh WORKDIR reboot     restart it on the same port, export and
#                                      state directory (pynfs reboot tests)
#   serverhelper.sh WORKDIR unlink P | rename P1 P2 | link P1 P2 | chmod MODE P
#                                      change the export behind the server's
#                                      back (pynfs 4.0 DELEG16-20); P is the
#                                      path as the NFS client sees it, and
#                                      run.sh exports DIR as "/"
#
# pynfs runs "HELPER [--serverhelperarg value] ACTION ARGS..." through
# os.system() and ignores the exit status; run.sh passes WORKDIR as the
# --serverhelperarg.  WORKDIR/server.env (written by run.sh) holds NFS4D_BIN,
# PORT, EXPORT_DIR, STATE_DIR; this script keeps nfs4d.pid and appends the
# server's output to nfs4d.log there.
set -u

WORK=${1:?usage: serverhelper.sh WORKDIR ACTION [ARGS...]}
ACTION=${2:?usage: serverhelper.sh WORKDIR ACTION [ARGS...]}
shift 2
# shellcheck source=/dev/null
. "$WORK/server.env" || exit 2
PIDFILE=$WORK/nfs4d.pid
LOG=$WORK/nfs4d.log
START_TIMEOUT=${NFS4D_START_TIMEOUT:-30}
STOP_TIMEOUT=${NFS4D_STOP_TIMEOUT:-20}

note() { echo "serverhelper: $*" >>"$WORK/serverhelper.log"; }

# true if PID runs (an exited child nobody reaped yet still answers kill -0)
running() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

pid_alive() {
    [ -s "$PIDFILE" ] && running "$(cat "$PIDFILE")"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
    echo "=== $(date '+%F %T') start: $NFS4D_BIN serve --listen 127.0.0.1:$PORT" \
        "--export $EXPORT_DIR --state-dir $STATE_DIR" >>"$LOG"
    # A 10 s lease (Ganesha's baseline uses the same) keeps the suites'
    # lease-expiry waits short; the reboot tests wait lease + 5 s for the
    # grace period to end, so grace is bounded by the lease too.
    # NFS4D_ARGS overrides both.
    # shellcheck disable=SC2086
    "$NFS4D_BIN" serve --listen "127.0.0.1:$PORT" --export "$EXPORT_DIR" \
        --state-dir "$STATE_DIR" ${NFS4D_ARGS:---lease-time 10 --grace-time 10} </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        if ! pid_alive; then
            echo "nfs4d exited during startup; see $LOG" >&2
            note "start failed: process exited"
            return 1
        fi
        if port_open; then
            note "started pid $(cat "$PIDFILE") on port $PORT"
            return 0
        fi
        sleep 0.1
    done
    echo "nfs4d did not listen on 127.0.0.1:$PORT within ${START_TIMEOUT}s" >&2
    note "start failed: port not open"
    stop
    return 1
}

stop() {
    [ -s "$PIDFILE" ] || return 0
    local pid i
    pid=$(cat "$PIDFILE")
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            note "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    echo "=== $(date '+%F %T') stopped pid $pid" >>"$LOG"
    rm -f "$PIDFILE"
}

# nfs4d learns of a change to a delegated file asynchronously (inotify,
# then SIGIO) and then sends CB_RECALL; pynfs checks for the recall as soon
# as this script returns, so give the server a moment.
settle() {
    sleep "${NFS4D_SETTLE:-1}"
}

# NFS path as pynfs sees it (the export is "/") -> local path
local_path() {
    local p=$1
    case $p in
    /*) ;;
    *) p=/$p ;;
    esac
    case $p in
    */../* | */..) echo "refusing path with ..: $1" >&2; return 1 ;;
    esac
    printf '%s%s\n' "$EXPORT_DIR" "$p"
}

[ "$ACTION" = alive ] || note "$ACTION $*"
case $ACTION in
start) start ;;
stop) stop ;;
alive) pid_alive ;;
reboot)
    # run.sh's crash watchdog ignores the server while this file exists
    touch "$WORK/rebooting"
    stop
    start
    st=$?
    rm -f "$WORK/rebooting"
    exit $st
    ;;
unlink)
    a=$(local_path "$1") && rm -f -- "$a"
    settle
    ;;
rename)
    a=$(local_path "$1") && b=$(local_path "$2") && mv -f -- "$a" "$b"
    settle
    ;;
link)
    a=$(local_path "$1") && b=$(local_path "$2") && ln -- "$a" "$b"
    settle
    ;;
chmod)
    a=$(local_path "$2") && chmod "$1" -- "$a"
    settle
    ;;
*)
    echo "serverhelper.sh: unknown action $ACTION" >&2
    note "unknown action"
    exit 2
    ;;
esac
