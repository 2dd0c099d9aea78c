//! The Linux kernel NFS client, booted under qemu, mounts nfs4d with
//! vers=4.0, 4.1 and 4.2 and runs the workload of `kclient/workload.sh`
//! (see `kclient/README.md`). Each check is reported by name.

use std::path::Path;
use std::process::Command;

use nfs4d_conformance::{in_ci, kernel_client_tools_present, Nfs4d};

/// One guest at a time: TCG emulation is CPU-bound and the machine small.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_version(vers: &str) {
    let _guard = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let srv = Nfs4d::start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kclient/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args([
            "--port",
            &srv.port.to_string(),
            "--vers",
            vers,
            "--timeout",
            "240",
        ])
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
        "kernel client vers={vers}: checks failed (exit {:?})\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status.code(),
        srv.log()
    );
}

#[test]
fn kernel_client_v40() {
    if kernel_client_tools_present() {
        run_version("4.0");
    }
}

#[test]
fn kernel_client_v41() {
    if kernel_client_tools_present() {
        run_version("4.1");
    }
}

#[test]
fn kernel_client_v42() {
    if kernel_client_tools_present() {
        run_version("4.2");
    }
}
