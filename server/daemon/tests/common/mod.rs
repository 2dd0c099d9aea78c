//! Starts the real `nfs4d` binary on a free loopback port for a test, and
//! builds the COMPOUND operations the tests share.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nfs4d_testkit::client::{lookup, Client};
use nfs4d_xdr::nfs4::*;

/// A running server with its own export and state directories.
pub struct TestServer {
    child: Child,
    /// Listening address.
    pub addr: SocketAddr,
    /// Backing directory.
    pub export: PathBuf,
    /// State directory.
    pub state: PathBuf,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl TestServer {
    /// Starts a server; `extra` is appended to `nfs4d serve`.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&export).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut child = spawn(&dir, ANY_PORT, &export, &state, &extra);
        let addr = wait_listening(&dir, &mut child);
        TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra,
        }
    }

    /// Starts a server from a configuration file: `toml` (exports, limits
    /// …) with `{export}` replaced by the backing directory, which then
    /// holds the export directories. `extra` is appended as in [`start`].
    pub fn start_with_config(toml: &str, extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&export).unwrap();
        let conf = dir.path().join("nfs4d.toml");
        std::fs::write(
            &conf,
            toml.replace("{export}", &export.display().to_string()),
        )
        .unwrap();
        let mut all: Vec<String> = vec!["--config".into(), conf.display().to_string()];
        all.extend(extra.iter().map(|s| s.to_string()));
        let mut child = spawn(&dir, ANY_PORT, &export, &state, &all);
        let addr = wait_listening(&dir, &mut child);
        TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra: all,
        }
    }

    /// A client connected from source address `local` ("127.0.0.2:0", or
    /// a fixed port; the socket reuses addresses so privileged ports can
    /// be taken again quickly).
    pub fn client_from(&self, local: &str, minor: u32) -> std::io::Result<Client> {
        use socket2::{Domain, Socket, Type};
        let local: SocketAddr = local.parse().unwrap();
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        sock.bind(&local.into())?;
        sock.connect(&self.addr.into())?;
        Client::from_stream(sock.into(), minor)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL) and starts it again on the same port and
    /// directories.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, self.addr, &self.export, &self.state, &self.extra);
        let addr = wait_listening(&self.dir, &mut self.child);
        assert_eq!(addr, self.addr, "restarted on another address");
    }

    /// A connected client of the given minor version.
    pub fn client(&self, minor: u32) -> Client {
        Client::connect(self.addr, minor).unwrap()
    }

    /// Server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nfs4d.log")).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Lets the kernel pick the port: a port found free beforehand could be
/// taken by another test's server before this one binds it, and a
/// connection test would then find that other server.
const ANY_PORT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Waits for the server's "nfs4d listening on ADDR;" line and returns ADDR.
fn wait_listening(dir: &tempfile::TempDir, child: &mut Child) -> SocketAddr {
    let out = dir.path().join("nfs4d.out");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.strip_prefix("nfs4d listening on "))
            .and_then(|rest| rest.split(';').next())
        {
            return addr.parse().expect("listening address");
        }
        if !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(dir.path().join("nfs4d.log")).unwrap_or_default();
    panic!("server did not start:\n{log}");
}

