#!/usr/bin/env python3
"""Open an existing file through libnfs's own API (ctypes on the libnfs shared
library that Debian's libnfs-utils installs), take a byte-range lock on it,
and hold both until standard input closes: a client with state for the
server's administrator to look at (`nfs4d ctl clients`).

Prints "held" once the open and the lock are granted, then waits; on end
of input it unlocks, closes and exits 0.

usage: nfs_hold.py nfs://HOST/path/file?version=4&nfsport=N [LOCK_BYTES]
"""
import ctypes
import ctypes.util
import os
import sys

NFS4_F_TLOCK = 1  # libnfs's enum nfs4_lock_op: lock now or fail
NFS4_F_ULOCK = 2


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    url = sys.argv[1]
    span = int(sys.argv[2]) if len(sys.argv) == 3 else 100
    lib = ctypes.CDLL(ctypes.util.find_library("nfs") or "libnfs.so.13")
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_parse_url_full.restype = ctypes.POINTER(NfsUrl)
    lib.nfs_parse_url_full.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.nfs_lockf.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.nfs_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.nfs_destroy_context.argtypes = [ctypes.c_void_p]

    nfs = lib.nfs_init_context()
    if not nfs:
        sys.exit("nfs_hold: cannot create an nfs context")

    def fail(what):
        sys.exit("nfs_hold: %s: %s" % (what, (lib.nfs_get_error(nfs) or b"?").decode(errors="replace")))

    u = lib.nfs_parse_url_full(nfs, url.encode())
    if not u:
        fail("bad URL")
    # An export at the pseudo root parses to an empty path; libnfs wants "/".
    if lib.nfs_mount(nfs, u.contents.server, u.contents.path or b"/") != 0:
        fail("mount")
    fh = ctypes.c_void_p()
    # An existing file: libnfs 4.0.0 creates with GUARDED4 even without
    # O_EXCL, and its context is unusable after a failed open.
    if lib.nfs_open(nfs, u.contents.file, os.O_RDWR, ctypes.byref(fh)) != 0:
        fail("open")
    if lib.nfs_lockf(nfs, fh, NFS4_F_TLOCK, span) != 0:
        fail("lock")
    print("held", flush=True)
    sys.stdin.read()
    if lib.nfs_lockf(nfs, fh, NFS4_F_ULOCK, span) != 0:
        fail("unlock")
    if lib.nfs_close(nfs, fh) != 0:
        fail("close")
    lib.nfs_destroy_context(nfs)


if __name__ == "__main__":
    main()
