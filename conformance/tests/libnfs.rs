//! libnfs (Debian `libnfs-utils`) against nfs4d: a 64 MiB random file
//! written through libnfs, read back byte-identical with `nfs-cp` and
//! `nfs-cat`, and listed with `nfs-ls`; the same (16 MiB, so a multipart
//! upload) over an S3 export on s3s-fs, a real S3 server on loopback.
//!
//! The write goes through libnfs's API (`libnfs/nfs_put.py`) in 3 KiB
//! chunks rather than through `nfs-cp`: libnfs 4.0.0, Debian 12's, encodes
//! NFSv4 calls into a fixed 4 KiB buffer and so cannot send a larger WRITE
//! to any server (docs/conformance.md).

use std::io::Write;
use std::process::Command;

use std::path::Path;

use nfs4d_conformance::{in_ci, require_tool, s3_export_toml, Nfs4d};
use nfs4d_testkit::s3s::{self, S3sFs};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run libnfs tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn libnfs_roundtrips_64_mib_and_lists() {
    if !require_tool("nfs-cp", "libnfs-utils") || !require_tool("python3", "python3") {
        return;
    }
    let srv = Nfs4d::start(&[]);
    let export = srv.export.clone();
    roundtrip(
        &srv,
        64 << 20,
        |name| std::fs::read(export.join(name)).unwrap(),
        |name, data| {
            let p = export.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        },
    );
}

#[test]
fn libnfs_over_s3_roundtrips_and_lists() {
    if !require_tool("nfs-cp", "libnfs-utils") || !require_tool("python3", "python3") {
        return;
    }
    if s3s::binary().is_none() {
        let msg = format!("s3s-fs not installed ({})", s3s::INSTALL);
        assert!(!in_ci(), "{msg}");
        eprintln!("\n*** SKIPPED: {msg} ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3sFs::start(&tmp.path().join("s3"), &["bkt"]).expect("start s3s-fs");
    // 5 MiB parts: the 16 MiB file goes up as a multipart upload.
    let srv = Nfs4d::start_config(
        &s3_export_toml(
            &s3.endpoint(),
            "bkt",
            "libnfs",
            "list_markers = false\npart_size = 5242880",
        ),
        &s3.env(),
    );
    let bucket = s3.root.join("bkt/libnfs");
    roundtrip(
        &srv,
        16 << 20,
        // s3s-fs keeps each object as a file: what reached the bucket.
        |name| std::fs::read(bucket.join(name)).unwrap(),
        // An object another tool put in the bucket (no s3fs metadata).
        |name, data| {
            let p = bucket.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        },
    );
}

/// Writes `size` random bytes through libnfs, checks what `stored` says
/// the backing store got and what `nfs-cp` reads back, then lists the
/// export and reads a small file `place` put there behind the server.
fn roundtrip(
    srv: &Nfs4d,
    size: usize,
    stored: impl Fn(&str) -> Vec<u8>,
    place: impl Fn(&str, &[u8]),
) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("random.bin");
    let data = random_bytes(size, 0x9e37_79b9_7f4a_7c15);
    std::fs::File::create(&src)
        .unwrap()
        .write_all(&data)
        .unwrap();

    let put = Path::new(env!("CARGO_MANIFEST_DIR")).join("libnfs/nfs_put.py");
    run(Command::new("python3")
        .arg(put)
        .arg(&src)
        .arg(srv.url("random.bin")));
    // What reached the backing store is what was sent…
    let got = stored("random.bin");
    assert!(
        got == data,
        "the store holds {} bytes that differ from the {} sent",
        got.len(),
        data.len()
    );

    // …and what comes back over NFS is the same again.
    let back = tmp.path().join("back.bin");
    run(Command::new("nfs-cp").arg(srv.url("random.bin")).arg(&back));
    let got = std::fs::read(&back).unwrap();
    assert!(
        got == data,
        "read back {} bytes that differ from the {} written",
        got.len(),
        data.len()
    );

    place("sub/small.txt", b"hello\n");
    let ls = run(Command::new("nfs-ls").arg(srv.url("")));
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listing.contains("random.bin"),
        "listing lacks random.bin:\n{listing}"
    );
    assert!(listing.contains("sub"), "listing lacks sub:\n{listing}");
    assert!(
        listing.contains(&size.to_string()),
        "listing lacks the size:\n{listing}"
    );

    let cat = run(Command::new("nfs-cat").arg(srv.url("sub/small.txt")));
    assert_eq!(cat.stdout, b"hello\n");
}
