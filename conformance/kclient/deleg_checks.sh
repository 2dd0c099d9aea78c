# deleg_checks.sh - the guest side of deleg.sh's scenario (busybox sh).
#
# Sourced by workload.sh (run.sh --extra), so its helpers (fail, eq, must,
# prep...) and variables ($TOP, $MNT) are available. Client A writes files
# under write delegations; the host (deleg.sh) then makes someone else open
# them and checks its side at each "KCLIENT-SYNC <step> <path> <size> <md5>"
# line, answering "go" or "fail <reason>" on the second serial port:
#
#   deleg_callback       (ready) the host waits until the server's callback
#                        path to client A is up, so the opens below can
#                        get delegations
#   deleg_held_remote    client A writes a file and keeps it open (held);
#   deleg_held_local     a second NFS client (libnfs on the host: remote)
#                        or a local process on the host (local) opens it;
#                        the server recalls the delegation, client A
#                        returns it, and the reader gets through in
#                        seconds. Then client A writes more and closes
#                        (reread): the reader sees all of client A's data.
#   deleg_closed_remote  client A writes a file and closes it (closed); the
#   deleg_closed_local   Linux client keeps the write delegation after the
#                        close. The reader's open recalls it and the reader
#                        sees all of client A's data.
#
# Why the held reader may see less than was written: the Linux client (6.1)
# answers a recall by returning the delegation at once; dirty pages of a
# file that is still open stay in its page cache and are written back at
# close (or by the periodic writeback), as they would be without any
# delegation - NFS promises close-to-open consistency, no more. Only a
# return the client starts itself (before a SETATTR, say) writes back first.
# So the held steps check that the recall works and does not keep the
# reader waiting, and the reread and closed steps check the data.
#
# The held data is written and kept open by one lockhelper process (c: op):
# every close(2) of a descriptor of the file, a shell redirection undone or
# a forked child exiting, would make the client flush.
#
# For NFSv4.0 (run.sh --cb-port N) the NFS callback service must listen on
# N, the port the host forwards to the guest, because that is where a 4.0
# server calls back (clientaddr=127.0.0.1). The service reads the port when
# it starts, at the first mount, which is the first check: so it is set
# here, while workload.sh sources this file before running any check (and
# not again in the per-check processes).
if [ -n "$KC_CB_PORT" ] && [ "$1" != --one ]; then
    echo "$KC_CB_PORT" >/sys/module/nfs/parameters/callback_tcpport ||
        echo "KCLIENT-ERROR cannot set nfs.callback_tcpport=$KC_CB_PORT"
fi

ALL_CHECKS="mount deleg_callback deleg_held_remote deleg_held_local deleg_closed_remote deleg_closed_local umount dmesg_clean"

# deleg_host_step STEP PATH REF: tell the host about PATH below the export
# (and the size and md5 of REF, what it must hold), wait for its verdict.
deleg_host_step() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    if [ -n "$3" ]; then
        echo "KCLIENT-SYNC $1 ${2#"$MNT"/} $(fsize "$3") $(md5 "$3")" >/dev/console
    else
        echo "KCLIENT-SYNC $1 ${2#"$MNT"/} 0 -" >/dev/console
    fi
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

c_deleg_callback() {
    if [ -n "$KC_CB_PORT" ]; then
        # 4.0: the callback service listens where the host forwards to
        eq "$(cat /sys/module/nfs/parameters/callback_tcpport)" "$KC_CB_PORT" "nfs.callback_tcpport"
        netstat -ltn | grep -q ":$KC_CB_PORT " ||
            fail "nothing listens on port $KC_CB_PORT: $(netstat -ltn | tr '\n' ' ')"
        echo "INFO callback service on port $KC_CB_PORT"
    fi
    deleg_host_step ready "$TOP"
}

# deleg_pattern WHAT: about 55 KB (many pages) of known text in $S/ref.
deleg_pattern() {
    awk -v id="$KC_RUNID" -v what="$1" 'BEGIN {
        for (i = 0; i < 1000; i++) printf "%s %s line %04d of the delegated write\n", id, what, i
    }' >"$S/ref" || fail "make the pattern"
}

# deleg_held READER: write $D/file and keep it open while READER opens it,
# then write more, close, and let READER read it all.
deleg_held() {
    prep
    deleg_pattern "held-$1"
    echo "written after the recall" >"$S/more"
    $LH "$D/file" "c:$S/ref" "m:$S/held" h:80 "c:$S/more" >"$S/lh.out" 2>&1 &
    pid=$!
    i=0
    while [ ! -e "$S/held" ]; do
        kill -0 $pid 2>/dev/null || { wait $pid; fail "writer exited early (rc $?): $(cat "$S/lh.out")"; }
        i=$((i + 1))
        [ $i -gt 300 ] && fail "writer did not write within 30s: $(cat "$S/lh.out")"
        sleep 0.1
    done
    deleg_host_step "held-$1" "$D/file" "$S/ref"
    # The delegation is gone; the descriptor keeps working.
    kill -USR1 $pid
    wait $pid || fail "writer failed after the recall (rc $?): $(cat "$S/lh.out")"
    cat "$S/more" >>"$S/ref"
    deleg_host_step "reread-$1" "$D/file" "$S/ref"
    cmp "$S/ref" "$D/file" || fail "file differs"
}

# deleg_closed READER: write $D/file and close it, then READER opens it.
deleg_closed() {
    prep
    deleg_pattern "closed-$1"
    out=$($LH "$D/file" "c:$S/ref" 2>&1) || fail "write $D/file: $out"
    deleg_host_step "closed-$1" "$D/file" "$S/ref"
    cmp "$S/ref" "$D/file" || fail "file differs"
}

c_deleg_held_remote() { deleg_held remote; }
c_deleg_held_local() { deleg_held local; }
c_deleg_closed_remote() { deleg_closed remote; }
c_deleg_closed_local() { deleg_closed local; }
