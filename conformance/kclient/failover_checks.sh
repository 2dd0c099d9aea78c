# failover_checks.sh - the guest side of failover.sh's scenario (busybox sh).
#
# Sourced by workload.sh (run.sh --extra), so its helpers (fail, must, ...)
# and variables ($TOP, $MNT, $LH) are available. One check does the whole
# scenario, since a lock lives only as long as its holder:
#
#   fo_write_across_failover  a lockhelper process opens $TOP/fo/stream,
#                             takes a write lock on the whole file and then,
#                             every 20 ms, writes a numbered 64-byte line,
#                             fsyncs and reads it back (l: op). Once it runs,
#                             the host kills head A ("failover"); the hard
#                             mount rides the outage while head B takes A's
#                             address over, the client reclaims its open and
#                             its lock, and the loop goes on. Then the host
#                             checks that a host process cannot take the
#                             lock ("checklock"), and the file must hold
#                             exactly the lines written. INFO lines report
#                             when I/O resumed after the kill.
#
# Host steps print "KCLIENT-SYNC <step> <dir>" on the console and wait for
# "go" (or "fail <why>") on the second serial port (run.sh --serial2).

ALL_CHECKS="mount fo_write_across_failover umount dmesg_clean"
R=$TOP/fo
FO_LINES=400

fo_host_step() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    echo "KCLIENT-SYNC $1 kclient-$KC_RUNID/fo" >/dev/console
    line=
    while :; do
        IFS= read -r line </dev/ttyS1 || fail "reading /dev/ttyS1 failed"
        line=$(printf '%s' "$line" | tr -d '\r')
        case $line in
            go) return 0 ;;
            fail*) fail "host: ${line#fail }" ;;
        esac
    done
}

fo_logged() { [ -f /tmp/fo.log ] && wc -l </tmp/fo.log || echo 0; }

c_fo_write_across_failover() {
    must mkdir -p "$R"
    rm -f /tmp/fo.log /tmp/fo.done /tmp/fo.out
    "$LH" "$R/stream" w:0:0 "l:$FO_LINES:/tmp/fo.log" m:/tmp/fo.done h:600 >/tmp/fo.out 2>&1 &
    holder=$!
    n=0
    while [ "$(fo_logged)" -lt 20 ]; do
        kill -0 $holder 2>/dev/null || fail "the writer stopped: $(cat /tmp/fo.out)"
        n=$((n + 1))
        [ $n -gt 600 ] && fail "the writer never got going: $(cat /tmp/fo.out)"
        usleep 50000
    done
    grep -q '^GRANTED w 0 0' /tmp/fo.out || fail "no lock: $(cat /tmp/fo.out)"
    fo_host_step failover
    t_go=$(awk '{ printf "%d", $1 * 1000 }' /proc/uptime)
    before=$(fo_logged)
    while [ ! -e /tmp/fo.done ]; do
        kill -0 $holder 2>/dev/null || fail "the writer failed across the failover: $(cat /tmp/fo.out)"
        usleep 100000
    done
    grep -q '^LOOP ok' /tmp/fo.out || fail "writer: $(cat /tmp/fo.out)"
    resumed=$(awk -v t="$t_go" '$2 > t { print $2 - t; exit }' /tmp/fo.log)
    echo "INFO fo_resumed_ms ${resumed:-?} (lines done at the kill: $before)"
    echo "INFO fo_loop $(grep '^LOOP' /tmp/fo.out)"
    # The lock is held again (reclaimed on head B): the host must not get it.
    fo_host_step checklock
    kill $holder
    wait $holder
    i=0
    while [ $i -lt $FO_LINES ]; do
        printf 'line %07d written across a head failover 0123456789abcdefghi\n' $i
        i=$((i + 1))
    done >/tmp/fo.expected
    echo 3 >/proc/sys/vm/drop_caches
    cmp /tmp/fo.expected "$R/stream" || fail "content differs after the failover"
    echo "INFO fo_lines $FO_LINES"
}
