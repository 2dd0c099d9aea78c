#!/bin/busybox sh
# /init of the kclient guest (busybox sh, PID 1).
#
# Boot plumbing only: mount the pseudo filesystems, load the NFS and virtio
# modules, bring up eth0 on qemu's user network, then hand over to
# /workload.sh, which does the mounting and the checks.  Whatever happens,
# end with poweroff -f so qemu (-no-reboot) exits instead of the harness
# waiting for its timeout.
#
# run.sh puts this file, /workload.sh and /etc/kclient.conf into a small
# per-run cpio appended to the cached base initramfs (busybox, modules,
# lockhelper, /etc/passwd).

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel may have found no /dev/console in the archive; (re)attach stdio to
# the serial console now that devtmpfs provides it.
exec 0</dev/console 1>/dev/console 2>&1
# A real tmpfs for scratch data (the reference copies the checks compare with);
# the initramfs rootfs would do, but tmpfs makes df/space behaviour ordinary.
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
chown 1000:1000 /home/kctest 2>/dev/null

halt_now() {
    sync
    echo "KCLIENT-POWEROFF"
    poweroff -f
    # not reached; keep PID 1 alive if poweroff ever fails
    while :; do sleep 3600; done
}

echo "KCLIENT-BOOT kernel $(uname -r)"
. /etc/kclient.conf || { echo "KCLIENT-ERROR no /etc/kclient.conf"; halt_now; }

for m in $(cat /etc/modules.order); do
    insmod /lib/modules/$m || echo "KCLIENT-ERROR insmod $m failed"
done
# A distinct client identity per run, so concurrent or back-to-back guests
# never look like one client rebooting to the server (the NFSv4 client owner
# string is built from this plus the hostname).
[ -n "$KC_RUNID" ] && echo "$KC_RUNID" >/sys/module/nfs/parameters/nfs4_unique_id
hostname "kclient-$KC_RUNID"

# Network: static configuration matching qemu's user-net defaults.  No default
# route on purpose: the guest only ever needs 10.0.2.2 (= host loopback).
ip link set lo up
i=0
while { [ ! -e /sys/class/net/eth0 ] || [ ! -e /sys/class/net/eth1 ]; } && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
done
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0

# A second, independent NFS client in the same guest.  The kernel keeps one
# nfs_client (one NFSv4 client ID, one lease, one set of opens/locks) per
# server and network namespace, so a mount made from another network
# namespace is a genuinely different client to the server.  Checks use it to
# make the *server* arbitrate (lock conflicts, cache coherency), instead of
# the guest kernel's local lock table.  It gets qemu's second NIC (its own
# user-net stack, where 10.0.2.2 is again the host's loopback) and its own
# hostname, which goes into its client owner string.
if [ -e /sys/class/net/eth1 ]; then
    unshare -n -u sleep 2147483647 &
    ns2=$!
    i=0
    while [ "$(readlink /proc/$ns2/ns/net)" = "$(readlink /proc/1/ns/net)" ] && [ $i -lt 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
    if ip link set eth1 netns $ns2 &&
       nsenter -t $ns2 -n -u sh -c "hostname kclient-$KC_RUNID-b && ip link set lo up &&
            ip link set eth1 up && ip addr add 10.0.2.15/24 dev eth1"; then
        echo $ns2 >/run/kclient-ns2.pid
    else
        echo "KCLIENT-ERROR could not set up the second client's network namespace"
    fi
else
    echo "KCLIENT-ERROR no eth1: second client unavailable"
fi

sh /workload.sh
echo "KCLIENT-WORKLOAD-EXIT $?"
halt_now
