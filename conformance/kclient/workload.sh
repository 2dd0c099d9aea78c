#!/bin/sh
# workload.sh - the checks, run inside the kclient guest by /init (busybox sh).
#
# Configuration comes from /etc/kclient.conf (written by run.sh into the
# per-run cpio):
#   KC_SERVER      server address as seen from the guest (10.0.2.2 = host lo)
#   KC_PORT        NFS port
#   KC_VERS        4.0 | 4.1 | 4.2
#   KC_EXPORT      path to mount (e.g. / or /export)
#   KC_MOUNT_OPTS  complete -o option string for mount -t nfs4
#   KC_RUNID       unique id of this run (names the directory on the export)
#   KC_ONLY        optional space-separated subset of checks to run
#   /etc/kclient.skip  optional "NAME REASON" lines (run.sh --skip): checks
#                  the server's store rules out, reported as SKIP unrun
#   KC_KEEP        1 = leave the run's directory on the export afterwards
#   KC_BIG_MB      size of the large-file check in MiB (default 48)
#   KC_CHECK_TIMEOUT  optional: one watchdog limit (s) for every check,
#                  replacing the built-in 90/180/240 s
#
# Output contract (parsed by run.sh): one line per check,
#   CHECK <name> PASS
#   CHECK <name> FAIL <reason>
#   CHECK <name> SKIP <reason>      (only for checks listed in kclient.skip)
# and finally
#   RESULT <passed> passed, <failed> failed[, <skipped> skipped]
# Other lines (RUN, TIME, DETAIL, DMESG, KCLIENT-*) are informational.
#
# Each check runs as a separate "sh /workload.sh --one NAME" process in its own
# process group with a watchdog, so a failing or hanging check can neither
# abort nor wedge the others; its stdout/stderr are kept in /tmp and the first
# "FAILREASON:" line (or the last output line) becomes the FAIL reason.

SELF=/workload.sh
. /etc/kclient.conf
: "${KC_SERVER:=10.0.2.2}" "${KC_BIG_MB:=48}"
MNT=/mnt/nfs                    # client A (the guest's main network namespace)
MNT2=/mnt/nfs-b                 # client B (second network namespace, see init.sh)
TOP=$MNT/kclient-$KC_RUNID      # everything this run creates on the export
TOP2=$MNT2/kclient-$KC_RUNID    # the same directory, seen through client B
SCR=/tmp/kc                     # guest-local scratch (tmpfs) for references
LH=/bin/lockhelper

ALL_CHECKS="mount mount_client2
write_read append mkdir_deep
rename_same_dir rename_cross_dir rename_overwrite rename_dir dir_nlink
hardlink symlink symlink_dangling
chmod chown truncate truncate_sparse touch_mtime stat_sizes redirect_truncate
large_file random_overwrite readdir_1500 rm_rf_tree
lock_exclusive lock_conflict_range lock_nonoverlap lock_shared_shared
lock_shared_exclusive lock_release lock_blocking
create_excl statfs_df unlinked_open_read tar_extract tar_hardlink concurrent_append
temp_rename_pattern rename_over_while_reading
two_client_coherency two_client_read_then_remote_write
mkdir_eexist rmdir_enotempty perm_denied_nonroot
cp_a_mode mv_into_dir find names_special names_long
remount_persist umount dmesg_clean"

# ---------------------------------------------------------------- helpers ---
fail() { echo "FAILREASON: $*"; exit 1; }
# eq ACTUAL EXPECTED WHAT
eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
# must CMD...: run, fail with the command line if it fails
must() { "$@" || fail "failed ($?): $*"; }
# Push dirty data to the server and forget cached pages, dentries and inodes,
# so the following reads really come from the server.
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
fsize() { stat -c %s "$1"; }
md5() { md5sum "$1" | cut -d' ' -f1; }
# prep: fresh per-check directories on the export ($D; $D2 is the same
# directory seen through client B) and in tmpfs ($S)
prep() {
    D=$TOP/$CHECK_NAME
    D2=$TOP2/$CHECK_NAME
    S=$SCR/$CHECK_NAME
    rm -rf "$S"
    mkdir -p "$S" || fail "mkdir scratch $S"
    mkdir "$D" || fail "mkdir $D on the export"
}
# expect_error WHAT PATTERN CMD...: CMD must fail and its output contain
# PATTERN (alternatives separated by '|', e.g. "Permission denied|not permitted").
expect_error() {
    _what=$1; _pattern=$2; shift 2
    _out=$("$@" 2>&1) && fail "$_what: '$*' succeeded, expected an error"
    _rest=$_pattern
    while [ -n "$_rest" ]; do
        _alt=${_rest%%|*}
        case $_out in *"$_alt"*) return 0 ;; esac
        [ "$_alt" = "$_rest" ] && break
        _rest=${_rest#*|}
    done
    fail "$_what: '$*' failed with '$_out', expected '$_pattern'"
}
uptime_cs() { read -r _u _ </proc/uptime; echo "${_u%.*}${_u#*.}"; }

# Locks: start a background lockhelper that takes its locks, drops a marker
# and then holds them; wait for the marker so the next step cannot race it.
holder() {
    _f=$1; shift
    _m=$S/holder.mark.$$.$RANDOM
    rm -f "$_m"
    $LH "$_f" "$@" "m:$_m" h:120 >"$_m.out" 2>&1 &
    HPID=$!
    _i=0
    while [ ! -e "$_m" ]; do
        kill -0 $HPID 2>/dev/null || { wait $HPID; fail "lock holder ($_f $*) exited early (rc $?): $(cat "$_m.out")"; }
        _i=$((_i + 1))
        [ $_i -gt 300 ] && fail "lock holder did not get its locks within 30s: $(cat "$_m.out")"
        sleep 0.1
    done
}
release_holder() { kill -TERM $HPID 2>/dev/null; wait $HPID; HPID=; }
# lh_expect RC WHAT FILE OPS...: run a second lockhelper process, check rc
lh_expect() {
    _want=$1; _what=$2; shift 2
    _out=$($LH "$@" 2>&1)
    _rc=$?
    [ $_rc = "$_want" ] || fail "$_what: lockhelper $* -> rc $_rc ($_out), expected rc $_want"
    LH_OUT=$_out
}
need_client2() {
    grep -q " $MNT2 nfs4 " /proc/mounts || fail "second client not mounted (see mount_client2)"
}
# contend RC WHAT OPS...: the same lock request on $D/lockfile from another
# process on client A and from a process on client B; both must give RC.
contend() {
    _cw=$1; _cwhat=$2; shift 2
    lh_expect "$_cw" "$_cwhat [other process, client A]" "$D/lockfile" "$@"
    need_client2
    lh_expect "$_cw" "$_cwhat [client B]" "$D2/lockfile" "$@"
}
# contend_test EXPECTED WHAT t:...: F_GETLK from both, output must match
contend_test() {
    _ce=$1; _cwhat=$2; shift 2
    lh_expect 0 "$_cwhat [other process, client A]" "$D/lockfile" "$@"
    eq "$LH_OUT" "$_ce" "$_cwhat [other process, client A]"
    need_client2
    lh_expect 0 "$_cwhat [client B]" "$D2/lockfile" "$@"
    eq "$LH_OUT" "$_ce" "$_cwhat [client B]"
}

# ----------------------------------------------------------------- checks ---

