//! File data: READ and WRITE semantics (RFC 8881 §18.22, §18.32), the
//! data lifecycle (open → write → commit/close), truncation.

use super::kit::*;
use super::Factory;
use crate::{FileKind, PipedSource, SetAttrs, Stability, StoreError};

use StoreError::*;

/// What an offset past any possible file size may give.
const TOO_BIG: &[StoreError] = &[TooBig, Invalid];

/// EOF flags, reads past the end, zero-filled gaps, offsets that overflow,
/// and the kinds that cannot be read or written.
pub fn check_read_write(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"");
    let fp = p("f");
    must(s.open(&fp, true), "open f");
    for st in [
        Stability::Unstable,
        Stability::DataSync,
        Stability::FileSync,
    ] {
        let (n, got) = must(s.write(&fp, 0, b"0123456789", st), "write");
        assert_eq!(n, 10, "a whole write");
        assert!(
            got >= st,
            "a write reports at least the stability asked: {got:?} < {st:?}"
        );
    }

    let mut buf = b"prefix:".to_vec();
    assert_eq!(
        s.read(&fp, 2, 3, &mut buf),
        Ok((3, false)),
        "read in the middle"
    );
    assert_eq!(buf, b"prefix:234", "reads append to the buffer");
    assert_eq!(
        read_at(s, "f", 7, 3),
        (b"789".to_vec(), true),
        "a read ending at EOF"
    );
    assert_eq!(
        read_at(s, "f", 8, 100),
        (b"89".to_vec(), true),
        "a read past EOF is short"
    );
    for off in [
        10,
        11,
        1 << 40,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX,
    ] {
        assert_eq!(
            read_at(s, "f", off, 5),
            (Vec::new(), true),
            "a read at {off}"
        );
    }
    // A huge length on a small file must not allocate it.
    assert_eq!(
        read_at(s, "f", 0, usize::MAX),
        (b"0123456789".to_vec(), true)
    );
    assert_eq!(
        read_at(s, "f", 0, 0),
        (Vec::new(), false),
        "an empty read before EOF"
    );

    // Past end of file: the gap reads back as zeros.
    assert_eq!(
        s.write(&fp, 20, b"z", Stability::Unstable).map(|w| w.0),
        Ok(1)
    );
    assert_eq!(must(s.stat(&fp), "stat").size, 21);
    let mut want = b"0123456789".to_vec();
    want.extend_from_slice(&[0; 10]);
    want.push(b'z');
    assert_eq!(
        read_all(s, "f"),
        Ok(want.clone()),
        "a write past EOF leaves zeros"
    );

    // An empty write changes nothing.
    assert_eq!(
        s.write(&fp, 100, b"", Stability::Unstable).map(|w| w.0),
        Ok(0)
    );
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        21,
        "an empty write does not extend"
    );

    // Offsets whose end does not fit a file offset.
    assert_err(
        s.write(&fp, u64::MAX - 1, b"zz", Stability::Unstable),
        TOO_BIG,
        "u64 overflow",
    );
    assert_err(
        s.write(&fp, u64::MAX, b"z", Stability::Unstable),
        TOO_BIG,
        "write at u64::MAX",
    );
    assert_err(
        s.write(&fp, i64::MAX as u64, b"z", Stability::Unstable),
        TOO_BIG,
        "past i64",
    );
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        21,
        "refused writes change nothing"
    );

    // Overwrite in the middle.
    must(s.write(&fp, 5, b"ab", Stability::Unstable), "overwrite");
    want[5..7].copy_from_slice(b"ab");
    assert_eq!(read_all(s, "f"), Ok(want));

    // A larger, unaligned write read back in pieces that cross it.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    must(s.write(&fp, 4095, &big, Stability::Unstable), "large write");
    for (off, len) in [(4095u64, 65536usize), (70_000, 100_000), (250_000, 60_000)] {
        let (got, _) = read_at(s, "f", off, len);
        let start = (off - 4095) as usize;
        let end = (start + len).min(big.len());
        assert_eq!(got, &big[start..end], "piece at {off}");
    }
    must(s.commit(&fp), "commit");
    must(s.close(&fp), "close");

    // What cannot be read or written.
    new_dir(s, "d");
    assert_err(read_all(s, "d"), &[IsDir], "read a directory");
    assert_err(read_all(s, ""), &[IsDir], "read the root");
    assert_err(
        s.write(&p("d"), 0, b"x", Stability::Unstable),
        &[IsDir],
        "write a directory",
    );
    assert_err(read_all(s, "missing"), &[NotFound], "read missing");
    assert_err(
        s.write(&p("missing"), 0, b"x", Stability::Unstable),
        &[NotFound],
        "write does not create",
    );
    assert_err(s.stat(&p("missing")), &[NotFound], "write did not create");
    if s.capabilities().special_files {
        must(
            s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        assert_err(read_all(s, "fifo"), &[WrongType], "read a fifo");
        assert_err(
            s.write(&p("fifo"), 0, b"x", Stability::Unstable),
            &[WrongType],
            "write a fifo",
        );
    }
}

