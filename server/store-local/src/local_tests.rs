//! Tests for [`LocalStore`]. They run as root (the server does), against
//! `tempfile::tempdir()`, i.e. the filesystem of `$TMPDIR` or `/tmp`.

use super::*;
use nfs4d_store::{LockError, NameError, XATTR_NAME_MAX};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use ListPos::Start;

const ROOT: Owner = Owner { uid: 0, gid: 0 };

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("valid test name")
}

fn rp(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).expect("valid test path")
}

fn setup() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = LocalStore::open(dir.path()).expect("open store");
    (dir, b)
}

fn new_file(b: &LocalStore, path: &str, data: &[u8]) -> Attrs {
    let p = rp(path);
    let (parent, n) = p.split_last().expect("not root");
    let made = b
        .create_file(&parent, n, 0o644, ROOT, true)
        .expect("create");
    assert!(made.created);
    let attrs = made.attrs;
    if !data.is_empty() {
        assert_eq!(
            b.write(&p, 0, data, Stability::Unstable).expect("write"),
            (data.len(), Stability::Unstable)
        );
    }
    attrs
}

fn read_all(b: &LocalStore, path: &str) -> StoreResult<Vec<u8>> {
    let mut buf = Vec::new();
    b.read(&rp(path), 0, 1 << 20, &mut buf)?;
    Ok(buf)
}

/// Open fds of this process pointing into `dir` (robust against other
/// tests running concurrently in the same process).
fn fds_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

// --- identity -------------------------------------------------------------

#[test]
fn gen_source_and_recreate_identity() {
    let (dir, b) = setup();
    // What filesystem are we on? (0xEF53 = ext2/3/4, 0x01021994 = tmpfs.)
    let sfs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir.path())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    eprintln!(
        "tempdir {} on fs {sfs:?}: gen source {:?}",
        dir.path().display(),
        b.gen_source()
    );
    assert_ne!(b.gen_source(), GenSource::None);

    let mut reused = 0;
    for _ in 0..50 {
        let a = new_file(&b, "f", b"x");
        let removed = b.remove(&RelPath::root(), &name("f")).expect("remove");
        assert_eq!(removed.identity, a.identity);
        let c = new_file(&b, "f", b"y");
        if c.identity.object == a.identity.object && c.identity.space == a.identity.space {
            reused += 1;
        }
        assert_ne!(a.identity, c.identity, "recreated file must differ");
        // The fd cache must not hand the old file's fd to the new file.
        assert_eq!(read_all(&b, "f").expect("read"), b"y");
        b.remove(&RelPath::root(), &name("f")).expect("remove");
    }
    eprintln!("inode number reused in {reused}/50 delete+recreate cycles");
}

#[test]
fn store_is_object_safe_and_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<LocalStore>();
    let (_d, b) = setup();
    let dynb: Arc<dyn Store> = Arc::new(b);
    assert_eq!(
        dynb.stat(&RelPath::root()).expect("stat").kind,
        FileKind::Directory
    );
}

/// The `FS_IOC_GETVERSION` fallback, exercised directly (it is only used
/// on filesystems without birth times, which /tmp here is not).
#[test]
fn generation_fallback() {
    let (_d, b) = setup();
    let root = b.root.as_fd();
    let gen_of = |ino| b.inode_generation(FileKind::Regular, ino, GenFrom::At(root, c"f"));
    let a = new_file(&b, "f", b"");
    let g1 = match gen_of(a.identity.object) {
        Ok(0) => {
            eprintln!("FS_IOC_GETVERSION unsupported here; fallback gives 0");
            return;
        }
        r => r.expect("generation"),
    };
    b.remove(&RelPath::root(), &name("f")).expect("remove");
    let c = new_file(&b, "f", b"");
    let g2 = gen_of(c.identity.object).expect("generation");
    eprintln!(
        "i_generation {g1:#x} -> {g2:#x} (ino {} -> {})",
        a.identity.object, c.identity.object
    );
    assert_ne!((a.identity.object, g1), (c.identity.object, g2));
    // Never for kinds that would need a risky open.
    assert_eq!(
        b.inode_generation(FileKind::Fifo, 1, GenFrom::At(root, c"f")),
        Ok(0)
    );
    // A name re-pointed since the statx is detected.
    assert_eq!(
        gen_of(a.identity.object.wrapping_add(1_000_000)),
        Err(OsError::Stale)
    );
}

#[test]
fn identity_stable_across_rename_and_ops() {
    let (_d, b) = setup();
    let a = new_file(&b, "a", b"hello");
    b.write(&rp("a"), 5, b" world", Stability::FileSync)
        .expect("write");
    b.rename(&RelPath::root(), &name("a"), &RelPath::root(), &name("b"))
        .expect("rename");
    let after = b.stat(&rp("b")).expect("stat");
    assert_eq!(after.identity, a.identity);
    assert_eq!(read_all(&b, "b").expect("read"), b"hello world");
    assert_eq!(b.stat(&rp("a")), Err(StoreError::NotFound));
}

// --- files ----------------------------------------------------------------

#[test]
fn create_read_write_eof() {
    let (_d, b) = setup();
    let root = RelPath::root();
    let made = b
        .create_file(
            &root,
            &name("f"),
            0o4750,
            Owner {
                uid: 1234,
                gid: 5678,
            },
            true,
        )
        .expect("create");
    assert!(made.created);
    let a = made.attrs;
    // Exact mode despite the process umask; owner applied.
    assert_eq!(
        (a.kind, a.mode, a.uid, a.gid),
        (FileKind::Regular, 0o4750, 1234, 5678)
    );
    assert_eq!(
        b.create_file(&root, &name("f"), 0o644, ROOT, true),
        Err(StoreError::Exists)
    );
    let again = b
        .create_file(&root, &name("f"), 0o600, ROOT, false)
        .expect("open existing");
    assert!(!again.created);
    let again = again.attrs;
    assert_eq!(
        (again.identity, again.mode, again.uid),
        (a.identity, 0o4750, 1234)
    );

    let p = rp("f");
    for st in [
        Stability::Unstable,
        Stability::DataSync,
        Stability::FileSync,
    ] {
        assert_eq!(b.write(&p, 0, b"0123456789", st), Ok((10, st)));
    }
    let mut buf = b"prefix:".to_vec();
    assert_eq!(b.read(&p, 2, 3, &mut buf), Ok((3, false)));
    assert_eq!(buf, b"prefix:234"); // appended
    let mut buf = Vec::new();
    assert_eq!(b.read(&p, 7, 3, &mut buf), Ok((3, true))); // ends exactly at EOF
    buf.clear();
    assert_eq!(b.read(&p, 8, 100, &mut buf), Ok((2, true)));
    assert_eq!(buf, b"89");
    buf.clear();
    assert_eq!(b.read(&p, 10, 5, &mut buf), Ok((0, true)));
    assert_eq!(b.read(&p, u64::MAX, 5, &mut buf), Ok((0, true)));
    assert_eq!(b.read(&p, 0, usize::MAX, &mut buf), Ok((10, true)));
    assert_eq!(b.read(&p, 0, 0, &mut Vec::new()), Ok((0, false)));
    // Sparse write beyond EOF.
    assert_eq!(
        b.write(&p, 20, b"z", Stability::Unstable),
        Ok((1, Stability::Unstable))
    );
    assert_eq!(b.stat(&p).expect("stat").size, 21);
    assert_eq!(
        b.write(&p, u64::MAX - 1, b"zz", Stability::Unstable),
        Err(StoreError::TooBig)
    );
    assert_eq!(
        b.write(&p, i64::MAX as u64, b"z", Stability::Unstable),
        Err(StoreError::TooBig)
    );

    // Wrong kinds.
    b.mkdir(&root, &name("d"), 0o755, ROOT).expect("mkdir");
    assert_eq!(read_all(&b, "d"), Err(StoreError::IsDir));
    assert_eq!(read_all(&b, ""), Err(StoreError::IsDir));
    assert_eq!(
        b.create_file(&root, &name("d"), 0o644, ROOT, false),
        Err(StoreError::IsDir)
    );
    assert_eq!(read_all(&b, "nope"), Err(StoreError::NotFound));
    assert_eq!(read_all(&b, "f/x"), Err(StoreError::NotDir));
    assert_eq!(
        b.create_file(&root, &name("x"), 0o10644, ROOT, true),
        Err(StoreError::Invalid)
    );
}

