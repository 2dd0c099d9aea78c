//! The admin socket: `STATE_DIR/ctl.sock`, one line-based request per
//! connection, used by `nfs4d ctl …`.
//!
//! Access control is the socket file's mode, 0600: only the user the server
//! runs as (root, normally) can connect. The socket is bound under a
//! temporary name, restricted, then renamed into place, so it is never
//! reachable with looser permissions.
//!
//! Protocol (UTF-8, fields separated by one TAB, ends with LF; the
//! answer is one line too):
//!
//! | request                              | answer                       |
//! |--------------------------------------|------------------------------|
//! | `ping`                               | `ok<TAB>pong`                |
//! | `migrate<TAB>EXPORT<TAB>NEWDIR`      | `ok<TAB>text` or `error<TAB>text` |
//! | `status`                             | `ok<TAB>JSON object`         |
//! | `clients`                            | `ok<TAB>JSON object`         |
//! | `exports`                            | `ok<TAB>JSON object`         |
//! | `evict<TAB>CLIENTID`                 | `ok<TAB>JSON object`         |
//! | `reload`                             | `ok<TAB>JSON object`         |
//! | `migrate-head<TAB>EXPORT<TAB>HEAD`   | same (a head of a cluster: docs/cluster.md) |
//!
//! EXPORT is the export's pseudo path (`/`, `/data`); NEWDIR an absolute
//! path; CLIENTID a client id in hex as `clients` shows it. A request
//! longer than [`MAX_LINE`] bytes, or malformed, gets an `error` line; the
//! server logs every request and its outcome. Requests are rows of
//! [`COMMANDS`]; `nfs4d ctl` renders the JSON answers for people, or
//! prints them as they are with `--json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use nfs4d_core::server::Server;
use serde_json::{json, Value};

use crate::metered::StoreCounters;
use crate::reload::Reloader;

/// File name of the socket in the state directory.
pub const SOCKET_NAME: &str = "ctl.sock";
/// Longest request line accepted.
pub const MAX_LINE: u64 = 16 << 10;
/// Longest answer line accepted by the client side.
pub const MAX_ANSWER: u64 = 16 << 20;
/// Clients listed by `clients` at most (the answer says how many more).
pub const MAX_LISTED: usize = 20_000;
// A listed client takes well under 512 bytes of JSON.
const _: () = assert!((MAX_LISTED as u64) * 512 < MAX_ANSWER);
/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket path for a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Binds `STATE_DIR/ctl.sock` with mode 0600, replacing a leftover socket
/// of an earlier run (only one server can use a state directory: the
/// handle map locks it). Needs a tokio runtime.
pub fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(state_dir);
    let tmp = state_dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Accepts admin connections until `shutdown` resolves, then removes the
/// socket file.
pub async fn serve(
    admin: Arc<Admin>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    tokio::spawn(connection(admin.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ctl: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(socket_path(&admin.srv.cfg.state_dir));
}

async fn connection(admin: Arc<Admin>, stream: UnixStream) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = tokio::io::BufReader::new(rd.take(MAX_LINE + 1));
    let mut line = String::new();
    let answer = match tokio::time::timeout(READ_TIMEOUT, rd.read_line(&mut line)).await {
        Err(_) => Err("timed out waiting for the request".to_string()),
        Ok(Err(e)) => Err(format!("unreadable request: {e}")),
        Ok(Ok(_)) if line.len() as u64 > MAX_LINE || !line.ends_with('\n') => Err(format!(
            "request must be one line of at most {MAX_LINE} bytes"
        )),
        Ok(Ok(_)) => {
            let request = line.trim_end_matches('\n').to_string();
            let a = admin.clone();
            match tokio::task::spawn_blocking(move || handle(&a, &request)).await {
                Ok(r) => r,
                Err(e) => Err(format!("request failed: {e}")),
            }
        }
    };
    let reply = match &answer {
        Ok(text) => format!("ok\t{}\n", one_line(text)),
        Err(text) => {
            tracing::warn!(error = %text, "ctl: request refused");
            format!("error\t{}\n", one_line(text))
        }
    };
    let _ = wr.write_all(reply.as_bytes()).await;
    let _ = wr.shutdown().await;
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// What the admin socket works on: the server and the daemon's parts
/// around it.
pub struct Admin {
    /// The server.
    pub srv: Arc<Server>,
    /// When it started.
    pub started: std::time::SystemTime,
    /// Re-reads the configuration (`reload`, SIGHUP).
    pub reloader: Reloader,
    /// Store-request counters, when metrics are served (stores opened by
    /// `migrate` count there too).
    pub meter: Option<Arc<StoreCounters>>,
    /// Where metrics are served, if they are.
    pub metrics: Option<std::net::SocketAddr>,
    /// The NFS listener's address.
    pub listen: std::net::SocketAddr,
}

/// One request kind: its name, its arguments for the usage message, and
/// what runs it (blocking) with the fields after the name.
pub struct Command {
    /// First field of the request.
    pub name: &'static str,
    /// Arguments, for the usage message.
    pub args: &'static str,
    /// Fields after the name given.
    pub arity: usize,
    /// Runs it.
    pub run: fn(&Admin, &[&str]) -> Result<String, String>,
}

/// Every request the socket answers.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "ping",
        args: "",
        arity: 0,
        run: |_, _| Ok("pong".into()),
    },
    Command {
        name: "migrate",
        args: "EXPORT<TAB>NEWDIR",
        arity: 2,
        run: migrate,
    },
    Command {
        name: "migrate-head",
        args: "EXPORT<TAB>HEAD",
        arity: 2,
        run: migrate_head,
    },
    Command {
        name: "status",
        args: "",
        arity: 0,
        run: |a, _| Ok(status(a).to_string()),
    },
    Command {
        name: "clients",
        args: "",
        arity: 0,
        run: |a, _| Ok(clients(a).to_string()),
    },
    Command {
        name: "exports",
        args: "",
        arity: 0,
        run: |a, _| Ok(exports(a).to_string()),
    },
    Command {
        name: "evict",
        args: "CLIENTID",
        arity: 1,
        run: evict,
    },
    Command {
        name: "reload",
        args: "",
        arity: 0,
        run: reload,
    },
];

