#!/usr/bin/env bash
# run.sh - boot a Debian Linux kernel under qemu (TCG) as an NFSv4 client of a
# server listening on this host's loopback, run workload.sh in the guest and
# report its checks.
#
#   run.sh --port N --vers 4.0|4.1|4.2 [--export /path] [--timeout S]
#          [--opts EXTRA_MOUNT_OPTS] [--only "check1 check2"] [--keep]
#          [--mem MB] [--log-dir DIR] [--check-timeout S] [--verbose]
#          [--extra FILE] [--serial2 PATH] [--cb-port N] [--skip FILE]
#
# --skip FILE: checks the server's store rules out, one per line as
#   "NAME REASON..." ('#' starts a comment). The guest reports each as
#   "CHECK NAME SKIP REASON" without running it; a name that is not a check
#   fails the run, so a list cannot silently go stale.
# --extra FILE: a shell file the guest's workload.sh sources after its own
#   checks are defined; it may add c_<name> checks and replace ALL_CHECKS
#   (used by volatile.sh for its multi-phase scenario).
# --serial2 PATH: a second serial port (the guest's /dev/ttyS1) on the FIFO
#   pair PATH.in (host -> guest) and PATH.out (guest -> host), which the
#   caller creates with mkfifo; lets a host-side driver release a waiting
#   guest step (see volatile.sh).
# --cb-port N: forward the host's 127.0.0.1:N to port N of the guest's first
#   NIC (client A) and pass KC_CB_PORT=N to the guest, where an extra
#   workload makes the NFS callback service listen on N before mounting.
#   An NFSv4.0 server then reaches client A's callback service at the address
#   the client announces (clientaddr=127.0.0.1), so 4.0 delegations can work
#   (see deleg.sh).
#
# Exit status: 0 all checks passed (and the guest reported its RESULT line),
#              1 some check failed,
#              2 harness trouble (bad usage, prepare failed, server port
#                closed, timeout, guest never reported a RESULT).
#
# Networking: qemu user-mode networking; inside the guest 10.0.2.2 is the
# host's 127.0.0.1, so the server must listen on 127.0.0.1 (or any address).
# The guest has no default route and talks to nothing but 10.0.2.2.  It has
# two NICs, each on its own user-net stack: the second one lives in a separate
# network namespace in the guest and carries a second, independent NFS client
# (see init.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)

usage() {   # usage [exit-status]
    sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit "${1:-2}"
}

port= vers= export_path=/ timeout=300 extra_opts= only= keep=0 mem=512
log_dir= verbose=0 check_timeout= extra= serial2= cb_port= skip=
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:-}; shift 2 ;;
        --vers) vers=${2:-}; shift 2 ;;
        --export) export_path=${2:-}; shift 2 ;;
        --timeout) timeout=${2:-}; shift 2 ;;
        --opts) extra_opts=${2:-}; shift 2 ;;
        --only) only=${2:-}; shift 2 ;;
        --keep) keep=1; shift ;;
        --mem) mem=${2:-}; shift 2 ;;
        --log-dir) log_dir=${2:-}; shift 2 ;;
        --check-timeout) check_timeout=${2:-}; shift 2 ;;
        -v|--verbose) verbose=1; shift ;;
        --extra) extra=${2:-}; shift 2 ;;
        --serial2) serial2=${2:-}; shift 2 ;;
        --cb-port) cb_port=${2:-}; shift 2 ;;
        --skip) skip=${2:-}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] || { echo "run.sh: --port N is required" >&2; usage; }
