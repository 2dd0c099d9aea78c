//! The server object every request sees: configuration, exports, handle
//! map, state table, clock and the per-boot identifiers.

use std::path::Path;
use std::sync::Arc;

use crate::backend::local::LocalBackend;
use crate::backend::Backend;
use crate::clock::Clock;
use crate::config::Config;
use crate::fhmap::{self, FhMap};
use crate::state::StateManager;
use crate::vfs::{Export, SwapBackend, Vfs};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The state directory could not be used.
    #[error("state directory {0}: {1}")]
    StateDir(String, String),
    /// An export directory could not be used.
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
    /// WRITE/COMMIT verifier: differs on every start so clients detect that
    /// unstable writes may have been lost (RFC 8881 §18.32.3).
    pub write_verifier: [u8; 8],
    /// `so_major_id` / server scope for EXCHANGE_ID.
    pub owner_major: Vec<u8>,
    /// Boot epoch from the handle map (increments on every start).
    pub boot: u32,
    /// SIGIO is being handled, so file leases may be taken (an unhandled
    /// SIGIO from a lease break would end the process).
    pub leases_watched: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("boot", &self.boot).finish()
    }
}

impl Server {
    /// Opens the state directory and exports.
    pub fn open(cfg: Config, clock: Arc<dyn Clock>) -> Result<Server, StartError> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
            StartError::StateDir(cfg.state_dir.display().to_string(), e.to_string())
        })?;
        // One map serves all exports. Handles are stamped by the policy of
        // their own export (set by `Vfs::new` from each export's
        // configuration), so a persistent export's handles stay the same
        // whatever the other exports do (docs/filehandles.md); the map's
        // default policy only covers ids no export claims.
        let fhmap = Arc::new(
            FhMap::open(
                &cfg.state_dir.join("fhmap"),
                cfg.limits.sled_cache_bytes,
                fhmap::HandleMode::Persistent,
            )
            .map_err(|e| {
                StartError::StateDir(cfg.state_dir.display().to_string(), e.to_string())
            })?,
        );
        let boot = fhmap.boot_epoch();
        let mut exports = Vec::new();
        for (i, e) in cfg.exports.iter().enumerate() {
            let backend = open_local(&e.dir, cfg.limits.max_open_files as usize)
                .map_err(|m| StartError::Export(e.dir.display().to_string(), m))?;
            exports.push(Export {
                id: i as u32,
                cfg: e.clone(),
                backend: SwapBackend::new(backend, e.dir.clone()),
                fsid: (i as u64 + 1, 0),
            });
        }
        let vfs = Vfs::new(exports, fhmap.clone())
            .map_err(|e| StartError::Export("root".into(), e.to_string()))?;
        let mut write_verifier = [0u8; 8];
        write_verifier[..4].copy_from_slice(&boot.to_be_bytes());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        write_verifier[4..].copy_from_slice(&nanos.to_be_bytes());
        // Client ids and stateids carry a boot id: the epoch mixed with the
        // start time, so it is never a small number a client could forge by
        // accident (pynfs's "stale" stateids use 1) and differs per start.
        let state_boot = (boot.wrapping_mul(0x9E37_79B1) ^ nanos).max(2);
        let mut state = StateManager::new(
            clock.clone(),
            cfg.lease_time,
            state_boot,
            cfg.limits.clone(),
        );
        state.courtesy_ms = u64::from(cfg.courtesy_time) * 1000;
        let clients = fhmap.open_tree("clients").map_err(|e| {
            StartError::StateDir(cfg.state_dir.display().to_string(), e.to_string())
        })?;
        let state_err = |e: &dyn std::fmt::Display| {
            StartError::StateDir(cfg.state_dir.display().to_string(), e.to_string())
        };
        let mut recovery = crate::state::recovery::Recovery::open(
            clients,
            clock.now_ms(),
            u64::from(cfg.grace_time) * 1000,
            u64::from(cfg.lease_time) * 1000,
        )
        .map_err(|e| state_err(&e))?;
        // Files open at a crash keep their volatile handles for reclaim.
        let open_files = fhmap.open_tree("open_files").map_err(|e| state_err(&e))?;
        recovery
            .load_open_files(open_files)
            .map_err(|e| state_err(&e))?;
        state.recovery = recovery;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Ok(Server {
            owner_major: format!("nfs4d:{}", host.trim()).into_bytes(),
            cfg,
            vfs,
            fhmap,
            state,
            clock,
            write_verifier,
            boot,
            leases_watched: Default::default(),
        })
    }

    /// Flushes durable state (clean shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.fhmap.shutdown() {
            tracing::error!(error = %e, "flushing the handle map at shutdown failed");
        }
    }
}

fn open_local(dir: &Path, fds: usize) -> Result<Arc<dyn Backend>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let b = LocalBackend::with_fd_cache(dir, fds).map_err(|e| e.to_string())?;
    Ok(Arc::new(b))
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
            e.backend.unlease(file.1 .0);
        }
    }

    /// Takes the local lease standing for a new delegation on `file` at
    /// `path`. False when a local process conflicts (no delegation then).
    /// Without a SIGIO handler (the core run without the transport, as in
    /// unit tests) no lease is taken and nothing local is watched.
    pub fn lease_for_delegation(
        &self,
        e: &crate::vfs::Export,
        path: &crate::backend::RelPath,
        file: crate::state::FileKey,
        write: bool,
    ) -> bool {
        if !self
            .leases_watched
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return true;
        }
        match e.backend.lease(path, write, file.1 .0) {
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
        for e in &self.vfs.exports {
            for (tag, cause) in e.backend.leases() {
                let file = (e.id, crate::fhmap::ObjectId(tag));
                if self.state.lock().file_delegs(file).is_empty() {
                    e.backend.unlease(tag);
                    continue;
                }
                let Some(cause) = cause else {
                    continue;
                };
                if self.state.recall_all(file) {
                    let what = match cause {
                        crate::backend::LeaseBreak::Opened => "local process opened a delegated file",
                        crate::backend::LeaseBreak::Changed => {
                            "local process renamed, removed, linked or changed the attributes of a delegated file"
                        }
                    };
                    tracing::info!(export = %e.cfg.path, ?file, "{what}; delegation recalled");
                }
            }
        }
    }
}
