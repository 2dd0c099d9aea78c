# server.sh - the nfs4d under test and the guest driver, for the host-side
# kernel-client scenarios (deleg.sh, restart.sh, volatile.sh), which source
# it once their work directory exists.
#
# The sourcing script has set:
#   bin         the nfs4d binary
#   here        the kclient directory (run.sh)
#   work        its work directory: the export is $work/export, the state
#               directory $work/state, nfs4d's stdout goes to $work/nfs4d.out
#   log_dir     run.sh's --log-dir (where the guest's console log appears)
#   server_log  the file that collects nfs4d's log (stderr) over all starts
# and may set, once they are running:
#   run_pid     run.sh (the guest)
#   drain_pid   the reader that drains the guest's second serial port
#
# Sourcing it installs the traps: on exit run.sh and the drain get SIGTERM
# and the server SIGKILL; INT and TERM exit with 2 (harness trouble).
#
#   start_server LISTEN [ARG...]   starts `nfs4d serve` on LISTEN with that
#                                  export and state directory and the ARGs,
#                                  waits until it listens and sets $srv_pid
#                                  and $port (the port it took); exits 2
#                                  when it does not start. Environment for
#                                  nfs4d goes before the call:
#                                  RUST_LOG=info start_server ...
#   stop_server                    SIGKILL, and waits for it to go
#   drive_guest ON_SYNC RUN_ARG... runs run.sh RUN_ARG... in the background
#                                  with a second serial port, and for each
#                                  "KCLIENT-SYNC FIELD..." line on the
#                                  guest's console calls ON_SYNC FIELD...
#                                  (the whole line in $sync_line) and sends
#                                  the guest ON_SYNC's $answer (default
#                                  "go"; one line, at most 250 characters).
#                                  Then prints run.sh's output and sets $rc
#                                  (its exit status) and $handled (the sync
#                                  lines answered).

srv_pid= run_pid= drain_pid= port=

cleanup() {
    [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null
    [ -n "$drain_pid" ] && kill "$drain_pid" 2>/dev/null
    [ -n "$srv_pid" ] && kill -KILL "$srv_pid" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 2' INT TERM

start_server() {
    local listen=$1
    shift
    # Emptied here, not only by the redirection below: that one happens in
    # the background, and the loop must not read the port of an earlier
    # start from the old contents.
    : >"$work/nfs4d.out"
    "$bin" serve --listen "$listen" --export "$work/export" --state-dir "$work/state" "$@" \
        >"$work/nfs4d.out" 2>>"$server_log" &
    srv_pid=$!
    for _ in $(seq 200); do
        port=$(sed -n 's/^nfs4d listening on 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$work/nfs4d.out")
        [ -n "$port" ] && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "${0##*/}: nfs4d did not start; log:" >&2
    tail -n 20 "$server_log" >&2
    exit 2
}

stop_server() {
    kill -KILL "$srv_pid"
    wait "$srv_pid" 2>/dev/null
}

drive_guest() {
    local on_sync=$1 ctl=$work/serial2 console= syncs
    shift
    mkfifo "$ctl.in" "$ctl.out" || exit 2
    "$here/run.sh" "$@" --log-dir "$log_dir" --serial2 "$ctl" >"$work/run.out" 2>&1 &
    run_pid=$!
    # The qemu pipe chardev holds ctl.out open for writing; drain it so
    # guest output (an echo the guest failed to turn off) can never fill
    # the FIFO.
    cat "$ctl.out" >/dev/null 2>&1 &
    drain_pid=$!
    handled=0
    while kill -0 "$run_pid" 2>/dev/null; do
        if [ -z "$console" ]; then
            console=$(ls "$log_dir"/kclient-*/console.log 2>/dev/null | head -n 1)
            [ -z "$console" ] && { sleep 0.2; continue; }
        fi
        # Only whole lines: the guest may be half way through writing one
        # (the console is read while it grows), and a cut line would reach
        # ON_SYNC with fields missing and count as handled.
        cp "$console" "$work/console.snap"
        [ -n "$(tail -c 1 "$work/console.snap")" ] && sed -i '$d' "$work/console.snap"
        mapfile -t syncs < <(tr -d '\r' <"$work/console.snap" | grep -a '^KCLIENT-SYNC ')
        while [ "$handled" -lt "${#syncs[@]}" ]; do
            sync_line=${syncs[$handled]}
            handled=$((handled + 1))
            answer=go
            # The fields are words: splitting is wanted here.
            # shellcheck disable=SC2086
            "$on_sync" ${sync_line#KCLIENT-SYNC }
            # one line, bounded: the guest reads it with `read`
            printf '%s\n' "$(printf '%s' "$answer" | tr '\n\r' '  ' | cut -c1-250)" >"$ctl.in"
        done
        sleep 0.2
    done
    wait "$run_pid"
    rc=$?
    run_pid=
    cat "$work/run.out"
}
