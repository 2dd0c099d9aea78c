//! Starts the real `nfs4d` binary on a free loopback port for a test.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nfs4d_testkit::Client;

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
    env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server; `extra` is appended to `nfs4d serve`.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&export).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut child = spawn(&dir, ANY_PORT, &export, &state, &extra, &[]);
        let addr = wait_listening(&dir, &mut child);
        TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra,
            env: Vec::new(),
        }
    }

    /// Starts a server from a configuration file: `toml` (exports, limits
    /// …) with `{export}` replaced by the backing directory, which then
    /// holds the export directories. `extra` is appended as in [`start`].
    pub fn start_with_config(toml: &str, extra: &[&str]) -> TestServer {
        Self::start_with_config_env(toml, extra, &[])
    }

    /// [`start_with_config`] with `env` added to the server's environment
    /// (kept for restarts).
    pub fn start_with_config_env(toml: &str, extra: &[&str], env: &[(&str, String)]) -> TestServer {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
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
        let mut child = spawn(&dir, ANY_PORT, &export, &state, &all, &env);
        let addr = wait_listening(&dir, &mut child);
        TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra: all,
            env,
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
        self.child = spawn(
            &self.dir,
            self.addr,
            &self.export,
            &self.state,
            &self.extra,
            &self.env,
        );
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

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig}): {}", std::io::Error::last_os_error());
    }

    /// Waits up to `limit` for the server to exit; its status, or `None`
    /// if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again after it exited (or kills it first), on the
    /// same port and directories.
    pub fn start_again(&mut self) {
        self.restart();
    }

    /// Runs `nfs4d ctl ARGS --state-dir STATE`; (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
            .arg("ctl")
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .output()
            .expect("run nfs4d ctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `nfs4d ctl CMD --json` that must succeed: its answer.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.ctl(&all);
        assert_eq!(code, 0, "ctl {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ctl {args:?}: {e}: {out}"))
    }

    /// The configuration file of a server started with
    /// [`Self::start_with_config`].
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("nfs4d.toml")
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
    env: &[(String, String)],
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
        .envs(env.iter().map(|(k, v)| (k, v)))
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