c_mount() {
    mkdir -p $MNT
    out=$(mount -t nfs4 -o "$KC_MOUNT_OPTS" "$KC_SERVER:$KC_EXPORT" $MNT 2>&1) ||
        fail "mount -o $KC_MOUNT_OPTS $KC_SERVER:$KC_EXPORT: $out"
    line=$(grep " $MNT nfs4 " /proc/mounts) || fail "not in /proc/mounts after mount"
    echo "INFO $line"
    case $line in
        *vers=$KC_VERS,*|*vers=$KC_VERS" "*) : ;;
        *) fail "mounted with a different version than vers=$KC_VERS: $line" ;;
    esac
    must mkdir "$TOP"
}

c_mount_client2() {
    [ -s /run/kclient-ns2.pid ] || fail "no second network namespace (see KCLIENT-ERROR lines)"
    mkdir -p $MNT2
    out=$(nsenter -t "$(cat /run/kclient-ns2.pid)" -n -u \
        mount -t nfs4 -o "$KC_MOUNT_OPTS" "$KC_SERVER:$KC_EXPORT" $MNT2 2>&1) ||
        fail "mount of client B: $out"
    grep -q " $MNT2 nfs4 " /proc/mounts || fail "not in /proc/mounts after mount"
    # a separate superblock (device number) means a separate nfs_client
    [ "$(stat -c %d $MNT)" != "$(stat -c %d $MNT2)" ] ||
        fail "client B shares client A's superblock (same device number)"
    [ -d "$TOP2" ] || fail "client B does not see $TOP created by client A"
}

c_write_read() {
    prep
    printf 'hello, nfs\nsecond line\n' >"$D/small" || fail "write small file"
    eq "$(cat "$D/small")" "$(printf 'hello, nfs\nsecond line')" "small file content"
    eq "$(fsize "$D/small")" 23 "small file size"
    head -c 1048576 /dev/urandom >"$S/ref"
    must cp "$S/ref" "$D/mid"
    cmp "$S/ref" "$D/mid" || fail "1 MiB file differs (cached)"
    dropcaches
    cmp "$S/ref" "$D/mid" || fail "1 MiB file differs after drop_caches"
    eq "$(cat "$D/small")" "$(printf 'hello, nfs\nsecond line')" "small file content after drop_caches"
}

c_append() {
    prep
    echo one >"$D/f"
    echo two >>"$D/f"
    dropcaches          # the next append must take EOF from the server
    echo three >>"$D/f"
    eq "$(cat "$D/f")" "$(printf 'one\ntwo\nthree')" "content after appends"
    head -c 100000 /dev/urandom >"$S/tail"
    must dd if="$S/tail" of="$D/f" oflag=append conv=notrunc bs=4096 2>/dev/null
    dropcaches
    eq "$(fsize "$D/f")" 100014 "size after dd append"
    tail -c 100000 "$D/f" | cmp - "$S/tail" || fail "appended block differs"
    eq "$(head -n 3 "$D/f")" "$(printf 'one\ntwo\nthree')" "head after dd append"
}

c_mkdir_deep() {
    prep
    p=$D
    i=1
    while [ $i -le 20 ]; do p=$p/level$i; i=$((i + 1)); done
    must mkdir -p "$p"
    echo deep >"$p/leaf" || fail "create file at depth 20"
    dropcaches
    [ -d "$p" ] || fail "deep directory missing after drop_caches"
    eq "$(cat "$p/leaf")" deep "leaf content"
    eq "$(find "$D" -type d | wc -l)" 21 "directory count"
}

c_rename_same_dir() {
    prep
    echo data >"$D/a"
    ino=$(stat -c %i "$D/a")
    must mv "$D/a" "$D/b"
    [ -e "$D/a" ] && fail "old name still exists"
    eq "$(cat "$D/b")" data "content after rename"
    eq "$(stat -c %i "$D/b")" "$ino" "inode number after rename"
    dropcaches
    eq "$(ls "$D")" b "directory listing after rename"
    eq "$(cat "$D/b")" data "content after drop_caches"
}

c_rename_cross_dir() {
    prep
    mkdir "$D/src" "$D/dst"
    echo data >"$D/src/f"
    must mv "$D/src/f" "$D/dst/f"
    [ -e "$D/src/f" ] && fail "source still exists"
    dropcaches
    eq "$(ls -A "$D/src")" "" "source dir listing"
    eq "$(ls -A "$D/dst")" f "target dir listing"
    eq "$(cat "$D/dst/f")" data "content"
}

c_rename_overwrite() {
    prep
    echo A >"$D/a"
    echo B >"$D/b"
    ino=$(stat -c %i "$D/a")
    exec 3<"$D/b"       # keep the victim open: its data must stay readable
    must mv -f "$D/a" "$D/b"
    [ -e "$D/a" ] && fail "old name still exists"
    eq "$(cat "$D/b")" A "content of target"
    eq "$(stat -c %i "$D/b")" "$ino" "inode of target"
    read -r old <&3
    eq "$old" B "data of the replaced file through an open descriptor"
    exec 3<&-
    dropcaches
    eq "$(ls "$D")" b "listing after rename-over"
    eq "$(cat "$D/b")" A "content after drop_caches"
}

c_rename_dir() {
    prep
    mkdir -p "$D/d1/sub"
    echo x >"$D/d1/sub/f"
    must mv "$D/d1" "$D/d2"
    [ -e "$D/d1" ] && fail "old directory name still exists"
    eq "$(cat "$D/d2/sub/f")" x "file inside renamed directory"
    mkdir "$D/other"
    must mv "$D/d2" "$D/other/"
    dropcaches
    eq "$(ls "$D")" other "top listing"
    eq "$(cat "$D/other/d2/sub/f")" x "file after moving directory"
    eq "$(stat -c %i "$D/other/d2/..")" "$(stat -c %i "$D/other")" "'..' of moved directory"
}

# Directory link counts (2 + subdirectories), which a store without link
# counts cannot keep (a separate check, so rename_dir still runs there).
c_dir_nlink() {
    prep
    mkdir -p "$D/p/a" "$D/q"
    eq "$(stat -c %h "$D/p")" 3 "link count with one subdirectory"
    must mv "$D/p/a" "$D/q/"
    dropcaches
    eq "$(stat -c %h "$D/p")" 2 "link count of the old parent"
    eq "$(stat -c %h "$D/q")" 3 "link count of the new parent"
}

c_hardlink() {
    prep
    echo x >"$D/f"
    must ln "$D/f" "$D/g"
    eq "$(stat -c %h "$D/f")" 2 "link count of f"
    eq "$(stat -c %i "$D/g")" "$(stat -c %i "$D/f")" "inode numbers"
    echo y >>"$D/g"
    dropcaches
    eq "$(stat -c %h "$D/g")" 2 "link count after drop_caches"
    eq "$(cat "$D/f")" "$(printf 'x\ny')" "write through one name seen through the other"
    must rm "$D/f"
    eq "$(stat -c %h "$D/g")" 1 "link count after removing one name"
    eq "$(cat "$D/g")" "$(printf 'x\ny')" "content after removing one name"
}

c_symlink() {
    prep
    echo content >"$D/target"
    must ln -s target "$D/l"
    [ -L "$D/l" ] || fail "not a symlink"
    eq "$(readlink "$D/l")" target "readlink"
    eq "$(cat "$D/l")" content "follow"
    mkdir "$D/sub"
    ln -s ../target "$D/sub/rel"
    ln -s "$D/target" "$D/abs"
    long=$(printf '%0300d' 0 | tr 0 y)
    ln -s "$long" "$D/long"
    dropcaches
    eq "$(stat -c %F "$D/l")" "symbolic link" "file type"
    eq "$(readlink "$D/l")" target "readlink after drop_caches"
    eq "$(cat "$D/sub/rel")" content "relative ../ link"
    eq "$(readlink "$D/abs")" "$D/target" "absolute link"
    eq "$(cat "$D/abs")" content "follow absolute link"
    eq "$(readlink "$D/long")" "$long" "300-byte link target"
    eq "$(stat -c %s "$D/l")" 6 "symlink size"
}

