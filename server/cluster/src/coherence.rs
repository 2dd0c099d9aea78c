//! Cache coherence between heads: change feeds and the applied-revision
//! barrier.
//!
//! Each head caches records of the shared trees (the handle map's node
//! cache). Reads need no round trip to etcd, so a head must learn of every
//! change another head makes:
//!
//! * [`ChangeFeed`] follows a tree with an etcd watch and reports every
//!   changed key; whenever the watch (re)starts it reports a reset first,
//!   since changes may have been missed while it was down. After handling
//!   the events of a watch response it publishes the highest revision it
//!   has applied in `/<c>/applied/<head>`, bound to the head's lease.
//! * [`Peers::wait_applied`] is the barrier a head passes after changing or
//!   removing existing records at revision `r` and before replying: it
//!   returns once every other registered head has applied `r` (its
//!   published revision reached `r`) or is gone (its registration expired,
//!   so it no longer serves). So a rename or remove done on one head is
//!   seen by every head before the reply leaves.
//!
//! Only changes to existing records need the barrier; a new object is
//! cached by no one. A head that cannot keep up (its feed broken) resets
//! its cache and publishes the revision it restarted from, so the barrier
//! never waits on a head that has in fact dropped everything.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions};
use tokio::sync::watch;

use crate::config::check_name;
use crate::error::{ClusterError, Result};
use crate::etcd::{Caller, Etcd, Retry};
use crate::keys;
use crate::membership::MAX_HEADS;

/// Pause before restarting a broken feed.
const FEED_RETRY: Duration = Duration::from_millis(200);
/// Longest the barrier waits for one change before it reads again.
const BARRIER_POLL: Duration = Duration::from_millis(500);

/// What a change feed reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent<'a> {
    /// This key of the tree (relative to the tree) was written or removed
    /// by some head.
    Changed(&'a [u8]),
    /// Changes may have been missed: drop everything cached.
    Reset,
}

/// The callback a feed calls for every event, on the etcd runtime: it
/// must not block.
pub type FeedFn = Arc<dyn Fn(FeedEvent<'_>) + Send + Sync>;

/// Follows one tree of the cluster's key-value store for this head.
pub struct ChangeFeed {
    applied: Arc<AtomicI64>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl ChangeFeed {
    /// Follows tree `tree` of cluster `cluster` for head `head`, calling
    /// `on` for every event, and publishes the revision applied under the
    /// head's `lease`.
    pub fn start(
        etcd: &Etcd,
        cluster: &str,
        head: &str,
        lease: i64,
        tree: &str,
        on: FeedFn,
    ) -> Result<ChangeFeed> {
        check_name("cluster name", cluster)?;
        check_name("head", head)?;
        check_name("tree name", tree)?;
        let (tx, rx) = watch::channel(0i64);
        let applied = Arc::new(AtomicI64::new(0));
        let handle = etcd.handle();
        let caller = etcd.caller().clone();
        let tasks = [
            handle.spawn(follow(
                caller.clone(),
                keys::kv_tree(cluster, tree),
                on,
                tx,
                applied.clone(),
            )),
            handle.spawn(publish(caller, keys::applied(cluster, head), lease, rx)),
        ];
        Ok(ChangeFeed { applied, tasks })
    }

    /// The highest revision whose changes this head has applied.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn follow(
    caller: Caller,
    prefix: Vec<u8>,
    on: FeedFn,
    tx: watch::Sender<i64>,
    applied: Arc<AtomicI64>,
) {
    loop {
        if let Err(e) = follow_once(&caller, &prefix, &on, &tx, &applied).await {
            tracing::warn!(error = %e, "change feed broke; resetting the cache and following again");
        }
        tokio::time::sleep(FEED_RETRY).await;
    }
}

async fn follow_once(
    caller: &Caller,
    prefix: &[u8],
    on: &FeedFn,
    tx: &watch::Sender<i64>,
    applied: &AtomicI64,
) -> Result<()> {
    let start = prefix.to_vec();
    let end = keys::prefix_end(prefix);
    let resp = caller
        .call("feed start", Retry::Idempotent, |mut c| {
            let (start, end) = (start.clone(), end.clone());
            async move {
                c.get(
                    start,
                    Some(GetOptions::new().with_range(end).with_count_only()),
                )
                .await
            }
        })
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    // Anything cached may predate changes made while no feed ran.
    on(FeedEvent::Reset);
    set_applied(tx, applied, revision);
    let (i, mut client) = caller.pinned();
    let opts = WatchOptions::new()
        .with_range(end.clone())
        .with_start_revision(revision + 1);
    let mut stream = match tokio::time::timeout(
        caller.request_timeout(),
        client.watch(start.clone(), Some(opts)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable(format!("feed watch: {e}")));
        }
        Err(_) => {
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable("feed watch: no answer".into()));
        }
    };
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                caller.fail_over(i, true);
                return Err(ClusterError::Unavailable("feed stream ended".into()));
            }
            Err(e) => {
                caller.fail_over(i, true);
                return Err(ClusterError::Unavailable(format!("feed: {e}")));
            }
        };
        if msg.canceled() {
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable(format!(
                "feed canceled: {} (compacted at {})",
                msg.cancel_reason(),
                msg.compact_revision()
            )));
        }
        let mut highest = 0;
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            match kv.key().get(prefix.len()..) {
                Some(rel) => on(FeedEvent::Changed(rel)),
                None => on(FeedEvent::Reset),
            }
            highest = highest.max(kv.mod_revision());
        }
        if highest > 0 {
            set_applied(tx, applied, highest);
        }
    }
}

