# volatile_checks.sh - the guest side of volatile.sh's scenario (busybox sh).
#
# Sourced by workload.sh (run.sh --extra), so its helpers (fail, eq, must,
# expect_error, prep...) and variables ($TOP, $MNT) are available. It
# replaces the check list with a scenario in phases; the host acts between
# them (volatile.sh):
#
#   vol_setup          files and directories under $TOP/vol, read once so
#                      the client caches their dentries, inodes and handles
#   vol_sync_oob       host renames $TOP/vol/d to d-moved in the backing
#                      directory, behind the server's back
#   vol_after_oob      the new path works, the old one is gone (ENOENT),
#                      new files can be created in the moved directory
#   vol_sync_restart   host restarts the server: every handle the client
#                      holds, except the export root's, is now expired
#   vol_after_restart  stat, ls, cat by path and new opens all work
#
# A sync step prints "KCLIENT-SYNC <what> <dir>" on the console (the host
# watches the console log) and waits for the host to write "go" on the
# second serial port (/dev/ttyS1, run.sh --serial2).

ALL_CHECKS="mount vol_setup vol_sync_oob vol_after_oob vol_sync_restart vol_after_restart umount dmesg_clean"
V=$TOP/vol

# host_step WHAT: hand over to the host and wait until it is done.
host_step() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    # The check's own output goes to a file; the console is the host's view.
    echo "KCLIENT-SYNC $1 kclient-$KC_RUNID/vol" >/dev/console
    line=
    while [ "$line" != go ]; do
        IFS= read -r line </dev/ttyS1 || fail "reading /dev/ttyS1 failed"
        line=$(printf '%s' "$line" | tr -d '\r')
    done
}

# content PATH EXPECTED WHAT: cat must work and give EXPECTED.
content() {
    _got=$(cat "$1" 2>&1) || fail "$3: cat $1: $_got"
    eq "$_got" "$2" "$3"
}

# The after-phase checks run every step and report each outcome as an INFO
# line (volatile.sh's run records what the guest sees with each
# expired_error setting), then fail with the first unexpected outcome.
#   step WHAT WANT CMD...  WANT: "=TEXT" (succeeds, output TEXT), "ok"
#                          (succeeds), or an error text the output contains
FIRST_FAIL=
step() {
    _what=$1; _want=$2; shift 2
    _out=$("$@" 2>&1)
    _rc=$?
    _out=$(printf '%s' "$_out" | tr '\n' ' ' | sed 's/ *$//')
    if [ $_rc = 0 ]; then _res="ok${_out:+ [$_out]}"; else _res="FAILS: $_out"; fi
    echo "INFO $_what: $_res"
    case $_want in
        =*) [ $_rc = 0 ] && [ "$_out" = "${_want#=}" ] && return 0 ;;
        ok) [ $_rc = 0 ] && return 0 ;;
        *) [ $_rc != 0 ] && case $_out in *"$_want"*) return 0 ;; esac ;;
    esac
    [ -n "$FIRST_FAIL" ] || FIRST_FAIL="$_what: expected ${_want}, got: $_res"
    return 1
}
finish() { [ -z "$FIRST_FAIL" ] || fail "$FIRST_FAIL"; }

c_vol_setup() {
    must mkdir -p "$V/d/sub" "$V/keep"
    echo f >"$V/d/f" || fail "create d/f"
    echo g >"$V/d/sub/g" || fail "create d/sub/g"
    echo k >"$V/keep/file" || fail "create keep/file"
    # Look everything up once: the client now holds their handles.
    content "$V/d/f" f "d/f"
    content "$V/d/sub/g" g "d/sub/g"
    content "$V/keep/file" k "keep/file"
    ls -lR "$V" >/dev/null || fail "ls -lR"
}

c_vol_sync_oob() {
    host_step oob-rename
}

c_vol_after_oob() {
    # The old path: the cached directory's handle has expired. The client
    # must end up with ENOENT (it walks the path again on ESTALE), not EIO.
    step "old path: cat d/f" "No such file" cat "$V/d/f"
    step "old path: ls d" "No such file" ls "$V/d"
    step "old path: stat d" "No such file" stat -c %F "$V/d"
    # The new path: fresh lookups from the (still valid) parent.
    step "new path: cat d-moved/f" =f cat "$V/d-moved/f"
    step "new path: cat d-moved/sub/g" =g cat "$V/d-moved/sub/g"
    step "new path: ls d-moved" "=f sub" ls "$V/d-moved"
    step "new open: create d-moved/new" ok sh -c "echo new >'$V/d-moved/new'"
    step "new open: cat d-moved/new" =new cat "$V/d-moved/new"
    finish
}

c_vol_sync_restart() {
    host_step restart
}

c_vol_after_restart() {
    # Every handle cached before the restart has expired (reboot expiry),
    # except the export root's.
    step "stat keep/file" "=2 regular file" stat -c '%s %F' "$V/keep/file"
    step "cat keep/file" =k cat "$V/keep/file"
    step "ls keep" =file ls "$V/keep"
    step "cat d-moved/sub/g" =g cat "$V/d-moved/sub/g"
    step "new open: create keep/fresh" ok sh -c "echo fresh >'$V/keep/fresh'"
    step "cat keep/fresh" =fresh cat "$V/keep/fresh"
    step "append to keep/file" ok sh -c "echo more >>'$V/keep/file'"
    step "cat keep/file again" "=k more" cat "$V/keep/file"
    step "mv keep/fresh keep/fresh2" ok mv "$V/keep/fresh" "$V/keep/fresh2"
    step "ls -lR vol" ok sh -c "ls -lR '$V' >/dev/null"
    finish
}
