# server.sh - the nfs4d under test, for the host-side kernel-client
# scenarios (deleg.sh, restart.sh, volatile.sh), which source it once their
# work directory exists.
#
# The sourcing script has set:
#   bin         the nfs4d binary
#   work        its work directory: the export is $work/export, the state
#               directory $work/state, nfs4d's stdout goes to $work/nfs4d.out
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