c_symlink_dangling() {
    prep
    must ln -s nowhere "$D/l"
    [ -L "$D/l" ] || fail "not a symlink"
    [ -e "$D/l" ] && fail "dangling link reports an existing target"
    eq "$(readlink "$D/l")" nowhere "readlink"
    expect_error "read through dangling link" "No such file" cat "$D/l"
    echo hi >"$D/nowhere"
    eq "$(cat "$D/l")" hi "link after creating its target"
    rm "$D/nowhere"
    dropcaches
    [ -e "$D/l" ] && fail "link still resolves after removing target"
    must rm "$D/l"
}

c_chmod() {
    prep
    touch "$D/f"
    for m in 640 755 600 777 444 000 750 4755 2755 1755; do
        must chmod $m "$D/f"
        want=$(printf %o 0$m)
        eq "$(stat -c %a "$D/f")" "$want" "mode after chmod $m"
    done
    chmod 640 "$D/f"
    must chmod u-w,g+x "$D/f"
    mkdir "$D/d"
    must chmod 711 "$D/d"
    dropcaches
    eq "$(stat -c %a "$D/f")" 450 "symbolic chmod, after drop_caches"
    eq "$(stat -c %a "$D/d")" 711 "directory mode after drop_caches"
}

c_chown() {
    prep
    touch "$D/f"
    # 4294967294 = the client could not map the server's owner string: this
    # guest has no idmapper, so the server must send numeric owners (as
    # knfsd does for AUTH_SYS clients that send numeric ones).
    eq "$(stat -c '%u %g' "$D/f")" "0 0" "owner of a file created by root"
    must chown 1000:1000 "$D/f"
    eq "$(stat -c '%u %g' "$D/f")" "1000 1000" "owner after chown"
    dropcaches
    eq "$(stat -c '%u %g' "$D/f")" "1000 1000" "owner after chown, after drop_caches"
    must chown 0:1000 "$D/f"
    dropcaches
    eq "$(stat -c '%u %g' "$D/f")" "0 1000" "group-only change"
    eq "$(ls -ln "$D/f" | awk '{print $3, $4}')" "0 1000" "ls -ln owner columns"
    # a file created by a non-root user gets that user's ids (AUTH_SYS creds)
    mkdir "$D/open"
    chmod 1777 "$D/open"
    su -s /bin/sh kctest -c "echo mine >'$D/open/mine'" || fail "non-root create in a 1777 directory"
    dropcaches
    eq "$(stat -c %u:%g "$D/open/mine")" 1000:1000 "owner of a file created by uid 1000"
}

c_truncate() {
    prep
    head -c 200000 /dev/urandom >"$S/ref"
    head -c 100000 "$S/ref" >"$S/ref100k"
    head -c 2900000 /dev/zero >"$S/zeros"
    must cp "$S/ref" "$D/f"
    must truncate -s 100000 "$D/f"
    eq "$(fsize "$D/f")" 100000 "size after truncate down"
    cmp "$D/f" "$S/ref100k" || fail "content after truncate down"
    must truncate -s 3000000 "$D/f"
    eq "$(fsize "$D/f")" 3000000 "size after truncate up"
    dropcaches
    eq "$(fsize "$D/f")" 3000000 "size after truncate up, after drop_caches"
    head -c 100000 "$D/f" | cmp - "$S/ref100k" || fail "kept part changed after truncate up"
    tail -c 2900000 "$D/f" | cmp - "$S/zeros" || fail "extended part is not zero-filled"
    # dd without conv=notrunc truncates at the seek offset (ftruncate path)
    must dd if=/dev/null of="$D/f" bs=1 seek=50000 2>/dev/null
    dropcaches
    eq "$(fsize "$D/f")" 50000 "size after dd truncate"
    head -c 50000 "$S/ref" | cmp - "$D/f" || fail "content after dd truncate"
    must truncate -s 0 "$D/f"
    eq "$(fsize "$D/f")" 0 "size after truncate to 0"
}

c_truncate_sparse() {
    prep
    : >"$D/f"
    must truncate -s 67108864 "$D/f"
    dropcaches
    eq "$(fsize "$D/f")" 67108864 "size of 64 MiB sparse file"
    used=$(( $(stat -c %b "$D/f") * $(stat -c %B "$D/f") ))
    [ $used -lt 1048576 ] || fail "64 MiB hole reports $used bytes used (not sparse)"
    head -c 1048576 /dev/zero >"$S/zeros"
    dd if="$D/f" bs=1048576 skip=32 count=1 2>/dev/null | cmp - "$S/zeros" || fail "hole not read as zeros"
    # write one block in the middle: only that block becomes data
    printf 'island' | dd of="$D/f" bs=1 seek=33554432 conv=notrunc 2>/dev/null
    dropcaches
    eq "$(fsize "$D/f")" 67108864 "size after writing into the hole"
    eq "$(dd if="$D/f" bs=1 skip=33554432 count=6 2>/dev/null)" island "data written into the hole"
    head -c 4096 "$S/zeros" >"$S/z4k"
    tail -c 4096 "$D/f" | cmp - "$S/z4k" || fail "tail of sparse file not zero"
}

c_touch_mtime() {
    prep
    touch "$D/f"
    must touch -d '2001-02-03 04:05:06' "$D/f"
    want=$(date -d '2001-02-03 04:05:06' +%s)
    eq "$(stat -c %Y "$D/f")" "$want" "mtime after touch -d"
    eq "$(stat -c %X "$D/f")" "$want" "atime after touch -d"
    mkdir "$D/d"
    must touch -d '1999-12-31 23:59:59' "$D/d"
    # beyond 2038: needs 64-bit seconds end to end
    touch "$D/future"
    must touch -d '2040-01-02 03:04:05' "$D/future"
    dropcaches
    eq "$(stat -c %Y "$D/f")" "$want" "mtime after drop_caches"
    eq "$(stat -c %Y "$D/d")" "$(date -d '1999-12-31 23:59:59' +%s)" "directory mtime"
    eq "$(stat -c %Y "$D/future")" "$(date -d '2040-01-02 03:04:05' +%s)" "mtime in 2040"
    # a write must move mtime to "now" again (server clock = host clock)
    echo more >>"$D/f"
    dropcaches
    now=$(date +%s)
    m=$(stat -c %Y "$D/f")
    [ $((now - m)) -lt 300 ] && [ $((m - now)) -lt 300 ] ||
        fail "mtime after write is $m, guest clock says $now"
}

c_stat_sizes() {
    prep
    head -c 1048576 /dev/urandom >"$S/src"
    sizes="0 1 511 512 4095 4096 4097 65535 65536 65537 131073 1000000 1048576"
    for n in $sizes; do head -c $n "$S/src" >"$D/f$n" || fail "write f$n"; done
    for pass in cached dropped; do
        [ $pass = dropped ] && dropcaches
        for n in $sizes; do
            eq "$(fsize "$D/f$n")" $n "stat size of f$n ($pass)"
            eq "$(wc -c <"$D/f$n" | tr -d ' ')" $n "bytes read from f$n ($pass)"
        done
    done
    eq "$(ls -l "$D/f4097" | awk '{print $5}')" 4097 "ls -l size column"
    eq "$(stat -c %s "$D")" "$(stat -c %s "$D")" "directory size is stable"
}