/// Runs one request (blocking).
pub fn handle(admin: &Admin, request: &str) -> Result<String, String> {
    let fields: Vec<&str> = request.split('\t').collect();
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == fields[0]) else {
        return Err(format!(
            "unknown request {:?}",
            request.chars().take(64).collect::<String>()
        ));
    };
    if fields.len() != cmd.arity + 1 {
        let sep = if cmd.args.is_empty() { "" } else { "<TAB>" };
        return Err(format!("usage: {}{sep}{}", cmd.name, cmd.args));
    }
    (cmd.run)(admin, &fields[1..])
}

fn migrate(admin: &Admin, f: &[&str]) -> Result<String, String> {
    let (export, to) = (f[0], Path::new(f[1]));
    if !to.is_absolute() {
        return Err(format!("target {} must be an absolute path", to.display()));
    }
    let srv = &admin.srv;
    tracing::info!(export, to = %to.display(), "ctl: migrate requested");
    let fds = srv.cfg.limits.max_open_files as usize;
    let r = srv
        .vfs
        .migrate(export, |from| {
            let (store, dir) = crate::startup::migration_target(export, from, to, fds)?;
            Ok(match &admin.meter {
                Some(c) => (crate::metered::Metered::wrap(store, c.clone()), dir),
                None => (store, dir),
            })
        })
        .map_err(|e| format!("migrate {export}: {e}"))?;
    let msg = format!(
        "export {export} now served from {} (was {}); {} objects kept their handles, {} not found at the same path with the same type; volatile handles {}; recorded for the next start until the configuration names another directory",
        r.to.display(),
        r.from.display(),
        r.stats.rekeyed,
        r.stats.missing,
        if r.expired { "expired" } else { "kept" }
    );
    tracing::info!("ctl: {msg}");
    Ok(msg)
}

/// Hands an export over to another head of the cluster (docs/cluster.md):
/// this head answers NFS4ERR_MOVED for it from now on.
fn migrate_head(admin: &Admin, f: &[&str]) -> Result<String, String> {
    let (export, head) = (f[0], f[1]);
    tracing::info!(export, head, "ctl: migrate to another head requested");
    let h = crate::cluster::this_head()
        .ok_or("this server is not a head of a cluster (no [cluster] section)")?;
    let msg = h.migrate(&admin.srv, export, head)?;
    tracing::info!("ctl: {msg}");
    Ok(msg)
}

