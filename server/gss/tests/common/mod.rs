//! A throwaway Kerberos realm for tests: MIT's KDC (Debian `krb5-kdc`)
//! with its database, configuration, keytabs and credential caches in a
//! temporary directory, listening on a free loopback port. The tools see
//! the realm through `KRB5_CONFIG` and `KRB5_KDC_PROFILE` set on their own
//! command lines; this test process's environment is never changed.
//!
//! The GSS-API calls of the tests run in this process and do not read
//! that configuration: every name carries its realm, the acceptor reads an
//! explicit keytab, and each user's credential cache already holds the
//! service ticket (`kvno`), so they never need the KDC's address.
//!
//! Missing Kerberos tools are a loud skip on a developer machine and a
//! failure in CI (`CI=true`).

#![allow(dead_code)]

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfs4d_gss::mapping::StaticUsers;
use nfs4d_gss::{Gss, GssServer, Limits, MapConfig, ServerConfig, UnixUser};

/// The test realm.
pub const REALM: &str = "NFS4D.TEST";
/// The NFS service principal of the realm.
pub const SERVICE: &str = "nfs/localhost@NFS4D.TEST";

/// True when running in CI, where missing tools are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports something missing: a loud skip outside CI (returns `None`), a
/// panic in CI.
pub fn missing<T>(msg: &str) -> Option<T> {
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    None
}

/// Finds a Kerberos tool on PATH or in the sbin directories.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The tools, or `None` after reporting the missing one.
struct Tools {
    kdb5_util: PathBuf,
    kadmin_local: PathBuf,
    krb5kdc: PathBuf,
    kinit: PathBuf,
    kvno: PathBuf,
}

fn tools() -> Option<Tools> {
    let mut found = Vec::new();
    for (name, pkg) in [
        ("kdb5_util", "krb5-kdc"),
        ("kadmin.local", "krb5-admin-server"),
        ("krb5kdc", "krb5-kdc"),
        ("kinit", "krb5-user"),
        ("kvno", "krb5-user"),
    ] {
        match tool(name) {
            Some(p) => found.push(p),
            None => {
                return missing(&format!(
                    "`{name}` not found: install the Debian packages krb5-kdc krb5-admin-server krb5-user \
                     (apt-get install krb5-kdc krb5-admin-server krb5-user; `{name}` is in {pkg})"
                ))
            }
        }
    }
    let mut it = found.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Some(Tools {
        kdb5_util: next(),
        kadmin_local: next(),
        krb5kdc: next(),
        kinit: next(),
        kvno: next(),
    })
}

/// Loads MIT GSS-API, or reports it missing.
pub fn gss() -> Option<Gss> {
    match Gss::load(None) {
        Ok(g) => Some(g),
        Err(e) => missing(&format!("{e}")),
    }
}

/// A running test realm.
pub struct Kdc {
    dir: tempfile::TempDir,
    tools: Tools,
    kdc: Child,
    /// The KDC's port (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// Keytab holding the service principal's keys.
    pub service_keytab: PathBuf,
    /// How long the start took.
    pub startup: Duration,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.kdc.kill();
        let _ = self.kdc.wait();
    }
}

/// A free port on 127.0.0.1 for both UDP and TCP (a small race with other
/// processes remains; `Kdc::start` retries).
fn free_port() -> Option<u16> {
    for _ in 0..20 {
        let t = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        let port = t.local_addr().ok()?.port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Some(port);
        }
    }
    None
}

