//! What the Linux kernel client does when the export it mounted moves to
//! another head (`nfs4d ctl migrate --to-head`), through
//! `kclient/migrate.sh`: head A answers NFS4ERR_MOVED with `fs_locations`
//! naming head B (RFC 7530 §8.4, RFC 8881 §11). The guest reads, appends
//! through a file it kept open, creates and lists after the move and
//! reports each outcome (docs/cluster.md). Every operation after the move
//! must succeed, and with 4.1 a file kept open across the move must take
//! the write made after it (the client reopens it at head B once B calls
//! the old head's stateid unknown). 4.0 mounts with `-o migration`
//! (without it Linux ignores migration); 4.1 needs no option.

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_conformance::{free_port, kernel_client_tools_present, run_kclient_scenario};

fn scenario(vers: &str, opts: &[&str]) {
    if !kernel_client_tools_present() {
        return;
    }
    // Head B must listen on 2049 (a location carries no port), so the
    // scenarios take turns, whichever process runs each of them.
    let turn = std::fs::File::create(std::env::temp_dir().join("nfs4d-kclient-port-2049.lock"))
        .and_then(|f| f.lock().map(|()| f))
        .expect("lock for port 2049");
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let endpoints = etcd.endpoints().join(",");
    let pa = free_port().to_string();
    let mut args = vec![
        "--vers",
        vers,
        "--etcd",
        &endpoints,
        "--port-a",
        &pa,
        "--timeout",
        "240",
    ];
    args.extend_from_slice(opts);
    let Some((status, text)) = run_kclient_scenario("migrate.sh", &args) else {
        return;
    };
    assert!(
        status.success(),
        "vers={vers}: migrate scenario failed (exit {:?}):\n{text}",
        status.code()
    );
    let moved: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("migrate: head a answered MOVED "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MOVED count:\n{text}"));
    assert!(moved > 0, "head a never answered MOVED:\n{text}");
    for l in text
        .lines()
        .filter(|l| l.starts_with("migrate: guest: mg_after"))
    {
        println!("vers={vers}: {l}");
    }
    drop(turn);
}

#[test]
fn linux_41_when_its_export_moves_to_another_head() {
    scenario("4.1", &[]);
}

#[test]
fn linux_40_with_migration_when_its_export_moves_to_another_head() {
    scenario("4.0", &["--opts", "migration"]);
}
