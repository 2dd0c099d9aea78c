//! The Linux kernel client's workload (`kclient/workload.sh`) over an S3
//! export: nfs4d serves a prefix of a bucket on s3s-fs, a real S3 server
//! started here on loopback, and the guest runs every check except those
//! `kclient/skip-s3.txt` lists with the store capability that rules each
//! out (hard links, holes). NFSv4.1 and 4.2; 4.0 adds nothing the store
//! sees. The host-lock checks of `kclient.rs` do not apply: an S3 export
//! has no backing file a local process could lock.

use std::path::Path;
use std::process::Command;

use nfs4d_conformance::{in_ci, kernel_client_tools_present, one_guest, s3_export_toml, Nfs4d};
use nfs4d_testkit::s3s::{self, S3sFs};

fn run_version(vers: &str) {
    if s3s::binary().is_none() {
        let msg = format!("s3s-fs not installed ({})", s3s::INSTALL);
        assert!(!in_ci(), "{msg}");
        eprintln!("\n*** SKIPPED: {msg} ***\n");
        return;
    }
    let _guard = one_guest();
    let tmp = tempfile::tempdir().expect("temp dir");
    let s3 = S3sFs::start(&tmp.path().join("s3"), &["bkt"]).expect("start s3s-fs");
    let srv = Nfs4d::start_config(
        &s3_export_toml(&s3.endpoint(), "bkt", "kclient", "list_markers = false"),
        &s3.env(),
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kclient");
    let out = Command::new("bash")
        .arg(dir.join("run.sh"))
        .args(["--port", &srv.port.to_string(), "--vers", vers])
        // As kclient.rs: minutes on a busy 2-core machine.
        .args(["--timeout", "480", "--skip"])
        .arg(dir.join("skip-s3.txt"))
        .output()
        .expect("run kclient/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if out.status.code() == Some(2) && !in_ci() && stderr.contains("download") {
        eprintln!("\n*** SKIPPED vers={vers}: the kernel could not be fetched:\n{stderr} ***\n");
        return;
    }
    assert!(
        out.status.success(),
        "kernel client over S3 vers={vers}: checks failed (exit {:?})\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status.code(),
        srv.log()
    );
    // Only the listed checks were skipped.
    let skipped = stdout.lines().filter(|l| l.contains(" SKIP ")).count();
    let listed = std::fs::read_to_string(dir.join("skip-s3.txt"))
        .expect("skip list")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(skipped, listed, "skipped checks");
}

#[test]
fn kernel_client_over_s3_v41() {
    if kernel_client_tools_present() {
        run_version("4.1");
    }
}

#[test]
fn kernel_client_over_s3_v42() {
    if kernel_client_tools_present() {
        run_version("4.2");
    }
}
