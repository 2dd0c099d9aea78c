# restart_checks.sh - the guest side of restart.sh's scenario (busybox sh).
#
# Sourced by workload.sh (run.sh --extra), so its helpers (fail, must, ...)
# and variables ($TOP, $MNT) are available. One check does the whole
# scenario, since a file descriptor lives only as long as its check:
#
#   rs_write_across_restart  open $TOP/rs/stream and keep it open; a
#                            background writer appends numbered lines to it
#                            (sync every 25 lines); after a second the host
#                            is told to restart the server (SIGKILL, then
#                            start on the same state directory) while the
#                            writer goes on; the hard mount rides the
#                            outage, the client reclaims its open and the
#                            writer finishes; the file must then hold
#                            exactly what was written
#
# The host step prints "KCLIENT-SYNC restart <dir>" on the console and
# waits for "go" on the second serial port (/dev/ttyS1, run.sh --serial2).

ALL_CHECKS="mount rs_write_across_restart umount dmesg_clean"
R=$TOP/rs
RS_LINES=600

# host_step WHAT: hand over to the host and wait until it is done.
host_step() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    echo "KCLIENT-SYNC $1 kclient-$KC_RUNID/rs" >/dev/console
    line=
    while [ "$line" != go ]; do
        IFS= read -r line </dev/ttyS1 || fail "reading /dev/ttyS1 failed"
        line=$(printf '%s' "$line" | tr -d '\r')
    done
}

# rs_line N: line N of the stream (restart.sh writes the same lines).
rs_line() {
    printf 'line %05d written across a server restart 0123456789abcdefghijklmnopqrstuvwxyz\n' "$1"
}

c_rs_write_across_restart() {
    must mkdir -p "$R"
    exec 3>"$R/stream" || fail "open $R/stream"
    (
        i=0
        while [ $i -lt $RS_LINES ]; do
            rs_line $i >&3 || exit 1
            i=$((i + 1))
            [ $((i % 25)) = 0 ] && sync
            usleep 10000
        done
    ) &
    writer=$!
    sleep 1
    t0=$(cut -d' ' -f1 /proc/uptime)
    host_step restart
    wait $writer || fail "the writer failed across the restart"
    sync || fail "sync after the restart"
    t1=$(cut -d' ' -f1 /proc/uptime)
    exec 3>&-
    i=0
    while [ $i -lt $RS_LINES ]; do rs_line $i; i=$((i + 1)); done >/tmp/rs.expected
    echo 3 >/proc/sys/vm/drop_caches
    cmp /tmp/rs.expected "$R/stream" || fail "content differs after the restart"
    echo "INFO $(wc -c </tmp/rs.expected) bytes written through one open across the restart; writer done ${t0}s -> ${t1}s guest uptime"
}
