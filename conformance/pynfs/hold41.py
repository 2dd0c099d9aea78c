#!/usr/bin/env python3
"""An NFSv4.1 client driven by pynfs's client library that opens a file,
takes a byte-range lock on it, and holds both until standard input closes:
a client with state for `nfs4d ctl clients` to show. Nothing here fetches
or builds pynfs: PYNFS_DIR names a pynfs tree built by hand (README.md).

Prints "held CLIENTID" (hex) once the open and the lock are granted; on
end of input it unlocks, closes, destroys its session and client, and
exits 0.

usage: PYNFS_DIR=/path/to/pynfs hold41.py HOST PORT PATH   (PATH: dir/file from the pseudo root)
"""
import os
import sys


def main():
    if len(sys.argv) != 4 or "PYNFS_DIR" not in os.environ:
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    path = [c.encode() for c in sys.argv[3].split("/") if c]
    tree = os.environ["PYNFS_DIR"]
    sys.path[:0] = [os.path.join(tree, "nfs4.1"), tree]
    import nfs4client
    import nfs_ops
    from xdrdef.nfs4_const import (NFS4_OK, OPEN4_SHARE_ACCESS_BOTH, UNCHECKED4,
                                   WRITE_LT)
    from xdrdef.nfs4_type import locker4, lock_owner4, open_to_lock_owner4
    from server41tests.environment import create_file

    op = nfs_ops.NFS4ops()

    def ok(res, what):
        if res.status != NFS4_OK:
            sys.exit("hold41: %s: %s" % (what, res.status))
        return res

    c = nfs4client.NFS4Client(host.encode(), port, minorversion=1)
    sess = c.new_client_session(b"pynfs-hold41")
    res = ok(create_file(sess, b"hold41-owner", path=path, mode=UNCHECKED4), "open")
    fh = res.resarray[-1].object
    open_sid = res.resarray[-2].stateid
    locker = locker4(open_owner=open_to_lock_owner4(0, open_sid, 0, lock_owner4(0, b"hold41-lock")),
                     new_lock_owner=True)
    res = ok(sess.compound([op.putfh(fh), op.lock(WRITE_LT, False, 0, 100, locker)]), "lock")
    lock_sid = res.resarray[-1].lock_stateid
    print("held %#x" % sess.client.clientid, flush=True)
    sys.stdin.read()
    ok(sess.compound([op.putfh(fh), op.locku(WRITE_LT, 0, lock_sid, 0, 100)]), "unlock")
    ok(sess.compound([op.putfh(fh), op.close(0, open_sid)]), "close")
    c.null()


if __name__ == "__main__":
    main()
