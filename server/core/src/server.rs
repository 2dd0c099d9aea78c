//! The server object every request sees: configuration, exports, handle
//! map, state table, clock and the per-boot identifiers.

use std::path::PathBuf;
use std::sync::Arc;

use nfs4d_fhmap::FhMap;
use nfs4d_kv::Kv;
use nfs4d_store::Store;

use crate::clock::Clock;
use crate::config::Config;
use crate::idmap::IdMap;
use crate::namespace::vfs::{Export, SwapStore, Vfs};
use crate::state::deleg::CallbackSink;
use crate::state::StateManager;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The durable state could not be used.
    #[error("state: {0}")]
    State(String),
    /// An export could not be used.
    #[error("export {0}: {1}")]
    Export(String, String),
}

/// Everything a request can reach.
pub struct Server {
    /// The configuration in force.
    pub cfg: Config,
    /// Exports and the pseudo filesystem.
    pub vfs: Vfs,
    /// The handle map (also reachable through `vfs`).
    pub fhmap: Arc<FhMap>,
    /// Client state.
    pub state: StateManager,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Owner and group names.
    pub idmap: Arc<dyn IdMap>,
    /// WRITE/COMMIT verifier: differs on every start so clients detect that
    /// unstable writes may have been lost (RFC 8881 §18.32.3).
    pub write_verifier: [u8; 8],
    /// `so_major_id` for EXCHANGE_ID (RFC 8881 §2.10.4).
    pub owner_major: Vec<u8>,
    /// `server_scope` for EXCHANGE_ID (RFC 8881 §2.10.5).
    pub scope: Vec<u8>,
    /// For a head of a cluster: whether it may serve now (its membership
    /// lease is fresh). `None`: always.
    pub serving: Option<ServingFn>,
    /// Boot epoch from the handle map (increments on every start).
    pub boot: u32,
    /// Counters of the requests run (exported by the daemon).
    pub metrics: crate::metrics::OpMetrics,
    /// Buffers of large READs, reused once their reply is sent.
    pub read_buffers: crate::reply::ReadBuffers,
    /// Bounds the log lines about refused requests.
    pub refusals: crate::ratelimit::LogLimiter,
    /// Local processes are watched, so file leases may be taken (the
    /// daemon sets this once it handles the signal a lease break raises;
    /// without it a break would end the process).
    pub leases_watched: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("boot", &self.boot).finish()
    }
}

/// Whether a head of a cluster may serve now.
pub type ServingFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// What a head of a cluster gets from the daemon on top of [`Parts`]
/// (docs/cluster.md). The core stays free of the cluster's machinery: it
/// sees only these.
pub struct ClusterParts {
    /// This head's id (it names its per-head state).
    pub head: String,
    /// `so_major_id` every head advertises, so a client treats the heads
    /// as one server and may reclaim on any of them (RFC 8881 §2.10.4).
    pub owner_major: Vec<u8>,
    /// `server_scope` every head advertises (RFC 8881 §2.10.5).
    pub scope: Vec<u8>,
    /// Whether this head may serve now: false from half a lease after its
    /// last membership renewal, so it stops before anyone can take over.
    pub serving: ServingFn,
    /// The cluster's grace period.
    pub grace: Arc<dyn crate::state::recovery::ClusterGrace>,
    /// This head's stable client records.
    pub clients: Arc<dyn crate::state::recovery::ClientDb>,
    /// Object ids a head reserves at a time on the shared counter.
    pub id_block: u64,
}

/// What the daemon (or a test) hands the core to build a server from.
pub struct Parts {
    /// The configuration.
    pub cfg: Config,
    /// One store per configured export, in configuration order, each with
    /// the directory or location it serves (for logs and migration).
    pub stores: Vec<(Arc<dyn Store>, PathBuf)>,
    /// Durable state: the handle map and the client records live here.
    pub kv: Arc<dyn Kv>,
    /// The MAC key of a new handle map (16 random bytes).
    pub mac_key: [u8; 16],
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Owner and group names.
    pub idmap: Arc<dyn IdMap>,
    /// Where delegation recalls and other calls to clients go.
    pub callbacks: Arc<dyn CallbackSink>,
    /// Varies from start to start (the daemon passes the sub-second part
    /// of the start time): mixed into the write verifier and the boot id of
    /// client ids and stateids.
    pub instance: u32,
    /// This server's name in `so_major_id` and `server_scope`.
    pub host: String,
    /// Set for a head of a cluster.
    pub cluster: Option<ClusterParts>,
}

