//! Starts the real `nfs4d` binary on a free loopback port for a test.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfs4d::client::Client;

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    /// Starts a server; `extra` is appended to `nfs4d serve`.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&export).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = spawn(&dir, addr, &export, &state, &extra);
        let s = TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra,
        };
        s.wait_ready();
        s
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
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = spawn(&dir, addr, &export, &state, &all);
        let s = TestServer {
            child,
            addr,
            export,
            state,
            dir,
            extra: all,
        };
        s.wait_ready();
        s
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
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("server did not start:\n{}", self.log());
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
        .stdout(Stdio::null())
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
