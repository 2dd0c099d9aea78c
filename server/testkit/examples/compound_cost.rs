//! Instructions the core spends per COMPOUND, for `valgrind --tool=callgrind`
//! (instruction counts repeat run after run, whatever else the machine
//! does; callgrind cannot run the daemon itself, whose local store needs
//! `openat2`, unknown to valgrind 3.19). The server runs in this process
//! over the memory store, with the daemon's kind of clock; a client of the
//! test kit drives it through the in-process transport.
//!
//! ```sh
//! cargo build --release -p nfs4d-testkit --example compound_cost
//! valgrind --tool=callgrind --toggle-collect='nfs4d_core::compound::process*' \
//!     target/release/examples/compound_cost randread 20000 [--metrics]
//! ```
//!
//! Workloads: `randread` (SEQUENCE, PUTFH, READ of 4 KiB at a varying
//! offset of a 1 MiB file) and `metadata` (SEQUENCE, PUTFH, LOOKUP,
//! GETATTR, GETFH of one of 64 files) and `readdir` (SEQUENCE, PUTFH,
//! READDIR of 64 KiB with the attributes of `ls -l` and the filehandle,
//! from the start of a directory of 1,000 files: one page, about 300
//! entries, as `nfs4d-bench --workload readdir` asks). The setup (session, files) runs
//! before the measured COMPOUNDs and is the same for every run; callgrind's
//! total divided by the count is instructions per COMPOUND.

use std::sync::Arc;
use std::time::Instant;

use nfs4d_core::clock::Clock;
use nfs4d_core::config::Config;
use nfs4d_core::server::{Parts, Server};
use nfs4d_kv::MemKv;
use nfs4d_store::Store;
use nfs4d_store_memory::MemStore;
use nfs4d_testkit::inproc::client_of;
use nfs4d_testkit::ops::*;
use nfs4d_xdr::nfs4::*;

/// The daemon's clock: the system's monotonic clock.
struct Monotonic(Instant);

impl Clock for Monotonic {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
    fn monotonic_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("randread", String::as_str);
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let metrics = args.iter().any(|a| a == "--metrics");

    let cfg = Config::parse("[[export]]\npath = \"/\"\ndir = \"/memory\"\n").expect("config");
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let srv = Server::new(Parts {
        cfg,
        stores: vec![(store, "/memory".into())],
        kv: Arc::new(MemKv::new()),
        mac_key: [7; 16],
        clock: Arc::new(Monotonic(Instant::now())),
        idmap: Arc::new(nfs4d_core::idmap::NumericIds),
        callbacks: Arc::new(nfs4d_core::state::deleg::NoCallbacks),
        instance: 1,
        host: "compound-cost".into(),
        cluster: None,
    })
    .expect("server");
    if metrics {
        srv.metrics.enable();
    }
    let mut c = client_of(&Arc::new(srv), 1, 1);
    c.establish41(b"compound-cost").expect("session");
    let root = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .ok()
        .and_then(|r| fh_of(&r))
        .expect("root");
    let mut files = Vec::new();
    for i in 0..64 {
        let r = c
            .compound(vec![
                putfh(&root),
                create_op(c.clientid, &format!("f{i}")),
                nfs_argop4::OP_GETFH,
            ])
            .expect("open");
        let sid = open_ok(&r).expect("OPEN").stateid.clone();
        files.push((fh_of(&r).expect("GETFH"), sid));
    }
    let (fh, sid) = files[0].clone();
    for k in 0..16u64 {
        let r = c
            .compound(vec![
                putfh(&fh),
                write(&sid, k << 16, stable_how4::UNSTABLE4, vec![5; 1 << 16]),
            ])
            .expect("write");
        assert_eq!(r.status, nfsstat4::NFS4_OK);
    }
    // GETATTR of type, size and mode; READDIR with the Linux client's `ls -l`
    // set (nfs4d-bench's readdir).
    let attrs = [1u32, 4, 33];
    let ls_l = readdir_attrs();
    let big = if workload == "readdir" {
        let r = c
            .compound(vec![
                putfh(&root),
                mkdir("big", mode_attr(0o755)),
                nfs_argop4::OP_GETFH,
            ])
            .expect("mkdir");
        let dir = fh_of(&r).expect("GETFH");
        for i in 0..1000 {
            let r = c
                .compound(vec![
                    putfh(&dir),
                    create_op(c.clientid, &format!("entry-{i:06}")),
                ])
                .expect("open");
            assert_eq!(r.status, nfsstat4::NFS4_OK);
        }
        Some(dir)
    } else {
        None
    };
    let t = Instant::now();
    for i in 0..n {
        let ops = match workload {
            "randread" => vec![putfh(&fh), read(&sid, (i * 4096 * 7) % (1 << 20), 4096)],
            "metadata" => vec![
                putfh(&root),
                lookup(&format!("f{}", i % 64)),
                getattr(&attrs),
                nfs_argop4::OP_GETFH,
            ],
            "readdir" => vec![
                putfh(big.as_ref().expect("directory")),
                readdir(0, [0; 8], 65536, &ls_l),
            ],
            other => panic!("unknown workload {other}"),
        };
        let r = c.compound(ops).expect("compound");
        assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    }
    eprintln!(
        "{workload}: {n} COMPOUNDs in {:?}, metrics {}",
        t.elapsed(),
        if metrics { "on" } else { "off" }
    );
}

/// OPEN with create (UNCHECKED4) of `name`, read and write, for one owner.
fn create_op(clientid: clientid4, name: &str) -> nfs_argop4 {
    open_op(
        clientid,
        b"owner",
        0,
        OPEN4_SHARE_ACCESS_BOTH,
        create_unchecked(),
        claim_null(name),
    )
}
