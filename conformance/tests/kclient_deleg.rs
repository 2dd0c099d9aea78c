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

use nfs4d_conformance::{
    free_port, kernel_client_tools_present, require_tool, run_kclient_scenario,
};

fn scenario(vers: &str) {
    if !kernel_client_tools_present() || !require_tool("nfs-cat", "libnfs-utils") {
        return;
    }
    let cb_port = free_port().to_string();
    let mut args = vec!["--vers", vers, "--timeout", "150"];
    if vers == "4.0" {
        args.extend(["--cb-port", &cb_port]);
    }
    let Some((status, text)) = run_kclient_scenario("deleg.sh", &args) else {
        return;
    };
    assert!(
        status.success(),
        "delegation scenario failed for vers={vers} (exit {:?}):\n{text}",
        status.code()
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
