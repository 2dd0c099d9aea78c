//! Builds a server from its configuration: the state directory with its
//! sled database, one store per export (a local directory, or an S3
//! bucket prefix), the daemon's implementations of what the core asks for
//! (clock, names, callbacks), and the RPCSEC_GSS engine when Kerberos is
//! available.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nfs4d_core::config::{Config, ExportConfig, Limits, StoreKind};
use nfs4d_core::namespace::exports::{MigrationRecords, Served};
use nfs4d_core::namespace::vfs::MigrateError;
use nfs4d_core::server::{Parts, Server, StartError};
use nfs4d_kv_sled::SledKv;
use nfs4d_store::{RelPath, Store};
use nfs4d_store_local::LocalStore;
use nfs4d_store_s3::{S3Config, S3Store};

use crate::cbdriver::CbSender;
use crate::metered::StoreCounters;

/// A server, and the queue its callback driver will drain.
pub struct Started {
    /// The server.
    pub srv: Server,
    /// Where the core queues callback work; `cbdriver::start` drains it.
    pub callbacks: Arc<CbSender>,
    /// The RPCSEC_GSS engine, when Kerberos is served (`crate::gss`).
    pub gss: Option<Arc<nfs4d_gss::GssServer>>,
    /// This head of a cluster (a `[cluster]` section), if any.
    pub cluster: Option<Arc<crate::cluster::Head>>,
}

/// Opens the state directory and the exports; with `meter`, every
/// export's store counts its requests there (metrics).
pub fn open(mut cfg: Config, meter: Option<Arc<StoreCounters>>) -> Result<Started, StartError> {
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
    // An export moved with `nfs4d ctl migrate` is served from where it
    // was moved until the configuration names another directory.
    let records = MigrationRecords::open(kv.as_ref()).map_err(|e| state_err(&e))?;
    let mut stores: Vec<(Arc<dyn Store>, PathBuf)> = Vec::new();
    for e in &cfg.exports {
        let dir = served_location(&records, e).map_err(|e| state_err(&e))?;
        let store = open_export_store(e, &dir, &cfg.limits, &cfg.state_dir)
            .map_err(|m| StartError::Export(e.location(), m))?;
        let store = match &meter {
            Some(c) => crate::metered::Metered::wrap(store, c.clone()),
            None => store,
        };
        stores.push((store, dir));
    }
    let mac_key = nfs4d_fhmap::random_key().map_err(|e| state_err(&e))?;
    let instance = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let callbacks = Arc::new(CbSender::default());
    // Loading GSS-API and reading the keytab block: this runs on a
    // blocking thread, like the rest of start-up.
    let gss = crate::gss::start(&cfg);
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
        gss,
        cluster: head,
    })
}

/// Where export `e` is served from: its configured directory, the one it
/// was migrated to (`ctl migrate`), or, for an object-store export, its
/// bucket prefix (only a directory tree can be migrated).
pub fn served_location(
    records: &MigrationRecords,
    e: &ExportConfig,
) -> Result<PathBuf, nfs4d_kv::KvError> {
    if e.store == StoreKind::S3 {
        return Ok(PathBuf::from(e.location()));
    }
    Ok(match records.served(&e.path, &e.dir)? {
        Served::Configured => e.dir.clone(),
        Served::Migrated(to) => {
            tracing::info!(export = %e.path, configured = %e.dir.display(), served = %to.display(), "serving the directory the export was migrated to (nfs4d ctl migrate); write it into the configuration to make it permanent");
            to
        }
    })
}

/// The store of export `e`, served from `dir` (its configured directory,
/// or where it was migrated to), or its object-store prefix. Used at
/// start and when a reload adds an export.
pub fn open_export_store(
    e: &ExportConfig,
    dir: &Path,
    limits: &Limits,
    state_dir: &Path,
) -> Result<Arc<dyn Store>, String> {
    match e.store {
        StoreKind::Local => open_local(dir, limits.max_open_files as usize),
        StoreKind::S3 => open_s3(e, state_dir),
    }
}

fn open_local(dir: &Path, fds: usize) -> Result<Arc<dyn Store>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let s = LocalStore::with_fd_cache(dir, fds).map_err(|e| e.to_string())?;
    Ok(Arc::new(s))
}

/// The typed settings of an S3 export: its `[export.s3]` table, with the
/// spool under the state directory unless the table names one.
pub fn s3_config(e: &ExportConfig, state_dir: &Path) -> Result<S3Config, String> {
    let table = e.s3.clone().unwrap_or_default();
    let mut c: S3Config = toml::Value::Table(table)
        .try_into()
        .map_err(|err| format!("[export.s3]: {err}"))?;
    if c.spool_dir.as_os_str().is_empty() {
        c.spool_dir = default_spool(state_dir, &c.bucket, &c.prefix);
    }
    Ok(c)
}

/// The spool of an S3 export without `spool_dir`: a directory of the
/// state directory (which survives restarts, as the spool's journal must)
/// named after the bucket and prefix, so that each export finds its own
/// journal again whatever the order of the exports.
pub fn default_spool(state_dir: &Path, bucket: &str, prefix: &str) -> PathBuf {
    // '%' first, so the escaping stays reversible and two locations never
    // share a directory.
    let esc = |s: &str| s.replace('%', "%25").replace('/', "%2F");
    state_dir.join("s3-spool").join(format!(
        "{}%2F{}",
        esc(bucket),
        esc(prefix.trim_matches('/'))
    ))
}

fn open_s3(e: &ExportConfig, state_dir: &Path) -> Result<Arc<dyn Store>, String> {
    let c = s3_config(e, state_dir)?;
    if !c.spool_dir.as_os_str().is_empty() {
        std::fs::create_dir_all(&c.spool_dir)
            .map_err(|err| format!("spool_dir {}: {err}", c.spool_dir.display()))?;
    }
    let s = S3Store::new(c).map_err(|err| err.to_string())?;
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