impl Server {
    /// Builds the server from its parts: opens the handle map, registers
    /// the exports and loads the client records of the previous instance.
    pub fn new(p: Parts) -> Result<Server, StartError> {
        let Parts {
            cfg,
            stores,
            kv,
            mac_key,
            clock,
            idmap,
            callbacks,
            instance,
            host,
            cluster,
        } = p;
        cfg.validate()?;
        let state_err = |e: &dyn std::fmt::Display| StartError::State(e.to_string());
        // One map serves all exports. Handles are stamped by the policy of
        // their own export (set by `Vfs::new` from each export's
        // configuration), so a persistent export's handles stay the same
        // whatever the other exports do (docs/filehandles.md); the map's
        // default policy only covers ids no export claims.
        let opts = match &cluster {
            Some(c) => nfs4d_fhmap::OpenOptions {
                id_block: c.id_block,
                sole_writer: false,
            },
            None => nfs4d_fhmap::OpenOptions::default(),
        };
        let fhmap = Arc::new(
            FhMap::open_with(
                kv.clone(),
                nfs4d_fhmap::HandleMode::Persistent,
                || Ok(mac_key),
                opts,
            )
            .map_err(|e| state_err(&e))?,
        );
        let boot = fhmap.boot_epoch();
        if stores.len() != cfg.exports.len() {
            return Err(StartError::State(format!(
                "{} stores for {} exports",
                stores.len(),
                cfg.exports.len()
            )));
        }
        // Ids by pseudo path, kept in the state directory: the same
        // export keeps its id whatever the configuration's order.
        let paths: Vec<&str> = cfg.exports.iter().map(|e| e.path.as_str()).collect();
        let ids = crate::namespace::exports::ExportIds::open(&*kv)
            .and_then(|r| r.assign(&paths))
            .map_err(|e| state_err(&e))?;
        let mut exports = Vec::new();
        for ((e, (store, dir)), id) in cfg.exports.iter().zip(stores).zip(ids) {
            exports.push(Server::export(id, e.clone(), store, dir));
        }
        let vfs = Vfs::new(exports, fhmap.clone())
            .map_err(|e| StartError::Export("root".into(), e.to_string()))?;
        // Files parked by the previous instance were open then; no open
        // survives a restart.
        for e in vfs.exports() {
            crate::namespace::orphans::prepare(&vfs, e)
                .map_err(|err| StartError::Export(e.cfg.path.clone(), err.to_string()))?;
        }
        // Creates and removes acknowledged before a crash that the file
        // systems lost (namespace/journal.rs), before anyone is answered.
        vfs.replay_journal()
            .map_err(|err| StartError::Export("journal".into(), err.to_string()))?;
        let mut write_verifier = [0u8; 8];
        write_verifier[..4].copy_from_slice(&boot.to_be_bytes());
        write_verifier[4..].copy_from_slice(&instance.to_be_bytes());
        // Client ids and stateids carry a boot id: the epoch mixed with the
        // start time, so it is never a small number a client could forge by
        // accident (pynfs's "stale" stateids use 1) and differs per start.
        let state_boot = (boot.wrapping_mul(0x9E37_79B1) ^ instance).max(2);
        let mut state = StateManager::new(
            clock.clone(),
            cfg.lease_time,
            state_boot,
            cfg.limits.clone(),
            callbacks,
        );
        state.courtesy_ms = u64::from(cfg.courtesy_time) * 1000;
        let lease_ms = u64::from(cfg.lease_time) * 1000;
        let mut recovery = match &cluster {
            None => crate::state::recovery::Recovery::open(
                kv.clone(),
                clock.now_ms(),
                u64::from(cfg.grace_time) * 1000,
                lease_ms,
            ),
            // Bounded grace: clients that do not come back within one
            // lease have lost their state anyway (RFC 8881 §8.4.3), and a
            // cluster's grace holds every head.
            Some(c) => crate::state::recovery::Recovery::open_with(
                c.clients.clone(),
                kv.clone(),
                &format!("open_files.{}", c.head),
                Some(c.grace.clone()),
                clock.now_ms(),
                u64::from(cfg.grace_time).min(u64::from(cfg.lease_time)) * 1000,
                lease_ms,
            ),
        }
        .map_err(|e| state_err(&e))?;
        // Files open at a crash keep their volatile handles for reclaim.
        recovery.load_open_files().map_err(|e| state_err(&e))?;
        state.recovery = recovery;
        let (owner_major, scope, serving) = match cluster {
            Some(c) => (c.owner_major, c.scope, Some(c.serving)),
            None => {
                let id = format!("nfs4d:{}", host.trim()).into_bytes();
                (id.clone(), id, None)
            }
        };
        let read_buffers = crate::reply::ReadBuffers::new(cfg.limits.read_buffers_kept as usize);
        Ok(Server {
            read_buffers,
            owner_major,
            scope,
            serving,
            cfg,
            vfs,
            fhmap,
            state,
            clock,
            idmap,
            write_verifier,
            boot,
            metrics: Default::default(),
            refusals: Default::default(),
            leases_watched: Default::default(),
        })
    }

