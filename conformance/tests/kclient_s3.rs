//! The Linux kernel client's workload (`kclient/workload.sh`) over an S3
//! export: nfs4d serves a prefix of a bucket on s3s-fs, a real S3 server
//! started here on loopback, and the guest runs every check except those
//! `kclient/skip-s3.txt` lists with its reason: what the store cannot do
//! (hard links, holes, link counts) and two limits of the test server.
//! The whole workload on NFSv4.1, the data-path checks on 4.2; 4.0 adds
//! nothing the store sees. The host-lock checks of `kclient.rs` do not apply: an S3 export
//! has no backing file a local process could lock.
//!
//! The out-of-band test mounts the export in the guest, and while the
//! guest holds handles and cached attributes, this process, as another S3
//! client, rewrites, deletes and renames the objects under it
//! (`kclient/s3_oob_checks.sh` says what the guest must then see).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nfs4d_conformance::{in_ci, kernel_client_tools_present, one_guest, s3_export_toml, Nfs4d};
use nfs4d_testkit::s3s::{self, S3sFs};

/// False (a loud skip) without s3s-fs; a failure in CI.
fn s3s_fs_present() -> bool {
    if s3s::binary().is_some() {
        return true;
    }
    let msg = format!("s3s-fs not installed ({})", s3s::INSTALL);
    assert!(!in_ci(), "{msg}");
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    false
}

/// The 4.2 run: the checks whose data path differs from 4.1 (reads,
/// writes, truncation and overwrite, which 4.2 clients may send with
/// other operations), plus renames and coherency. The full workload runs
/// on 4.1; CI time is short.
const V42_CHECKS: &str = "write_read append rename_same_dir rename_overwrite rename_dir symlink chmod \
    truncate large_file random_overwrite tar_extract concurrent_append two_client_coherency create_excl";

fn run_version(vers: &str, only: Option<&str>) {
    if !s3s_fs_present() {
        return;
    }
    let _guard = one_guest();
    let tmp = tempfile::tempdir().expect("temp dir");
    let s3 = S3sFs::start(&tmp.path().join("s3"), &["bkt"]).expect("start s3s-fs");
    let srv = Nfs4d::start_config(&s3s_fs_export(&s3, "kclient"), &s3.env());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kclient");
    let mut cmd = Command::new("bash");
    cmd.arg(dir.join("run.sh"))
        .args(["--port", &srv.port.to_string(), "--vers", vers])
        // As kclient.rs: minutes on a busy 2-core machine.
        .args(["--timeout", "600"]);
    match only {
        Some(checks) => cmd.args(["--only", checks]),
        None => cmd.arg("--skip").arg(dir.join("skip-s3.txt")),
    };
    let out = cmd.output().expect("run kclient/run.sh");
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
    let listed = match only {
        Some(_) => 0,
        None => std::fs::read_to_string(dir.join("skip-s3.txt"))
            .expect("skip list")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count(),
    };
    assert_eq!(skipped, listed, "skipped checks");
}

/// The configuration of an S3 export of `prefix` on the test server.
fn s3s_fs_export(s3: &S3sFs, prefix: &str) -> String {
    s3_export_toml(
        &s3.endpoint(),
        "bkt",
        prefix,
        // s3s-fs never lists directory markers and answers a HEAD of a
        // directory key with 500: one retry, not four, before such a key
        // counts as absent (docs/objectstore.md).
        "list_markers = false\nretries = 1",
    )
}

#[test]
fn kernel_client_over_s3_v41() {
    if kernel_client_tools_present() {
        run_version("4.1", None);
    }
}

#[test]
fn kernel_client_over_s3_v42() {
    if kernel_client_tools_present() {
        run_version("4.2", Some(V42_CHECKS));
    }
}

