#!/usr/bin/env bash
# prepare.sh - get everything the Linux-kernel-client harness needs into a cache
# directory outside the repository, so that run.sh only has to build a tiny
# per-run archive and boot.
#
# Idempotent: every step checks whether its result is already there.  Safe to
# run from several run.sh invocations at once (serialised with flock).
#
# Cache layout (${NFS4D_KCLIENT_CACHE:-$HOME/.cache/nfs4d-kclient}):
#   debs/                 downloaded kernel packages (kept, never installed)
#   kernel/<pkg>/root/    the package unpacked with dpkg -x
#   vmlinuz               the kernel to boot (copied from the unpacked package)
#   kver                  its version string (e.g. 6.1.0-56-amd64)
#   lockhelper            static POSIX-lock probe built from lockhelper.c
#   base.cpio             busybox + modules + lockhelper + /etc files (newc)
#   base.key              hash of the inputs base.cpio was built from
#
# Environment:
#   NFS4D_KCLIENT_CACHE   cache directory (default above)
#   NFS4D_KCLIENT_KPKG    kernel image package to use, e.g.
#                         linux-image-6.1.0-56-amd64 (default: whatever the
#                         linux-image-amd64 meta package currently depends on,
#                         or the one already in the cache when apt has no
#                         opinion).
#
# Prints the cache path as its last line of stdout; all progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${NFS4D_KCLIENT_CACHE:-$HOME/.cache/nfs4d-kclient}
mkdir -p "$cache"

log() { echo "prepare: $*" >&2; }
die() { echo "prepare: ERROR: $*" >&2; exit 1; }

# Serialise concurrent prepares (e.g. CI running 4.0/4.1/4.2 in parallel).
exec 9>"$cache/.lock"
flock 9

# --- 1. host packages --------------------------------------------------------
# command -> Debian package that provides it.  libc6-dev gives libc.a for the
# static lockhelper build.
need_pkgs=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd qemu-system-x86_64 || need_pkgs+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx setsid || need_pkgs+=(busybox-static)
have_cmd depmod   || need_pkgs+=(kmod)
have_cmd modprobe || need_pkgs+=(kmod)
have_cmd cpio     || need_pkgs+=(cpio)
have_cmd gcc      || need_pkgs+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
have_cmd flock    || need_pkgs+=(util-linux)
have_cmd xz       || need_pkgs+=(xz-utils)
have_cmd zstd     || need_pkgs+=(zstd)

# busybox-static vs busybox: the dynamic "busybox" package also installs
# /bin/busybox; we need the static one because the initramfs has no libc.
if [ -x /bin/busybox ] && LC_ALL=C readelf -l /bin/busybox 2>/dev/null | grep -q INTERP; then
    need_pkgs+=(busybox-static)
fi

