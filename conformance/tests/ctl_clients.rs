//! `nfs4d ctl clients` lists real clients with the state they hold: a
//! libnfs client (NFSv4.0, through libnfs's API: `libnfs/nfs_hold.py`) and
//! a pynfs-driven NFSv4.1 client (`pynfs/hold41.py`), each holding an
//! open and a byte-range lock (docs/operations.md).
//!
//! pynfs is never fetched or built here: the pynfs half runs when
//! `PYNFS_DIR` names a pynfs tree built by hand (pynfs/README.md), as the
//! pynfs suites do, and says loudly that it did not run otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfs4d_conformance::{nfs4d_bin, require_tool, Nfs4d};

/// A holder process: started, its first line read ("held …").
struct Holder {
    child: Child,
    first: String,
}

impl Holder {
    fn start(cmd: &mut Command) -> Holder {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the holder");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // pynfs prints notices of its own first.
        std::thread::spawn(move || {
            let held = BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.starts_with("held"));
            let _ = tx.send(held.unwrap_or_default());
        });
        let first = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        if !first.starts_with("held") {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "holder did not get its open and lock: {first:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Holder { child, first }
    }

    /// Closes its input: it unlocks, closes and exits 0.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "holder exited with {st:?}");
                return;
            }
            assert!(Instant::now() < deadline, "holder did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn clients(srv: &Nfs4d) -> Vec<serde_json::Value> {
    let out = Command::new(nfs4d_bin())
        .args(["ctl", "clients", "--json", "--state-dir"])
        .arg(&srv.state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["clients"].as_array().unwrap().clone()
}

#[test]
fn ctl_clients_lists_libnfs_and_pynfs_clients_with_their_opens_and_locks() {
    if !require_tool("nfs-cp", "libnfs-utils") || !require_tool("python3", "python3") {
        return;
    }
    let srv = Nfs4d::start(&[]);
    // pynfs creates as a non-root AUTH_SYS user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&srv.export, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(srv.export.join("libnfs.txt"), b"held by libnfs").unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let libnfs = Holder::start(
        Command::new("python3")
            .arg(here.join("libnfs/nfs_hold.py"))
            .arg(srv.url("libnfs.txt")),
    );
    let pynfs = match std::env::var("PYNFS_DIR") {
        Ok(dir) => Some(Holder::start(
            Command::new("python3")
                .env("PYNFS_DIR", dir)
                .arg(here.join("pynfs/hold41.py"))
                .arg("127.0.0.1")
                .arg(srv.port.to_string())
                .arg("pynfs.txt"),
        )),
        Err(_) => {
            eprintln!("\n*** pynfs half NOT RUN: set PYNFS_DIR to a pynfs tree built by hand (conformance/pynfs/README.md) ***\n");
            None
        }
    };

    let list = clients(&srv);
    let l = list
        .iter()
        .find(|c| c["owner"].as_str().is_some_and(|o| o.starts_with("Libnfs")))
        .unwrap_or_else(|| panic!("libnfs client not listed: {list:?}"));
    assert_eq!(l["minor_version"], 0, "{l}");
    assert_eq!(l["opens"], 1, "{l}");
    assert_eq!(l["locks"], 1, "{l}");
    assert!(
        l["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{l}"
    );
    assert!(l["lease_age_ms"].as_u64().unwrap() < 90_000, "{l}");
    if let Some(p) = &pynfs {
        let id = p.first.trim().strip_prefix("held ").unwrap();
        let c = list
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("pynfs client {id} not listed: {list:?}"));
        assert_eq!(c["owner"], "pynfs-hold41", "{c}");
        assert_eq!(c["minor_version"], 1, "{c}");
        assert_eq!(c["opens"], 1, "{c}");
        assert_eq!(c["locks"], 1, "{c}");
        assert_eq!(c["sessions"], 1, "{c}");
    }

    // Released: the locks go with them.
    libnfs.release();
    if let Some(p) = pynfs {
        p.release();
    }
    let list = clients(&srv);
    assert!(list.iter().all(|c| c["locks"] == 0), "{list:?}");
}