case $vers in 4.0|4.1|4.2) ;; *) echo "run.sh: --vers must be 4.0, 4.1 or 4.2" >&2; usage ;; esac
[[ $export_path == /* ]] || { echo "run.sh: --export must be an absolute path" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout wants seconds" >&2; exit 2; }
[[ -z $check_timeout || $check_timeout =~ ^[0-9]+$ ]] || { echo "run.sh: --check-timeout wants seconds" >&2; exit 2; }
[[ -z $extra || -r $extra ]] || { echo "run.sh: --extra $extra is not readable" >&2; exit 2; }
[[ -z $skip || -r $skip ]] || { echo "run.sh: --skip $skip is not readable" >&2; exit 2; }
[[ -z $cb_port || $cb_port =~ ^[0-9]+$ ]] || { echo "run.sh: --cb-port wants a port number" >&2; exit 2; }
[[ -z $serial2 || ( -p $serial2.in && -p $serial2.out ) ]] || { echo "run.sh: --serial2 needs FIFOs $serial2.in and $serial2.out" >&2; exit 2; }

# --- preflight: is anything listening?  (loopback only) ----------------------
# Saves a 300 s wait on a guest that can never mount. Five tries a second
# apart, so a server still starting on a loaded machine is not refused.
listening=0
for _ in 1 2 3 4 5; do
    if timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
        listening=1; break
    fi
    sleep 1
done
if [ $listening = 0 ]; then
    echo "run.sh: nothing accepts TCP connections on 127.0.0.1:$port - start the server first" >&2
    exit 2
fi

# --- cached kernel + base initramfs ------------------------------------------
cache=$("$here/prepare.sh" | tail -n 1) || { echo "run.sh: prepare.sh failed" >&2; exit 2; }
[ -s "$cache/vmlinuz" ] && [ -s "$cache/base.cpio" ] || { echo "run.sh: cache $cache incomplete" >&2; exit 2; }

# --- per-run directory, config and archive -------------------------------------
if [ -n "$log_dir" ]; then
    mkdir -p "$log_dir" && rundir=$(mktemp -d "$log_dir/kclient-v$vers.XXXXXX")
else
    rundir=$(mktemp -d "${TMPDIR:-/tmp}/nfs4d-kclient-v$vers.XXXXXX")
fi || exit 2
console=$rundir/console.log
# unique per run: names the guest's NFS client identity and its directory on
# the export, so parallel runs against one server do not collide
runid=$(printf '%x%s' "$(date +%s)" "$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')")

# Text mount options; busybox mount hands them to the kernel unchanged (there
# is no mount.nfs in the guest), which is why addr= must be given explicitly.
# clientaddr=127.0.0.1: the address an NFSv4.0 server would call back is then
# the host's own loopback, so callback traffic never leaves it: it reaches
# the guest only through the --cb-port forward; without one, 4.0 delegations
# are simply not granted.
mount_opts="vers=$vers,port=$port,addr=10.0.2.2,clientaddr=127.0.0.1"
[ -n "$extra_opts" ] && mount_opts="$mount_opts,$extra_opts"

sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
stage=$rundir/stage
mkdir -p "$stage/etc"
cp "$here/init.sh" "$stage/init"
cp "$here/workload.sh" "$stage/workload.sh"
[ -n "$extra" ] && cp "$extra" "$stage/workload-extra.sh"
# Skipped checks: "NAME REASON" lines without comments or blank lines.
if [ -n "$skip" ]; then
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$skip" >"$stage/etc/kclient.skip"
fi
chmod 755 "$stage/init" "$stage/workload.sh"
{
    echo "KC_SERVER=10.0.2.2"
    echo "KC_PORT=$port"
    echo "KC_VERS=$vers"
    echo "KC_EXPORT=$(sq "$export_path")"
    echo "KC_MOUNT_OPTS=$(sq "$mount_opts")"
    echo "KC_RUNID=$runid"
    echo "KC_ONLY=$(sq "$only")"
    echo "KC_KEEP=$keep"
    echo "KC_BIG_MB=${NFS4D_KCLIENT_BIG_MB:-48}"
    echo "KC_CHECK_TIMEOUT=$check_timeout"
    echo "KC_CB_PORT=$cb_port"
} >"$stage/etc/kclient.conf"
# The kernel unpacks concatenated newc archives in order, so the base (busybox,
# modules, lockhelper) plus this small one make the whole root filesystem.
( cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) >"$rundir/run.cpio" || exit 2
cat "$cache/base.cpio" "$rundir/run.cpio" >"$rundir/initrd.img"
rm -rf "$stage"

# --- boot ------------------------------------------------------------------------
# TCG, one vCPU: nested KVM is unreliable on the CI machines.  -nodefaults
# keeps qemu from adding devices we do not want; the serial port is the only
# console and goes straight to a file.  loglevel=2: only emergencies reach the
# console, so kernel messages cannot split our CHECK lines (the workload
# inspects dmesg itself).  panic=-1 + -no-reboot: any guest crash ends qemu.
# IPv6 is off on both ends: the test traffic is IPv4 to 10.0.2.2 only.
qemu=(qemu-system-x86_64
    -name nfs4d-kclient -accel tcg -smp 1 -m "$mem"
    -nodefaults -no-user-config -display none -monitor none -no-reboot
    -kernel "$cache/vmlinuz" -initrd "$rundir/initrd.img"
    -append "console=ttyS0 panic=-1 quiet loglevel=2 ipv6.disable=1"
    -serial "file:$console"
    -netdev "user,id=n0,ipv6=off${cb_port:+,hostfwd=tcp:127.0.0.1:$cb_port-:$cb_port}"
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56
    -netdev user,id=n1,ipv6=off -device virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57
    -rtc base=utc)
# The second serial port must come after the console's -serial (ttyS0).
[ -n "$serial2" ] && qemu+=(-serial "pipe:$serial2")

echo "kclient: vers=$vers port=$port export=$export_path kernel=$(cat "$cache/kver") runid=$runid"
echo "kclient: console log $console"
start=$SECONDS
"${qemu[@]}" </dev/null >"$rundir/qemu.log" 2>&1 &
qpid=$!
# never leave our qemu behind (Ctrl-C, kill of this script)
trap 'kill "$qpid" 2>/dev/null' EXIT
trap 'kill "$qpid" 2>/dev/null; exit 2' INT TERM
tailpid=
if [ $verbose = 1 ]; then
    touch "$console"
    tail -n +1 -f --pid="$qpid" "$console" >&2 &
    tailpid=$!
fi

timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
        timed_out=1
        kill "$qpid" 2>/dev/null
        sleep 2
        kill -9 "$qpid" 2>/dev/null
        break
    fi
    sleep 0.5
done
wait "$qpid" 2>/dev/null
qrc=$?
[ -n "$tailpid" ] && { kill "$tailpid" 2>/dev/null; wait "$tailpid" 2>/dev/null; }
elapsed=$((SECONDS - start))
rm -f "$rundir/initrd.img" "$rundir/run.cpio"

# --- results -----------------------------------------------------------------
# The serial console emits CRLF; strip it before matching.
tr -d '\r' <"$console" >"$rundir/console.txt"
checks=$(grep -aE '^CHECK [A-Za-z0-9_]+ (PASS|FAIL|SKIP)' "$rundir/console.txt")
result=$(grep -aE '^RESULT [0-9]+ passed, [0-9]+ failed' "$rundir/console.txt" | tail -n 1)
[ -n "$checks" ] && printf '%s\n' "$checks"

npass=$(printf '%s\n' "$checks" | grep -c ' PASS$')
nfail=$(printf '%s\n' "$checks" | grep -c ' FAIL')
nskip=$(printf '%s\n' "$checks" | grep -c ' SKIP')
want_result="RESULT $npass passed, $nfail failed"
[ "$nskip" -gt 0 ] && want_result="$want_result, $nskip skipped"
status=0
if [ $timed_out = 1 ]; then
    running=$(grep -a '^RUN ' "$rundir/console.txt" | tail -n 1 | cut -d' ' -f2)
    echo "kclient: TIMEOUT after ${timeout}s${running:+ (last check started: $running)}"
    tail -n 15 "$rundir/console.txt" | sed 's/^/  | /'
    status=2
elif [ -z "$result" ]; then
    echo "kclient: guest ended (qemu exit $qrc) without a RESULT line; see $console"
    tail -n 15 "$rundir/console.txt" | sed 's/^/  | /'
    status=2
elif [ "$result" != "$want_result" ]; then
    echo "kclient: guest says '$result' but $npass PASS / $nfail FAIL / $nskip SKIP lines were parsed"
    status=2
elif [ "$nfail" -gt 0 ] || [ "$npass" -eq 0 ]; then
    status=1
fi
echo "kclient: vers=$vers: $npass passed, $nfail failed, $nskip skipped in ${elapsed}s (exit $status); log $console"
exit $status
