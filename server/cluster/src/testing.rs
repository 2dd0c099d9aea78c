//! A real etcd cluster for tests (feature `testing`): members started as
//! child processes on one loopback address, in a temporary directory, with
//! helpers to kill, stop (SIGSTOP), resume and restart members, and to lose
//! and restore quorum.
//!
//! etcd comes from the Debian package `etcd-server` (`$ETCD_BIN`
//! overrides the binary). Without it a test skips loudly on a developer
//! machine ([`EtcdCluster::start`] returns `None`) and fails in CI
//! (`CI=true`), the project's convention for external programs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::ClusterConfig;

/// How long a fresh cluster may take to elect a leader and answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh addresses and ports tried before giving up on starting.
const START_ATTEMPTS: usize = 3;
/// etcd's raft timing: its defaults, which stay stable on a loaded
/// two-core machine (a shorter election timeout causes spurious elections
/// there). A lost leader is noticed within one election timeout.
const HEARTBEAT_MS: u32 = 100;
const ELECTION_MS: u32 = 1000;
/// Most members a test cluster may have.
pub const MAX_MEMBERS: usize = 7;

/// True when running in CI, where a missing etcd is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on PATH.
pub fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// One member process and where it listens.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

/// A running etcd cluster; dropping it kills every member and removes
/// its directory.
pub struct EtcdCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ip: Ipv4Addr,
    token: String,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `n` members (1 to [`MAX_MEMBERS`]) and waits until every one
    /// is healthy. `None` when etcd is not installed outside CI (a loud
    /// skip); panics in CI or when the cluster does not come up.
    pub fn start(n: usize) -> Option<EtcdCluster> {
        assert!((1..=MAX_MEMBERS).contains(&n), "{n} members");
        let Some(bin) = etcd_bin() else {
            let msg = "`etcd` not found: install the Debian package `etcd-server` \
                       (apt-get install etcd-server) or set ETCD_BIN";
            if in_ci() {
                panic!("{msg}");
            }
            eprintln!("\n*** SKIPPED: {msg} ***\n");
            return None;
        };
        let mut why = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin, n) {
                Ok(c) => return Some(c),
                Err(e) => {
                    eprintln!("etcd test cluster did not start, retrying: {e}");
                    why = e;
                }
            }
        }
        panic!("etcd test cluster did not start: {why}");
    }

    fn try_start(bin: &std::path::Path, n: usize) -> Result<EtcdCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("nfs4d-etcd")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let ip = random_loopback();
        // Ports the kernel hands out on this address, held until all are
        // known so no two members get the same one. A random address of
        // 127/8 keeps clusters of tests running in parallel apart.
        let listeners: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind((ip, 0)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bind {ip}: {e}"))?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("local address: {e}"))?;
        drop(listeners);
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                log: dir.path().join(format!("m{i}.log")),
                child: None,
                stopped: false,
            })
            .collect();
        let mut c = EtcdCluster {
            bin: bin.to_path_buf(),
            token: format!("nfs4d-test-{}", std::process::id()),
            dir,
            ip,
            members,
        };
        for i in 0..n {
            c.spawn(i)?;
        }
        if c.wait_healthy(START_TIMEOUT) {
            Ok(c)
        } else {
            Err(format!(
                "not healthy within {START_TIMEOUT:?}:\n{}",
                c.logs_tail()
            ))
        }
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, self.ip, m.peer_port))
            .collect();
        let m = &self.members[i];
        let client = format!("http://{}:{}", self.ip, m.client_port);
        let peer = format!("http://{}:{}", self.ip, m.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| format!("{}: {e}", m.log.display()))?;
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let m = &mut self.members[i];
        m.child = Some(child);
        m.stopped = false;
        Ok(())
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{}", self.ip, self.members[i].client_port)
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// A configuration for head `head` of cluster `name` on these members,
    /// with a short lease (`lease_secs`) and request deadline for tests.
    pub fn config(&self, name: &str, head: &str, lease_secs: u64) -> ClusterConfig {
        let mut c = ClusterConfig::new(self.endpoints(), name, head);
        c.lease_secs = lease_secs;
        c.request_timeout_ms = (lease_secs * 1000 / 2).min(3000);
        c
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            // It may have died already; either way it is gone after wait.
            let _ = child.kill();
            let _ = child.wait();
        }
        m.stopped = false;
    }

    /// Starts member `i` again on its data directory and ports (after
    /// [`EtcdCluster::kill`]); it rejoins the cluster from its own log.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        if let Err(e) = self.spawn(i) {
            panic!("restart member {i}: {e}");
        }
    }

    /// Freezes member `i` (SIGSTOP): it keeps its sockets but answers
    /// nothing, like a hung or cut-off machine.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.members[i].stopped = true;
    }

    /// Lets a paused member run again (SIGCONT).
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.members[i].stopped = false;
    }

    fn signal(&self, i: usize, sig: &str) {
        let Some(child) = &self.members[i].child else {
            panic!("member {i} is not running");
        };
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} member {i}");
    }

    /// Kills members until only a minority is left running (of three,
    /// member 0 stays); returns the killed ones.
    pub fn lose_quorum(&mut self) -> Vec<usize> {
        let n = self.members.len();
        let keep = (n - 1) / 2;
        let killed: Vec<usize> = (keep..n).collect();
        for &i in &killed {
            self.kill(i);
        }
        killed
    }

    /// Restarts the given members (what [`EtcdCluster::lose_quorum`]
    /// returned).
    pub fn restore(&mut self, members: &[usize]) {
        for &i in members {
            self.restart(i);
        }
    }

    /// Whether member `i` answers `/health` with a leader and quorum.
    pub fn member_healthy(&self, i: usize) -> bool {
        let m = &self.members[i];
        if m.child.is_none() || m.stopped {
            return false;
        }
        health(SocketAddr::from((self.ip, m.client_port)))
    }

    /// Whether member `i` says it is the leader (its status names itself
    /// as leader); false if it does not answer.
    pub fn is_leader(&self, i: usize) -> bool {
        let m = &self.members[i];
        if m.child.is_none() || m.stopped {
            return false;
        }
        let Some(body) = post(
            SocketAddr::from((self.ip, m.client_port)),
            "/v3/maintenance/status",
        ) else {
            return false;
        };
        // {"header":{..,"member_id":"N",..},..,"leader":"N",..}
        let field = |name: &str| {
            let key = format!("\"{name}\":\"");
            let at = body.find(&key)? + key.len();
            Some(body[at..].split('"').next()?.to_string())
        };
        matches!((field("member_id"), field("leader")), (Some(a), Some(b)) if a == b)
    }

    /// Waits until every running member is healthy.
    pub fn wait_healthy(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let all = (0..self.members.len())
                .filter(|&i| self.members[i].child.is_some() && !self.members[i].stopped)
                .all(|i| self.member_healthy(i));
            if all {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every member's log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ---\n", m.name));
            for l in &lines[lines.len().saturating_sub(8)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].stopped {
                // A stopped process ignores SIGKILL until continued on
                // some kernels' accounting; continue it first.
                self.resume(i);
            }
            self.kill(i);
        }
    }
}