impl Kdc {
    /// Creates the realm and starts the KDC, with the service principal
    /// `nfs/localhost` and its keytab. `None` (after a loud notice) when
    /// the tools or the library are missing outside CI.
    pub fn start() -> Option<Kdc> {
        let t0 = Instant::now();
        let tools = tools()?;
        gss()?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut last = String::new();
        // A port found free can be taken before the KDC binds it: retry.
        for _ in 0..5 {
            let Some(port) = free_port() else {
                last = "no free loopback port".into();
                continue;
            };
            write_config(dir.path(), port);
            if !dir.path().join("principal").exists() {
                run(Command::new(&tools.kdb5_util)
                    .args(["create", "-s", "-r", REALM, "-P", "throwaway-master-key"])
                    .envs(env(dir.path())));
            }
            let mut child = Command::new(&tools.krb5kdc)
                .arg("-n")
                .envs(env(dir.path()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start krb5kdc: {e}"));
            if wait_ready(&mut child, port) {
                let mut kdc = Kdc {
                    dir,
                    tools,
                    kdc: child,
                    port,
                    service_keytab: PathBuf::new(),
                    startup: Duration::ZERO,
                };
                kdc.service_keytab = kdc.keytab_for("nfs/localhost");
                kdc.startup = t0.elapsed();
                return Some(kdc);
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.path().join("kdc.log")).unwrap_or_default();
        }
        panic!("the KDC did not start: {last}");
    }

    /// A path in the realm's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kadmin(&self, commands: &[String]) {
        kadmin(&self.tools, self.dir.path(), commands);
    }

    /// Adds a principal with a random key and writes its keys to a keytab
    /// of its own; returns the keytab.
    pub fn keytab_for(&self, principal: &str) -> PathBuf {
        let keytab = self.path(&format!("{}.keytab", principal.replace('/', "_")));
        self.kadmin(&[
            format!("addprinc -randkey {principal}"),
            format!("ktadd -k {} {principal}", keytab.display()),
        ]);
        keytab
    }

    /// A credential cache (`FILE:` name) for `principal`, created with
    /// `kinit -k -t` from a fresh keytab and holding a ticket for
    /// `service` (fetched with `kvno`).
    pub fn ccache_for(&self, principal: &str, service: &str) -> String {
        let keytab = self.keytab_for(principal);
        let cc = format!(
            "FILE:{}",
            self.path(&format!("{}.ccache", principal.replace('/', "_")))
                .display()
        );
        run(Command::new(&self.tools.kinit)
            .arg("-k")
            .arg("-t")
            .arg(&keytab)
            .arg("-c")
            .arg(&cc)
            .arg(format!("{principal}@{REALM}"))
            .envs(env(self.dir.path())));
        self.fetch_ticket(&cc, service);
        cc
    }

    /// Puts a ticket for `service` into credential cache `cc`.
    pub fn fetch_ticket(&self, cc: &str, service: &str) {
        run(Command::new(&self.tools.kvno)
            .arg("-c")
            .arg(cc)
            .arg(service)
            .envs(env(self.dir.path())));
    }
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn env(dir: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("KRB5_CONFIG", dir.join("krb5.conf")),
        ("KRB5_KDC_PROFILE", dir.join("kdc.conf")),
    ]
}

fn write_config(dir: &Path, port: u16) {
    let d = dir.display();
    std::fs::write(
        dir.join("krb5.conf"),
        format!(
            "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n rdns = false\n\
             [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
        ),
    )
    .expect("write krb5.conf");
    std::fs::write(
        dir.join("kdc.conf"),
        format!(
            "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n {REALM} = {{\n  database_name = {d}/principal\n  key_stash_file = {d}/stash\n  acl_file = {d}/kadm5.acl\n  max_life = 10h\n }}\n\
             [logging]\n kdc = FILE:{d}/kdc.log\n"
        ),
    )
    .expect("write kdc.conf");
}

fn kadmin(tools: &Tools, dir: &Path, commands: &[String]) {
    let mut child = Command::new(&tools.kadmin_local)
        .envs(env(dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kadmin.local");
    {
        let mut stdin = child.stdin.take().expect("kadmin.local stdin");
        for c in commands {
            writeln!(stdin, "{c}").expect("write to kadmin.local");
        }
    }
    let out = child.wait_with_output().expect("kadmin.local");
    assert!(
        out.status.success(),
        "kadmin.local {commands:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The users the tests' engine knows: `alice` (1000/100, groups 100 and
/// 27).
pub fn users() -> StaticUsers {
    StaticUsers(vec![(
        "alice".into(),
        UnixUser {
            uid: 1000,
            gid: 100,
            groups: vec![100, 27],
        },
    )])
}

/// An engine accepting `nfs/localhost` with the realm's keytab.
pub fn engine(kdc: &Kdc, limits: Limits) -> GssServer {
    let cfg = ServerConfig {
        library: None,
        keytab: Some(kdc.service_keytab.clone()),
        principal: Some(SERVICE.to_string()),
        limits,
        mapping: MapConfig::default(),
    };
    GssServer::new(&cfg, std::sync::Arc::new(users())).expect("engine starts")
}