fn spawn(
    dir: &tempfile::TempDir,
    addr: SocketAddr,
    export: &PathBuf,
    state: &PathBuf,
    extra: &[String],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("nfs4d.log"))
        .unwrap();
    // Truncated: wait_listening looks for this start's line only.
    let out = std::fs::File::create(dir.path().join("nfs4d.out")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nfs4d"));
    cmd.env("RUST_LOG", "info")
        .args(["serve", "--listen", &addr.to_string()]);
    // A configuration file brings its own exports.
    if !extra.iter().any(|a| a == "--config") {
        cmd.arg("--export").arg(export);
    }
    cmd.arg("--state-dir")
        .arg(state)
        .args(extra)
        .stdout(out)
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Attributes that set nothing (CREATE, OPEN with UNCHECKED4).
pub fn no_attrs() -> fattr4 {
    fattr4 {
        attrmask: vec![],
        attr_vals: vec![],
    }
}

pub fn putfh(fh: &[u8]) -> nfs_argop4 {
    nfs_argop4::OP_PUTFH(PUTFH4args {
        object: fh.to_vec(),
    })
}

/// The status of one operation's result. Every result starts with its
/// operation and status: decode them from the encoding rather than
/// matching ~70 variants.
pub fn result_status(r: &nfs_resop4) -> nfsstat4 {
    let b = nfs4d_xdr::to_bytes(r);
    nfsstat4::try_from(i32::from_be_bytes([b[4], b[5], b[6], b[7]])).expect("status")
}

/// The words of an RPC reply record after the record header.
pub fn reply_words(rec: &[u8]) -> Vec<u32> {
    rec[4..]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// OPEN, denying nothing, by open owner `owner` of client `clientid`.
pub fn open_op(
    clientid: clientid4,
    owner: &[u8],
    seqid: u32,
    access: u32,
    openhow: openflag4,
    claim: open_claim4,
) -> nfs_argop4 {
    nfs_argop4::OP_OPEN(OPEN4args {
        seqid,
        share_access: access,
        share_deny: OPEN4_SHARE_DENY_NONE,
        owner: open_owner4 {
            clientid,
            owner: owner.to_vec(),
        },
        openhow,
        claim,
    })
}

/// OPEN's creation mode: UNCHECKED4, setting no attributes.
pub fn create_unchecked() -> openflag4 {
    openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(no_attrs()))
}

/// OPEN's mode for a file that must exist.
pub fn no_create() -> openflag4 {
    openflag4::default(opentype4::OPEN4_NOCREATE)
}

/// The claim that reclaims an open (without delegation) after a restart;
/// the current filehandle is the file.
pub fn claim_previous() -> open_claim4 {
    open_claim4::CLAIM_PREVIOUS(open_delegation_type4::OPEN_DELEGATE_NONE)
}

pub fn claim_null(name: &str) -> open_claim4 {
    open_claim4::CLAIM_NULL(name.as_bytes().to_vec())
}

/// The result of a COMPOUND's successful OPEN.
pub fn open_ok(r: &COMPOUND4res) -> Option<&OPEN4resok> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_OPEN(OPEN4res::NFS4_OK(ok)) => Some(ok),
        _ => None,
    })
}

/// 4.0: OPEN_CONFIRM of a new open owner's first open of `name` in the
/// root; the confirmed stateid.
pub fn open_confirm(c: &mut Client, name: &str, sid: &stateid4, seqid: u32) -> stateid4 {
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(name),
            nfs_argop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4args {
                open_stateid: sid.clone(),
                seqid,
            }),
        ])
        .unwrap();
    match r.resarray.last() {
        Some(nfs_resop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4res::NFS4_OK(ok))) => ok.open_stateid.clone(),
        _ => panic!("OPEN_CONFIRM {r:?}"),
    }
}

pub fn lock_type(write: bool) -> nfs_lock_type4 {
    if write {
        nfs_lock_type4::WRITE_LT
    } else {
        nfs_lock_type4::READ_LT
    }
}

/// LOCK of `length` bytes from `offset`.
pub fn lock_op(
    write: bool,
    reclaim: bool,
    offset: u64,
    length: u64,
    locker: locker4,
) -> nfs_argop4 {
    nfs_argop4::OP_LOCK(LOCK4args {
        locktype: lock_type(write),
        reclaim,
        offset,
        length,
        locker,
    })
}

/// The locker of a lock owner's first LOCK: lock owner `owner` of client
/// `clientid`, starting from open stateid `open` at open owner seqid
/// `open_seqid`.
pub fn new_lock_owner(
    clientid: clientid4,
    owner: &[u8],
    open: &stateid4,
    open_seqid: u32,
    lock_seqid: u32,
) -> locker4 {
    locker4::TRUE(open_to_lock_owner4 {
        open_seqid,
        open_stateid: open.clone(),
        lock_seqid,
        lock_owner: lock_owner4 {
            clientid,
            owner: owner.to_vec(),
        },
    })
}

/// The locker of a later LOCK by the owner of lock stateid `lock`.
pub fn existing_lock_owner(lock: &stateid4, lock_seqid: u32) -> locker4 {
    locker4::FALSE(exist_lock_owner4 {
        lock_stateid: lock.clone(),
        lock_seqid,
    })
}