/// `status`: version, uptime, exports, grace, counts.
pub fn status(admin: &Admin) -> Value {
    let srv = &admin.srv;
    let n = srv.state.counts();
    let now = srv.clock.now_ms();
    let uptime = admin.started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    let started = admin
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started_unix": started,
        "uptime_secs": uptime,
        "listen": admin.listen.to_string(),
        "state_dir": srv.cfg.state_dir.display().to_string(),
        "metrics": admin.metrics.map(|a| format!("http://{a}/metrics")),
        "boot_epoch": srv.boot,
        "grace": srv.state.recovery.in_grace(now),
        "lease_time_secs": srv.cfg.lease_time,
        "exports": srv.vfs.exports().len(),
        "clients": n.clients,
        "courtesy_clients": n.courtesy,
        "sessions": n.sessions,
        "opens": n.opens,
        "locks": n.locks,
        "delegations": n.delegations,
        "delegations_recalling": n.recalling,
        "delegations_granted": n.stats.delegations_granted,
        "delegations_recalled": n.stats.delegations_recalled,
        "delegations_revoked": n.stats.delegations_revoked,
        "leases_expired": n.stats.leases_expired,
        "clients_evicted": n.stats.clients_evicted,
    })
}

fn client_json(c: &nfs4d_core::state::ClientView) -> Value {
    json!({
        "id": format!("{:#x}", c.id),
        "address": c.addr.map(|a| a.to_string()),
        "owner": printable(&c.owner),
        "minor_version": c.minor,
        "confirmed": c.confirmed,
        "implementation": c.implementation,
        "lease_age_ms": c.lease_age_ms,
        "courtesy": c.courtesy,
        "sessions": c.sessions,
        "opens": c.opens,
        "locks": c.locks,
        "delegations": c.delegations,
        "delegations_revoked": c.revoked,
    })
}

/// `clients`: each with address, owner, minor version, lease age, opens,
/// locks, delegations.
pub fn clients(admin: &Admin) -> Value {
    let all = admin.srv.state.clients();
    let more = all.len().saturating_sub(MAX_LISTED);
    let list: Vec<Value> = all.iter().take(MAX_LISTED).map(client_json).collect();
    json!({ "clients": list, "not_listed": more })
}

/// `exports`: the exports in force.
pub fn exports(admin: &Admin) -> Value {
    let list: Vec<Value> = admin
        .srv
        .vfs
        .exports()
        .into_iter()
        .map(|e| {
            let served = e.store.dir();
            json!({
                "id": e.id,
                "path": e.cfg.path,
                "dir": served.display().to_string(),
                "configured_dir": e.cfg.dir.display().to_string(),
                "filehandles": format!("{:?}", e.cfg.filehandles).to_lowercase(),
                "read_only": e.cfg.read_only,
                "clients": e.cfg.clients.as_ref().map(|r| r.len()),
                "squash": format!("{:?}", e.cfg.squash).to_lowercase(),
                "sec": e.cfg.sec.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
                "delegations": format!("{:?}", e.cfg.delegations).to_lowercase(),
            })
        })
        .collect();
    json!({ "exports": list })
}

fn evict(admin: &Admin, f: &[&str]) -> Result<String, String> {
    let digits = f[0].trim_start_matches("0x").trim_start_matches("0X");
    let id = u64::from_str_radix(digits, 16).map_err(|_| {
        format!(
            "{:?} is not a client id (hex, as `nfs4d ctl clients` shows it)",
            f[0]
        )
    })?;
    let e = admin.srv.state.evict(id).map_err(|e| e.to_string())?;
    Ok(json!({ "evicted": client_json(&e.client) }).to_string())
}

fn reload(admin: &Admin, _: &[&str]) -> Result<String, String> {
    admin
        .reloader
        .reload(&admin.srv)
        .map(|s| json!({ "reloaded": s }).to_string())
}

/// An owner string for people: text when it is printable UTF-8, hex otherwise.
fn printable(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// Client side (`nfs4d ctl`): sends one request line to the server of
/// `state_dir` and returns its answer: `Ok(text)` for `ok`, `Err(text)` for
/// `error`. Connection trouble is an `io::Error`.
pub fn request(state_dir: &Path, fields: &[&str]) -> std::io::Result<Result<String, String>> {
    use std::io::{Error, ErrorKind};
    if fields.iter().any(|f| f.contains(['\t', '\n'])) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "arguments may not contain tabs or newlines",
        ));
    }
    let path = socket_path(state_dir);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        Error::new(
            e.kind(),
            format!(
                "{}: {e} (is the server running with this state directory?)",
                path.display()
            ),
        )
    })?;
    s.write_all(format!("{}\n", fields.join("\t")).as_bytes())?;
    let mut line = String::new();
    BufReader::new(&mut s)
        .take(MAX_ANSWER)
        .read_line(&mut line)?;
    let line = line.trim_end_matches('\n');
    match line.split_once('\t') {
        Some(("ok", text)) => Ok(Ok(text.to_string())),
        Some(("error", text)) => Ok(Err(text.to_string())),
        _ => Err(Error::new(
            ErrorKind::InvalidData,
            format!("unexpected answer {line:?}"),
        )),
    }
}