/// Another S3 client on `bucket` of `s3`.
fn other_client(s3: &S3sFs, bucket: &str) -> opendal::Operator {
    let b = opendal::services::S3::default()
        .bucket(bucket)
        .endpoint(&s3.endpoint())
        .region("us-east-1")
        .access_key_id(s3s::ACCESS_KEY)
        .secret_access_key(s3s::SECRET_KEY)
        .disable_config_load()
        .disable_ec2_metadata();
    let op = opendal::Operator::new(b).expect("operator");
    let t = opendal::HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::from(
        reqwest::Client::new(),
    ));
    op.clone().with_context(op.context().with_http_transport(t))
}

/// The host's part of `s3-oob`: under `dir` (keys of the export's
/// prefix), rewrite `rw`, delete `del`, rename `mv` to `moved` the way S3
/// clients rename (copy, then delete) and upload `new`.
fn change_behind_the_server(op: &opendal::Operator, dir: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let k = |n: &str| format!("{dir}/{n}");
        op.write(&k("rw"), b"NEW\n".to_vec()).await?;
        op.delete(&k("del")).await?;
        op.copy(&k("mv"), &k("moved")).await?;
        op.delete(&k("mv")).await?;
        op.write(&k("new"), b"outside\n".to_vec()).await?;
        Ok::<(), opendal::Error>(())
    })
    .map_err(|e| e.to_string())
}

/// The console log of the run under `log_dir`, once run.sh has made it.
fn console(log_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(log_dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join("console.log"))
        .find(|p| p.exists())
}

#[test]
fn kernel_client_sees_another_s3_clients_changes() {
    if !kernel_client_tools_present() || !s3s_fs_present() {
        return;
    }
    let _guard = one_guest();
    let tmp = tempfile::tempdir().expect("temp dir");
    let s3 = S3sFs::start(&tmp.path().join("s3"), &["bkt"]).expect("start s3s-fs");
    let srv = Nfs4d::start_config(&s3s_fs_export(&s3, "oob"), &s3.env());
    let other = other_client(&s3, "bkt");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kclient");
    let ctl = tmp.path().join("serial2");
    for end in ["in", "out"] {
        let st = Command::new("mkfifo")
            .arg(ctl.with_extension(end))
            .status()
            .expect("mkfifo");
        assert!(st.success(), "mkfifo");
    }
    let log_dir = tmp.path().join("logs");
    let mut run = Command::new("bash")
        .arg(dir.join("run.sh"))
        .args(["--port", &srv.port.to_string(), "--vers", "4.2"])
        .args(["--timeout", "300", "--extra"])
        .arg(dir.join("s3_oob_checks.sh"))
        .arg("--serial2")
        .arg(&ctl)
        .arg("--log-dir")
        .arg(&log_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kclient/run.sh");
    // qemu holds serial2.out open for writing: drain it so the guest can
    // never block on a full FIFO.
    let out_fifo = ctl.with_extension("out");
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::File::open(out_fifo) {
            let mut sink = Vec::new();
            let _ = f.read_to_end(&mut sink);
        }
    });
    // Answer the guest's one sync step, bounded in time like the run.
    let deadline = Instant::now() + Duration::from_secs(360);
    let mut answered = false;
    while !answered && matches!(run.try_wait(), Ok(None)) {
        assert!(Instant::now() < deadline, "no KCLIENT-SYNC from the guest");
        let text = console(&log_dir)
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("KCLIENT-SYNC s3-oob ")) {
            let rel = line.trim_start_matches("KCLIENT-SYNC s3-oob ").trim();
            let answer = match change_behind_the_server(&other, &format!("oob/{rel}")) {
                Ok(()) => "go".to_string(),
                Err(e) => format!("fail {e}").chars().take(250).collect(),
            };
            std::fs::write(ctl.with_extension("in"), format!("{answer}\n"))
                .expect("answer the guest");
            answered = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run.wait_with_output().expect("run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if out.status.code() == Some(2) && !in_ci() && stderr.contains("download") {
        eprintln!("\n*** SKIPPED: the kernel could not be fetched:\n{stderr} ***\n");
        return;
    }
    let info = console(&log_dir)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("INFO oob"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{info}");
    assert!(
        answered,
        "the guest never reached its sync step\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "out-of-band changes under the kernel client: checks failed (exit {:?})\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status.code(),
        srv.log()
    );
}