    /// An export to serve: `store` serving `dir` under configuration
    /// `cfg`, with id `id` (from the registry of export ids).
    pub fn export(
        id: u32,
        cfg: crate::config::ExportConfig,
        store: Arc<dyn Store>,
        dir: PathBuf,
    ) -> Export {
        let caps = store.capabilities();
        Export {
            id,
            cfg,
            store: Arc::new(SwapStore::new(store, dir)),
            caps,
            fsid: (u64::from(id) + 1, 0),
        }
    }

    /// The namespace layer over this server's exports, handle map, client
    /// state and owner names.
    pub fn namespace(&self) -> crate::namespace::Namespace<'_> {
        crate::namespace::Namespace {
            vfs: &self.vfs,
            state: &self.state,
            idmap: &*self.idmap,
        }
    }

    /// Whether this server may answer now: always for a single server; for
    /// a head of a cluster, only while its membership is fresh.
    pub fn may_serve(&self) -> bool {
        self.serving.as_ref().is_none_or(|f| f())
    }

    /// Flushes durable state (clean shutdown).
    pub fn shutdown(&self) {
        self.vfs.flush_background();
        if let Err(e) = self.fhmap.shutdown() {
            tracing::error!(error = %e, "flushing the handle map at shutdown failed");
        }
    }
}

impl Server {
    /// The last delegation on `file` is gone (returned, revoked, or its
    /// client's state purged): the local lease on the backing file that
    /// stood for it is released.
    pub fn deleg_released(&self, file: crate::state::FileKey) {
        if !self.state.lock().file_delegs(file).is_empty() {
            return;
        }
        if let Ok(e) = self.vfs.export(file.0) {
            e.store().unlease(file.1 .0);
        }
    }

    /// Takes the local lease standing for a new delegation on `file` at
    /// `path`. False when a local process conflicts (no delegation then).
    /// Without a SIGIO handler (the core run without the transport, as in
    /// unit tests) no lease is taken and nothing local is watched.
    pub fn lease_for_delegation(
        &self,
        e: &crate::namespace::vfs::Export,
        path: &nfs4d_store::RelPath,
        file: crate::state::FileKey,
        write: bool,
    ) -> bool {
        if !self
            .leases_watched
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return true;
        }
        match e.store().lease(path, write, file.1 .0) {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(error = %err, %path, "cannot take a file lease; no delegation");
                false
            }
        }
    }

    /// Reconciles leases with delegations: a local process breaking a
    /// lease, or changing the file's names or attributes, gets the file's
    /// delegations recalled; a lease whose delegations are all gone
    /// (returned, revoked, purged with an expired client) is released.
    /// Runs on SIGIO (lease breaks and inotify events) and once a second.
    pub fn sync_leases(&self) {
        for e in self.vfs.exports() {
            let leases = e.store().leases();
            for (tag, cause) in leases {
                let file = (e.id, nfs4d_fhmap::ObjectId(tag));
                if self.state.lock().file_delegs(file).is_empty() {
                    e.store().unlease(tag);
                    continue;
                }
                let Some(cause) = cause else {
                    continue;
                };
                if self.state.recall_all(file) {
                    let what = match cause {
                        nfs4d_store::LeaseBreak::Opened => "local process opened a delegated file",
                        nfs4d_store::LeaseBreak::Changed => {
                            "local process renamed, removed, linked or changed the attributes of a delegated file"
                        }
                    };
                    tracing::info!(export = %e.cfg.path, ?file, "{what}; delegation recalled");
                }
            }
        }
    }
}