c_redirect_truncate() {
    prep
    seq 1 1000 >"$D/f"
    eq "$(fsize "$D/f")" 3893 "initial size"
    echo short >"$D/f"
    eq "$(cat "$D/f")" short "content after > truncate"
    eq "$(fsize "$D/f")" 6 "size after > truncate"
    dropcaches
    eq "$(cat "$D/f")" short "content after drop_caches"
    : >"$D/f"
    dropcaches
    eq "$(fsize "$D/f")" 0 "size after : >"
}

c_large_file() {
    prep
    bytes=$((KC_BIG_MB * 1048576))
    # checksum the stream as it is written, so no second copy is needed
    sum1=$(dd if=/dev/urandom bs=1048576 count=$KC_BIG_MB 2>/dev/null | tee "$D/big" | md5sum | cut -d' ' -f1)
    eq "$(fsize "$D/big")" $bytes "size (cached)"
    t0=$(uptime_cs)
    dropcaches
    t1=$(uptime_cs)
    sum2=$(md5 "$D/big")
    t2=$(uptime_cs)
    echo "INFO sync+drop_caches $((t1 - t0))0ms, re-read $((t2 - t1))0ms"
    eq "$(fsize "$D/big")" $bytes "size after drop_caches"
    eq "$sum2" "$sum1" "md5 of ${KC_BIG_MB} MiB after drop_caches"
    rm -f "$D/big"
}

c_random_overwrite() {
    prep
    head -c 8388608 /dev/urandom >"$S/ref"
    must cp "$S/ref" "$D/f"
    dropcaches
    # aligned blocks, first/last block, unaligned offsets, and one block past
    # EOF (leaves a hole that must read back as zeros)
    for off in 0 4096 151552 1048576 4194304 8384512 12345 5000007 8400896; do
        head -c 4096 /dev/urandom >"$S/blk"
        dd if="$S/blk" of="$D/f" bs=4096 seek=$off oflag=seek_bytes conv=notrunc 2>/dev/null ||
            fail "dd at offset $off"
        dd if="$S/blk" of="$S/ref" bs=4096 seek=$off oflag=seek_bytes conv=notrunc 2>/dev/null
    done
    cmp "$D/f" "$S/ref" || fail "differs from reference (cached)"
    dropcaches
    eq "$(fsize "$D/f")" "$(fsize "$S/ref")" "size"
    eq "$(md5 "$D/f")" "$(md5 "$S/ref")" "md5 after drop_caches"
}

c_readdir_1500() {
    prep
    mkdir "$D/many"
    # varying name lengths so READDIR replies end at many different places
    awk 'BEGIN { for (i = 1; i <= 1500; i++) { s = "entry-" i "-"; for (j = 0; j < i % 60; j++) s = s "x"; print s } }' >"$S/names"
    (cd "$D/many" && xargs touch <"$S/names") || fail "creating 1500 files"
    dropcaches
    eq "$(ls "$D/many" | wc -l)" 1500 "ls entry count"
    ls "$D/many" | sort >"$S/got"
    sort "$S/names" >"$S/want"
    cmp -s "$S/got" "$S/want" || fail "ls names differ from the created ones: $(diff "$S/want" "$S/got" | head -n 5 | tr '\n' ' ')"
    dropcaches
    eq "$(ls -l "$D/many" | grep -c '^-')" 1500 "ls -l entry count"
    eq "$(ls -la "$D/many" | grep -c '^d')" 2 "ls -la shows . and .."
    # delete every other entry, list again
    awk 'NR % 2 == 0' "$S/names" >"$S/del"
    (cd "$D/many" && xargs rm <"$S/del") || fail "removing 750 files"
    dropcaches
    eq "$(ls "$D/many" | wc -l)" 750 "ls count after removing half"
}

c_rm_rf_tree() {
    prep
    for i in 1 2 3 4 5; do
        mkdir -p "$D/t/d$i/e/f"
        for j in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo $j >"$D/t/d$i/file$j"; done
        ln -s file1 "$D/t/d$i/link"
        echo deep >"$D/t/d$i/e/f/deep"
        echo h >"$D/t/d$i/.hidden"
    done
    chmod 000 "$D/t/d1/file1"
    chmod 500 "$D/t/d2/e"
    dropcaches
    must rm -rf "$D/t"
    [ -e "$D/t" ] && fail "tree still exists"
    dropcaches
    eq "$(ls -A "$D")" "" "parent listing after rm -rf"
}

# Lock checks: the holder runs on client A; every contending request is made
# twice, by another process on client A (the guest kernel may settle that
# locally) and by a process on client B (only the server can settle that).
c_lock_exclusive() {
    prep
    holder "$D/lockfile" w:0:100
    contend 1 "same range" w:0:100
    contend 1 "whole-file lock" w:0:0
    contend 1 "read lock inside the write-locked range" r:10:10
    contend_test "TEST HELD w 0 100" "F_GETLK" t:0:100:w
    release_holder
}

c_lock_conflict_range() {
    prep
    holder "$D/lockfile" w:100:100      # bytes 100..199
    contend 1 "lock inside the held range" w:150:10
    contend 1 "lock overlapping the held range's end" w:190:20
    contend 1 "lock overlapping the held range's start" w:50:60
    contend 1 "lock covering the held range" w:0:1000
    contend 1 "lock to EOF overlapping the held range's last byte" w:199:0
    contend_test "TEST HELD w 100 100" "F_GETLK" t:150:10:w
    release_holder
}

c_lock_nonoverlap() {
    prep
    holder "$D/lockfile" w:0:100 w:300:100   # 0..99 and 300..399
    contend 0 "range adjacent after the first lock" w:100:100
    contend 0 "range between the two locks" w:200:100
    contend 0 "range to EOF after both" w:400:0
    contend 0 "all free ranges at once" w:100:200 w:400:0
    contend_test "TEST FREE" "F_GETLK on a free range" t:100:200:w
    # a second holder, on client B, next to the first one: both effective
    need_client2
    pid1=$HPID
    holder "$D2/lockfile" w:100:200
    pid2=$HPID
    contend 1 "first holder (client A) still effective" w:0:10
    contend 1 "second holder (client B) effective" w:150:10
    HPID=$pid2; release_holder
    HPID=$pid1; release_holder
}

c_lock_shared_shared() {
    prep
    holder "$D/lockfile" r:0:100
    contend 0 "same shared range" r:0:100
    contend 0 "overlapping shared range" r:50:100
    contend_test "TEST FREE" "F_GETLK for a read lock under a read lock" t:0:100:r
    need_client2
    pid1=$HPID
    holder "$D2/lockfile" r:0:200           # second reader on client B
    contend 1 "write lock under shared locks of both clients" w:120:10
    contend 1 "write lock under the shared lock of client A" w:0:10
    release_holder
    HPID=$pid1; release_holder
    contend 0 "write lock after both shared locks are gone" w:0:200
}