#[test]
fn read_only_file_and_fifo() {
    let (dir, b) = setup();
    new_file(&b, "ro", b"data");
    b.setattr(
        &rp("ro"),
        &SetAttrs {
            mode: Some(0o444),
            ..Default::default()
        },
    )
    .expect("chmod");
    // Root can still write a 0444 file (CAP_DAC_OVERRIDE), and read it.
    assert_eq!(
        b.write(&rp("ro"), 0, b"D", Stability::Unstable),
        Ok((1, Stability::Unstable))
    );
    assert_eq!(read_all(&b, "ro").expect("read"), b"Data");

    b.mknod(
        &RelPath::root(),
        &name("fifo"),
        FileKind::Fifo,
        0o600,
        (0, 0),
        ROOT,
    )
    .expect("mkfifo");
    // Must fail promptly rather than block on the fifo.
    assert_eq!(read_all(&b, "fifo"), Err(StoreError::WrongType));
    assert_eq!(
        b.write(&rp("fifo"), 0, b"x", Stability::Unstable),
        Err(StoreError::WrongType)
    );
    assert_eq!(
        b.create_file(&RelPath::root(), &name("fifo"), 0o644, ROOT, false),
        Err(StoreError::WrongType)
    );
    assert!(dir.path().join("fifo").exists());
}

#[test]
fn mkdir_remove_rmdir_link_rename() {
    let (_d, b) = setup();
    let root = RelPath::root();
    let d = b
        .mkdir(&root, &name("d"), 0o2775, Owner { uid: 7, gid: 8 })
        .expect("mkdir");
    assert_eq!(
        (d.kind, d.mode, d.uid, d.gid),
        (FileKind::Directory, 0o2775, 7, 8)
    );
    assert_eq!(
        b.mkdir(&root, &name("d"), 0o755, ROOT),
        Err(StoreError::Exists)
    );
    new_file(&b, "d/f", b"1");
    assert_eq!(b.rmdir(&root, &name("d")), Err(StoreError::NotEmpty));
    assert_eq!(b.remove(&root, &name("d")), Err(StoreError::IsDir));
    assert_eq!(b.rmdir(&rp("d"), &name("f")), Err(StoreError::NotDir));

    // Hard link.
    let l = b.link(&rp("d/f"), &root, &name("hl")).expect("link");
    assert_eq!(l.nlink, 2);
    assert_eq!(b.link(&rp("d"), &root, &name("dl")), Err(StoreError::IsDir));
    assert_eq!(
        b.link(&rp("d/f"), &root, &name("hl")),
        Err(StoreError::Exists)
    );

    // Rename over an existing file replaces it.
    new_file(&b, "g", b"gg");
    b.rename(&root, &name("g"), &rp("d"), &name("f"))
        .expect("rename");
    assert_eq!(read_all(&b, "d/f").expect("read"), b"gg");
    assert_eq!(read_all(&b, "hl").expect("read"), b"1");
    // Rename a directory onto a non-empty directory.
    b.mkdir(&root, &name("e"), 0o755, ROOT).expect("mkdir");
    assert_eq!(
        b.rename(&root, &name("e"), &root, &name("d")),
        Err(StoreError::NotEmpty)
    );
    assert_eq!(
        b.rename(&root, &name("missing"), &root, &name("x")),
        Err(StoreError::NotFound)
    );

    let removed = b.remove(&rp("d"), &name("f")).expect("remove");
    assert_eq!(removed.size, 2);
    b.rmdir(&root, &name("d")).expect("rmdir");
    assert_eq!(b.stat(&rp("d")), Err(StoreError::NotFound));
    b.sync_dir(&root).expect("sync_dir");
    b.commit(&rp("hl")).expect("fsync file");
    assert_eq!(
        b.commit(&root),
        Err(StoreError::IsDir),
        "directories: sync_dir"
    );
}

#[test]
fn rename_invalidates_cached_fd_of_replaced_file() {
    let (_d, b) = setup();
    let root = RelPath::root();
    new_file(&b, "a", b"AAAA"); // "a" now has a cached fd
    new_file(&b, "b", b"BBBB");
    b.rename(&root, &name("b"), &root, &name("a"))
        .expect("rename");
    b.write(&rp("a"), 0, b"x", Stability::Unstable)
        .expect("write");
    assert_eq!(read_all(&b, "a").expect("read"), b"xBBB");
}

#[test]
fn special_files_and_symlink_creation() {
    let (_d, b) = setup();
    let root = RelPath::root();
    let s = b
        .symlink(
            &root,
            &name("s"),
            b"../../anywhere/\xff",
            Owner { uid: 3, gid: 4 },
        )
        .expect("symlink");
    assert_eq!(
        (s.kind, s.uid, s.gid, s.size),
        (FileKind::Symlink, 3, 4, 16)
    );
    assert_eq!(
        b.readlink(&rp("s")).expect("readlink"),
        b"../../anywhere/\xff"
    );
    assert_eq!(
        b.symlink(&root, &name("t"), b"a\0b", ROOT),
        Err(StoreError::Invalid)
    );
    assert_eq!(
        b.symlink(&root, &name("t"), b"", ROOT),
        Err(StoreError::Invalid)
    );
    assert_eq!(
        b.symlink(&root, &name("s"), b"x", ROOT),
        Err(StoreError::Exists)
    );
    assert_eq!(b.readlink(&root), Err(StoreError::Invalid));

    let sock = b
        .mknod(&root, &name("sock"), FileKind::Socket, 0o640, (0, 0), ROOT)
        .expect("mksock");
    assert_eq!((sock.kind, sock.mode), (FileKind::Socket, 0o640));
    let c = b
        .mknod(
            &root,
            &name("null"),
            FileKind::CharDev,
            0o666,
            (1, 3),
            Owner { uid: 5, gid: 6 },
        )
        .expect("mknod chr (needs root)");
    assert_eq!(
        (c.kind, c.rdev, c.mode, c.uid),
        (FileKind::CharDev, (1, 3), 0o666, 5)
    );
    // A device node inside the export is data for the client, never opened.
    assert_eq!(read_all(&b, "null"), Err(StoreError::WrongType));
    assert_eq!(
        b.mknod(&root, &name("r"), FileKind::Regular, 0o644, (0, 0), ROOT),
        Err(StoreError::Invalid)
    );
}

