# hostlock_checks.sh - checks sourced by workload.sh (run.sh --extra): the
# guest's NFS byte-range locks and the locks of a process on the server's
# host, on the same backing file, must see each other (docs/locking.md).
#
# The host side is the agent of conformance/src/hostlocks.rs, listening on
# the host's 127.0.0.1 (10.0.2.2 from here) at KC_HOSTLOCK_PORT, which the
# test prepends to this file. The export must be mounted from "/" of the
# backing directory (the default), so $D's path below $MNT is its path
# below the export directory on the host.

# host VERB ARGS...: one request about $D/lockfile; the reply in HOST_OUT.
host() {
    _rel=${D#"$MNT"/}/lockfile
    HOST_OUT=$(echo "$* $_rel" | nc "$KC_SERVER" "$KC_HOSTLOCK_PORT" 2>&1)
}
# host_expect REPLY VERB ARGS...
host_expect() {
    _hw=$1; shift
    host "$@"
    eq "$HOST_OUT" "$_hw" "host process: $*"
}
# host_wait REPLY VERB ARGS...: the same, allowing 5 s for the client to
# send an unlock that a process exit triggered.
host_wait() {
    _hw=$1; shift
    _i=0
    while host "$@"; [ "$HOST_OUT" != "$_hw" ]; do
        _i=$((_i + 1))
        [ $_i -gt 50 ] && fail "host process: $*: expected '$_hw', got '$HOST_OUT'"
        sleep 0.1
    done
}

# The guest locks through NFS; a host process sees it.
c_lock_host_sees_client() {
    prep
    : >"$D/lockfile" || fail "create lockfile"
    holder "$D/lockfile" w:0:100
    host_expect DENIED try w 0 1
    host_expect DENIED try r 99 1
    host_expect GRANTED try w 100 50
    host_expect "HELD w 0 100" get w 0 0
    # a read lock of the guest is shared with host readers only
    release_holder
    holder "$D/lockfile" r:0:100
    host_wait GRANTED try r 0 100
    host_expect DENIED try w 50 1
    release_holder
    host_wait GRANTED try w 0 0
}

# A host process locks; both guest clients see it, then get the range once
# it lets go.
c_lock_client_sees_host() {
    prep
    : >"$D/lockfile" || fail "create lockfile"
    host_expect HELD hold w 200 100
    contend 1 "lock inside the host process's lock" w:250:10
    contend 1 "read lock overlapping its start" r:150:51
    contend 0 "lock next to it" w:300:10
    contend_test "TEST HELD w 200 100" "F_GETLK for the host process's lock" t:0:1000:w
    host_expect RELEASED release
    contend 0 "the range after the host process let go" w:200:100
}

# F_SETLKW on client B waits for a host process (the client polls) and is
# granted after it lets go.
c_lock_blocking_host() {
    prep
    need_client2
    : >"$D/lockfile" || fail "create lockfile"
    host_expect HELD hold w 0 10
    host_expect OK release-after 2
    _t0=$(uptime_cs)
    lh_expect 0 "blocking lock behind the host process" "$D2/lockfile" W:0:10
    _t1=$(uptime_cs)
    echo "INFO granted after $(((_t1 - _t0) / 100)).$(((_t1 - _t0) % 100 / 10))s"
    [ $((_t1 - _t0)) -ge 150 ] || fail "granted after $((_t1 - _t0))0 ms, before the host process let go"
}

ALL_CHECKS="${ALL_CHECKS%%remount_persist*}lock_host_sees_client lock_client_sees_host lock_blocking_host
remount_persist${ALL_CHECKS#*remount_persist}"