c_lock_shared_exclusive() {
    prep
    holder "$D/lockfile" r:0:100
    contend 1 "exclusive lock under a shared lock" w:50:10
    contend_test "TEST HELD r 0 100" "F_GETLK (write) under a shared lock" t:50:10:w
    release_holder
    holder "$D/lockfile" w:0:100
    contend 1 "shared lock under an exclusive lock" r:0:10
    release_holder
    # upgrade/downgrade inside one process, observed by the others
    holder "$D/lockfile" r:0:100 w:0:100
    contend 1 "read lock after the holder upgraded" r:0:10
    release_holder
    holder "$D/lockfile" w:0:100 r:0:100
    contend 0 "read lock after the holder downgraded" r:0:10
    contend 1 "write lock after the holder downgraded" w:0:10
    release_holder
}

c_lock_release() {
    prep
    # explicit unlock while the holder keeps the file open
    holder "$D/lockfile" w:0:100 u:0:100
    contend 0 "lock after the holder unlocked" w:0:100
    release_holder
    # partial unlock splits a lock: 0..299 minus 100..199
    holder "$D/lockfile" w:0:300 u:100:100
    contend 0 "lock in the unlocked middle" w:100:100
    contend 1 "lock in the remaining head" w:0:10
    contend 1 "lock in the remaining tail" w:250:10
    # process exit releases everything, on the server too
    release_holder
    contend 0 "whole-file lock after the holder exited" w:0:0
}

c_lock_blocking() {
    prep
    need_client2
    # The holder on client A keeps its lock until we release it; the waiter on
    # client B blocks in F_SETLKW and must be granted the lock afterwards (by
    # polling, or by a CB_NOTIFY_LOCK from the server for 4.1+).  Nothing
    # here depends on timing: a slow guest only makes the test take longer.
    holder "$D/lockfile" w:0:100
    $LH "$D2/lockfile" "m:$S/waiting" W:0:100 >"$S/waiter.out" 2>&1 &
    wp=$!
    i=0
    while [ ! -e "$S/waiting" ]; do i=$((i + 1)); [ $i -gt 300 ] && fail "waiter never started"; sleep 0.1; done
    sleep 1     # let it get into F_SETLKW
    kill -0 $wp 2>/dev/null || { wait $wp; fail "F_SETLKW on client B returned (rc $?: $(cat "$S/waiter.out")) while client A held the lock"; }
    t0=$(uptime_cs)
    release_holder
    wait $wp
    rc=$?
    t1=$(uptime_cs)
    [ $rc = 0 ] || fail "F_SETLKW on client B failed (rc $rc): $(cat "$S/waiter.out")"
    echo "INFO blocked lock granted $((t1 - t0))0ms after the holder let go"
}

c_create_excl() {
    prep
    umask 022
    lh_expect 0 "O_EXCL create of a new file" -x "$D/f"
    lh_expect 1 "O_EXCL create of an existing file" -x "$D/f"
    need_client2
    # client B has never looked the name up: only the server can refuse it
    lh_expect 1 "O_EXCL create of the same name from client B" -x "$D2/f"
    dropcaches
    lh_expect 1 "O_EXCL create of an existing file (uncached)" -x "$D/f"
    eq "$(fsize "$D/f")" 0 "size"
    eq "$(stat -c %a "$D/f")" 644 "mode of the exclusively created file"
    now=$(date +%s)
    m=$(stat -c %Y "$D/f")
    [ $((now - m)) -lt 300 ] && [ $((m - now)) -lt 300 ] ||
        fail "mtime of the exclusively created file is $m, now is $now (create verifier left in the times?)"
    rm "$D/f"
    lh_expect 0 "O_EXCL create after removal" -x "$D/f"
}

c_statfs_df() {
    out=$(df -k $MNT | tail -n 1)
    echo "INFO df: $out"
    set -- $out
    [ "${2:-0}" -gt 0 ] 2>/dev/null || fail "df total is '$2'"
    [ "${4:-0}" -gt 0 ] 2>/dev/null || fail "df available is '$4'"
    st=$(stat -f -c '%b %f %a %c %d %S %l %T' $MNT)
    echo "INFO statfs: $st"
    set -- $st
    for v in "blocks=$1" "bfree=$2" "bavail=$3" "files=$4" "ffree=$5" "bsize=$6" "namelen=$7"; do
        [ "${v#*=}" -gt 0 ] 2>/dev/null || fail "statfs ${v%=*} is '${v#*=}'"
    done
    eq "$8" nfs "statfs type"
}

c_unlinked_open_read() {
    prep
    printf 'still here\n' >"$D/f"
    head -c 100000 /dev/urandom >"$S/ref"
    cp "$S/ref" "$D/big"
    dropcaches
    exec 3<"$D/f" 4<"$D/big"
    must rm "$D/f" "$D/big"
    [ -e "$D/f" ] && fail "unlinked name still exists"
    eq "$(ls "$D")" "" "listing after unlink (hidden files aside)"
    read -r line <&3
    eq "$line" "still here" "read from the unlinked file"
    cat <&4 >"$S/got"
    cmp "$S/got" "$S/ref" || fail "100 kB unlinked file read back differently"
    exec 3<&- 4<&-
    # the client's silly-renamed .nfsXXXX files must go once closed
    i=0
    while [ -n "$(ls -A "$D")" ]; do
        i=$((i + 1))
        [ $i -gt 300 ] && fail "left behind 30 s after close: $(ls -A "$D" | tr '\n' ' ')"
        sleep 0.1
    done
}

c_tar_extract() {
    prep
    src=$S/src
    mkdir -p "$src/a/b/c" "$src/empty"
    head -c 1048576 /dev/urandom >"$src/a/big"
    head -c 4097 /dev/urandom >"$src/a/b/odd"
    : >"$src/a/b/c/zero"
    echo '#!/bin/sh' >"$src/a/exec.sh"
    chmod 755 "$src/a/exec.sh"
    echo secret >"$src/a/secret"
    chmod 600 "$src/a/secret"
    for i in 1 2 3 4 5 6 7 8 9 10; do echo "file $i" >"$src/a/b/c/n$i"; done
    ln -s b/odd "$src/a/link"
    chmod 700 "$src/a/b"
    find "$src" -type f -exec touch -d '2010-10-10 10:10:10' {} +
    (cd "$src" && tar cf "$S/t.tar" .) || fail "tar c"
    mkdir "$D/x"
    tar xf "$S/t.tar" -C "$D/x" || fail "tar x on the mount"
    dropcaches
    diff -r "$src" "$D/x" >"$S/diff" 2>&1 || fail "diff -r: $(head -n 5 "$S/diff" | tr '\n' ' ')"
    # metadata diff -r does not look at
    # (directory sizes are filesystem-specific: modes only for those)
    meta() { (cd "$1" && find . -type d | sort | xargs stat -c '%n %a %F' &&
              find . -type f | sort | xargs stat -c '%n %a %s %Y %F'); }
    meta "$src" >"$S/meta.src"
    meta "$D/x" >"$S/meta.nfs"
    cmp -s "$S/meta.src" "$S/meta.nfs" || fail "metadata differs: $(diff "$S/meta.src" "$S/meta.nfs" | grep '^[-+]\.' | head -n 4 | tr '\n' ' ')"
    eq "$(readlink "$D/x/a/link")" b/odd "symlink in archive"
}

# An archive with a hard link (a separate check, which a store without hard
# links skips, so tar_extract still runs there).
c_tar_hardlink() {
    prep
    src=$S/srch
    mkdir -p "$src/d"
    echo shared >"$src/d/one"
    ln "$src/d/one" "$src/d/two"
    (cd "$src" && tar cf "$S/th.tar" .) || fail "tar c"
    mkdir "$D/x"
    tar xf "$S/th.tar" -C "$D/x" || fail "tar x on the mount"
    dropcaches
    eq "$(cat "$D/x/d/two")" shared "hard-linked member's data"
    eq "$(stat -c %h "$D/x/d/two")" 2 "hard link in archive"
    eq "$(stat -c %i "$D/x/d/one")" "$(stat -c %i "$D/x/d/two")" "one inode"
}