#[test]
fn setattr_all_fields() {
    let (_d, b) = setup();
    let p = rp("f");
    new_file(&b, "f", b"0123456789");
    let a = b
        .setattr(
            &p,
            &SetAttrs {
                mode: Some(0o1640),
                uid: Some(1000),
                gid: Some(1001),
                size: Some(4),
                atime: Some(SetTime::Client(1_000_000, 5)),
                mtime: Some(SetTime::Client(2_000_000, 999_999_999)),
            },
        )
        .expect("setattr");
    assert_eq!((a.mode, a.uid, a.gid, a.size), (0o1640, 1000, 1001, 4));
    assert_eq!(
        a.atime,
        Timespec {
            sec: 1_000_000,
            nsec: 5
        }
    );
    assert_eq!(
        a.mtime,
        Timespec {
            sec: 2_000_000,
            nsec: 999_999_999
        }
    );
    let now = b
        .setattr(
            &p,
            &SetAttrs {
                mtime: Some(SetTime::ServerNow),
                ..Default::default()
            },
        )
        .expect("touch");
    assert!(now.mtime.sec > 1_600_000_000);
    assert_eq!(now.atime, a.atime); // untouched
                                    // (Reading may update atime under relatime, so only now.)
    assert_eq!(read_all(&b, "f").expect("read"), b"0123");
    // Growing via size.
    let grown = b
        .setattr(
            &p,
            &SetAttrs {
                size: Some(1 << 20),
                ..Default::default()
            },
        )
        .expect("grow");
    assert_eq!(grown.size, 1 << 20);

    for bad in [
        SetAttrs {
            mode: Some(0o170000),
            ..Default::default()
        },
        SetAttrs {
            atime: Some(SetTime::Client(0, 1_000_000_000)),
            ..Default::default()
        },
    ] {
        assert_eq!(b.setattr(&p, &bad), Err(StoreError::Invalid));
    }
    assert_eq!(
        b.setattr(
            &p,
            &SetAttrs {
                size: Some(u64::MAX),
                ..Default::default()
            }
        ),
        Err(StoreError::TooBig)
    );
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    assert_eq!(
        b.setattr(
            &rp("d"),
            &SetAttrs {
                size: Some(0),
                ..Default::default()
            }
        ),
        Err(StoreError::IsDir)
    );
    // The root itself.
    let r = b
        .setattr(
            &RelPath::root(),
            &SetAttrs {
                mode: Some(0o711),
                ..Default::default()
            },
        )
        .expect("chmod root");
    assert_eq!(r.mode, 0o711);
}

#[test]
fn xattrs() {
    let (_d, b) = setup();
    new_file(&b, "f", b"");
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    for path in ["f", "d"] {
        let p = rp(path);
        let r = match b.setxattr(&p, b"k1", b"v1", XattrSet::Either) {
            Err(StoreError::Unsupported) => {
                eprintln!("filesystem has no user xattrs; skipping");
                return;
            }
            r => r,
        };
        r.expect("setxattr");
        assert_eq!(b.getxattr(&p, b"k1"), Ok(b"v1".to_vec()));
        assert_eq!(
            b.setxattr(&p, b"k1", b"x", XattrSet::Create),
            Err(StoreError::Exists)
        );
        assert_eq!(
            b.setxattr(&p, b"k2", b"x", XattrSet::Replace),
            Err(StoreError::NoXattr)
        );
        b.setxattr(&p, b"k1", b"", XattrSet::Replace)
            .expect("replace");
        assert_eq!(b.getxattr(&p, b"k1"), Ok(Vec::new()));
        let big = vec![7u8; 3000];
        b.setxattr(&p, b"k2", &big, XattrSet::Create)
            .expect("create");
        assert_eq!(b.getxattr(&p, b"k2"), Ok(big));
        let mut names = b.listxattr(&p).expect("list");
        names.sort();
        assert_eq!(names, vec![b"k1".to_vec(), b"k2".to_vec()]);
        b.removexattr(&p, b"k1").expect("remove");
        assert_eq!(b.getxattr(&p, b"k1"), Err(StoreError::NoXattr));
        assert_eq!(b.removexattr(&p, b"k1"), Err(StoreError::NoXattr));
        assert_eq!(b.listxattr(&p), Ok(vec![b"k2".to_vec()]));
    }
    let p = rp("f");
    assert_eq!(b.getxattr(&p, b""), Err(StoreError::Invalid));
    assert_eq!(
        b.getxattr(&p, &[b'n'; XATTR_NAME_MAX + 1]),
        Err(StoreError::NameTooLong)
    );
    assert_eq!(
        b.setxattr(&p, b"huge", &vec![0; 65537], XattrSet::Either),
        Err(StoreError::XattrTooBig)
    );
}

#[test]
fn statfs_sane() {
    let (_d, b) = setup();
    let s = b.statfs().expect("statfs");
    assert!(s.total_bytes > 0 && s.avail_bytes <= s.free_bytes && s.free_bytes <= s.total_bytes);
    assert_eq!(s.name_max, 255);
}

// --- confinement -------------------------------------------------------------

