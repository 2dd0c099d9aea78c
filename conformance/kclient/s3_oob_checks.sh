# s3_oob_checks.sh - the guest side of kclient_s3.rs's out-of-band scenario
# (busybox sh, sourced by workload.sh through run.sh --extra, so fail, eq,
# must, dropcaches, $TOP and $MNT are available).
#
#   oob_setup   files under $TOP/oob, written and read through the mount, so
#               the client holds their handles, dentries and attributes
#   oob_sync    the host, as another S3 client, rewrites oob/rw, deletes
#               oob/del, renames oob/mv to oob/moved (copy + delete) and
#               uploads oob/new, then answers "go"
#   oob_after   what the guest sees by path: the new data, ENOENT for what
#               is gone, the new names; never the old bytes
#
# The sync step prints "KCLIENT-SYNC s3-oob kclient-RUNID/oob" on the
# console and waits for "go" on the second serial port (/dev/ttyS1).

ALL_CHECKS="mount oob_setup oob_sync oob_after umount dmesg_clean"
O=$TOP/oob

c_oob_setup() {
    must mkdir -p "$O"
    echo old >"$O/rw" || fail "create rw"
    echo doomed >"$O/del" || fail "create del"
    echo travels >"$O/mv" || fail "create mv"
    eq "$(cat "$O/rw")" old "rw"
    eq "$(cat "$O/del")" doomed "del"
    eq "$(cat "$O/mv")" travels "mv"
    eq "$(ls "$O" | tr '\n' ' ')" "del mv rw " "ls"
}

c_oob_sync() {
    [ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (run.sh --serial2 missing?)"
    stty -F /dev/ttyS1 -echo -icanon min 1 time 0 2>/dev/null
    echo "KCLIENT-SYNC s3-oob kclient-$KC_RUNID/oob" >/dev/console
    line=
    while [ "$line" != go ]; do
        IFS= read -r line </dev/ttyS1 || fail "reading /dev/ttyS1 failed"
        line=$(printf '%s' "$line" | tr -d '\r')
        case $line in fail*) fail "host: $line" ;; esac
    done
}

# got WHAT CMD...: CMD's output and status as one INFO line.
got() {
    _w=$1; shift
    _o=$("$@" 2>&1); _r=$?
    echo "INFO $_w: rc=$_r $(printf '%s' "$_o" | tr '\n' ' ')" >&2
    printf '%s' "$_o"
    return $_r
}

c_oob_after() {
    # The server trusts its attribute cache for attr_ttl_ms (1 s).
    sleep 2
    # Cached handles, dentries and attributes: the open's revalidation
    # meets an expired handle (NFS4ERR_STALE to Linux), the client walks
    # the path again and reads what the bucket holds now.
    out=$(got "cat rw" cat "$O/rw") || fail "cat rw after the rewrite: $out"
    [ "$out" != old ] || fail "the old data of rw was served after the rewrite"
    eq "$out" NEW "rw after the rewrite"
    out=$(got "cat del" cat "$O/del") && fail "del still readable after the delete: $out"
    case $out in *"No such file"*) : ;; *) fail "cat del: want ENOENT, got: $out" ;; esac
    out=$(got "cat mv" cat "$O/mv") && fail "mv still readable after the rename: $out"
    case $out in *"No such file"*) : ;; *) fail "cat mv: want ENOENT, got: $out" ;; esac
    eq "$(got "cat moved" cat "$O/moved")" travels "moved (renamed by the other client)"
    eq "$(got "cat new" cat "$O/new")" outside "new (uploaded by the other client)"
    # The directory's change attribute only follows changes made through
    # nfs4d (docs/objectstore.md): a cached listing shows other clients'
    # changes once the client drops it.
    dropcaches
    eq "$(ls "$O" | tr '\n' ' ')" "moved new rw " "ls after the other client's changes"
    # Through the mount again: writing over the rewritten object.
    echo mine >"$O/rw" || fail "rewrite rw through NFS"
    eq "$(cat "$O/rw")" mine "rw written through NFS"
}
