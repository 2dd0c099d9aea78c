//! Test harness: a real S3 server (s3s-fs) on a loopback port over a
//! temporary directory, credentials in a shared AWS credentials file, and
//! a second OpenDAL operator playing "another S3 client".

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use nfs4d_store::{Name, Owner, RelPath};
use nfs4d_store_s3::S3Config;
use opendal::services::S3;
use opendal::Operator;

pub const AK: &str = "nfs4dtestkey";
pub const SK: &str = "nfs4dtestsecret";
pub const BUCKET: &str = "bkt";
pub const OWNER: Owner = Owner {
    uid: 1000,
    gid: 100,
};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    let home_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(home_bin)
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// Credentials the way a deployment has them: a shared credentials file
/// with profiles (`good` and `wrong`), found through the standard
/// variables. Set once, before any store exists.
fn credentials(dir: &std::path::Path) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let creds = dir.join("credentials");
        std::fs::write(
            &creds,
            format!(
                "[good]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n\n\
                 [wrong]\naws_access_key_id = {AK}\naws_secret_access_key = not-the-secret\n"
            ),
        )
        .expect("write credentials");
        let cfg = dir.join("config");
        std::fs::write(&cfg, "[profile good]\nregion = us-east-1\n").expect("write config");
        // SAFETY of the environment: set once, first thing in every test,
        // under a Once.
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &creds);
        std::env::set_var("AWS_CONFIG_FILE", &cfg);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    });
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub spool: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether s3s-fs is installed. Says loudly that the test is skipped on a
/// machine without it; in CI a missing s3s-fs fails.
pub fn available() -> bool {
    if bin().is_some() {
        return true;
    }
    if in_ci() {
        panic!(
            "s3s-fs not found (cargo install s3s-fs --version 0.14.1 --locked --features binary)"
        );
    }
    eprintln!("SKIPPED: s3s-fs not installed (cargo install s3s-fs --version 0.14.1 --locked --features binary)");
    false
}

/// Starts s3s-fs with one bucket, or skips (None) on a machine without it;
/// in CI a missing s3s-fs fails.
pub fn server() -> Option<Server> {
    if !available() {
        return None;
    }
    let bin = bin()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = tempfile::tempdir().expect("tempdir");
    credentials(
        &std::env::temp_dir()
            .join(format!("nfs4d-s3-creds-{}", std::process::id()))
            .tap_mkdir(),
    );
    std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            AK,
            "--secret-key",
            SK,
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let s = Server {
        child,
        port,
        dir,
        spool,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(s)
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> S3Config {
        S3Config {
            bucket: BUCKET.into(),
            prefix: "export".into(),
            endpoint: Some(self.endpoint()),
            profile: Some("good".into()),
            spool_dir: self.spool.path().to_path_buf(),
            attr_ttl_ms: 0,
            part_size: 5 << 20,
            // One part of room: the staging bounds the tests check.
            reorder_room: 5 << 20,
            spool_max: 64 << 20,
            retries: 2,
            request_timeout_ms: 5000,
            // s3s-fs keeps `dir/` markers as bare directories it never lists.
            list_markers: false,
            default_uid: 7,
            default_gid: 8,
            ..S3Config::default()
        }
    }

    /// Another S3 client on the same bucket.
    pub fn other(&self) -> Operator {
        let b = S3::default()
            .bucket(BUCKET)
            .endpoint(&self.endpoint())
            .region("us-east-1")
            .access_key_id(AK)
            .secret_access_key(SK)
            .disable_config_load()
            .disable_ec2_metadata();
        let op = Operator::new(b).expect("operator");
        let t = opendal::HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::from(reqwest::Client::new()),
        );
        op.clone().with_context(op.context().with_http_transport(t))
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).expect("path")
}

pub fn n(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("name")
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
