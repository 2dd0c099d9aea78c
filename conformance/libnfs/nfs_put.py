#!/usr/bin/env python3
"""Write a local file to an NFS URL through libnfs's own API (ctypes on the
libnfs shared library that Debian's libnfs-utils installs).

Why not nfs-cp: libnfs 4.0.0 (Debian 12) encodes every NFSv4 call into a
fixed 4096-byte buffer and sends a WRITE of whatever size it was given, so
nfs-cp's 1 MiB writes over NFSv4 fail with any server ("Failed to write to
dest file"; fixed upstream in libnfs 5.0). Here the same library writes in
chunks that fit that buffer.

usage: nfs_put.py SRC nfs://HOST/path/file?version=4&nfsport=N [CHUNK]
"""
import ctypes
import ctypes.util
import os
import sys

CHUNK = 3072  # payload that fits libnfs 4.0.0's 4 KiB encode buffer with headers


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, url = sys.argv[1], sys.argv[2]
    chunk = int(sys.argv[3]) if len(sys.argv) == 4 else CHUNK
    name = ctypes.util.find_library("nfs") or "libnfs.so.13"
    lib = ctypes.CDLL(name)
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_parse_url_full.restype = ctypes.POINTER(NfsUrl)
    lib.nfs_parse_url_full.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.nfs_pwrite.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_char_p]
    lib.nfs_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.nfs_destroy_context.argtypes = [ctypes.c_void_p]

    nfs = lib.nfs_init_context()
    if not nfs:
        sys.exit("nfs_put: cannot create an nfs context")

    def fail(what):
        sys.exit("nfs_put: %s: %s" % (what, (lib.nfs_get_error(nfs) or b"?").decode(errors="replace")))

    u = lib.nfs_parse_url_full(nfs, url.encode())
    if not u:
        fail("bad URL")
    # An export at the pseudo root parses to an empty path; libnfs wants "/".
    if lib.nfs_mount(nfs, u.contents.server, u.contents.path or b"/") != 0:
        fail("mount")
    fh = ctypes.c_void_p()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if lib.nfs_create(nfs, u.contents.file, flags, 0o644, ctypes.byref(fh)) != 0:
        fail("create")
    off = 0
    with open(src, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                break
            n = lib.nfs_pwrite(nfs, fh, off, len(data), data)
            if n != len(data):
                fail("write at offset %d returned %d" % (off, n))
            off += n
    if lib.nfs_close(nfs, fh) != 0:
        fail("close")
    lib.nfs_destroy_context(nfs)
    print("wrote %d bytes" % off)


if __name__ == "__main__":
    main()
