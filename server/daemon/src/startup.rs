//! Builds a server from its configuration: the state directory with its
//! sled database, one local-directory store per export, and the daemon's
//! implementations of what the core asks for (clock, names, callbacks).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nfs4d_core::config::Config;
use nfs4d_core::namespace::vfs::MigrateError;
use nfs4d_core::server::{Parts, Server, StartError};
use nfs4d_kv_sled::SledKv;
use nfs4d_store::{RelPath, Store};
use nfs4d_store_local::LocalStore;

use crate::cbdriver::CbSender;

/// A server, and the queue its callback driver will drain.
pub struct Started {
    /// The server.
    pub srv: Server,
    /// Where the core queues callback work; `cbdriver::start` drains it.
    pub callbacks: Arc<CbSender>,
    /// This head of a cluster (a `[cluster]` section), if any.
    pub cluster: Option<Arc<crate::cluster::Head>>,
}

/// Opens the state directory and the exports.
pub fn open(mut cfg: Config) -> Result<Started, StartError> {
    let state_err =
        |e: &dyn std::fmt::Display| StartError::State(format!("{}: {e}", cfg.state_dir.display()));
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| state_err(&e))?;
    // A head of a cluster keeps the handle map and its client records in
    // etcd (docs/cluster.md); a single server in sled.
    let head = match &cfg.cluster {
        Some(t) => {
            let c = crate::cluster::config(t).map_err(|e| StartError::State(e.to_string()))?;
            Some(
                crate::cluster::Head::join(c, cfg.listen)
                    .map_err(|e| StartError::State(e.to_string()))?,
            )
        }
        None => None,
    };
    if head.is_some() {
        // Heads of a cluster grant no delegations: another head cannot see
        // or recall them, so two heads could grant conflicting state
        // (docs/cluster.md). A delegation reclaimed from a dead head is
        // handed back recalled, so the client returns it at once and sends
        // its locks to the server.
        for e in &mut cfg.exports {
            if e.delegations != nfs4d_core::state::deleg::Policy::None {
                tracing::info!(export = %e.path, "cluster head: delegations off");
                e.delegations = nfs4d_core::state::deleg::Policy::None;
            }
        }
    }
    let kv: Arc<dyn nfs4d_kv::Kv> = match &head {
        Some(h) => Arc::new(h.kv.clone()),
        // The directory name predates the key-value interface: it held the
        // handle map's sled database, and keeps holding it (with the client
        // records) so existing state stays readable.
        None => Arc::new(
            SledKv::open(&cfg.state_dir.join("fhmap"), cfg.limits.sled_cache_bytes)
                .map_err(|e| state_err(&e))?,
        ),
    };
    let mut stores: Vec<(Arc<dyn Store>, PathBuf)> = Vec::new();
    for e in &cfg.exports {
        let store = open_local(&e.dir, cfg.limits.max_open_files as usize)
            .map_err(|m| StartError::Export(e.dir.display().to_string(), m))?;
        stores.push((store, e.dir.clone()));
    }
    let mac_key = nfs4d_fhmap::random_key().map_err(|e| state_err(&e))?;
    let instance = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let callbacks = Arc::new(CbSender::default());
    let srv = Server::new(Parts {
        cfg,
        stores,
        kv,
        mac_key,
        clock: Arc::new(crate::clock::SystemClock::default()),
        idmap: Arc::new(crate::nss::NssIds),
        callbacks: callbacks.clone(),
        instance,
        host,
        cluster: head.as_ref().map(|h| h.parts()),
    })?;
    if let Some(h) = &head {
        h.share_map(&srv.fhmap)
            .map_err(|e| StartError::State(e.to_string()))?;
    }
    Ok(Started {
        srv,
        callbacks,
        cluster: head,
    })
}

fn open_local(dir: &Path, fds: usize) -> Result<Arc<dyn Store>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let s = LocalStore::with_fd_cache(dir, fds).map_err(|e| e.to_string())?;
    Ok(Arc::new(s))
}

/// Checks the target of `nfs4d ctl migrate` and opens it as a store: it
/// must be an existing directory other than the one served now (`from`).
/// Returns the store and the target's canonical path.
pub fn migration_target(
    export: &str,
    from: &Path,
    to: &Path,
    fds: usize,
) -> Result<(Arc<dyn Store>, PathBuf), MigrateError> {
    let shown = to.display().to_string();
    match std::fs::metadata(to) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MigrateError::NotDirectory(shown)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(MigrateError::Missing(shown))
        }
        Err(err) => return Err(MigrateError::Unusable(shown, err.to_string())),
    }
    let to = std::fs::canonicalize(to)
        .map_err(|err| MigrateError::Unusable(shown.clone(), err.to_string()))?;
    if std::fs::canonicalize(from).is_ok_and(|f| f == to) {
        return Err(MigrateError::SameDirectory(
            export.to_string(),
            to.display().to_string(),
        ));
    }
    let store = LocalStore::with_fd_cache(&to, fds)
        .map_err(|err| MigrateError::Unusable(shown.clone(), err.to_string()))?;
    // A store that cannot even stat its root is no migration target.
    store
        .stat(&RelPath::root())
        .map_err(|err| MigrateError::Unusable(shown, err.to_string()))?;
    Ok((Arc::new(store), to))
}