apt_updated=0
apt_update_once() {
    if [ $apt_updated = 0 ]; then
        log "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
}
if [ ${#need_pkgs[@]} -gt 0 ]; then
    # de-duplicate
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    [ "$(id -u)" = 0 ] || die "missing packages ${need_pkgs[*]} and not root to install them"
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${need_pkgs[@]}" >&2; then
        apt_update_once
        apt-get install -y -qq "${need_pkgs[@]}" >&2
    fi
fi

# --- 2. kernel ----------------------------------------------------------------
# The package name decides the cache slot.  Resolve it from apt's local
# metadata (no network), updating the lists only when apt knows nothing.
resolve_kpkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
kpkg=${NFS4D_KCLIENT_KPKG:-}
if [ -z "$kpkg" ] && [ -s "$cache/kpkg" ] && [ -s "$cache/vmlinuz" ]; then
    # Stick with what we have: a kernel update between runs should be a
    # deliberate choice (delete the cache or set NFS4D_KCLIENT_KPKG), not
    # something that silently changes the client under test.
    kpkg=$(cat "$cache/kpkg")
fi
if [ -z "$kpkg" ]; then
    kpkg=$(resolve_kpkg || true)
    if [ -z "$kpkg" ]; then
        apt_update_once
        kpkg=$(resolve_kpkg || true)
    fi
    [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
fi

kdir=$cache/kernel/$kpkg
if [ ! -e "$kdir/.unpacked" ]; then
    mkdir -p "$cache/debs"
    deb=$(ls "$cache/debs/${kpkg}_"*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        log "downloading $kpkg"
        # apt-get download writes into the current directory; as root it
        # warns about running unsandboxed, which is harmless.
        ( cd "$cache/debs" &&
          { apt-get download "$kpkg" >&2 2>/dev/null ||
            { apt_update_once; apt-get download "$kpkg" >&2; }; } )
        # also keep the meta package next to it, for the record
        ( cd "$cache/debs" && apt-get download linux-image-amd64 >&2 2>/dev/null || true )
        deb=$(ls "$cache/debs/${kpkg}_"*.deb | head -n1)
    fi
    log "unpacking $deb"
    rm -rf "$kdir"
    mkdir -p "$kdir/root"
    dpkg -x "$deb" "$kdir/root"
    touch "$kdir/.unpacked"
fi
kver=$(ls "$kdir/root/lib/modules" | head -n1)
[ -n "$kver" ] || die "no modules directory in $kdir"
[ -f "$kdir/root/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kdir"
if ! cmp -s "$kdir/root/boot/vmlinuz-$kver" "$cache/vmlinuz" 2>/dev/null; then
    cp "$kdir/root/boot/vmlinuz-$kver" "$cache/vmlinuz.tmp"
    mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
fi
echo "$kver" >"$cache/kver"
echo "$kpkg" >"$cache/kpkg"

# Module list in insmod order.  depmod -b works on the unpacked tree without
# touching the host's /lib/modules.
if [ ! -s "$kdir/root/lib/modules/$kver/modules.dep" ] || [ ! -e "$kdir/.depmod" ]; then
    depmod -b "$kdir/root" "$kver"
    touch "$kdir/.depmod"
fi
# nfsv4 pulls in nfs, sunrpc, lockd, grace, fscache/netfs, dns_resolver...;
# virtio_pci + virtio_net give us the NIC.  Lines are "insmod PATH [ARGS]" or
# "builtin NAME"; keep the paths, de-duplicated in first-seen order.  -a is
# essential: without it modprobe takes the later names as module parameters
# of the first one.
mapfile -t modpaths < <(
    modprobe -a -d "$kdir/root" -S "$kver" --show-depends nfsv4 virtio_net virtio_pci |
        awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[ ${#modpaths[@]} -gt 0 ] || die "modprobe --show-depends returned no modules"

# --- 3. lockhelper -------------------------------------------------------------
if [ ! -x "$cache/lockhelper" ] || [ "$here/lockhelper.c" -nt "$cache/lockhelper" ]; then
    log "building lockhelper"
    gcc -static -O2 -Wall -Wextra -o "$cache/lockhelper.tmp" "$here/lockhelper.c"
    mv "$cache/lockhelper.tmp" "$cache/lockhelper"
fi

# --- 4. base initramfs ---------------------------------------------------------
# Rebuilt only when one of its inputs changed.  /init, the workload and its
# config are NOT in here: run.sh appends them as a second cpio each run.
key=$( { echo "format 2"; echo "$kver"; printf '%s\n' "${modpaths[@]}";
         sha256sum /bin/busybox "$cache/lockhelper"; } | sha256sum | cut -d' ' -f1)
if [ ! -s "$cache/base.cpio" ] || [ "$(cat "$cache/base.key" 2>/dev/null)" != "$key" ]; then
    log "building base initramfs for $kver"
    stage=$(mktemp -d "$cache/stage.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,mnt,tmp,run,root,lib/modules,home/kctest}
    cp /bin/busybox "$stage/bin/busybox"
    cp "$cache/lockhelper" "$stage/bin/lockhelper"
    : >"$stage/etc/modules.order"
    for p in "${modpaths[@]}"; do
        b=$(basename "$p")
        # The guest uses busybox insmod; hand it plain .ko files rather than
        # relying on its decompression support.
        case $b in
            *.ko.xz)  xz -dc "$p" >"$stage/lib/modules/${b%.xz}";   b=${b%.xz} ;;
            *.ko.zst) zstd -qdc "$p" >"$stage/lib/modules/${b%.zst}"; b=${b%.zst} ;;
            *.ko.gz)  gzip -dc "$p" >"$stage/lib/modules/${b%.gz}";  b=${b%.gz} ;;
            *)        cp "$p" "$stage/lib/modules/$b" ;;
        esac
        echo "$b" >>"$stage/etc/modules.order"
    done
    # A non-root user for the permission checks (uid/gid 1000, like a
    # typical first desktop user) and nobody for completeness.
    cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
kctest:x:1000:1000:kclient test user:/home/kctest:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$stage/etc/group" <<'EOF'
root:x:0:
kctest:x:1000:
nogroup:x:65534:
EOF
    echo /bin/sh >"$stage/etc/shells"
    chown 1000:1000 "$stage/home/kctest" 2>/dev/null || true
    chmod 1777 "$stage/tmp"
    # The kernel opens /dev/console before running /init; provide the node
    # when we can (root).  /init re-opens it from devtmpfs anyway.
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
    # -R 0:0: everything owned by root inside the guest, except what we
    # chowned explicitly (cpio -R overrides all; so fix ownership in /init).
    ( cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) >"$cache/base.cpio.tmp"
    mv "$cache/base.cpio.tmp" "$cache/base.cpio"
    echo "$key" >"$cache/base.key"
    rm -rf "$stage"
    trap - EXIT
fi

log "kernel $kver, ${#modpaths[@]} modules, base initramfs $(du -k "$cache/base.cpio" | cut -f1) KiB"
echo "$cache"
