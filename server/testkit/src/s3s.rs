//! A real S3 server for tests: `s3s-fs` (crates.io) serving a directory on
//! a loopback port, with one bucket. The object-store tests of the daemon
//! and the conformance suites start one per test; nothing is mocked.
//!
//! s3s-fs keeps each bucket as a directory and each object as a file, so a
//! test can also look at what landed in the bucket. Its known differences
//! from S3 are in docs/objectstore.md (it never lists `dir/` markers, so
//! exports on it set `list_markers = false`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key of the test server.
pub const ACCESS_KEY: &str = "nfs4dtestkey";
/// Secret key of the test server.
pub const SECRET_KEY: &str = "nfs4dtestsecret";
/// How to install the server.
pub const INSTALL: &str = "cargo install s3s-fs --version 0.14.1 --locked --features binary";

/// Longest wait for the server to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The `s3s-fs` binary: `$S3S_FS_BIN`, else on `PATH` or in `~/.cargo/bin`.
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(home_bin)
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// A running s3s-fs; killed when dropped.
pub struct S3sFs {
    child: Child,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// The directory it serves: bucket `b` is `root/b`.
    pub root: PathBuf,
}

impl S3sFs {
    /// Starts s3s-fs over `root` (created if missing) with the buckets
    /// `buckets`. Fails if the binary is missing or does not listen in
    /// time; callers that may skip check [`binary`] first.
    pub fn start(root: &Path, buckets: &[&str]) -> std::io::Result<S3sFs> {
        let bin = binary().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("s3s-fs not found ({INSTALL})"),
            )
        })?;
        for b in buckets {
            std::fs::create_dir_all(root.join(b))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut s = S3sFs {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&s.addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || !matches!(s.child.try_wait(), Ok(None)) {
                s.stop();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("s3s-fs did not listen on {}", s.addr),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a process needs to reach it: the standard AWS
    /// variables (credentials never go into nfs4d's configuration), and no
    /// shared files or instance metadata to fall back on.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// The object `key` of `bucket` as s3s-fs stores it (a file).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.stop();
    }
}
