//! libnfs (Debian `libnfs-utils`) against nfs4d: a 64 MiB random file
//! written through libnfs, read back byte-identical with `nfs-cp` and
//! `nfs-cat`, and listed with `nfs-ls`.
//!
//! The write goes through libnfs's API (`libnfs/nfs_put.py`) in 3 KiB
//! chunks rather than through `nfs-cp`: libnfs 4.0.0, Debian 12's, encodes
//! NFSv4 calls into a fixed 4 KiB buffer and so cannot send a larger WRITE
//! to any server (docs/conformance.md).

use std::io::Write;
use std::process::Command;

use nfs4d_conformance::{require_tool, Nfs4d};

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
    if !require_tool("nfs-cp", "libnfs-utils") {
        return;
    }
    let srv = Nfs4d::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("random.bin");
    let data = random_bytes(64 << 20, 0x9e37_79b9_7f4a_7c15);
    std::fs::File::create(&src)
        .unwrap()
        .write_all(&data)
        .unwrap();

    let put = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("libnfs/nfs_put.py");
    if !require_tool("python3", "python3") {
        return;
    }
    run(Command::new("python3")
        .arg(put)
        .arg(&src)
        .arg(srv.url("random.bin")));
    // What reached the backing store is what was sent…
    let stored = std::fs::read(srv.export.join("random.bin")).unwrap();
    assert!(
        stored == data,
        "backing file differs from the source ({} vs {} bytes)",
        stored.len(),
        data.len()
    );

    // …and what comes back over NFS is the same again.
    let back = tmp.path().join("back.bin");
    run(Command::new("nfs-cp").arg(srv.url("random.bin")).arg(&back));
    let got = std::fs::read(&back).unwrap();
    assert!(
        got == data,
        "read back {} bytes that differ from the 64 MiB written",
        got.len()
    );

    std::fs::create_dir(srv.export.join("sub")).unwrap();
    std::fs::write(srv.export.join("sub/small.txt"), b"hello\n").unwrap();
    let ls = run(Command::new("nfs-ls").arg(srv.url("")));
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listing.contains("random.bin"),
        "listing lacks random.bin:\n{listing}"
    );
    assert!(listing.contains("sub"), "listing lacks sub:\n{listing}");
    assert!(
        listing.contains(&(64u64 << 20).to_string()),
        "listing lacks the size:\n{listing}"
    );

    let cat = run(Command::new("nfs-cat").arg(srv.url("sub/small.txt")));
    assert_eq!(cat.stdout, b"hello\n");
}
