//! Delegations with the Linux kernel client, through `kclient/deleg.sh`:
//! the guest writes files under write delegations, and a second NFS
//! client (libnfs's `nfs-cat` on the host) or a local process on the host
//! (`cat` of the backing file, which the server's file lease holds back)
//! opens each of them, while the guest still holds the file open or after
//! it has closed it. The server must recall the delegation, the guest
//! return it, and the reader get through in seconds (not the kernel's 45 s
//! lease-break-time), and the reader must see all of the guest's data once
//! the guest has closed the file. (Linux 6.1 returns a recalled delegation
//! without writing back a still-open file's dirty pages; see
//! kclient/README.md.)
//!
//! deleg.sh checks each step from the host (the grant, the read, the
//! server's recall and DELEGRETURN log lines) and reports the verdict
//! through the guest's CHECK lines. NFSv4.1 and 4.2 call back over the
//! session's back channel; NFSv4.0 over a connection the server opens to
//! the guest's callback service, forwarded into the guest (run.sh
//! --cb-port). About 20 s per version once the kernel is cached.

use std::path::Path;
use std::process::Command;

use nfs4d_conformance::{free_port, in_ci, kernel_client_tools_present, nfs4d_bin, require_tool};

/// One guest at a time: TCG emulation is CPU-bound and the machine small.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(vers: &str) {
    if !kernel_client_tools_present() || !require_tool("nfs-cat", "libnfs-utils") {
        return;
    }
    let _guard = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kclient/deleg.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg("--nfs4d")
        .arg(nfs4d_bin())
        .args(["--vers", vers, "--timeout", "150"]);
    if vers == "4.0" {
        cmd.args(["--cb-port", &free_port().to_string()]);
    }
    let out = cmd.output().expect("run kclient/deleg.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    if out.status.code() == Some(2) && !in_ci() && text.contains("download") {
        eprintln!("\n*** SKIPPED: the kernel could not be fetched ***\n");
        return;
    }
    assert!(
        out.status.success(),
        "delegation scenario failed for vers={vers} (exit {:?}):\n{text}",
        out.status.code()
    );
    for check in [
        "deleg_callback",
        "deleg_held_remote",
        "deleg_held_local",
        "deleg_closed_remote",
        "deleg_closed_local",
    ] {
        assert!(
            text.contains(&format!("CHECK {check} PASS")),
            "{check} did not pass for vers={vers}:\n{text}"
        );
    }
}

#[test]
fn linux_write_delegation_recalled_v41() {
    scenario("4.1");
}

#[test]
fn linux_write_delegation_recalled_v40() {
    scenario("4.0");
}

#[test]
fn linux_write_delegation_recalled_v42() {
    scenario("4.2");
}
