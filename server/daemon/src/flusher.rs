//! The background flush (nfs4d_core::namespace::lazy): every
//! `async_flush_ms` the directories changed since the last flush — on
//! `async` exports, and by journaled creates and removes of `sync` ones —
//! are fsynced, the handle map is flushed and the journal checkpointed, on
//! the blocking pool (fsync and sled block). A flush that takes longer
//! than the interval delays the next one instead of overlapping it, so at
//! most one runs at a time.

use std::sync::Arc;
use std::time::Duration;

use nfs4d_core::server::Server;

/// Runs until aborted.
pub async fn run(srv: Arc<Server>) {
    let every = Duration::from_millis(u64::from(srv.cfg.async_flush_ms));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = srv.clone();
        match tokio::task::spawn_blocking(move || s.vfs.flush_background()).await {
            Ok(r) if r.failed > 0 => {
                tracing::warn!(
                    synced = r.synced,
                    failed = r.failed,
                    "background flush had failures"
                );
            }
            Ok(r) => tracing::trace!(
                synced = r.synced,
                gone = r.gone,
                trimmed = r.trimmed,
                "background flush"
            ),
            Err(e) => tracing::error!(error = %e, "background flush task failed"),
        }
    }
}