/// One HTTP/1.0 exchange with an etcd client port (its JSON gateway and
/// `/health` are served next to gRPC): `request` sent whole, the answer,
/// headers and body, if the connection and the write succeeded within
/// half a second each.
fn exchange(addr: SocketAddr, request: &str) -> Option<String> {
    let t = Duration::from_millis(500);
    let mut s = TcpStream::connect_timeout(&addr, t).ok()?;
    s.set_read_timeout(Some(t)).ok()?;
    s.set_write_timeout(Some(t)).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut body = Vec::new();
    // Bounded: a health or status answer is a few hundred bytes.
    let _ = s.take(64 * 1024).read_to_end(&mut body);
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// POST `{}` to `path` of an etcd client port; the answer.
fn post(addr: SocketAddr, path: &str) -> Option<String> {
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        ),
    )
}

/// GET /health on an etcd client port.
fn health(addr: SocketAddr) -> bool {
    exchange(addr, "GET /health HTTP/1.0\r\n\r\n")
        .is_some_and(|a| a.contains("\"health\":\"true\""))
}

/// A random address of 127/8 other than the usual 127.0.0.x.
fn random_loopback() -> Ipv4Addr {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x =
        nanos ^ std::process::id().rotate_left(16) ^ SEQ.fetch_add(0x9e37, Ordering::Relaxed);
    // xorshift to spread the bits
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    let b = x.to_le_bytes();
    Ipv4Addr::new(127, 1 + b[0] % 250, 1 + b[1] % 250, 1 + b[2] % 250)
}

/// A TCP forwarder on loopback that can be cut: while cut, it keeps every
/// connection open but forwards nothing, in either direction, and new
/// connections are accepted and left silent — what a head sees when the
/// network between it and etcd fails. Put one in front of each etcd
/// member in a head's configuration to cut that head alone off.
pub struct Blackhole {
    addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Poll interval of the forwarder threads (how fast a cut takes effect).
const BLACKHOLE_POLL: Duration = Duration::from_millis(20);
/// Connections one forwarder serves at most (two threads each).
const BLACKHOLE_MAX_CONNS: usize = 64;

impl Blackhole {
    /// Forwards a fresh loopback port to `target` (`http://host:port` or
    /// `host:port`).
    pub fn start(target: &str) -> Blackhole {
        let target: SocketAddr = target
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("blackhole target {target}: {e}"));
        let listener = TcpListener::bind((target.ip(), 0)).expect("bind blackhole");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local address");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (cut.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut conns = 0;
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) if conns < BLACKHOLE_MAX_CONNS => {
                        conns += 1;
                        let Ok(server) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(1))
                        else {
                            continue;
                        };
                        for (from, to) in [(&client, &server), (&server, &client)] {
                            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                                continue;
                            };
                            let (c, s) = (c.clone(), s.clone());
                            std::thread::spawn(move || pump(from, to, &c, &s));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(BLACKHOLE_POLL),
                }
            }
        });
        Blackhole { addr, cut, stop }
    }

    /// The URL to give a head instead of the member's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding (connections stay open and silent).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Copies `from` to `to` while not cut; while cut, holds the bytes (reads
/// nothing), so the peer's writes stall as on a dead link.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
) {
    if from.set_read_timeout(Some(BLACKHOLE_POLL)).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        if cut.load(Ordering::Acquire) {
            std::thread::sleep(BLACKHOLE_POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Bytes read just before a cut still go through: they were
                // on the wire already.
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
