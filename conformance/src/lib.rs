//! Helpers shared by the real-client tests in `tests/`: starting an nfs4d
//! binary on a free loopback port and finding the client tools.
//!
//! A real-client tool that is missing is a loud skip on a developer
//! machine and a failure in CI (`CI=true`), so CI can never pass by not
//! running the real clients.

pub mod hostlocks;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// True when running in CI, where missing tools are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks that `tool` is on PATH. Outside CI a missing tool prints a loud
/// notice naming the Debian package and returns false (the caller skips);
/// in CI it panics.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let msg = format!(
        "`{tool}` not found: install the Debian package `{package}` (apt-get install {package})"
    );
    if in_ci() {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    false
}

/// Checks the tools the kernel-client harness (`kclient/`) needs: qemu,
/// cpio, kmod, gcc and a static busybox. Missing ones skip loudly outside
/// CI and fail in CI, as [`require_tool`] does.
pub fn kernel_client_tools_present() -> bool {
    let mut ok = true;
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("cpio", "cpio"),
        ("depmod", "kmod"),
        ("gcc", "gcc"),
    ] {
        ok &= require_tool(tool, pkg);
    }
    if !Path::new("/bin/busybox").exists() && !Path::new("/usr/bin/busybox").exists() {
        let msg = "busybox not found: install the Debian package `busybox-static`";
        if in_ci() {
            panic!("{msg}");
        }
        eprintln!("\n*** SKIPPED: {msg} ***\n");
        ok = false;
    }
    ok
}

/// One guest at a time per test binary: TCG emulation is CPU-bound and
/// the machine small.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the guest slot ([`ONE_GUEST`]) for as long as it is kept.
pub fn one_guest() -> std::sync::MutexGuard<'static, ()> {
    ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the host-side kernel-client scenario `kclient/SCRIPT` with