fn set_applied(tx: &watch::Sender<i64>, applied: &AtomicI64, revision: i64) {
    applied.fetch_max(revision, Ordering::AcqRel);
    tx.send_if_modified(|cur| {
        let more = revision > *cur;
        if more {
            *cur = revision;
        }
        more
    });
}

/// Writes the applied revision whenever it moves; revisions that arrive
/// while a write is under way are coalesced into the next one.
async fn publish(caller: Caller, key: Vec<u8>, lease: i64, mut rx: watch::Receiver<i64>) {
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        let revision = *rx.borrow_and_update();
        let value = revision.to_string();
        let r = caller
            .call("publish applied", Retry::Idempotent, |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, revision, "could not publish the applied revision; retrying");
            // Try again with whatever is newest by then.
            rx.mark_changed();
            tokio::time::sleep(FEED_RETRY).await;
        }
    }
}

/// The other heads, as the barrier sees them.
#[derive(Clone)]
pub struct Peers {
    etcd: Etcd,
    heads: Vec<u8>,
    applied: Vec<u8>,
    me: String,
}

impl Peers {
    /// The heads of cluster `cluster` other than `me`.
    pub fn new(etcd: &Etcd, cluster: &str, me: &str) -> Result<Peers> {
        check_name("cluster name", cluster)?;
        check_name("head", me)?;
        Ok(Peers {
            etcd: etcd.clone(),
            heads: keys::heads(cluster),
            applied: keys::applied_prefix(cluster),
            me: me.to_string(),
        })
    }

    /// Returns once every other registered head has applied `revision`,
    /// or is gone. Gives up with [`ClusterError::Unavailable`] after
    /// `limit` (callers pass at least a lease: by then a head that cannot
    /// apply has lost its registration) or when `serving()` turns false
    /// (this head must not reply anyway).
    pub fn wait_applied(
        &self,
        revision: i64,
        limit: Duration,
        serving: &dyn Fn() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if !serving() {
                return Err(ClusterError::Fenced(
                    "stopped serving during a barrier".into(),
                ));
            }
            let (pending, at) = self.pending(revision)?;
            if pending.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Unavailable(format!(
                    "heads {pending:?} did not apply revision {revision} in time"
                )));
            }
            tracing::debug!(
                ?pending,
                revision,
                "waiting for other heads to apply a change"
            );
            self.wait_change(at, left.min(BARRIER_POLL))?;
        }
    }

    /// The other heads that have not applied `revision`, and the etcd
    /// revision of that view.
    fn pending(&self, revision: i64) -> Result<(Vec<String>, i64)> {
        let caller = self.etcd.caller().clone();
        let (heads, applied) = (self.heads.clone(), self.applied.clone());
        let me = self.me.clone();
        self.etcd.block_on(async move {
            let range = |p: &[u8]| {
                TxnOp::get(
                    p.to_vec(),
                    Some(
                        GetOptions::new()
                            .with_range(keys::prefix_end(p))
                            .with_limit(MAX_HEADS as i64),
                    ),
                )
            };
            let txn = Txn::new().and_then([range(&heads), range(&applied)]);
            let resp = caller
                .call("barrier read", Retry::Idempotent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            let at = resp.header().map_or(0, |h| h.revision());
            let ops = resp.op_responses();
            let kvs = |i: usize| match ops.get(i) {
                Some(TxnOpResponse::Get(g)) => g.kvs().to_vec(),
                _ => Vec::new(),
            };
            let done: std::collections::HashMap<Vec<u8>, i64> = kvs(1)
                .iter()
                .filter_map(|kv| {
                    let head = kv.key().get(applied.len()..)?.to_vec();
                    let rev = std::str::from_utf8(kv.value()).ok()?.parse().ok()?;
                    Some((head, rev))
                })
                .collect();
            let pending = kvs(0)
                .iter()
                .filter_map(|kv| {
                    let head = kv.key().get(heads.len()..)?;
                    if head == me.as_bytes() || done.get(head).is_some_and(|r| *r >= revision) {
                        return None;
                    }
                    Some(String::from_utf8_lossy(head).into_owned())
                })
                .collect();
            Ok((pending, at))
        })
    }

    /// Waits up to `timeout` for any change of the registrations or the
    /// applied revisions after revision `at`.
    fn wait_change(&self, at: i64, timeout: Duration) -> Result<()> {
        let caller = self.etcd.caller().clone();
        // One watch over both prefixes: `/<c>/applied/` sorts before
        // `/<c>/heads/`; the keys between them (grace, client records)
        // only cause an early re-read.
        let start = self.applied.clone();
        let end = keys::prefix_end(&self.heads);
        self.etcd.block_on(async move {
            let (i, mut client) = caller.pinned();
            let opts = WatchOptions::new()
                .with_range(end)
                .with_start_revision(at + 1);
            let run = async {
                let mut stream = client.watch(start, Some(opts)).await?;
                while let Some(msg) = stream.message().await? {
                    if msg.canceled() || !msg.events().is_empty() {
                        break;
                    }
                }
                Ok::<_, etcd_client::Error>(())
            };
            match tokio::time::timeout(timeout, run).await {
                Err(_) | Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    caller.fail_over(i, true);
                    Err(ClusterError::Unavailable(format!("barrier watch: {e}")))
                }
            }
        })
    }
}
