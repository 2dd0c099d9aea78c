# migrate_checks.sh - the guest side of migrate.sh (busybox sh): what the
# Linux client does when the export it mounted moves to another head.
#
# Sourced by workload.sh (run.sh --extra). One check, which records rather
# than judges, since the point is to learn the client's behaviour:
#
#   mg_across_migration   writes $TOP/mg/f; at "KCLIENT-SYNC migrate" the
#                         host moves the export to head B (nfs4d ctl
#                         migrate --to-head): head A answers NFS4ERR_MOVED
#                         from then on and fs_locations names B. The guest
#                         then reads f, appends to it, creates a file, lists
#                         the directory and stats f, and (4.1+) writes
#                         through a file it kept open across the move,
#                         each under a timeout,
#                         and prints one "INFO mg_after <op> <status>
#                         <seconds>" line per operation and the mount line.
#                         It fails only on harness trouble.

# No umount: after a migration the client may be left retrying for good,
# and the guest powers off anyway.
ALL_CHECKS="mount mg_across_migration"
G=$TOP/mg

mg_host_step() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    echo "KCLIENT-SYNC $1 kclient-$KC_RUNID/mg" >/dev/console
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

# mg_try NAME CMD...: runs CMD, killed (SIGKILL: NFS waits are killable)
# after 30 s, and prints its outcome.
mg_try() {
    name=$1
    shift
    t0=$(cut -d' ' -f1 /proc/uptime)
    timeout -s KILL 30 "$@" >/tmp/mg.out 2>&1
    st=$?
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "INFO mg_after $name status=$st seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $(head -c 120 /tmp/mg.out | tr '\n' ' ')"
}

c_mg_across_migration() {
    must mkdir -p "$G"
    echo "written before the migration" >"$G/f" || fail "write f"
    # 4.1+: a file also kept open and written across the move (4.0 loops
    # on the old head's stateids: docs/cluster.md).
    if [ "$KC_VERS" != 4.0 ]; then
        exec 4>>"$G/open" || fail "open"
        echo "first line through the open file" >&4 || fail "write open"
    fi
    sync
    echo "INFO mg_mount_before $(grep ' /mnt/nfs ' /proc/mounts)"
    mg_host_step migrate
    mg_try read cat "$G/f"
    mg_try append sh -c "echo 'appended after the migration' >>'$G/f'"
    mg_try create sh -c "echo new >'$G/new'"
    mg_try list ls -l "$G"
    mg_try stat stat "$G/f"
    mg_try read_again cat "$G/f"
    if [ "$KC_VERS" != 4.0 ]; then
        mg_try append_open sh -c "echo 'second line through the open file' >&4 && sync"
        exec 4>&-
        mg_try read_open cat "$G/open"
    fi
    echo "INFO mg_mount_after $(grep ' /mnt/nfs ' /proc/mounts)"
    dmesg | grep -i -E 'nfs|migrat|moved' | tail -n 10 | sed 's/^/INFO mg_dmesg /'
}
