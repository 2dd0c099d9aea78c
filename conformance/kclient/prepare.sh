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
#   kernel/<pkg>/         what we need from one package (dpkg -x, then pruned):
#                         vmlinuz, kver, modules/*.ko, modules.order
#   vmlinuz, kver, kpkg   the kernel in use, its version and package name
#   lockhelper            static POSIX-lock probe built from lockhelper.c
#   lockhelper.src        sha256 of the lockhelper.c it was built from
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

did_work=0
log() { echo "prepare: $*" >&2; did_work=1; }
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

# Modules the guest needs; modprobe adds their dependencies (nfsv4 pulls in
# nfs, sunrpc, lockd, grace, fscache/netfs, dns_resolver; virtio_pci and
# virtio_net give the NICs).  Changing this list re-extracts the kernel.
GUEST_MODULES="nfsv4 virtio_net virtio_pci"

# Temporary directories to remove on exit, whatever happens.
tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

# The cache slot keeps the kernel image and just the needed modules (already
# in insmod order and decompressed), not the whole 400 MB module tree; the
# .deb stays in debs/ so re-extracting never needs the network.
kdir=$cache/kernel/$kpkg
if [ ! -e "$kdir/.done" ] || [ "$(cat "$kdir/modules.want" 2>/dev/null)" != "$GUEST_MODULES" ]; then
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
    unpack=$(mktemp -d "$cache/unpack.XXXXXX")
    tmpdirs+=("$unpack")
    dpkg -x "$deb" "$unpack"
    kver=$(ls "$unpack/lib/modules" | head -n1)
    [ -n "$kver" ] || die "no lib/modules in $deb"
    [ -f "$unpack/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $deb"
    # depmod -b works on the unpacked tree without touching the host's
    # /lib/modules.  --show-depends prints "insmod PATH [ARGS]" or
    # "builtin NAME" lines in load order; keep the paths, first-seen order.
    # -a is essential: without it modprobe takes the later names as module
    # parameters of the first one.
    depmod -b "$unpack" "$kver"
    mapfile -t modpaths < <(
        modprobe -a -d "$unpack" -S "$kver" --show-depends $GUEST_MODULES |
            awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
    [ ${#modpaths[@]} -gt 0 ] || die "modprobe --show-depends returned no modules"
    rm -rf "$kdir"
    mkdir -p "$kdir/modules"
    cp "$unpack/boot/vmlinuz-$kver" "$kdir/vmlinuz"
    : >"$kdir/modules.order"
    for p in "${modpaths[@]}"; do
        b=$(basename "$p")
        # The guest uses busybox insmod; hand it plain .ko files rather than
        # relying on its decompression support.
        case $b in
            *.ko.xz)  b=${b%.xz};  xz -dc "$p" >"$kdir/modules/$b" ;;
            *.ko.zst) b=${b%.zst}; zstd -qdc "$p" >"$kdir/modules/$b" ;;
            *.ko.gz)  b=${b%.gz};  gzip -dc "$p" >"$kdir/modules/$b" ;;
            *)        cp "$p" "$kdir/modules/$b" ;;
        esac
        echo "$b" >>"$kdir/modules.order"
    done
    echo "$kver" >"$kdir/kver"
    echo "$GUEST_MODULES" >"$kdir/modules.want"
    rm -rf "$unpack"
    touch "$kdir/.done"
fi
kver=$(cat "$kdir/kver")
if ! cmp -s "$kdir/vmlinuz" "$cache/vmlinuz" 2>/dev/null; then
    cp "$kdir/vmlinuz" "$cache/vmlinuz.tmp"
    mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
fi
echo "$kver" >"$cache/kver"
echo "$kpkg" >"$cache/kpkg"

# --- 3. lockhelper -------------------------------------------------------------
# Keyed on the source's content, not its mtime (git checkouts reset mtimes).
src_sum=$(sha256sum "$here/lockhelper.c" | cut -d' ' -f1)
if [ ! -x "$cache/lockhelper" ] || [ "$(cat "$cache/lockhelper.src" 2>/dev/null)" != "$src_sum" ]; then
    log "building lockhelper"
    gcc -static -O2 -Wall -Wextra -o "$cache/lockhelper.tmp" "$here/lockhelper.c"
    mv "$cache/lockhelper.tmp" "$cache/lockhelper"
    echo "$src_sum" >"$cache/lockhelper.src"
fi

# --- 4. base initramfs ---------------------------------------------------------
# Rebuilt only when one of its inputs changed.  /init, the workload and its
# config are NOT in here: run.sh appends them as a second cpio each run.
key=$( { echo "format 3 $kpkg $kver"; cat "$kdir/modules.order";
         sha256sum /bin/busybox "$cache/lockhelper"; } | sha256sum | cut -d' ' -f1)
if [ ! -s "$cache/base.cpio" ] || [ "$(cat "$cache/base.key" 2>/dev/null)" != "$key" ]; then
    log "building base initramfs for $kver"
    stage=$(mktemp -d "$cache/stage.XXXXXX")
    tmpdirs+=("$stage")
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,mnt,tmp,run,root,lib/modules,home/kctest}
    cp /bin/busybox "$stage/bin/busybox"
    cp "$cache/lockhelper" "$stage/bin/lockhelper"
    cp "$kdir"/modules/*.ko "$stage/lib/modules/"
    cp "$kdir/modules.order" "$stage/etc/modules.order"
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
    chmod 1777 "$stage/tmp"
    # The kernel opens /dev/console before running /init; provide the node
    # when we can (root).  /init re-opens it from devtmpfs anyway.
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
    # -R 0:0: everything owned by root inside the guest whoever builds this
    # (/init hands /home/kctest to uid 1000 at boot).
    ( cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) >"$cache/base.cpio.tmp"
    mv "$cache/base.cpio.tmp" "$cache/base.cpio"
    echo "$key" >"$cache/base.key"
    rm -rf "$stage"
fi

# Summary when something was done or a human is watching; silent otherwise
# (run.sh calls this every time).
if [ $did_work = 1 ] || [ -t 1 ]; then
    log "kernel $kver, $(wc -l <"$kdir/modules.order") modules, base initramfs $(du -k "$cache/base.cpio" | cut -f1) KiB"
fi
echo "$cache"
