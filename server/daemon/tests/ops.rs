//! Running nfs4d as a production server, against the real binary: metrics
//! after a known workload, `nfs4d ctl` status/clients/exports/evict,
//! exports changed by reload while a client keeps working, migrations
//! remembered across a restart, SIGTERM during a write stream, and logs
//! written to a pipe (docs/operations.md).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;

/// GET `url` (http://ADDR/PATH); (status line, body).
fn http_get(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("metrics answer");
    let (head, body) = all.split_once("\r\n\r\n").expect("HTTP head");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

fn session(srv: &TestServer, minor: u32, owner: &str) -> Client {
    let mut c = srv.client(minor);
    c.establish41(owner.as_bytes()).expect("session");
    c
}

/// The handle of `path` (components from the pseudo root).
fn fh_at(c: &mut Client, path: &[&str]) -> Result<Vec<u8>, nfsstat4> {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    ops.extend(path.iter().map(|n| lookup(n)));
    ops.push(nfs_argop4::OP_GETFH);
    let r = c.compound(ops).expect("lookup");
    fh_of(&r).ok_or(r.status)
}

/// Opens (creating) `name` in directory `dir` for reading and writing:
/// its handle and open stateid. `seqid` matters for 4.0 only.
fn open_in(c: &mut Client, dir: &[u8], name: &str, seqid: u32) -> (Vec<u8>, stateid4) {
    let r = c
        .compound(vec![
            putfh(dir),
            open_op(
                c.clientid,
                format!("open-{name}").as_bytes(),
                seqid,
                OPEN4_SHARE_ACCESS_BOTH,
                create_unchecked(),
                claim_null(name),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .expect("open");
    assert_eq!(r.status, nfsstat4::NFS4_OK, "OPEN {name}: {r:?}");
    (fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone())
}

fn write_at(c: &mut Client, fh: &[u8], sid: &stateid4, off: u64, data: Vec<u8>) -> nfsstat4 {
    c.compound(vec![
        putfh(fh),
        write(sid, off, stable_how4::FILE_SYNC4, data),
    ])
    .expect("write")
    .status
}

#[test]
fn metrics_scrape_after_a_known_workload_shows_the_right_counts() {
    let srv = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    let status = srv.ctl_json(&["status"]);
    let url = status["metrics"]
        .as_str()
        .expect("metrics URL in ctl status")
        .to_string();
    let mut c = session(&srv, 2, "metrics");
    let root = fh_at(&mut c, &[]).unwrap();
    let (fh, sid) = open_in(&mut c, &root, "f", 0);
    for i in 0..3u64 {
        assert_eq!(
            write_at(&mut c, &fh, &sid, i * 4096, vec![7; 4096]),
            nfsstat4::NFS4_OK
        );
    }
    for i in 0..2u64 {
        let r = c
            .compound(vec![putfh(&fh), read(&sid, i * 4096, 4096)])
            .unwrap();
        assert_eq!(read_ok(&r).expect("READ").data.len(), 4096);
    }
    assert_eq!(fh_at(&mut c, &["missing"]), Err(nfsstat4::NFS4ERR_NOENT));
    let lock = c
        .compound(vec![
            putfh(&fh),
            lock_op(
                true,
                false,
                0,
                10,
                new_lock_owner(c.clientid, b"lo", &sid, 0, 0),
            ),
        ])
        .unwrap();
    assert_eq!(lock.status, nfsstat4::NFS4_OK, "{lock:?}");

    let (head, m) = http_get(&url);
    assert!(head.contains("200"), "{head}");
    assert_eq!(
        must(&m, "nfs4d_op_duration_seconds_count{op=\"WRITE\"}"),
        3.0
    );
    assert_eq!(
        must(&m, "nfs4d_op_duration_seconds_count{op=\"READ\"}"),
        2.0
    );
    assert_eq!(
        must(&m, "nfs4d_op_duration_seconds_count{op=\"LOCK\"}"),
        1.0
    );
    assert_eq!(
        must(&m, "nfs4d_op_duration_seconds_count{op=\"OPEN\"}"),
        1.0
    );
    assert_eq!(
        must(
            &m,
            "nfs4d_op_errors_total{op=\"LOOKUP\",status=\"NFS4ERR_NOENT\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "nfs4d_op_errors_total{op=\"WRITE\",status=\"NFS4ERR_NOENT\"}"
        ),
        None
    );
    assert_eq!(must(&m, "nfs4d_written_bytes_total"), 3.0 * 4096.0);
    assert_eq!(must(&m, "nfs4d_read_bytes_total"), 2.0 * 4096.0);
    assert_eq!(must(&m, "nfs4d_store_requests_total{kind=\"write\"}"), 3.0);
    assert_eq!(must(&m, "nfs4d_store_requests_total{kind=\"read\"}"), 2.0);
    assert_eq!(must(&m, "nfs4d_clients"), 1.0);
    assert_eq!(must(&m, "nfs4d_sessions"), 1.0);
    assert_eq!(must(&m, "nfs4d_opens"), 1.0);
    assert_eq!(must(&m, "nfs4d_locks"), 1.0);
    assert_eq!(must(&m, "nfs4d_connections"), 1.0);
    assert_eq!(must(&m, "nfs4d_grace"), 0.0);
    assert_eq!(must(&m, "nfs4d_exports"), 1.0);
    assert!(must(&m, "nfs4d_fhmap_records") >= 1.0);
    // Every operation that ran has its latency buckets, up to +Inf.
    assert_eq!(
        must(
            &m,
            "nfs4d_op_duration_seconds_bucket{le=\"+Inf\",op=\"WRITE\"}"
        ),
        3.0
    );
    // Only /metrics is served.
    assert!(http_get(&url.replace("/metrics", "/other"))
        .0
        .contains("404"));
}

#[test]
fn metrics_are_off_by_default_and_only_on_loopback() {
    let srv = TestServer::start(&[]);
    assert!(srv.ctl_json(&["status"])["metrics"].is_null());
    // A non-loopback address is refused at start: the endpoint has no
    // authentication (admin.metrics_public opts in).
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "0.0.0.0:0",
        ])
        .arg("--export")
        .arg(dir.path().join("e"))
        .arg("--state-dir")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn ctl_shows_clients_with_their_state_and_evicts_one() {
    let srv = TestServer::start(&[]);
    let mut a = session(&srv, 2, "client-a");
    let root = fh_at(&mut a, &[]).unwrap();
    let (fh, sid) = open_in(&mut a, &root, "a", 0);
    let lock = a
        .compound(vec![
            putfh(&fh),
            lock_op(
                true,
                false,
                0,
                100,
                new_lock_owner(a.clientid, b"lo", &sid, 0, 0),
            ),
        ])
        .unwrap();
    assert_eq!(lock.status, nfsstat4::NFS4_OK);
    let mut b = srv.client(0);
    b.establish40(b"client-b").unwrap();
    let root_b = fh_at(&mut b, &[]).unwrap();
    let (_, bsid) = open_in(&mut b, &root_b, "b", 0);
    b.open_confirm("b", &bsid, 1);

    let v = srv.ctl_json(&["clients"]);
    let list = v["clients"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let find = |owner: &str| {
        list.iter()
            .find(|c| c["owner"] == owner)
            .unwrap_or_else(|| panic!("{owner} not listed: {v}"))
            .clone()
    };
    let ca = find("client-a");
    assert_eq!(ca["id"], format!("{:#x}", a.clientid));
    assert_eq!(ca["minor_version"], 2);
    assert_eq!(ca["opens"], 1);
    assert_eq!(ca["locks"], 1);
    assert_eq!(ca["sessions"], 1);
    assert!(ca["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ca["lease_age_ms"].as_u64().unwrap() < 60_000);
    let cb = find("client-b");
    assert_eq!(cb["minor_version"], 0);
    assert_eq!(cb["opens"], 1);
    assert_eq!(cb["locks"], 0);

    // People get a table with the same facts.
    let (code, text, _) = srv.ctl(&["clients"]);
    assert_eq!(code, 0);
    let line = text.lines().find(|l| l.contains("client-a")).expect(&text);
    assert!(
        line.contains("4.2") && line.contains(&format!("{:#x}", a.clientid)),
        "{text}"
    );
    let (_, status, _) = srv.ctl(&["status"]);
    assert!(
        status.contains("clients: 2") && status.contains("opens: 2, locks: 1"),
        "{status}"
    );

    // Evicting client a releases its state; b keeps its own.
    let id = format!("{:#x}", a.clientid);
    let e = srv.ctl_json(&["evict", &id]);
    assert_eq!(e["evicted"]["opens"], 1);
    let r = a.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADSESSION, "{r:?}");
    let v = srv.ctl_json(&["clients"]);
    assert_eq!(v["clients"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["clients"][0]["owner"], "client-b");
    let s = srv.ctl_json(&["status"]);
    assert_eq!(s["clients_evicted"], 1);
    assert_eq!(s["locks"], 0);
    // Its lock is gone: another client may take the range.
    let mut c = session(&srv, 1, "client-c");
    let (cfh, csid) = open_in(&mut c, &root, "a", 0);
    let lock = c
        .compound(vec![
            putfh(&cfh),
            lock_op(
                true,
                false,
                0,
                100,
                new_lock_owner(c.clientid, b"lo", &csid, 0, 0),
            ),
        ])
        .unwrap();
    assert_eq!(lock.status, nfsstat4::NFS4_OK, "{lock:?}");
    // An unknown or malformed id is refused.
    let (code, _, err) = srv.ctl(&["evict", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no client"), "{err}");
    let (code, _, err) = srv.ctl(&["evict", "zz"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a client id"), "{err}");
}

const THREE_EXPORTS: &str = r#"
[[export]]
path = "/keep"
dir = "{export}/keep"

[[export]]
path = "/gone"
dir = "{export}/gone"

[[export]]
path = "/rules"
dir = "{export}/rules"
"#;

#[test]
fn reload_adds_removes_and_changes_exports_while_a_client_keeps_working() {
    let mut srv = TestServer::start_with_config(THREE_EXPORTS, &[]);
    let conf = srv.config_path();
    let base = std::fs::read_to_string(&conf).unwrap();
    let ids0 = srv.ctl_json(&["exports"]);
    let mut c = session(&srv, 1, "worker");
    let clientid = c.clientid;
    let keep = fh_at(&mut c, &["keep"]).unwrap();
    let (kfh, ksid) = open_in(&mut c, &keep, "f", 0);
    let gone = fh_at(&mut c, &["gone"]).unwrap();
    let (gfh, _) = open_in(&mut c, &gone, "g", 0);
    let rules = fh_at(&mut c, &["rules"]).unwrap();
    let (rfh, rsid) = open_in(&mut c, &rules, "r", 0);
    let mut off = 0u64;
    let mut work = |c: &mut Client| {
        assert_eq!(
            write_at(c, &kfh, &ksid, off, vec![1; 512]),
            nfsstat4::NFS4_OK
        );
        off += 512;
    };
    work(&mut c);

    // Add /new.
    let added = base.clone()
        + "\n[[export]]\npath = \"/new\"\ndir = \""
        + &srv.export.join("new").display().to_string()
        + "\"\n";
    std::fs::write(&conf, &added).unwrap();
    let (code, out, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added /new; 3 unchanged"), "{out}");
    assert!(fh_at(&mut c, &["new"]).is_ok());
    work(&mut c);

    // Remove /gone: its handles are stale, its name is gone.
    let removed = added.replace(
        &format!(
            "[[export]]\npath = \"/gone\"\ndir = \"{}\"\n",
            srv.export.join("gone").display()
        ),
        "",
    );
    assert_ne!(removed, added);
    std::fs::write(&conf, &removed).unwrap();
    let (code, out, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed /gone; 3 unchanged"), "{out}");
    let r = c.compound(vec![putfh(&gfh), nfs_argop4::OP_GETFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_STALE, "{r:?}");
    let r = c
        .compound(vec![putfh(&gone), nfs_argop4::OP_GETFH])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_STALE, "{r:?}");
    assert_eq!(fh_at(&mut c, &["gone"]), Err(nfsstat4::NFS4ERR_NOENT));
    // Its store let go of the directory (no descriptor left in it).
    let gone_dir = srv.export.join("gone");
    let held = std::fs::read_dir(format!("/proc/{}/fd", srv.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(&gone_dir))
        .count();
    assert_eq!(
        held,
        0,
        "descriptors still open under {}",
        gone_dir.display()
    );
    work(&mut c);

    // Change /rules to read-only: the next WRITE is refused.
    assert_eq!(
        write_at(&mut c, &rfh, &rsid, 0, vec![2; 16]),
        nfsstat4::NFS4_OK
    );
    let ro = removed.replace(
        &format!(
            "path = \"/rules\"\ndir = \"{}\"\n",
            srv.export.join("rules").display()
        ),
        &format!(
            "path = \"/rules\"\ndir = \"{}\"\nread_only = true\n",
            srv.export.join("rules").display()
        ),
    );
    assert_ne!(ro, removed);
    std::fs::write(&conf, &ro).unwrap();
    let (code, out, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("new rules for /rules; 2 unchanged"), "{out}");
    assert_eq!(
        write_at(&mut c, &rfh, &rsid, 0, vec![2; 16]),
        nfsstat4::NFS4ERR_ROFS
    );
    work(&mut c);

    // A broken file is refused with its line; nothing changes.
    let broken = ro.clone() + "\n[[export]]\npath = \"relative\"\ndir = \"/tmp/x\"\n";
    std::fs::write(&conf, &broken).unwrap();
    let lines: Vec<&str> = broken.lines().collect();
    let header = lines.iter().rposition(|l| *l == "[[export]]").unwrap() + 1;
    let (code, _, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("nfs4d.toml:{header}:")) && err.contains("must start with /"),
        "{err}"
    );
    let syntax = ro.clone() + "\nlease_time = \n";
    std::fs::write(&conf, &syntax).unwrap();
    let (code, _, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("nfs4d.toml:{}:", syntax.lines().count())),
        "{err}"
    );
    // SIGHUP with the broken file: refused and logged.
    srv.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.log().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fh_at(&mut c, &["new"]).is_ok());
    assert_eq!(
        write_at(&mut c, &rfh, &rsid, 0, vec![2; 16]),
        nfsstat4::NFS4ERR_ROFS
    );
    work(&mut c);

    // The client kept its session and state throughout.
    let v = srv.ctl_json(&["clients"]);
    assert_eq!(v["clients"][0]["id"], format!("{clientid:#x}"));
    assert_eq!(v["clients"][0]["opens"], 3, "{v}");

    // SIGHUP applies a fixed file, as reload does (a fourth export).
    let fixed = ro.clone()
        + "\n[[export]]\npath = \"/late\"\ndir = \""
        + &srv.export.join("late").display().to_string()
        + "\"\n";
    std::fs::write(&conf, &fixed).unwrap();
    srv.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.ctl_json(&["exports"])["exports"]
        .as_array()
        .unwrap()
        .len()
        != 4
    {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not applied:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Export ids are stable by path, across the reloads and a restart.
    let id_of = |v: &serde_json::Value, p: &str| {
        v["exports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .map(|e| e["id"].as_u64().unwrap())
    };
    let ids1 = srv.ctl_json(&["exports"]);
    assert_eq!(id_of(&ids1, "/keep"), id_of(&ids0, "/keep"));
    assert_eq!(id_of(&ids1, "/rules"), id_of(&ids0, "/rules"));
    assert_eq!(id_of(&ids1, "/gone"), None);
    let new_id = id_of(&ids1, "/new").unwrap();
    assert!(new_id > id_of(&ids0, "/gone").unwrap());
    srv.restart();
    let ids2 = srv.ctl_json(&["exports"]);
    for p in ["/keep", "/rules", "/new", "/late"] {
        assert_eq!(id_of(&ids2, p), id_of(&ids1, p), "{p}");
    }
    // A handle of /keep issued before the reloads still works.
    let mut d = session(&srv, 1, "after-restart");
    let r = d.compound(vec![putfh(&kfh), nfs_argop4::OP_GETFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
}

#[test]
fn a_reload_refuses_what_a_running_export_cannot_change() {
    let srv = TestServer::start_with_config(THREE_EXPORTS, &[]);
    let conf = srv.config_path();
    let base = std::fs::read_to_string(&conf).unwrap();
    let moved = base.replace("/keep\"\ndir = \"", "/keep\"\ndir = \"/elsewhere");
    std::fs::write(&conf, &moved).unwrap();
    let (code, _, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("dir changed") && err.contains("nfs4d ctl migrate"),
        "{err}"
    );
    let volatile = base.replace(
        "path = \"/keep\"\n",
        "path = \"/keep\"\nfilehandles = \"volatile\"\n",
    );
    std::fs::write(&conf, &volatile).unwrap();
    let (code, _, err) = srv.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("filehandles"), "{err}");
    assert_eq!(
        srv.ctl_json(&["exports"])["exports"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A server configured by flags alone has no file to re-read.
    let flags = TestServer::start(&[]);
    let (code, _, err) = flags.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("without --config"), "{err}");
}

#[test]
fn a_migration_is_remembered_across_a_restart() {
    let mut srv =
        TestServer::start_with_config("[[export]]\npath = \"/\"\ndir = \"{export}/a\"\n", &[]);
    let mut c = session(&srv, 1, "mig");
    let root = fh_at(&mut c, &[]).unwrap();
    let (fh, sid) = open_in(&mut c, &root, "f", 0);
    assert_eq!(
        write_at(&mut c, &fh, &sid, 0, b"before".to_vec()),
        nfsstat4::NFS4_OK
    );
    // No client state to reclaim after the restart: no grace period.
    let r = c.compound(vec![putfh(&fh), close(0, &sid)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    c.destroy().unwrap();
    let (a, b) = (srv.export.join("a"), srv.export.join("b"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("f"), b.join("f")).unwrap();
    let (code, out, err) = srv.ctl(&["migrate", "--export", "/", "--to", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("recorded for the next start"), "{out}");
    srv.restart();
    let v = srv.ctl_json(&["exports"]);
    assert_eq!(v["exports"][0]["dir"], b.display().to_string(), "{v}");
    assert_eq!(v["exports"][0]["configured_dir"], a.display().to_string());
    assert!(srv
        .log()
        .contains("serving the directory the export was migrated to"));
    // The handle issued before the move reads the copy.
    std::fs::write(b.join("f"), b"after").unwrap();
    let mut c = session(&srv, 1, "mig2");
    let (fh2, sid2) = open_in(&mut c, &root, "f", 0);
    assert_eq!(fh2, fh);
    let r = c.compound(vec![putfh(&fh), read(&sid2, 0, 100)]).unwrap();
    assert_eq!(read_ok(&r).unwrap().data, b"after");
    // Once the configuration names the new directory, it is the truth.
    let conf = srv.config_path();
    std::fs::write(
        &conf,
        format!("[[export]]\npath = \"/\"\ndir = \"{}\"\n", b.display()),
    )
    .unwrap();
    srv.restart();
    let v = srv.ctl_json(&["exports"]);
    assert_eq!(v["exports"][0]["configured_dir"], b.display().to_string());
}

#[test]
fn sigterm_during_a_write_stream_keeps_every_acknowledged_byte_and_exits_0() {
    let mut srv = TestServer::start(&[]);
    let mut c = session(&srv, 1, "stream");
    let root = fh_at(&mut c, &[]).unwrap();
    let (fh, sid) = open_in(&mut c, &root, "stream", 0);
    const CHUNK: usize = 64 << 10;
    let writer = std::thread::spawn(move || {
        let mut acked = 0u64;
        // Bounded: at most 2000 chunks (125 MiB) or 60 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..2000u64 {
            if Instant::now() > deadline {
                break;
            }
            let data: Vec<u8> = (0..CHUNK).map(|b| (b as u64 ^ i) as u8).collect();
            let r = c.compound(vec![
                putfh(&fh),
                write(&sid, i * CHUNK as u64, stable_how4::FILE_SYNC4, data),
            ]);
            match r {
                Ok(r) if r.status == nfsstat4::NFS4_OK => {
                    let w = write_ok(&r).unwrap();
                    assert_eq!(w.committed, stable_how4::FILE_SYNC4);
                    assert_eq!(w.count as usize, CHUNK);
                    acked = i + 1;
                }
                // The server went away: what it acknowledged is what counts.
                _ => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(700));
    srv.signal(libc::SIGTERM);
    let st = srv
        .wait_exit(Duration::from_secs(30))
        .expect("server exits after SIGTERM");
    assert!(st.success(), "exit status {st:?}\n{}", srv.log());
    let acked = writer.join().unwrap();
    assert!(acked > 0, "no write acknowledged before SIGTERM");
    let file = std::fs::read(srv.export.join("stream")).unwrap();
    assert!(
        file.len() >= acked as usize * CHUNK,
        "{} < {acked} chunks",
        file.len()
    );
    for i in 0..acked {
        let at = (i as usize) * CHUNK;
        let ok = file[at..at + CHUNK]
            .iter()
            .enumerate()
            .all(|(b, v)| *v == (b as u64 ^ i) as u8);
        assert!(ok, "acknowledged chunk {i} is not on disk");
    }
    let log = srv.log();
    assert!(log.contains("handle map flushed; exiting"), "{log}");
}

#[test]
fn a_second_sigterm_exits_at_once() {
    // Replies nobody reads keep requests in flight: the first SIGTERM
    // waits for them (up to the shutdown timeout), the second does not.
    let mut srv = TestServer::start(&["--shutdown-timeout", "120"]);
    let mut c = session(&srv, 1, "stuck");
    let root = fh_at(&mut c, &[]).unwrap();
    let (fh, sid) = open_in(&mut c, &root, "big", 0);
    for i in 0..4u64 {
        let data = vec![3u8; 1 << 20];
        assert_eq!(
            write_at(&mut c, &fh, &sid, i << 20, data),
            nfsstat4::NFS4_OK
        );
    }
    let mut raw = TcpStream::connect(srv.addr).unwrap();
    raw.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // 4.0 READs with the anonymous stateid need no client record.
    let body = nfs4d_testkit::wire::compound_body(
        0,
        None,
        &[
            putfh(&fh),
            read(
                &stateid4 {
                    seqid: 0,
                    other: [0; 12],
                },
                0,
                256 << 10,
            ),
        ],
    )
    .unwrap();
    let cred = nfs4d_xdr::rpc::Credential::Sys {
        stamp: 0,
        machine: "t".into(),
        uid: 0,
        gid: 0,
        gids: vec![],
    };
    // Bounded: 600 calls of 256 KiB replies is far past what the socket
    // buffers and the server's reply queue hold.
    for xid in 1..600u32 {
        let rec = nfs4d_testkit::wire::encode_call(xid, &cred, 1, &body, 0);
        if raw.write_all(&rec).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    srv.signal(libc::SIGTERM);
    assert!(
        srv.wait_exit(Duration::from_secs(2)).is_none(),
        "the first SIGTERM should wait for the requests in flight"
    );
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .expect("exit after the second SIGTERM");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!st.success());
    assert!(srv.log().contains("second stop signal"), "{}", srv.log());
    drop(raw);
}

/// Starts the binary with stderr on a pipe; returns the child.
fn spawn_piped(
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .env("RUST_LOG", "info")
        .args(extra)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--export")
        .arg(dir.join("e"))
        .arg("--state-dir")
        .arg(dir.join("s"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr = line
        .strip_prefix("nfs4d listening on ")
        .and_then(|r| r.split(';').next())
        .expect(&line)
        .parse()
        .unwrap();
    (child, addr)
}

/// Sends calls to an unknown procedure (refused at the RPC level).
fn refused_calls(addr: std::net::SocketAddr, n: u32) {
    let mut s = TcpStream::connect(addr).unwrap();
    let cred = nfs4d_xdr::rpc::Credential::None;
    for xid in 0..n {
        let rec = nfs4d_testkit::wire::encode_call(xid + 1, &cred, 7, &[], 0);
        s.write_all(&rec).unwrap();
    }
    // Every call gets its refusal: read them so they were all handled.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0usize;
    // Each refusal is a record of 28 bytes (mark, xid, reply, denied …).
    while got < n as usize {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                bytes += k;
                got = bytes / 28;
            }
        }
    }
}

#[test]
fn logs_on_a_pipe_have_no_escape_codes_and_refusals_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_piped(dir.path(), &[]);
    refused_calls(addr, 200);
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(!log.contains('\x1b'), "escape codes in a piped log:\n{log}");
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .collect();
    assert!(!refusals.is_empty(), "{log}");
    // One line per refusal up to the burst, each with address and reason;
    // the other 190 were held back.
    assert!(
        refusals.len() <= 11,
        "{} refusal lines:\n{log}",
        refusals.len()
    );
    assert!(refusals
        .iter()
        .all(|l| l.contains("peer=127.0.0.1:") && l.contains("unknown procedure")));

    // JSON lines for log shippers.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_piped(dir.path(), &["--log-format", "json"]);
    refused_calls(addr, 3);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(st.success(), "{st:?}\n{log}");
    let mut refused = 0;
    for l in log.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        if v["fields"]["message"] == "request refused" {
            assert_eq!(v["fields"]["reason"], "unknown procedure");
            assert!(v["fields"]["peer"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"));
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "{log}");
}