c_concurrent_append() {
    prep
    f=$D/log
    : >"$f"
    # two writers keeping O_APPEND descriptors open (like two loggers)...
    ( exec 4>>"$f"; i=0; while [ $i -lt 500 ]; do echo "A $i" >&4; i=$((i + 1)); done ) &
    p1=$!
    ( exec 4>>"$f"; i=0; while [ $i -lt 500 ]; do echo "B $i" >&4; i=$((i + 1)); done ) &
    p2=$!
    # ...and two that reopen the file for every line (like shell scripts)
    ( i=0; while [ $i -lt 100 ]; do echo "C $i" >>"$f"; i=$((i + 1)); done ) &
    p3=$!
    ( i=0; while [ $i -lt 100 ]; do echo "D $i" >>"$f"; i=$((i + 1)); done ) &
    p4=$!
    wait $p1; wait $p2; wait $p3; wait $p4
    for pass in cached dropped; do
        [ $pass = dropped ] && dropcaches
        eq "$(wc -l <"$f" | tr -d ' ')" 1200 "line count ($pass)"
        eq "$(grep -c '^A ' "$f")" 500 "lines from writer A ($pass)"
        eq "$(grep -c '^B ' "$f")" 500 "lines from writer B ($pass)"
        eq "$(grep -c '^C ' "$f")" 100 "lines from writer C ($pass)"
        eq "$(grep -c '^D ' "$f")" 100 "lines from writer D ($pass)"
        eq "$(grep -cvE '^[ABCD] [0-9]+$' "$f")" 0 "garbled lines ($pass)"
    done
}

c_temp_rename_pattern() {
    prep
    # what git does for refs/index: write a temp file, rename it over the
    # real name, read it back
    i=1
    while [ $i -le 100 ]; do
        printf 'ref: %s\n' $i >"$D/.HEAD.tmp.$i" || fail "write temp $i"
        mv -f "$D/.HEAD.tmp.$i" "$D/HEAD" || fail "rename $i"
        eq "$(cat "$D/HEAD")" "ref: $i" "HEAD after update $i"
        i=$((i + 1))
    done
    dropcaches
    eq "$(ls -A "$D")" HEAD "directory holds only HEAD"
    eq "$(cat "$D/HEAD")" "ref: 100" "final HEAD after drop_caches"
}

c_rename_over_while_reading() {
    prep
    echo v0 >"$D/HEAD"
    ( i=1
      while [ $i -le 150 ]; do
          echo v$i >"$D/.tmp.$i" && mv -f "$D/.tmp.$i" "$D/HEAD" || exit 1
          i=$((i + 1))
      done ) &
    wp=$!
    reads=0; bad=0
    while kill -0 $wp 2>/dev/null; do
        v=$(cat "$D/HEAD" 2>&1)
        reads=$((reads + 1))
        case $v in
            v[0-9]*) : ;;
            *) bad=$((bad + 1)); echo "bad read: '$v'" ;;
        esac
    done
    wait $wp || fail "writer failed"
    echo "INFO $reads reads during 150 renames"
    [ $bad = 0 ] || fail "$bad of $reads reads during rename-over saw no complete file"
    eq "$(cat "$D/HEAD")" v150 "final content"
}

c_two_client_coherency() {
    prep
    need_client2
    # close-to-open: data written and closed on one client is what the
    # other reads on its next open (needs a correct change attribute)
    echo v1 >"$D/f"
    eq "$(cat "$D2/f")" v1 "client B reads what A wrote"
    echo v2 >"$D2/f"
    eq "$(cat "$D/f")" v2 "client A reads what B overwrote"
    echo v3 >>"$D/f"
    eq "$(cat "$D2/f")" "$(printf 'v2\nv3')" "client B reads A's append"
    head -c 300000 /dev/urandom >"$S/ref"
    cp "$S/ref" "$D2/big"
    cmp "$D/big" "$S/ref" || fail "300 kB file written by B differs on A"
    dd if="$S/ref" of="$D/big" bs=4096 count=1 seek=10 conv=notrunc 2>/dev/null
    dd if="$S/ref" of="$S/ref" bs=4096 count=1 seek=10 conv=notrunc 2>/dev/null
    cmp "$D2/big" "$S/ref" || fail "block overwritten by A differs on B"
    eq "$(stat -c %s "$D2/big")" 300000 "size seen by B"
    # new names made on A are found by B, and metadata changes show up
    mkdir "$D/newdir"
    echo n >"$D/newdir/new"
    eq "$(cat "$D2/newdir/new")" n "client B opens a file A just created"
    chmod 600 "$D/newdir/new"
    touch -d '2003-03-03 03:03:03' "$D/newdir/new"
    dropcaches
    eq "$(stat -c %a "$D2/newdir/new")" 600 "mode set by A, seen by B"
    eq "$(stat -c %Y "$D2/newdir/new")" "$(date -d '2003-03-03 03:03:03' +%s)" "mtime set by A, seen by B"
    mv "$D/newdir/new" "$D/newdir/renamed"
    rm "$D/f"
    dropcaches
    eq "$(ls "$D2/newdir")" renamed "B's listing after A renamed"
    [ -e "$D2/f" ] && fail "B still sees a file A removed"
    return 0
}

c_two_client_read_then_remote_write() {
    prep
    need_client2
    # A reads and keeps the file open (a server may hand A a read
    # delegation); B then writes.  A fresh open on A must return B's data:
    # with a delegation that only works if the server recalled it.
    echo old >"$D/f"
    exec 3<"$D/f"
    read -r x <&3
    eq "$x" old "first read on A"
    eq "$(cat "$D/f")" old "second open on A"
    echo new >"$D2/f" || fail "client B could not write while A holds the file open"
    eq "$(cat "$D/f")" new "A's next open after B wrote"
    exec 3<&-
    eq "$(cat "$D/f")" new "A after closing its descriptor"
}

c_mkdir_eexist() {
    prep
    must mkdir "$D/d"
    expect_error "mkdir of an existing directory" "File exists" mkdir "$D/d"
    touch "$D/f"
    expect_error "mkdir over an existing file" "File exists" mkdir "$D/f"
    dropcaches      # now the server, not the dentry cache, must say EEXIST
    expect_error "mkdir of an existing directory (uncached)" "File exists" mkdir "$D/d"
    expect_error "mkdir over an existing file (uncached)" "File exists" mkdir "$D/f"
    need_client2
    expect_error "mkdir of a name client A created, from client B" "File exists" mkdir "$D2/d"
    eq "$(ls "$D" | tr '\n' ' ')" "d f " "listing"
}

c_rmdir_enotempty() {
    prep
    mkdir -p "$D/d" "$D/h"
    touch "$D/d/f"
    touch "$D/h/.hidden"
    expect_error "rmdir of a non-empty directory" "Directory not empty" rmdir "$D/d"
    dropcaches
    expect_error "rmdir of a non-empty directory (uncached)" "Directory not empty" rmdir "$D/d"
    expect_error "rmdir of a directory holding a dot file" "Directory not empty" rmdir "$D/h"
    [ -e "$D/d/f" ] || fail "content vanished"
    expect_error "rmdir of a regular file" "Not a directory" rmdir "$D/d/f"
    rm "$D/d/f"
    must rmdir "$D/d"
}