/// `--nfs4d BIN` and `args`, one guest at a time, prints its output and
/// returns its exit status and output (stdout then stderr). `None` when
/// the kernel image could not be fetched outside CI (exit status 2 with a
/// download message), which skips the test loudly.
pub fn run_kclient_scenario(script: &str, args: &[&str]) -> Option<(ExitStatus, String)> {
    let _guard = one_guest();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kclient")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .arg("--nfs4d")
        .arg(nfs4d_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run kclient/{script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    if out.status.code() == Some(2) && !in_ci() && text.contains("download") {
        eprintln!("\n*** SKIPPED: the kernel could not be fetched ***\n");
        return None;
    }
    Some((out.status, text))
}

/// The nfs4d binary: `$NFS4D_BIN`, else the workspace's release or debug build.
pub fn nfs4d_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NFS4D_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("nfs4d");
        if p.exists() {
            return p;
        }
    }
    panic!("nfs4d binary not found under {}: run `cargo build -p nfs4d` (cargo test --workspace builds it)", target.display());
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// True when an NFSv4 server on `addr` answers an RPC NULL call (RFC 5531
/// section 9, record marking section 11): a record of one fragment
/// holding a CALL to program 100003 version 4 procedure 0 with
/// AUTH_NONE, answered by a REPLY with the same xid.
pub fn answers_null(addr: &SocketAddr) -> bool {
    use std::io::{Read, Write};
    const XID: u32 = 0x6e66_7334;
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_millis(500)) else {
        return false;
    };
    // A socket connected to itself echoes the call back as if it were
    // the reply's first words; refuse it before sending anything.
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let words: [u32; 10] = [XID, 0, 2, 100_003, 4, 0, 0, 0, 0, 0];
    let mut call = Vec::with_capacity(44);
    call.extend_from_slice(&(0x8000_0000u32 | 40).to_be_bytes());
    for w in words {
        call.extend_from_slice(&w.to_be_bytes());
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = [0u8; 12];
    if s.write_all(&call).is_err() || s.read_exact(&mut head).is_err() {
        return false;
    }
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    // record mark, then xid and msg_type REPLY (1)
    word(4) == XID && word(8) == 1
}

/// A configuration with one S3 export at "/": `prefix` of `bucket` at
/// `endpoint`, with `extra` lines added to its `[export.s3]` table (e.g.
/// `list_markers = false` for s3s-fs, docs/objectstore.md). Short lease
/// and grace times keep restart tests short; credentials come from the
/// server's environment, never from here.
pub fn s3_export_toml(endpoint: &str, bucket: &str, prefix: &str, extra: &str) -> String {
    format!(
        "lease_time = 10\ngrace_time = 10\n[[export]]\npath = \"/\"\nstore = \"s3\"\n\
         [export.s3]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{endpoint}\"\n{extra}\n"
    )
}

/// A running nfs4d serving a fresh temporary export.
pub struct Nfs4d {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The export directory (backing store).
    pub export: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    _dir: tempfile::TempDir,
    extra: Vec<String>,
    /// Serve the configured exports instead of `--export EXPORT`.
    configured: bool,
    env: Vec<(String, String)>,
}

impl Nfs4d {
    /// Starts nfs4d with `extra` arguments appended to `serve`.
    pub fn start(extra: &[&str]) -> Nfs4d {
        let dir = tempfile::tempdir().expect("temp dir");
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&export).expect("export dir");
        Self::start_in(dir, export, state, extra)
    }

    /// Starts nfs4d exporting `export` (made by the caller, e.g. a file
    /// system it mounted), with its state in a fresh temporary directory.
    pub fn start_exporting(export: &std::path::Path, extra: &[&str]) -> Nfs4d {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        Self::start_in(dir, export.to_path_buf(), state, extra)
    }

    /// Starts nfs4d with the configuration `toml` (its own exports) and
    /// `env` added to its environment, e.g. an S3 export and the
    /// credentials of the test's S3 server. `export` is then unused.
    pub fn start_config(toml: &str, env: &[(&str, String)]) -> Nfs4d {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("nfs4d.toml");
        std::fs::write(&conf, toml).expect("write the configuration");
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        let port = free_port();
        let extra = vec!["--config".to_string(), conf.display().to_string()];
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let child = spawn(&dir, port, None, &state, &extra, &env);
        let mut srv = Nfs4d {
            child,
            port,
            export,
            state,
            _dir: dir,
            extra,
            configured: true,
            env,
        };
        srv.wait_ready();
        srv
    }

    fn start_in(dir: tempfile::TempDir, export: PathBuf, state: PathBuf, extra: &[&str]) -> Nfs4d {
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(&dir, port, Some(&export), &state, &extra, &[]);
        let mut srv = Nfs4d {
            child,
            port,
            export,
            state,
            _dir: dir,
            extra,
            configured: false,
            env: Vec::new(),
        };
        srv.wait_ready();
        srv
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and
    /// waits for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, export and state
    /// directory (after [`Nfs4d::kill9`]); its log is appended to the
    /// same file.
    pub fn restart(&mut self) {
        self.kill9();
        self.child = spawn(
            &self._dir,
            self.port,
            (!self.configured).then_some(self.export.as_path()),
            &self.state,
            &self.extra,
            &self.env,
        );
        self.wait_ready();
    }

    /// Waits until this server answers an RPC NULL call on its port.
    ///
    /// A successful connect alone is not proof: the port comes from
    /// [`free_port`] and was free when picked, so until nfs4d binds it a
    /// connect can reach whatever else took it meanwhile, or the
    /// connecting socket itself (TCP simultaneous open when the kernel
    /// picks the destination port as the source port). Only nfs4d answers
    /// the NULL call, and a process that has exited fails the wait at once
    /// with its status.
    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "nfs4d exited ({status}) before serving {addr}; log:\n{}",
                    self.log()
                );
            }
            if answers_null(&addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nfs4d did not answer an RPC NULL call on {addr} within 20 s; log:\n{}",
            self.log()
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("nfs4d.log")).unwrap_or_default()
    }

    /// An `nfs://` URL for `path` on this server (NFSv4). libnfs splits a
    /// URL into export and file at the last '/', so the export "/" needs
    /// the doubled slash.
    pub fn url(&self, path: &str) -> String {
        format!(
            "nfs://127.0.0.1//{}?version=4&nfsport={}",
            path.trim_start_matches('/'),
            self.port
        )
    }

    /// Its address on loopback.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's process id (for /proc/PID/fd and /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn spawn(
    dir: &tempfile::TempDir,
    port: u16,
    export: Option<&Path>,
    state: &Path,
    extra: &[String],
    env: &[(String, String)],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("nfs4d.log"))
        .expect("log file");
    let export: Vec<&std::ffi::OsStr> = match export {
        Some(e) => vec!["--export".as_ref(), e.as_os_str()],
        None => Vec::new(),
    };
    Command::new(nfs4d_bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(export)
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start nfs4d")
}

impl Drop for Nfs4d {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that is not an RPC server (it accepts and says nothing)
    /// and a port nothing listens on are both "not ready".
    #[test]
    fn only_an_rpc_reply_counts_as_ready() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let (c, _) = l.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(100));
            drop(c);
        });
        assert!(!answers_null(&addr));
        t.join().expect("acceptor");
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
        assert!(!answers_null(&closed));
    }
}