/// Unstable data is read back before COMMIT, and is there after COMMIT
/// and after the last close; COMMIT wants a regular file.
pub fn check_write_lifecycle(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"");
    let fp = p("f");
    must(s.open(&fp, true), "open");
    let (n, got) = must(
        s.write(&fp, 0, b"staged", Stability::Unstable),
        "unstable write",
    );
    assert_eq!((n, got >= Stability::Unstable), (6, true));
    assert_eq!(
        read_all(s, "f"),
        Ok(b"staged".to_vec()),
        "unstable data is read back"
    );
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        6,
        "the size counts unstable data"
    );
    must(
        s.write(&fp, 6, b"-more", Stability::Unstable),
        "second unstable write",
    );
    assert_eq!(read_all(s, "f"), Ok(b"staged-more".to_vec()));
    must(s.commit(&fp), "commit");
    assert_eq!(
        read_all(s, "f"),
        Ok(b"staged-more".to_vec()),
        "committed data"
    );
    let (_, got) = must(
        s.write(&fp, 0, b"S", Stability::DataSync),
        "data-sync write",
    );
    assert!(got >= Stability::DataSync, "{got:?}");
    must(s.close(&fp), "close");
    assert_eq!(
        read_all(s, "f"),
        Ok(b"Staged-more".to_vec()),
        "data after close"
    );

    // Written, not committed, closed: the last close publishes it.
    must(s.open(&fp, true), "reopen");
    must(s.write(&fp, 11, b"!", Stability::Unstable), "append");
    must(s.close(&fp), "close without commit");
    assert_eq!(read_all(s, "f"), Ok(b"Staged-more!".to_vec()));
    must(s.commit(&fp), "commit after close");

    // A read-only open and close change nothing.
    must(s.open(&fp, false), "open for reading");
    assert_eq!(read_all(s, "f"), Ok(b"Staged-more!".to_vec()));
    must(s.close(&fp), "close a read-only open");
    assert_eq!(must(s.stat(&fp), "stat").size, 12);

    // FILE_SYNC data in an open that ends with a close.
    must(s.open(&fp, true), "open");
    let (_, got) = must(
        s.write(&fp, 0, b"F", Stability::FileSync),
        "file-sync write",
    );
    assert_eq!(got, Stability::FileSync);
    must(s.close(&fp), "close");
    assert_eq!(read_all(s, "f"), Ok(b"Ftaged-more!".to_vec()));

    new_dir(s, "d");
    assert_err(s.commit(&p("d")), &[IsDir], "commit a directory");
    assert_err(s.commit(&p("missing")), &[NotFound], "commit missing");
    must(s.sync_dir(&root()), "sync_dir root");
    must(s.sync_dir(&p("d")), "sync_dir d");
}

/// A file renamed while open (as a client's "silly rename" of an open file
/// does) keeps the data written before the rename, and takes more.
pub fn check_rename_keeps_unstable_data(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "g", b"");
    must(s.open(&p("g"), true), "open g");
    must(
        s.write(&p("g"), 0, b"moving", Stability::Unstable),
        "unstable write",
    );
    must(
        s.rename(&root(), &n("g"), &root(), &n("h")),
        "rename while open",
    );
    assert_err(s.stat(&p("g")), &[NotFound], "the old name is gone");
    assert_eq!(
        read_all(s, "h"),
        Ok(b"moving".to_vec()),
        "the data moved with the file"
    );
    must(
        s.write(&p("h"), 6, b"!", Stability::Unstable),
        "write to the new name",
    );
    must(s.commit(&p("h")), "commit the new name");
    must(s.close(&p("h")), "close the new name");
    assert_eq!(read_all(s, "h"), Ok(b"moving!".to_vec()));
    assert_eq!(names(s, ""), name_set(&["h"]));

    // Renamed over another file while open.
    new_file(s, "target", b"old target");
    must(s.open(&p("h"), true), "open h");
    must(
        s.write(&p("h"), 0, b"M", Stability::Unstable),
        "unstable write",
    );
    must(
        s.rename(&root(), &n("h"), &root(), &n("target")),
        "rename over a file",
    );
    must(s.close(&p("target")), "close");
    assert_eq!(read_all(s, "target"), Ok(b"Moving!".to_vec()));
    assert_eq!(names(s, ""), name_set(&["target"]));
}