c_perm_denied_nonroot() {
    prep
    asuser() { su -s /bin/sh kctest -c "$1"; }
    eq "$(asuser 'id -u')" 1000 "su to the test user"
    echo secret >"$D/private"
    chmod 600 "$D/private"
    echo public >"$D/public"
    chmod 644 "$D/public"
    eq "$(asuser "cat '$D/public'")" public "non-root read of a 0644 file"
    for pass in cached dropped; do
        [ $pass = dropped ] && dropcaches
        out=$(asuser "cat '$D/private'" 2>&1) && fail "non-root read a 0600 root file ($pass): $out"
        case $out in *secret*) fail "secret leaked ($pass)" ;; esac
        case $out in *"Permission denied"*) : ;; *) fail "read as non-root ($pass): '$out', expected Permission denied" ;; esac
        expect_error "non-root write to a 0600 root file ($pass)" "Permission denied" asuser "echo x >>'$D/private'"
        expect_error "non-root create in a 0755 root directory ($pass)" "Permission denied" asuser "touch '$D/nope'"
        expect_error "non-root unlink in a 0755 root directory ($pass)" "Permission denied" asuser "rm -f '$D/public'"
    done
    eq "$(cat "$D/private")" secret "file unchanged"
    mkdir "$D/open"
    chmod 1777 "$D/open"
    asuser "echo mine >'$D/open/mine'" || fail "non-root create in a 1777 directory"
    dropcaches
    eq "$(asuser "cat '$D/open/mine'")" mine "non-root read of its own file"
    echo other >"$D/open/roots"
    expect_error "non-root unlink of root's file in a sticky directory" "Operation not permitted|Permission denied" asuser "rm -f '$D/open/roots'"
    asuser "chmod 600 '$D/open/mine'" || fail "non-root chmod of its own file"
    expect_error "non-root chmod of root's file" "Operation not permitted" asuser "chmod 777 '$D/public'"
}

c_cp_a_mode() {
    prep
    echo x >"$S/f"
    chmod 751 "$S/f"
    touch -d '2005-06-07 08:09:10' "$S/f"
    t=$(date -d '2005-06-07 08:09:10' +%s)
    must cp -a "$S/f" "$D/f1"            # tmpfs -> NFS
    must cp -a "$D/f1" "$D/f2"           # NFS -> NFS
    mkdir -p "$S/tree/sub"
    echo y >"$S/tree/sub/y"
    ln -s sub/y "$S/tree/ly"
    chmod 705 "$S/tree/sub"
    must cp -a "$S/tree" "$D/tree"
    must cp -a "$D/tree" "$D/tree2"
    dropcaches
    for g in f1 f2; do
        eq "$(stat -c %a "$D/$g")" 751 "mode of $g"
        eq "$(stat -c %Y "$D/$g")" $t "mtime of $g"
        eq "$(cat "$D/$g")" x "content of $g"
    done
    eq "$(stat -c %a "$D/tree2/sub")" 705 "directory mode preserved"
    eq "$(readlink "$D/tree2/ly")" sub/y "symlink preserved"
    eq "$(cat "$D/tree2/ly")" y "symlink target content"
}

c_mv_into_dir() {
    prep
    echo a >"$D/a"
    echo b >"$D/b"
    mkdir "$D/dir"
    must mv "$D/a" "$D/dir/"
    must mv "$D/b" "$D/dir"
    dropcaches
    eq "$(ls "$D/dir" | tr '\n' ' ')" "a b " "target directory listing"
    eq "$(ls "$D" | tr '\n' ' ')" "dir " "source directory listing"
    # across filesystems: copy + unlink, both ways
    must mv "$D/dir/a" "$S/a"
    [ -e "$D/dir/a" ] && fail "source still on the mount after mv to tmpfs"
    echo c >"$S/c"
    chmod 640 "$S/c"
    must mv "$S/c" "$D/dir/"
    dropcaches
    eq "$(cat "$D/dir/c")" c "file moved from tmpfs"
    eq "$(stat -c %a "$D/dir/c")" 640 "mode of file moved from tmpfs"
    eq "$(cat "$S/a")" a "file moved to tmpfs"
}

c_find() {
    prep
    mkdir -p "$D/x/y/z" "$D/empty"
    echo 1 >"$D/a.txt"; echo 2 >"$D/x/b.txt"; echo 3 >"$D/x/y/z/c.txt"
    echo l >"$D/x/y/d.log"; : >"$D/x/e.log"
    head -c 20000 /dev/zero >"$D/x/y/big.bin"
    ln -s a.txt "$D/link"
    touch -d '2000-01-01 00:00:00' "$D/a.txt" "$D/x/b.txt"
    touch -d '2010-01-01 00:00:00' "$D/ref"
    dropcaches
    eq "$(find "$D" -type f | wc -l)" 7 "regular files"
    eq "$(find "$D" -type d | wc -l)" 5 "directories"
    eq "$(find "$D" -type l | wc -l)" 1 "symlinks"
    eq "$(find "$D" -name '*.txt' | wc -l)" 3 "-name '*.txt'"
    # (busybox find compares -size -N in exact units, unlike GNU find)
    eq "$(find "$D" -name '*.log' -size -1c | sed "s|$D/||")" x/e.log "-size -1c"
    eq "$(find "$D" -size +10k | sed "s|$D/||")" x/y/big.bin "-size +10k"
    eq "$(find "$D" -type f -newer "$D/ref" | wc -l)" 4 "-newer"
    eq "$(find "$D" -empty | sed "s|$D/||" | sort | tr '\n' ' ')" "empty ref x/e.log " "-empty"
    eq "$(find "$D" -mindepth 4 | sed "s|$D/||")" x/y/z/c.txt "-mindepth 4"
}

c_names_special() {
    prep
    tab=$(printf '\t')
    cat >"$S/names" <<EOF
with space
  leading spaces
trailing space 
tab${tab}inside
ünïcødé-名前-😀
quote'and"dq
-dash
back\\slash
semi;colon&amp|pipe
.hidden
ends.with.dot.
\$dollar*star?[x]
EOF
    n=0
    while IFS= read -r name; do
        printf '%s' "$name" >"$D/$name" || fail "create '$name'"
        n=$((n + 1))
    done <"$S/names"
    dropcaches
    eq "$(ls -A "$D" | wc -l)" $n "entries listed"
    while IFS= read -r name; do
        [ -f "$D/$name" ] || fail "'$name' missing after drop_caches"
        eq "$(cat "$D/$name")" "$name" "content of '$name'"
    done <"$S/names"
    must mv "$D/ünïcødé-名前-😀" "$D/ünïcødé-改名-🙂"
    dropcaches
    eq "$(cat "$D/ünïcødé-改名-🙂")" "ünïcødé-名前-😀" "renamed unicode file"
}

# The longest name (255 bytes) works; one byte more is refused.
c_names_long() {
    prep
    n255=$(printf '%0255d' 0 | tr 0 n)
    printf long >"$D/$n255" || fail "create a 255-byte name"
    dropcaches
    eq "$(ls "$D")" "$n255" "255-byte name listed"
    eq "$(cat "$D/$n255")" long "content under a 255-byte name"
    expect_error "256-byte name" "too long" touch "$D/${n255}n"
}

