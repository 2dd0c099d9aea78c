//! The Linux kernel client on an export with volatile filehandles
//! (docs/filehandles.md), through `kclient/volatile.sh`: the guest caches
//! a tree, the host renames a directory behind the server's back, the
//! guest checks old and new paths, the host restarts the server, the guest
//! stats, lists, reads and creates files by path.
//!
//! * with `expired_error = "auto"` (the default) the server answers the
//!   Linux client's expired handles with NFS4ERR_STALE, its VFS walks the
//!   path again, and every step works;
//! * with `expired_error = "fhexpired"` (the RFC's answer) the same steps
//!   fail with EIO: the Linux client has no case for NFS4ERR_FHEXPIRED.
//!   That run is kept as the evidence behind `auto`.
//!
//! About 20–30 s per run once the kernel is cached.

use std::path::Path;
use std::process::{Command, ExitStatus};

use nfs4d_conformance::{kernel_client_tools_present, one_guest, run_kclient_scenario, Nfs4d};

fn kclient(script: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kclient")
        .join(script)
}

/// Runs volatile.sh; `None` when the kernel could not be fetched outside CI.
fn scenario(expired_error: &str, vers: &str) -> Option<(ExitStatus, String)> {
    run_kclient_scenario(
        "volatile.sh",
        &[
            "--expired-error",
            expired_error,
            "--vers",
            vers,
            "--timeout",
            "150",
        ],
    )
}

#[test]
fn linux_keeps_working_on_a_volatile_export_with_expired_error_auto() {
    if !kernel_client_tools_present() {
        return;
    }
    let Some((status, text)) = scenario("auto", "4.1") else {
        return;
    };
    assert!(
        status.success(),
        "volatile scenario failed (exit {:?}):\n{text}",
        status.code()
    );
    assert!(
        !text.contains("server answered 0 expired handles with NFS4ERR_STALE"),
        "the scenario never met an expired handle:\n{text}"
    );
}

#[test]
fn linux_sees_eio_for_nfs4err_fhexpired() {
    if !kernel_client_tools_present() {
        return;
    }
    let Some((status, text)) = scenario("fhexpired", "4.1") else {
        return;
    };
    // The guest runs to the end (exit 1: checks failed, not harness trouble)
    // and the failures are EIO.
    assert_eq!(status.code(), Some(1), "{text}");
    for check in ["vol_after_oob", "vol_after_restart"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("CHECK {check} ")))
            .unwrap_or_else(|| panic!("no {check} line:\n{text}"));
        assert!(
            line.contains("FAIL") && line.contains("Input/output error"),
            "{line}"
        );
    }
    assert!(text.contains("CHECK vol_setup PASS"), "{text}");
}

/// The whole kclient workload (49 checks) on a volatile export: about two
/// minutes, so not part of the default run (`cargo test -- --ignored`).
#[test]
#[ignore]
fn full_workload_on_a_volatile_export() {
    if !kernel_client_tools_present() {
        return;
    }
    let _guard = one_guest();
    let srv = Nfs4d::start(&["--filehandles", "volatile"]);
    let out = Command::new("bash")
        .arg(kclient("run.sh"))
        .args([
            "--port",
            &srv.port.to_string(),
            "--vers",
            "4.1",
            "--timeout",
            "300",
        ])
        .output()
        .expect("run kclient/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", srv.log());
}