/// Renders a JSON answer of `cmd` for people (`nfs4d ctl` without `--json`).
pub fn render(cmd: &str, v: &Value) -> String {
    let s = |k: &str| match &v[k] {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    match cmd {
        "status" => {
            let up = v["uptime_secs"].as_u64().unwrap_or(0);
            let mut out = format!(
                "nfs4d {} (pid {}), up {}\nlistening on {}, state in {}\nmetrics: {}\ngrace period: {}\nexports: {}\nclients: {} ({} courtesy), sessions: {}\nopens: {}, locks: {}, delegations: {} ({} being recalled)\ndelegations granted {}, recalled {}, revoked {}; leases expired {}; clients evicted {}",
                s("version"),
                s("pid"),
                duration(up),
                s("listen"),
                s("state_dir"),
                s("metrics"),
                if v["grace"].as_bool() == Some(true) { "in progress" } else { "over" },
                s("exports"),
                s("clients"),
                s("courtesy_clients"),
                s("sessions"),
                s("opens"),
                s("locks"),
                s("delegations"),
                s("delegations_recalling"),
                s("delegations_granted"),
                s("delegations_recalled"),
                s("delegations_revoked"),
                s("leases_expired"),
                s("clients_evicted"),
            );
            out.truncate(out.trim_end().len());
            out
        }
        "clients" => {
            let mut t = Table::new(&[
                "ID",
                "ADDRESS",
                "VERS",
                "LEASE AGE",
                "OPENS",
                "LOCKS",
                "DELEGS",
                "OWNER",
            ]);
            for c in v["clients"].as_array().into_iter().flatten() {
                let f = |k: &str| match &c[k] {
                    Value::String(t) => t.clone(),
                    Value::Null => "-".into(),
                    other => other.to_string(),
                };
                let mut state = String::new();
                if c["confirmed"].as_bool() != Some(true) {
                    state.push_str(" (unconfirmed)");
                }
                if c["courtesy"].as_bool() == Some(true) {
                    state.push_str(" (courtesy)");
                }
                let age = c["lease_age_ms"].as_u64().unwrap_or(0);
                t.row(vec![
                    f("id"),
                    f("address"),
                    format!("4.{}", f("minor_version")),
                    format!("{}.{}s", age / 1000, age % 1000 / 100),
                    f("opens"),
                    f("locks"),
                    f("delegations"),
                    format!("{}{state}", f("owner")),
                ]);
            }
            let mut out = t.render();
            if v["not_listed"].as_u64().unwrap_or(0) > 0 {
                out.push_str(&format!("\n… and {} more", v["not_listed"]));
            }
            out
        }
        "exports" => {
            let mut t = Table::new(&[
                "ID",
                "PATH",
                "DIR",
                "HANDLES",
                "ACCESS",
                "SEC",
                "DELEGATIONS",
            ]);
            for e in v["exports"].as_array().into_iter().flatten() {
                let f = |k: &str| match &e[k] {
                    Value::String(t) => t.clone(),
                    Value::Null => "-".into(),
                    other => other.to_string(),
                };
                let mut dir = f("dir");
                if e["dir"] != e["configured_dir"] {
                    dir.push_str(&format!(" (migrated from {})", f("configured_dir")));
                }
                let access = match (e["read_only"].as_bool(), e["clients"].as_u64()) {
                    (Some(true), _) => "ro".to_string(),
                    (_, Some(n)) => format!("rw, {n} client rules"),
                    _ => "rw".to_string(),
                };
                let sec: Vec<String> = e["sec"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect();
                t.row(vec![
                    f("id"),
                    f("path"),
                    dir,
                    f("filehandles"),
                    format!("{access}, squash {}", f("squash")),
                    sec.join(","),
                    f("delegations"),
                ]);
            }
            t.render()
        }
        "evict" => {
            let c = &v["evicted"];
            format!(
                "evicted client {} ({}, owner {}): {} opens, {} locks, {} delegations released",
                c["id"].as_str().unwrap_or("?"),
                c["address"].as_str().unwrap_or("address unknown"),
                c["owner"].as_str().unwrap_or("?"),
                c["opens"],
                c["locks"],
                c["delegations"]
            )
        }
        "reload" => v["reloaded"].as_str().unwrap_or_default().to_string(),
        _ => v.to_string(),
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// Columns aligned for a terminal.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            rows: vec![head.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    fn render(&self) -> String {
        let cols = self.rows[0].len();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < cols {
                    let pad = width[c] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }
}