c_remount_persist() {
    prep
    echo persist >"$D/note"
    head -c 1048576 /dev/urandom >"$S/ref"
    cp "$S/ref" "$D/data"
    sync
    cd /
    out=$(umount $MNT 2>&1) || fail "umount: $out"
    grep -q " $MNT " /proc/mounts && fail "still mounted after umount"
    [ -e "$D/note" ] && fail "file visible while unmounted"
    out=$(mount -t nfs4 -o "$KC_MOUNT_OPTS" "$KC_SERVER:$KC_EXPORT" $MNT 2>&1) ||
        fail "mount again: $out"
    eq "$(cat "$D/note")" persist "small file after remount"
    cmp "$D/data" "$S/ref" || fail "1 MiB file differs after remount"
    [ -d "$TOP/write_read" ] || [ -n "$KC_ONLY" ] || fail "earlier checks' directories gone after remount"
}

c_umount() {
    cd /
    if grep -q " $MNT2 nfs4 " /proc/mounts; then
        must umount $MNT2
    fi
    must umount $MNT
    grep -q " $MNT " /proc/mounts && fail "client A still mounted"
    grep -q " $MNT2 " /proc/mounts && fail "client B still mounted"
    return 0
}

c_dmesg_clean() {
    dmesg >/tmp/dmesg.txt
    # NFS/RPC lines that signal trouble, plus any kernel splat
    bad=$(grep -iE 'nfs|rpc|lockd|callback' /tmp/dmesg.txt |
          grep -iE 'error|fail|bad|not responding|unhandled|refused|timed out|warn|invalid|unexpected|stale|lost|illegal|reclaim|gave up')
    splat=$(grep -E 'BUG:|Oops|WARNING:|Call Trace|general protection|Kernel panic|hung_task|blocked for more than' /tmp/dmesg.txt)
    [ -z "$bad$splat" ] || fail "$(printf '%s\n%s' "$bad" "$splat" | grep . | head -n 3 | tr '\n' '|')"
}

# Extra checks from run.sh --extra (e.g. volatile.sh's scenario): they may
# define c_<name> functions and replace ALL_CHECKS.
[ -r /workload-extra.sh ] && . /workload-extra.sh

# ----------------------------------------------------------------- runner ---

if [ "$1" = "--one" ]; then
    CHECK_NAME=$2
    cd / || exit 2
    "c_$CHECK_NAME"
    exit $?
fi

timeout_of() {
    if [ -n "$KC_CHECK_TIMEOUT" ]; then echo "$KC_CHECK_TIMEOUT"; return; fi
    case $1 in
        large_file) echo 240 ;;
        readdir_1500|rename_over_while_reading|concurrent_append) echo 180 ;;
        *) echo 90 ;;
    esac
}

passed=0
failed=0
skipped=0
mounted=0

# The reason kclient.skip gives for skipping check $1, if it lists it.
skip_reason() {
    [ -r /etc/kclient.skip ] || return 1
    awk -v n="$1" '$1 == n { $1 = ""; sub(/^ +/, ""); print; found = 1; exit } END { exit !found }' /etc/kclient.skip
}
report() {   # report NAME PASS|FAIL [reason]
    if [ "$2" = PASS ]; then
        echo "CHECK $1 PASS"
        passed=$((passed + 1))
    else
        echo "CHECK $1 FAIL $3"
        failed=$((failed + 1))
    fi
}

run_check() {
    name=$1
    out=/tmp/out.$name
    tmo=$(timeout_of "$name")
    echo "RUN $name"
    t0=$(uptime_cs)
    # own session/process group, so the watchdog can kill everything the check
    # started (background lock holders, writers...)
    setsid sh $SELF --one "$name" >"$out" 2>&1 </dev/null &
    pid=$!
    setsid sh -c "sleep $tmo; kill -KILL -$pid" >/dev/null 2>&1 </dev/null &
    wd=$!
    wait $pid
    rc=$?
    kill -KILL -$wd 2>/dev/null
    kill -KILL -$pid 2>/dev/null     # stragglers of a finished check
    wait $wd 2>/dev/null
    t1=$(uptime_cs)
    echo "TIME $name $(((t1 - t0) / 100)).$(((t1 - t0) % 100 / 10))s"
    grep '^INFO ' "$out" | sed "s/^INFO /INFO $name: /"
    if [ $rc = 0 ]; then
        report "$name" PASS
        return 0
    fi
    if [ $rc = 137 ] && [ $((t1 - t0)) -ge $((tmo * 100)) ]; then
        reason="killed after ${tmo}s timeout"
    else
        reason=$(grep -m1 '^FAILREASON: ' "$out" | sed 's/^FAILREASON: //')
        [ -n "$reason" ] || reason="exit $rc: $(grep . "$out" | tail -n 1)"
    fi
    # one line, printable, bounded
    reason=$(printf '%s' "$reason" | tr '\n\r\t' '   ' | cut -c1-300)
    report "$name" FAIL "$reason"
    sed -n '1,25s/^/DETAIL '"$name"': /p' "$out"
    return 1
}

echo "KCLIENT-START uptime $(cut -d' ' -f1 /proc/uptime)s"
echo "KCLIENT-CONFIG vers=$KC_VERS server=$KC_SERVER port=$KC_PORT export=$KC_EXPORT opts=$KC_MOUNT_OPTS runid=$KC_RUNID"
mkdir -p $MNT $SCR
for name in $KC_ONLY; do    # a typo in --only must not pass silently
    case " $(echo $ALL_CHECKS) " in *" $name "*) : ;; *) report "$name" FAIL "no such check" ;; esac
done
if [ -r /etc/kclient.skip ]; then    # nor a stale entry of the skip list
    for name in $(awk '{ print $1 }' /etc/kclient.skip); do
        case " $(echo $ALL_CHECKS) " in *" $name "*) : ;; *) report "$name" FAIL "skip list names no such check" ;; esac
    done
fi
for name in $ALL_CHECKS; do
    if [ -n "$KC_ONLY" ]; then
        case " mount mount_client2 umount dmesg_clean $KC_ONLY " in *" $name "*) : ;; *) continue ;; esac
    fi
    case $name in
        mount)
            run_check mount && mounted=1
            continue ;;
        umount)
            # tidy the export first (not a check of its own; rm_rf_tree is)
            if [ $mounted = 1 ] && [ "$KC_KEEP" != 1 ]; then
                timeout 120 rm -rf "$TOP" 2>/tmp/cleanup.err || echo "NOTE cleanup of $TOP failed: $(head -n 3 /tmp/cleanup.err | tr '\n' ' ')"
            fi ;;
        dmesg_clean)
            run_check dmesg_clean
            continue ;;
    esac
    if why=$(skip_reason "$name"); then
        echo "CHECK $name SKIP $why"
        skipped=$((skipped + 1))
        continue
    fi
    if [ $mounted != 1 ]; then
        report "$name" FAIL "not run: $MNT is not mounted (see mount/remount_persist)"
        continue
    fi
    run_check "$name"
    # remount_persist leaves things unmounted if it fails half-way
    if [ "$name" = remount_persist ] && ! grep -q " $MNT nfs4 " /proc/mounts; then
        mounted=0
    fi
done

# NFS-related kernel messages always, the full log when something failed
if [ $failed -gt 0 ]; then
    dmesg | sed 's/^/DMESG /'
else
    dmesg | grep -iE 'nfs|rpc|lockd' | sed 's/^/DMESG /'
fi
echo "KCLIENT-END uptime $(cut -d' ' -f1 /proc/uptime)s"
if [ $skipped -gt 0 ]; then
    echo "RESULT $passed passed, $failed failed, $skipped skipped"
else
    echo "RESULT $passed passed, $failed failed"
fi
