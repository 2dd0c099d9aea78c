//! The admin socket: `STATE_DIR/ctl.sock`, one line-based request per
//! connection, used by `nfs4d ctl …`.
//!
//! Access control is the socket file's mode, 0600: only the user the server
//! runs as (root, normally) can connect. The socket is bound under a
//! temporary name, restricted, then renamed into place, so it is never
//! reachable with looser permissions.
//!
//! Protocol (UTF-8, fields separated by one TAB, ends with LF):
//!
//! | request                              | answer                       |
//! |--------------------------------------|------------------------------|
//! | `ping`                               | `ok<TAB>pong`                |
//! | `migrate<TAB>EXPORT<TAB>NEWDIR`      | `ok<TAB>text` or `error<TAB>text` |
//! | `migrate-head<TAB>EXPORT<TAB>HEAD`   | same (a head of a cluster: docs/cluster.md) |
//!
//! EXPORT is the export's pseudo path (`/`, `/data`); NEWDIR an absolute
//! path. A request longer than [`MAX_LINE`] bytes, or malformed, gets an
//! `error` line; the server logs every request and its outcome.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use nfs4d_core::server::Server;

/// File name of the socket in the state directory.
pub const SOCKET_NAME: &str = "ctl.sock";
/// Longest request line accepted.
pub const MAX_LINE: u64 = 16 << 10;
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
    srv: Arc<Server>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    tokio::spawn(connection(srv.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ctl: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(socket_path(&srv.cfg.state_dir));
}

async fn connection(srv: Arc<Server>, stream: UnixStream) {
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
            let s = srv.clone();
            match tokio::task::spawn_blocking(move || handle(&s, &request)).await {
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

/// Runs one request (blocking).
pub fn handle(srv: &Server, request: &str) -> Result<String, String> {
    let fields: Vec<&str> = request.split('\t').collect();
    match fields.as_slice() {
        ["ping"] => Ok("pong".into()),
        ["migrate", export, to] => {
            let to = Path::new(to);
            if !to.is_absolute() {
                return Err(format!("target {} must be an absolute path", to.display()));
            }
            tracing::info!(export, to = %to.display(), "ctl: migrate requested");
            let fds = srv.cfg.limits.max_open_files as usize;
            let r = srv
                .vfs
                .migrate(export, |from| {
                    crate::startup::migration_target(export, from, to, fds)
                })
                .map_err(|e| format!("migrate {export}: {e}"))?;
            let msg = format!(
                "export {export} now served from {} (was {}); {} objects kept their handles, {} not found at the same path with the same type; volatile handles {}",
                r.to.display(),
                r.from.display(),
                r.stats.rekeyed,
                r.stats.missing,
                if r.expired { "expired" } else { "kept" }
            );
            tracing::info!("ctl: {msg}");
            Ok(msg)
        }
        [cmd, ..] if *cmd == "migrate" => Err("usage: migrate<TAB>EXPORT<TAB>NEWDIR".into()),
        ["migrate-head", export, head] => {
            tracing::info!(export, head, "ctl: migrate to another head requested");
            let h = crate::cluster::this_head()
                .ok_or("this server is not a head of a cluster (no [cluster] section)")?;
            let msg = h.migrate(srv, export, head)?;
            tracing::info!("ctl: {msg}");
            Ok(msg)
        }
        _ => Err(format!(
            "unknown request {:?}",
            request.chars().take(64).collect::<String>()
        )),
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
    BufReader::new(&mut s).take(MAX_LINE).read_line(&mut line)?;
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