/// Truncation and extension through SETATTR size (RFC 8881 §5.8.1.5).
pub fn check_setattr_size(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    new_file(s, "f", b"0123456789");
    let fp = p("f");
    let size = |n: u64| SetAttrs {
        size: Some(n),
        ..Default::default()
    };
    assert_eq!(must(s.setattr(&fp, &size(4)), "truncate").size, 4);
    assert_eq!(read_all(s, "f"), Ok(b"0123".to_vec()));
    assert_eq!(must(s.setattr(&fp, &size(10)), "extend").size, 10);
    assert_eq!(
        read_all(s, "f"),
        Ok(b"0123\0\0\0\0\0\0".to_vec()),
        "bytes cut off by a truncation do not come back"
    );
    assert_eq!(must(s.setattr(&fp, &size(10)), "same size").size, 10);
    assert_eq!(
        must(s.setattr(&fp, &size(1 << 20)), "extend to 1 MiB").size,
        1 << 20
    );
    assert_eq!(read_at(s, "f", (1 << 20) - 4, 100), (vec![0; 4], true));
    assert_eq!(must(s.setattr(&fp, &size(4)), "truncate again").size, 4);
    put(s, "f", 2, b"xy", Stability::FileSync);
    assert_eq!(read_all(s, "f"), Ok(b"01xy".to_vec()));
    assert_eq!(must(s.setattr(&fp, &size(0)), "truncate to zero").size, 0);
    assert_eq!(read_all(s, "f"), Ok(Vec::new()));
    put(s, "f", 0, b"abc", Stability::FileSync);

    for huge in [u64::MAX, i64::MAX as u64 + 1] {
        assert_err(s.setattr(&fp, &size(huge)), TOO_BIG, "a size past any file");
    }
    assert_eq!(
        read_all(s, "f"),
        Ok(b"abc".to_vec()),
        "refused sizes change nothing"
    );

    new_dir(s, "d");
    assert_err(
        s.setattr(&p("d"), &size(0)),
        &[IsDir],
        "size of a directory",
    );
    assert_err(s.setattr(&root(), &size(0)), &[IsDir], "size of the root");
    assert_err(
        s.setattr(&p("missing"), &size(0)),
        &[NotFound],
        "size of missing",
    );
    if caps.symlinks {
        must(s.symlink(&root(), &n("s"), b"f", ROOT), "symlink");
        assert_err(
            s.setattr(&p("s"), &size(0)),
            &[Symlink],
            "size of a symlink",
        );
        assert_eq!(
            read_all(s, "f"),
            Ok(b"abc".to_vec()),
            "the target is untouched"
        );
    }
    if caps.special_files {
        must(
            s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        assert_err(
            s.setattr(&p("fifo"), &size(0)),
            &[WrongType, Invalid],
            "size of a fifo",
        );
    }
}

/// WRITE data handed over in a pipe ([`crate::Store::write_piped`]) is
/// written exactly as the same bytes from a buffer, at any offset, for
/// each stability. The source here cannot be spliced into a file (as on a
/// file system without `splice`), so a store must take its bytes out.
pub fn check_write_piped(f: Factory<'_>) {
    #[derive(Debug)]
    struct Unspliceable(Vec<u8>);
    impl PipedSource for Unspliceable {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn splice_into(
            &mut self,
            _: std::os::fd::BorrowedFd<'_>,
            _: u64,
        ) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
        fn read_out(&mut self) -> std::io::Result<Vec<u8>> {
            Ok(std::mem::take(&mut self.0))
        }
    }
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"0123456789");
    let fp = p("f");
    must(s.open(&fp, true), "open f");
    let mut want = b"0123456789".to_vec();
    for (i, st) in [
        Stability::Unstable,
        Stability::DataSync,
        Stability::FileSync,
    ]
    .into_iter()
    .enumerate()
    {
        let off = [3usize, 10, 70_000][i];
        let bytes: Vec<u8> = (0..(5000 * (i + 1))).map(|k| (k * 13 + i) as u8).collect();
        let mut src = Unspliceable(bytes.clone());
        let (n, got) = must(s.write_piped(&fp, off as u64, &mut src, st), "write_piped");
        assert_eq!(n, bytes.len(), "a whole piped write");
        assert!(
            got >= st,
            "a piped write reports at least the stability asked"
        );
        if want.len() < off + bytes.len() {
            want.resize(off + bytes.len(), 0);
        }
        want[off..off + bytes.len()].copy_from_slice(&bytes);
    }
    assert_eq!(
        read_at(s, "f", 0, want.len() + 10),
        (want, true),
        "the file holds the piped bytes where they were written"
    );
}