/// An export with symlinks pointing outside (`/etc`, `..`, a file in a
/// sibling directory we own), plus that outside directory.
fn hostile_export() -> (tempfile::TempDir, PathBuf, LocalStore) {
    let top = tempfile::tempdir().expect("tempdir");
    let export = top.path().join("export");
    let outside = top.path().join("outside");
    std::fs::create_dir(&export).expect("mkdir export");
    std::fs::create_dir(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret"), b"secret").expect("write secret");
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod secret");
    symlink("/etc", export.join("etc")).expect("symlink");
    symlink("..", export.join("up")).expect("symlink");
    symlink(&outside, export.join("out")).expect("symlink");
    symlink(outside.join("secret"), export.join("secret_link")).expect("symlink");
    symlink("/etc/passwd", export.join("passwd")).expect("symlink");
    std::fs::create_dir(export.join("sub")).expect("mkdir sub");
    std::fs::write(export.join("sub/file"), b"inside").expect("write");
    let b = LocalStore::open(&export).expect("open");
    (top, outside, b)
}

fn outside_untouched(outside: &std::path::Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .expect("read outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    let meta = std::fs::metadata(outside.join("secret")).expect("secret");
    assert_eq!(
        std::fs::read(outside.join("secret")).expect("read"),
        b"secret"
    );
    assert_eq!(
        (meta.nlink(), meta.uid(), meta.mode() & 0o7777),
        (1, 0, 0o644)
    );
}

#[test]
fn symlinks_are_never_followed() {
    let (_top, outside, b) = hostile_export();
    let root = RelPath::root();
    let any = Owner { uid: 99, gid: 99 };

    for (link, target) in [
        ("etc", &b"/etc"[..]),
        ("up", b".."),
        ("passwd", b"/etc/passwd"),
    ] {
        // stat reports the link itself, readlink its bytes.
        let a = b.stat(&rp(link)).expect("stat link");
        assert_eq!(a.kind, FileKind::Symlink, "{link}");
        assert_eq!(a.size, target.len() as u64);
        assert_eq!(
            b.lookup(&root, &name(link)).expect("lookup").kind,
            FileKind::Symlink
        );
        assert_eq!(b.readlink(&rp(link)).expect("readlink"), target);
    }
    let out_target = b.readlink(&rp("out")).expect("readlink");
    assert_eq!(out_target, outside.as_os_str().as_encoded_bytes());

    // Through a symlink as an intermediate component: refused.
    assert_eq!(
        b.lookup(&rp("etc"), &name("passwd")),
        Err(StoreError::Symlink)
    );
    assert_eq!(b.stat(&rp("up/export")), Err(StoreError::Symlink));
    assert_eq!(b.stat(&rp("out/secret")), Err(StoreError::Symlink));
    assert_eq!(read_all(&b, "out/secret"), Err(StoreError::Symlink));
    assert_eq!(
        b.write(&rp("out/secret"), 0, b"pwned", Stability::Unstable),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.create_file(&rp("out"), &name("new"), 0o644, any, false),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.mkdir(&rp("up"), &name("new"), 0o755, any),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.symlink(&rp("out"), &name("new"), b"x", any),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        list_page(&b, &rp("etc"), &Start, 10),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        list_page(&b, &rp("out"), &Start, 10),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.remove(&rp("out"), &name("secret")),
        Err(StoreError::Symlink)
    );
    assert_eq!(b.sync_dir(&rp("out")), Err(StoreError::Symlink));

    // As the final component: read/write/truncate/create refuse it.
    assert_eq!(read_all(&b, "secret_link"), Err(StoreError::Symlink));
    assert_eq!(
        b.write(&rp("secret_link"), 0, b"pwned", Stability::FileSync),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.create_file(&root, &name("secret_link"), 0o644, any, false),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.create_file(&root, &name("secret_link"), 0o644, any, true),
        Err(StoreError::Exists)
    );
    assert_eq!(
        b.setattr(
            &rp("secret_link"),
            &SetAttrs {
                size: Some(0),
                ..Default::default()
            }
        ),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.setattr(
            &rp("secret_link"),
            &SetAttrs {
                mode: Some(0o777),
                ..Default::default()
            }
        ),
        Err(StoreError::Unsupported)
    );
    assert_eq!(b.commit(&rp("secret_link")), Err(StoreError::Symlink));
    // chown/utimes act on the link itself.
    let l = b
        .setattr(
            &rp("secret_link"),
            &SetAttrs {
                uid: Some(4242),
                mtime: Some(SetTime::Client(12345, 0)),
                ..Default::default()
            },
        )
        .expect("lchown");
    assert_eq!(
        (l.kind, l.uid, l.mtime.sec),
        (FileKind::Symlink, 4242, 12345)
    );
    // user.* xattrs don't exist on symlinks (xattr(7)), and are not followed.
    assert_eq!(
        b.getxattr(&rp("secret_link"), b"a"),
        Err(StoreError::NoXattr)
    );
    assert_eq!(b.listxattr(&rp("secret_link")), Ok(Vec::new()));
    assert_eq!(
        b.setxattr(&rp("secret_link"), b"a", b"b", XattrSet::Either),
        Err(StoreError::Perm)
    );

    // Hard link of a symlink links the symlink, not its target.
    let hl = b
        .link(&rp("secret_link"), &root, &name("hl"))
        .expect("link");
    assert_eq!((hl.kind, hl.nlink), (FileKind::Symlink, 2));
    // Rename into a symlinked directory is refused; a rename of the link
    // itself moves the link.
    assert_eq!(
        b.rename(&rp("sub"), &name("file"), &rp("out"), &name("file")),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.link(&rp("sub/file"), &rp("up"), &name("escaped")),
        Err(StoreError::Symlink)
    );
    b.rename(&root, &name("secret_link"), &rp("sub"), &name("moved"))
        .expect("rename link");
    assert_eq!(
        b.stat(&rp("sub/moved")).expect("stat").kind,
        FileKind::Symlink
    );
    // Removing the links removes links only.
    b.remove(&rp("sub"), &name("moved")).expect("remove link");
    b.remove(&root, &name("hl")).expect("remove link");
    b.remove(&root, &name("out")).expect("remove link");

    // Names that could walk are unrepresentable.
    for bad in [&b".."[..], b".", b"a/b", b"a\0b", b"", b"/"] {
        assert!(Name::new(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Name::new(b"../x"), Err(NameError::Slash));

    assert_eq!(
        std::fs::read(outside.join("secret")).expect("read"),
        b"secret"
    );
    outside_untouched(&outside);
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn directory_swapped_for_symlink() {
    let (top, outside, b) = hostile_export();
    let export = top.path().join("export");
    let any = Owner { uid: 99, gid: 99 };
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    new_file(&b, "d/f", b"data");

    // Deterministic swap: `d` becomes a symlink to the outside directory.
    std::fs::rename(export.join("d"), export.join("d.old")).expect("rename");
    symlink(&outside, export.join("d")).expect("symlink");
    assert_eq!(
        b.create_file(&rp("d"), &name("x"), 0o644, any, true),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.write(&rp("d/secret"), 0, b"pwned", Stability::Unstable),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.setattr(
            &rp("d/secret"),
            &SetAttrs {
                uid: Some(1),
                ..Default::default()
            }
        ),
        Err(StoreError::Symlink)
    );
    assert_eq!(
        b.remove(&rp("d"), &name("secret")),
        Err(StoreError::Symlink)
    );
    outside_untouched(&outside);

    // Racing swap: a thread flips `d` between a real directory and a
    // symlink to the outside while we hammer operations through `d/`.
    std::fs::remove_file(export.join("d")).expect("unlink");
    std::fs::rename(export.join("d.old"), export.join("d")).expect("restore");
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let flipper = {
        let (stop, flips) = (Arc::clone(&stop), Arc::clone(&flips));
        let (export, outside) = (export.clone(), outside.clone());
        std::thread::spawn(move || {
            let pause = std::time::Duration::from_micros(100);
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(export.join("d"), export.join("d.real"));
                let _ = symlink(&outside, export.join("d"));
                std::thread::sleep(pause);
                let _ = std::fs::remove_file(export.join("d"));
                let _ = std::fs::rename(export.join("d.real"), export.join("d"));
                std::thread::sleep(pause);
                flips.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut created, mut refused, mut i) = (0, 0, 0);
    // Run until both outcomes were seen many times (bounded).
    while (i < 3000 || flips.load(Ordering::Relaxed) < 200 || created < 50 || refused < 50)
        && i < 200_000
    {
        let n = name(&format!("x{i}"));
        match b.create_file(&rp("d"), &n, 0o644, any, false) {
            Ok(_) => created += 1,
            Err(StoreError::Symlink) => refused += 1,
            Err(_) => {}
        }
        let _ = b.write(&rp("d/secret"), 0, b"pwned", Stability::Unstable);
        let _ = b.write(&rp("d").join(&n), 0, b"pwned", Stability::Unstable);
        let _ = b.mkdir(&rp("d"), &name(&format!("dir{i}")), 0o755, any);
        let _ = b.setattr(
            &rp("d/secret"),
            &SetAttrs {
                mode: Some(0o777),
                ..Default::default()
            },
        );
        let _ = b.remove(&rp("d"), &name("secret"));
        let _ = b.rename(&RelPath::root(), &name("sub"), &rp("d"), &name("sub"));
        let _ = b.rename(&rp("d"), &name("sub"), &RelPath::root(), &name("sub"));
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().expect("flipper");
    eprintln!(
        "{} swaps, {i} rounds: {created} creates inside, {refused} refused (symlink)",
        flips.load(Ordering::Relaxed)
    );
    assert!(created > 0 && refused > 0, "race not exercised");
    outside_untouched(&outside);
}

// --- fd cache -----------------------------------------------------------------

#[test]
fn fd_cache_never_leaks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().canonicalize().expect("canonical");
    let before = fds_under(&path);
    assert_eq!(before, 0);
    {
        let b = LocalStore::with_fd_cache(&path, 64).expect("open");
        let root = RelPath::root();
        for i in 0..3000 {
            b.create_file(&root, &name(&format!("f{i}")), 0o644, ROOT, true)
                .expect("create");
        }
        let mut x: u64 = 12345;
        for op in 0..10_000u64 {
            // xorshift: a cheap deterministic spread over the 3 000 files.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = rp(&format!("f{}", x % 3000));
            match op % 5 {
                0 | 1 => {
                    b.write(&p, op, b"abc", Stability::Unstable).expect("write");
                }
                2 => {
                    b.read(&p, 0, 64, &mut Vec::new()).expect("read");
                }
                3 => {
                    b.setattr(
                        &p,
                        &SetAttrs {
                            size: Some(op % 7),
                            ..Default::default()
                        },
                    )
                    .expect("truncate");
                }
                _ => {
                    b.getxattr(&p, b"none").ok();
                    // fsync is slow on a journalled fs; a few suffice.
                    if op % 500 == 4 {
                        b.commit(&p).expect("fsync");
                    }
                }
            }
        }
        for i in (0..3000).step_by(3) {
            b.remove(&root, &name(&format!("f{i}"))).expect("remove");
        }
        let during = fds_under(&path);
        // 64 cached + the root fd.
        assert!(during <= 65, "{during} fds open with capacity 64");
    }
    assert_eq!(fds_under(&path), before, "fds leaked");
}

#[test]
fn concurrent_io_small_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Arc::new(LocalStore::with_fd_cache(dir.path(), 4).expect("open"));
    for i in 0..16 {
        new_file(&b, &format!("f{i}"), b"");
    }
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    let p = rp(&format!("f{}", (t * 7 + i) % 16));
                    // Each thread owns an 8-byte slot in every file.
                    b.write(
                        &p,
                        t * 8,
                        &(t * 1000 + i).to_le_bytes(),
                        Stability::Unstable,
                    )
                    .expect("write");
                    let mut buf = Vec::new();
                    b.read(&p, t * 8, 8, &mut buf).expect("read");
                    assert_eq!(buf, (t * 1000 + i).to_le_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
}

// --- readdir ------------------------------------------------------------------

#[test]
fn cookie_mapping() {
    for off in [0i64, 1, 2, 3, 12, 1 << 40, i64::MAX - 1, i64::MAX] {
        let c = offset_to_cookie(off).expect("representable");
        assert!(c > 2, "{off} -> {c}");
        assert_eq!(cookie_to_offset(c), Ok(Some(off)));
    }
    assert_eq!(offset_to_cookie(3), Some(3)); // identity on normal values
    assert_eq!(offset_to_cookie(i64::MAX), Some(i64::MAX as u64));
    assert_eq!(offset_to_cookie(0), Some(1 << 63));
    assert_eq!(offset_to_cookie(i64::MIN), None);
    assert_eq!(offset_to_cookie(i64::MIN + 2), None);
    assert_eq!(cookie_to_offset(0), Ok(None));
    assert_eq!(cookie_to_offset(1), Err(OsError::BadCookie));
    assert_eq!(cookie_to_offset(2), Err(OsError::BadCookie));
    // Listing positions: the start is cookie 0, offsets are cookies.
    assert_eq!(position_cookie(&Start), Ok(0));
    assert_eq!(position_cookie(&ListPos::Offset(3)), Ok(3));
    assert_eq!(position_cookie(&ListPos::Offset(1 << 63)), Ok(1 << 63));
    for bad in [0, 1, 2] {
        assert_eq!(
            position_cookie(&ListPos::Offset(bad)),
            Err(OsError::BadCookie)
        );
    }
    let key = ListPos::Key(Arc::from(&b"k"[..]));
    assert_eq!(position_cookie(&key), Err(OsError::BadCookie));
}

/// A listed entry, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: Vec<u8>,
    next: ListPos,
    object: u64,
    kind: FileKind,
}

/// Up to `max` entries of `dir` after `from` through [`Store::list`], and
/// whether the end was reached: the paging of READDIR.
fn list_page(
    b: &LocalStore,
    dir: &RelPath,
    from: &ListPos,
    max: usize,
) -> StoreResult<(Vec<Listed>, bool)> {
    let mut out = Vec::new();
    let mut unasked = 0;
    let eof = b.list(dir, from, false, &mut |e, attrs| {
        unasked += usize::from(attrs.is_some());
        if out.len() >= max {
            return false; // at least one more entry exists
        }
        out.push(Listed {
            name: e.name.to_vec(),
            next: e.next,
            object: e.object,
            kind: e.kind,
        });
        true
    })?;
    assert_eq!(unasked, 0, "attributes only when asked for");
    Ok((out, eof))
}

fn read_pages(b: &LocalStore, dir: &RelPath, page: usize) -> Vec<Listed> {
    let mut all = Vec::new();
    let mut from = Start;
    loop {
        let (ents, eof) = list_page(b, dir, &from, page).expect("list");
        assert!(ents.len() <= page);
        if let Some(last) = ents.last() {
            from = last.next.clone();
        }
        all.extend(ents);
        if eof {
            return all;
        }
    }
}

#[test]
fn readdir_paging() {
    let (_d, b) = setup();
    let root = RelPath::root();
    assert_eq!(list_page(&b, &root, &Start, 10), Ok((Vec::new(), true)));
    b.mkdir(&root, &name("d"), 0o755, ROOT).expect("mkdir");
    let d = rp("d");
    for i in 0..1500 {
        b.create_file(&d, &name(&format!("entry-{i:04}")), 0o644, ROOT, true)
            .expect("create");
    }
    b.symlink(&d, &name("link"), b"/etc", ROOT)
        .expect("symlink");
    b.mkdir(&d, &name("sub"), 0o755, ROOT).expect("mkdir");

    let all = read_pages(&b, &d, 100);
    assert_eq!(all.len(), 1502);
    let names: HashSet<_> = all.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.len(), 1502, "duplicates");
    assert!(!names.contains(b".".as_slice()) && !names.contains(b"..".as_slice()));
    assert!(all
        .iter()
        .all(|e| matches!(e.next, ListPos::Offset(c) if c > 2)));
    let cookies: HashSet<_> = all.iter().map(|e| e.next.clone()).collect();
    assert_eq!(cookies.len(), all.len(), "cookies must be distinct");
    for e in &all {
        let expect = match e.name.as_slice() {
            b"link" => FileKind::Symlink,
            b"sub" => FileKind::Directory,
            _ => FileKind::Regular,
        };
        assert_eq!(e.kind, expect);
        let ino = b
            .lookup(&d, &Name::new(&e.name).expect("name"))
            .expect("lookup")
            .identity
            .object;
        assert_eq!(e.object, ino);
    }
    // max_entries = 0 still reports whether anything is left.
    assert_eq!(list_page(&b, &d, &Start, 0), Ok((Vec::new(), false)));
    let last = all.last().expect("non-empty").next.clone();
    assert_eq!(list_page(&b, &d, &last, 10), Ok((Vec::new(), true)));
    for bad in [
        ListPos::Offset(0),
        ListPos::Offset(1),
        ListPos::Offset(2),
        ListPos::Key(Arc::from(&b"entry-0001"[..])),
    ] {
        assert_eq!(
            list_page(&b, &d, &bad, 10),
            Err(StoreError::BadPosition),
            "{bad:?}"
        );
    }
    assert_eq!(
        list_page(&b, &rp("d/entry-0001"), &Start, 10),
        Err(StoreError::NotDir)
    );

    // With attributes: each entry's own, read relative to the directory.
    let mut statted = 0;
    let eof = b
        .list(&d, &Start, true, &mut |e, attrs| {
            let a = attrs.expect("asked for").expect("lstat");
            assert_eq!((a.identity.object, a.kind), (e.object, e.kind));
            statted += 1;
            true
        })
        .expect("list with attributes");
    assert!(eof);
    assert_eq!(statted, 1502);
}

#[test]
fn list_skips_entries_gone_before_their_stat() {
    let (dir, b) = setup();
    for n in ["a", "b", "c"] {
        new_file(&b, n, b"");
    }
    // The first entry visited removes the others behind the store's back:
    // they were read already, so they vanish between listing and stat.
    let mut visited = Vec::new();
    let eof = b
        .list(&RelPath::root(), &Start, true, &mut |e, attrs| {
            assert!(matches!(attrs, Some(Ok(_))), "{attrs:?}");
            if visited.is_empty() {
                for n in ["a", "b", "c"] {
                    if n.as_bytes() != e.name {
                        std::fs::remove_file(dir.path().join(n)).expect("remove");
                    }
                }
            }
            visited.push(e.name.to_vec());
            true
        })
        .expect("list");
    assert!(eof);
    assert_eq!(visited.len(), 1, "{visited:?}");
}

#[test]
fn readdir_resume_under_churn() {
    let (_d, b) = setup();
    let root = RelPath::root();
    for i in 0..1500 {
        b.create_file(&root, &name(&format!("e{i}")), 0o644, ROOT, true)
            .expect("create");
    }
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    let mut from = Start;
    let mut round = 0;
    loop {
        let (ents, eof) = list_page(&b, &root, &from, 100).expect("list");
        if let Some(last) = ents.last() {
            from = last.next.clone();
        }
        seen.extend(ents.into_iter().map(|e| e.name));
        if eof {
            break;
        }
        // Between pages: delete some entries (seen or not) and add new ones.
        for j in 0..20 {
            let victim = format!("e{}", (round * 37 + j * 71) % 1500);
            if b.remove(&root, &name(&victim)).is_ok() {
                removed.insert(victim.into_bytes());
            }
            let _ = b.create_file(&root, &name(&format!("new{round}-{j}")), 0o644, ROOT, true);
        }
        round += 1;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was returned twice");
    // Every original entry that survived was returned exactly once.
    for i in 0..1500 {
        let n = format!("e{i}").into_bytes();
        if !removed.contains(&n) {
            assert!(unique.contains(&n), "surviving entry e{i} missed");
        }
    }
    eprintln!(
        "churn: {round} pages, {} removed, {} entries returned",
        removed.len(),
        seen.len()
    );
}

// --- leases and lock files ----------------------------------------------------

/// A lease break signals the holder with SIGIO, whose default action ends
/// the process; the daemon handles it, these tests hold leases themselves.
fn ignore_sigio() {
    // SAFETY: installs SIG_IGN for SIGIO; no handler code ever runs.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
}

/// Opens `path` the way a local process would, without waiting for a
/// lease to be broken.
fn local_open(path: &std::path::Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[test]
fn leases_report_local_opens_and_changes() {
    ignore_sigio();
    let (dir, b) = setup();
    let f = dir.path().join("f");
    new_file(&b, "f", b"data");
    assert_eq!(b.lease(&rp("f"), false, 9), Ok(true));
    assert_eq!(b.lease(&rp("f"), false, 9), Ok(true), "already held");
    assert_eq!(b.leases(), vec![(9, None)]);
    // A local reader does not conflict with a read lease; a local writer
    // is held back while the lease is broken.
    drop(local_open(&f, false).expect("local reader"));
    assert_eq!(b.leases(), vec![(9, None)]);
    let held = local_open(&f, true).expect_err("writer held back");
    assert_eq!(held.raw_os_error(), Some(libc::EWOULDBLOCK));
    assert_eq!(b.leases(), vec![(9, Some(LeaseBreak::Opened))]);
    b.unlease(9);
    assert_eq!(b.leases(), vec![]);
    drop(local_open(&f, true).expect("writer once released"));

    // A local chmod changes what the holder cached without an open.
    assert_eq!(b.lease(&rp("f"), false, 10), Ok(true));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(b.leases(), vec![(10, Some(LeaseBreak::Changed))]);
    b.unlease(10);
    // The store's own change does not count against its lease.
    assert_eq!(b.lease(&rp("f"), false, 11), Ok(true));
    let chmod = SetAttrs {
        mode: Some(0o640),
        ..Default::default()
    };
    b.setattr(&rp("f"), &chmod).expect("chmod");
    assert_eq!(b.leases(), vec![(11, None)]);
    b.unlease(11);

    // Only regular files take leases.
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    assert_eq!(b.lease(&rp("d"), false, 12), Ok(false));
    assert_eq!(b.leases(), vec![]);
}

#[test]
fn lock_files_under_the_stores_own_leases() {
    ignore_sigio();
    let (_d, b) = setup();
    new_file(&b, "f", b"data");
    let f = rp("f");
    // Under a write lease the first lock file is the leased description
    // itself, so the lease stays and no local opener gets in between.
    assert_eq!(b.lease(&f, true, 7), Ok(true));
    let first = b.open_lock_file(&f, false).expect("open").expect("some");
    assert!(first.writable());
    first.lock(0, 9, true).expect("write lock");
    assert_eq!(b.leases(), vec![(7, None)]);
    // A second owner needs a description of its own: the lease gives way.
    let second = b.open_lock_file(&f, true).expect("open").expect("some");
    assert_eq!(b.leases(), vec![]);
    match second.lock(5, 5, false) {
        Err(LockError::Conflict(c)) => assert_eq!((c.offset, c.length, c.write), (0, 10, true)),
        other => panic!("{other:?}"),
    }
    drop(first);
    second
        .lock(5, 5, false)
        .expect("free once the first owner is gone");

    // No read lease while a description is open for writing (a lock
    // file is one): no delegation may be granted then.
    assert_eq!(b.lease(&f, false, 8), Ok(false));
    drop(second);
    // Under a read lease a read-only description does not conflict; a
    // writable one releases the lease first.
    assert_eq!(b.lease(&f, false, 8), Ok(true));
    let reader = b.open_lock_file(&f, false).expect("open").expect("some");
    assert!(!reader.writable());
    assert_eq!(reader.lock(0, 0, true), Err(LockError::NotWritable));
    assert_eq!(b.leases(), vec![(8, None)]);
    let writer = b.open_lock_file(&f, true).expect("open").expect("some");
    assert!(writer.writable());
    assert_eq!(b.leases(), vec![]);

    assert_eq!(
        b.open_lock_file(&RelPath::root(), true).err(),
        Some(StoreError::IsDir)
    );
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    assert_eq!(
        b.open_lock_file(&rp("d"), false).err(),
        Some(StoreError::IsDir)
    );
}

/// A local process's lease on the file: the description opens only once
/// the kernel has broken it, so the store says "later", never EIO.
#[test]
fn lock_file_under_a_local_lease_is_transient() {
    ignore_sigio();
    let dir = tempfile::tempdir().expect("tempdir");
    // No descriptor cache: its writable descriptor would forbid the lease.
    let b = LocalStore::with_fd_cache(dir.path(), 0).expect("open store");
    new_file(&b, "f", b"data");
    let local = local_open(&dir.path().join("f"), false).expect("local open");
    // SAFETY: fcntl on a valid descriptor with integer arguments.
    let r = unsafe { libc::fcntl(local.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    assert_eq!(r, 0, "F_SETLEASE: {}", std::io::Error::last_os_error());

    let reader = b
        .open_lock_file(&rp("f"), false)
        .expect("open")
        .expect("some");
    assert!(!reader.writable(), "a reader does not break a read lease");
    match b.open_lock_file(&rp("f"), true) {
        Err(StoreError::Transient(why)) => eprintln!("transient: {why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.write(&rp("f"), 0, b"D", Stability::Unstable),
        Err(StoreError::Transient(_))
    ));

    // SAFETY: as above.
    let r = unsafe { libc::fcntl(local.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    assert_eq!(r, 0, "release: {}", std::io::Error::last_os_error());
    let writer = b
        .open_lock_file(&rp("f"), true)
        .expect("open")
        .expect("some");
    assert!(writer.writable());
}

#[test]
fn a_directory_too_large_to_cache_is_listed_page_by_page_once_known() {
    use std::collections::HashSet;
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    std::fs::create_dir(&big).expect("mkdir");
    // Long names, so that fewer files overflow the listing bound.
    let n = dircache::MAX_LISTING_BYTES / 248 + 300;
    for i in 0..n {
        std::fs::File::create(big.join(format!("{i:0200}"))).expect("create");
    }
    let b = LocalStore::open(dir.path()).expect("store");
    let p = RelPath::root().join(&Name::new(b"big").expect("name"));
    let (id, size) = {
        let a = b.stat(&p).expect("stat");
        (a.identity, a.size)
    };
    // Pages of 500 names, each resumed from the last one's position.
    let mut seen = HashSet::new();
    let mut from = ListPos::Start;
    let mut pages = 0;
    loop {
        let mut next = None;
        let mut count = 0;
        let eof = b
            .list(&p, &from, false, &mut |e, _| {
                assert!(seen.insert(e.name.to_vec()), "listed twice");
                next = Some(e.next.clone());
                count += 1;
                count < 500
            })
            .expect("list");
        pages += 1;
        if pages == 1 {
            assert!(
                b.dir_cache.known_too_large(id, size),
                "learnt on the first page"
            );
        }
        if eof {
            break;
        }
        from = next.expect("a page ends after an entry");
        assert!(pages < n, "no progress");
    }
    assert_eq!(seen.len(), n);
    assert!(pages > n / 500);
}

/// READs served from a pipe give the file's bytes at any offset: whole
/// when the pages fit the pipe, a short read (never claiming end of file)
/// when an unaligned 1 MiB needs one page more than the pipe holds, the
/// tail with end of file, and `None` where there is nothing to read. The
/// bytes reach a socket through `splice_to`, and emptied pipes are reused.
#[test]
fn piped_reads_match_the_file() {
    use std::io::Read;
    let (_d, b) = setup();
    let data: Vec<u8> = (0..(3 << 20) + 777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    new_file(&b, "big", &data);
    let p = rp("big");
    let cases: [(u64, usize); 5] = [
        (0, 1 << 20),
        (4096, 1 << 20),
        (1, 1 << 20),
        (3 << 20, 100_000),
        (12_345, 50_000),
    ];
    for (off, len) in cases {
        let (mut piped, eof) = b
            .read_piped(&p, off, len)
            .expect("piped read")
            .expect("a local file can be piped");
        let n = piped.len();
        assert!(n > 0 && n <= len, "at {off}: {n} bytes");
        let end = (off as usize + len).min(data.len());
        if n < end - off as usize {
            assert!(!eof, "at {off}: short, yet end of file");
            assert!(
                n >= len - 8192,
                "at {off}: short by more than a page or two: {n}"
            );
        } else {
            assert_eq!(eof, end == data.len(), "at {off}: end of file");
        }
        let got = piped.read_out().expect("read the pipe out");
        assert_eq!(&got[..], &data[off as usize..off as usize + n], "at {off}");
    }
    assert!(b
        .read_piped(&p, data.len() as u64, 10)
        .expect("at end")
        .is_none());
    assert!(b
        .read_piped(&p, u64::MAX, 10)
        .expect("past any size")
        .is_none());

    // splice_to a socket: what arrives is the file's bytes.
    let (tx, mut rx) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let (mut piped, _) = b
        .read_piped(&p, 8192, 200_000)
        .expect("read")
        .expect("piped");
    let reader = std::thread::spawn(move || {
        let mut got = vec![0; 200_000];
        rx.read_exact(&mut got).map(|_| got)
    });
    while !piped.is_empty() {
        match piped.splice_to(tx.as_fd()) {
            Ok(k) => assert!(k > 0),
            Err(e) => panic!("splice to the socket: {e}"),
        }
    }
    assert_eq!(
        reader.join().expect("reader").expect("read"),
        &data[8192..208_192]
    );
    drop(piped);

    // A pipe dropped with bytes in it is closed, not kept; emptied ones are
    // reused, and none stay counted as in use.
    let (half, _) = b.read_piped(&p, 0, 1 << 20).expect("read").expect("piped");
    drop(half);
    for _ in 0..3 {
        let (mut x, _) = b.read_piped(&p, 0, 1 << 20).expect("read").expect("piped");
        x.read_out().expect("drain");
    }
    assert_eq!(b.pipes_in_use(), 0);
}

/// Every entry's attributes as a listing with attributes reports them.
fn listed_attrs(b: &LocalStore, dir: &str) -> HashMap<Vec<u8>, Attrs> {
    let mut out = HashMap::new();
    let eof = b
        .list(&rp(dir), &Start, true, &mut |e, attrs| {
            out.insert(e.name.to_vec(), attrs.expect("asked for").expect("lstat"));
            true
        })
        .expect("list");
    assert!(eof);
    out
}

/// Asserts that a listing of `dir` reports, for each entry, what a fresh
/// lstat of it reports now (atime aside: the listing's own stats of the
/// files do not move it, but a reader in between may).
fn assert_listing_fresh(b: &LocalStore, dir: &str, why: &str) {
    for (n, mut a) in listed_attrs(b, dir) {
        let path = format!("{dir}/{}", String::from_utf8_lossy(&n));
        let now = b.stat(&rp(&path)).expect("stat");
        a.atime = now.atime;
        assert_eq!(a, now, "{why}: {path}");
    }
}

#[test]
fn readdir_attributes_follow_every_change() {
    let (tmp, b) = setup();
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    for n in ["a", "b", "c", "h"] {
        new_file(&b, &format!("d/{n}"), b"data");
    }
    b.link(&rp("d/h"), &rp("d"), &name("h2")).expect("link");
    b.mkdir(&rp("d"), &name("sub"), 0o755, ROOT).expect("mkdir");
    let local = |n: &str| tmp.path().join("d").join(n);

    assert_listing_fresh(&b, "d", "first listing");
    // Only files with one link are cached: a, b, c (not h, h2, sub).
    assert_eq!(b.attr_cache.len(), 3);
    assert_listing_fresh(&b, "d", "listed from the cache");

    // Local processes' changes, each through the kernel alone.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(local("a"))
        .expect("open")
        .write_all(b"more")
        .expect("append");
    assert_listing_fresh(&b, "d", "local append");
    std::fs::set_permissions(local("b"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_listing_fresh(&b, "d", "local chmod");
    std::os::unix::fs::chown(local("c"), Some(7), Some(8)).expect("chown");
    assert_listing_fresh(&b, "d", "local chown");
    std::fs::File::options()
        .write(true)
        .open(local("a"))
        .expect("open")
        .set_len(1)
        .expect("truncate");
    assert_listing_fresh(&b, "d", "local truncate");
    std::fs::write(local("x"), b"replacement").expect("write x");
    std::fs::rename(local("x"), local("b")).expect("rename over b");
    assert_listing_fresh(&b, "d", "local rename over");
    std::fs::remove_file(local("c")).expect("unlink");
    assert!(!listed_attrs(&b, "d").contains_key(b"c".as_slice()));
    std::fs::write(local("sub/inner"), b"x").expect("write in sub");
    assert_listing_fresh(&b, "d", "an entry created in a child directory");

    // Changes through the store itself.
    b.write(&rp("d/a"), 100, b"far", Stability::Unstable)
        .expect("write");
    assert_listing_fresh(&b, "d", "store write");
    b.link(&rp("d/a"), &RelPath::root(), &name("a-elsewhere"))
        .expect("link");
    assert_eq!(listed_attrs(&b, "d")[b"a".as_slice()].nlink, 2);
    assert_listing_fresh(&b, "d", "store link into another directory");
}

#[test]
fn readdir_attributes_age_out_and_raced_stats_are_not_kept() {
    let (tmp, b) = setup();
    new_file(&b, "f", b"1");
    let root = b.open_dir_readable(&RelPath::root()).expect("open root");
    let id = b.stat(&RelPath::root()).expect("stat").identity;
    let a = b.stat(&rp("f")).expect("stat");
    let t0 = Instant::now();

    let s = b.attr_cache.begin(id, root.as_fd()).expect("inotify here");
    b.attr_cache.put(&s, b"f", &a, t0);
    assert_eq!(b.attr_cache.get(&s, b"f", a.fileid(), t0), Some(a.clone()));
    // Another inode at the name: not these attributes.
    assert_eq!(b.attr_cache.get(&s, b"f", a.fileid() + 1, t0), None);
    // Older than MAX_AGE: read again, whatever inotify says.
    let late = t0 + crate::attrcache::MAX_AGE;
    assert_eq!(b.attr_cache.get(&s, b"f", a.fileid(), late), None);

    // A listing that read `f` before a change it did not see: once another
    // listing drained that change's event, the old read is not kept.
    let s1 = b.attr_cache.begin(id, root.as_fd()).expect("session");
    assert_eq!(b.attr_cache.len(), 1);
    std::fs::write(tmp.path().join("f"), b"changed").expect("write");
    let s2 = b.attr_cache.begin(id, root.as_fd()).expect("session");
    assert_eq!(b.attr_cache.len(), 0, "the event voided f");
    b.attr_cache.put(&s1, b"f", &a, t0);
    assert_eq!(b.attr_cache.get(&s2, b"f", a.fileid(), t0), None);
}

#[test]
fn readdir_attributes_dropped_when_events_overflow() {
    let (tmp, b) = setup();
    b.mkdir(&RelPath::root(), &name("d"), 0o755, ROOT)
        .expect("mkdir");
    for n in ["p", "q"] {
        new_file(&b, &format!("d/{n}"), b"");
    }
    listed_attrs(&b, "d");
    assert_eq!(b.attr_cache.len(), 2);
    // Alternating writes to two files defeat the kernel's merging of
    // identical events, so the queue overflows.
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .expect("inotify limit")
        .trim()
        .parse()
        .expect("number");
    let mut p = std::fs::File::create(tmp.path().join("d/p")).expect("p");
    let mut q = std::fs::File::create(tmp.path().join("d/q")).expect("q");
    use std::io::Write;
    for _ in 0..limit / 2 + 16 {
        p.write_all(b"p").expect("write p");
        q.write_all(b"q").expect("write q");
    }
    // Any listing drains the queue; the overflow drops everything.
    listed_attrs(&b, "");
    assert_eq!(
        listed_attrs(&b, "d")[b"p".as_slice()].size,
        (limit / 2 + 16) as u64
    );
    assert_listing_fresh(&b, "d", "after an overflow");
}

#[test]
fn readdir_attribute_watches_are_bounded() {
    let (_tmp, b) = setup();
    for i in 0..crate::attrcache::MAX_DIRS + 5 {
        let d = format!("d{i}");
        b.mkdir(&RelPath::root(), &name(&d), 0o755, ROOT)
            .expect("mkdir");
        new_file(&b, &format!("{d}/f"), b"x");
        listed_attrs(&b, &d);
        assert!(b.attr_cache.watched() <= crate::attrcache::MAX_DIRS);
    }
    assert_eq!(b.attr_cache.watched(), crate::attrcache::MAX_DIRS);
    assert_eq!(b.attr_cache.len(), crate::attrcache::MAX_DIRS);
}

/// `sys::cached` (cachestat(2)), which decides whether a READ counts as a
/// wait for the disk: pages just written are held; a range past the end
/// of the file is not; after the pages were dropped from the cache it
/// agrees with the kernel's own answer, a `preadv2(RWF_NOWAIT)` that
/// fails with EAGAIN exactly when the read would wait.
#[test]
fn cached_tells_reads_served_from_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    let data = vec![7u8; 64 << 10];
    std::fs::write(&path, &data).unwrap();
    let file = File::open(&path).unwrap();
    let fd = file.as_fd();
    if !sys::cached(fd, 0, 1) {
        // cachestat(2) is Linux 6.5 or later: before, every read counts
        // as one that may wait, which is the safe side.
        // SAFETY: null range and result pointers: the kernel either fails
        // with EFAULT (the call exists) or ENOSYS, and writes nothing.
        let supported =
            unsafe { libc::syscall(sys::SYS_CACHESTAT, fd.as_raw_fd(), 0usize, 0usize, 0u32) };
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS),
            "pages just written are in the cache ({supported})"
        );
        return;
    }
    assert!(sys::cached(fd, 0, data.len()));
    assert!(sys::cached(fd, 4096, 100));
    assert!(sys::cached(fd, 0, 0));
    assert!(!sys::cached(fd, 0, data.len() + 8192), "past the end");
    assert!(!sys::cached(fd, u64::MAX - 10, 100), "overflowing range");
    // Drop the clean pages (tmpfs keeps them: they are the file).
    file.sync_all().unwrap();
    // SAFETY: a valid descriptor; advice only.
    unsafe { libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut buf = vec![0u8; data.len()];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let held = sys::cached(fd, 0, data.len());
    // SAFETY: `iov` points at `buf`, live and writable for its length.
    let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    let would_wait = n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
    let partial = n >= 0 && (n as usize) < data.len();
    assert_eq!(
        held,
        !would_wait && !partial,
        "cachestat and RWF_NOWAIT agree (read {n})"
    );
}

/// Large writes to one file take turns in user space (`WriteTurns`), small
/// ones and those to other files do not wait for them: from many threads
/// at once, every byte lands where it was written, a sync write included.
#[test]
fn concurrent_large_and_small_writes_all_land() {
    let (_d, b) = setup();
    new_file(&b, "one", b"");
    new_file(&b, "two", b"");
    const CHUNK: usize = 2 * LARGE_WRITE;
    const THREADS: usize = 8;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let b = &b;
            s.spawn(move || {
                let fill = vec![t as u8 + 1; CHUNK];
                let at = (t * CHUNK) as u64;
                let sync = if t == 0 {
                    Stability::FileSync
                } else {
                    Stability::Unstable
                };
                assert_eq!(
                    b.write(&rp("one"), at, &fill, sync).expect("large write"),
                    (CHUNK, sync)
                );
                b.write(&rp("two"), at, &fill, Stability::Unstable)
                    .expect("large write, other file");
                // A small write into the same file, inside this thread's
                // own region, while other threads write large ones.
                b.write(&rp("one"), at + 7, &[0xee; 100], Stability::Unstable)
                    .expect("small write");
            });
        }
    });
    for (path, small) in [("one", true), ("two", false)] {
        let mut data = Vec::new();
        let (n, eof) = b
            .read(&rp(path), 0, THREADS * CHUNK, &mut data)
            .expect("read");
        assert!(eof);
        assert_eq!((n, data.len()), (THREADS * CHUNK, THREADS * CHUNK));
        for (t, chunk) in data.chunks(CHUNK).enumerate() {
            for (i, &byte) in chunk.iter().enumerate() {
                let want = if small && (7..107).contains(&i) {
                    0xee
                } else {
                    t as u8 + 1
                };
                assert_eq!(byte, want, "{path}: byte {i} of thread {t}'s region");
            }
        }
    }
}

/// A WRITE's data spliced from a socket into a pipe, then from the pipe
/// into the file, lands exactly where it was written: bytes pushed into
/// the pipe first (those that arrived with the request's header), then
/// bytes spliced from the socket, at an offset inside a page.
#[test]
fn piped_write_from_a_socket_lands_exactly() {
    use std::io::Write as _;
    let (_d, b) = setup();
    new_file(&b, "f", b"0123456789");
    let pipes = crate::Pipes::new(1 << 20);
    let mut pipe = pipes.take().expect("a pipe");
    let head: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
    let body: Vec<u8> = (0..700_000).map(|i| (i * 3 % 251) as u8).collect();
    pipe.push(&head).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (rx, _) = listener.accept().unwrap();
    rx.set_nonblocking(true).unwrap();
    let sender = {
        let body = body.clone();
        std::thread::spawn(move || tx.write_all(&body))
    };
    let mut got = 0;
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while got < body.len() {
        match pipe.fill_from_socket(rx.as_fd(), body.len() - got) {
            Ok(0) => panic!("end of stream after {got} bytes"),
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    crate::socket_pending(rx.as_fd()).unwrap() == 0,
                    "the pipe filled after {got} bytes"
                );
                assert!(Instant::now() < deadline, "no data after {got} bytes");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("splice from the socket: {e}"),
        }
    }
    sender.join().unwrap().unwrap();
    assert_eq!(PipedSource::len(&pipe), head.len() + body.len());
    let (n, st) = b
        .write_piped(&rp("f"), 4099, &mut pipe, Stability::Unstable)
        .unwrap();
    assert_eq!((n, st), (head.len() + body.len(), Stability::Unstable));
    assert!(PipedSource::is_empty(&pipe));
    let mut want = b"0123456789".to_vec();
    want.resize(4099, 0);
    want.extend_from_slice(&head);
    want.extend_from_slice(&body);
    assert!(read_all(&b, "f").unwrap() == want, "file content differs");
    drop(pipe);
}
