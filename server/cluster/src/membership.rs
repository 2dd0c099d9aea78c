//! Head membership, address ownership and fencing.
//!
//! * Each head registers `/<c>/heads/<head>` ([`HeadRecord`]: its listen
//!   address) under an etcd lease of `lease_secs`, renewed every quarter
//!   lease.
//! * Who serves a head's address is `/<c>/owners/<head>`: the head itself
//!   normally, a survivor after a takeover. The key is bound to the
//!   owner's lease, so it vanishes with its owner.
//! * Fencing: a head counts as serving only until half a lease after it
//!   *sent* its last successful renewal. etcd expires the lease no earlier
//!   than a full lease after it *received* that renewal, and only then
//!   can a survivor claim the address (its claim requires the owner key to
//!   be gone). So the old owner stops at least half a lease, by its own
//!   clock, before anyone else can start: two heads never both believe
//!   they own one address. Writes are fenced in etcd as well ([`Fence`]).
//! * [`HeadWatch`] follows the registrations and reports heads that
//!   vanished (takeover candidates) and joined.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;

use crate::config::{check_name, ClusterConfig};
use crate::error::{show_key, ClusterError, Result};
use crate::etcd::{Caller, Etcd, Retry};
use crate::fence::Fence;
use crate::keys;

/// Most heads a cluster may have; registrations beyond are ignored (with
/// a log line) so a flood of keys cannot grow a head's memory.
pub const MAX_HEADS: usize = 64;
/// Longest listen address a head may publish.
pub const MAX_ADDR_LEN: usize = 256;
/// Pause between renewal attempts that failed at once.
const RENEW_RETRY: Duration = Duration::from_millis(100);
/// How often a suspended head looks whether a late renewal extended it.
const FENCE_POLL: Duration = Duration::from_millis(20);
/// Pause before re-reading the registrations after the watch broke.
const WATCH_RETRY: Duration = Duration::from_millis(200);

const _: () = assert!(MAX_HEADS * (MAX_ADDR_LEN + 256) < 1 << 20);

/// A head's registration as published in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRecord {
    /// The head id.
    pub head: String,
    /// The address its NFS service listens on (`ip:port`).
    pub addr: String,
    /// The server name other heads give for it in `fs_locations`
    /// (`[cluster] location`; `None`: the host part of `addr`).
    pub location: Option<String>,
    /// The etcd lease the registration is bound to.
    pub lease: i64,
    /// The etcd revision that created this registration: a new one after
    /// every restart, so a head that died and came back is a new entry.
    pub registration: i64,
}

const RECORD_MAGIC: &str = "nfs4d-head 1";

impl HeadRecord {
    fn encode(addr: &str, location: Option<&str>) -> Vec<u8> {
        let mut v = format!("{RECORD_MAGIC}\naddr {addr}\n");
        if let Some(l) = location {
            v.push_str(&format!("location {l}\n"));
        }
        v.into_bytes()
    }

    fn decode(
        key: &[u8],
        prefix_len: usize,
        value: &[u8],
        lease: i64,
        registration: i64,
    ) -> Result<HeadRecord> {
        let corrupt = |why: &str| ClusterError::Corrupt {
            key: show_key(key),
            why: why.to_string(),
        };
        let head = std::str::from_utf8(key.get(prefix_len..).unwrap_or_default())
            .map_err(|_| corrupt("head id is not UTF-8"))?;
        check_name("head", head).map_err(|_| corrupt("bad head id"))?;
        let text = std::str::from_utf8(value).map_err(|_| corrupt("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(RECORD_MAGIC) {
            return Err(corrupt("unknown format"));
        }
        let addr = lines
            .next()
            .and_then(|l| l.strip_prefix("addr "))
            .filter(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN)
            .ok_or_else(|| corrupt("no address"))?;
        // Optional; records without it (older heads) stay valid.
        let location = lines
            .next()
            .and_then(|l| l.strip_prefix("location "))
            .filter(|l| !l.is_empty() && l.len() <= MAX_ADDR_LEN)
            .map(str::to_string);
        Ok(HeadRecord {
            head: head.to_string(),
            addr: addr.to_string(),
            location,
            lease,
            registration,
        })
    }
}

/// Whether this head may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceState {
    /// The lease was renewed recently enough: serve.
    Serving,
    /// No renewal for half a lease: stop serving now. The lease may still
    /// be alive in etcd; if a renewal gets through before it expires, the
    /// head serves again (no one can have taken over meanwhile).
    Suspended,
    /// The lease expired or the registration is gone: this head must stop
    /// for good and register anew ([`Membership::join`]).
    Lost,
}

/// The fence shared by a head's request threads and its renewal task.
struct FenceClock {
    base: Instant,
    /// Nanoseconds after `base` until which the head may serve.
    serve_until: AtomicU64,
    lost: AtomicBool,
    state: watch::Sender<FenceState>,
}

impl FenceClock {
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn serving(&self) -> bool {
        !self.lost.load(Ordering::Acquire)
            && self.nanos(Instant::now()) < self.serve_until.load(Ordering::Acquire)
    }

    fn extend(&self, until: Instant) {
        self.serve_until
            .fetch_max(self.nanos(until), Ordering::AcqRel);
    }

    fn deadline(&self) -> Instant {
        self.base + Duration::from_nanos(self.serve_until.load(Ordering::Acquire))
    }

    fn publish(&self) {
        let s = if self.lost.load(Ordering::Acquire) {
            FenceState::Lost
        } else if self.serving() {
            FenceState::Serving
        } else {
            FenceState::Suspended
        };
        self.state.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }
}

/// This head's membership: its registration, lease and fence.
pub struct Membership {
    etcd: Etcd,
    cluster: String,
    head: String,
    lease: i64,
    fence: Fence,
    clock: Arc<FenceClock>,
    /// Head ids whose address this head has claimed.
    owned: Mutex<Vec<String>>,
    /// The renewal task and the fence timer.
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Membership {
    /// Registers head `cfg.head` with listen address `addr` under a fresh
    /// lease and starts renewing it. Fails with
    /// [`ClusterError::HeadInUse`] while an earlier registration of the
    /// same id is alive (another process with this id, or this head's
    /// previous life whose lease has not expired yet: retry after it).
    pub fn join(etcd: &Etcd, cfg: &ClusterConfig, addr: &str) -> Result<Membership> {
        cfg.validate()?;
        if addr.is_empty() || addr.len() > MAX_ADDR_LEN || addr.contains('\n') {
            return Err(ClusterError::Config(format!("listen address {addr:?}")));
        }
        let ttl = i64::try_from(cfg.lease_secs).unwrap_or(i64::MAX);
        let key = keys::head(&cfg.name, &cfg.head);
        let value = HeadRecord::encode(addr, cfg.location.as_deref());
        let caller = etcd.caller().clone();
        let (lease, granted, registration, sent) = etcd.block_on({
            let (key, head) = (key.clone(), cfg.head.clone());
            async move {
                let sent = Instant::now();
                let grant = caller
                    .call("lease grant", Retry::Idempotent, |mut c| async move {
                        c.lease_grant(ttl, None).await
                    })
                    .await?;
                let lease = grant.id();
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.clone(),
                        value,
                        Some(PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([TxnOp::get(key.clone(), None)]);
                let outcome = caller
                    .call("register", Retry::IfNotSent, |mut c| {
                        let txn = txn.clone();
                        async move { c.txn(txn).await }
                    })
                    .await;
                let resp = match outcome {
                    Ok(r) => r,
                    Err(e) => {
                        // Unknown whether the key was written: dropping
                        // the lease removes it if it was.
                        revoke(&caller, lease).await;
                        return Err(e);
                    }
                };
                if !resp.succeeded() {
                    revoke(&caller, lease).await;
                    let holder = match resp.op_responses().first() {
                        Some(TxnOpResponse::Get(g)) => g.kvs().first().map_or(0, |kv| kv.lease()),
                        _ => 0,
                    };
                    return Err(ClusterError::HeadInUse {
                        head,
                        lease: holder,
                    });
                }
                let registration = resp.header().map_or(0, |h| h.revision());
                Ok((lease, grant.ttl().min(ttl), registration, sent))
            }
        })?;
        let granted = Duration::from_secs(u64::try_from(granted.max(1)).unwrap_or(1));
        let (tx, _) = watch::channel(FenceState::Serving);
        let clock = Arc::new(FenceClock {
            base: sent,
            serve_until: AtomicU64::new(0),
            lost: AtomicBool::new(false),
            state: tx,
        });
        clock.extend(sent + granted / 2);
        clock.publish();
        let handle = etcd.handle();
        let tasks = [
            handle.spawn(renew(
                etcd.caller().clone(),
                lease,
                granted,
                clock.clone(),
                cfg.head.clone(),
            )),
            handle.spawn(fence_timer(clock.clone(), cfg.head.clone())),
        ];
        tracing::info!(head = %cfg.head, lease = format_args!("{lease:x}"), registration, addr, "joined the cluster");
        Ok(Membership {
            etcd: etcd.clone(),
            cluster: cfg.name.clone(),
            head: cfg.head.clone(),
            lease,
            fence: Fence {
                key,
                create_revision: registration,
            },
            clock,
            owned: Mutex::new(Vec::new()),
            tasks,
        })
    }

    /// This head's id.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The etcd lease of this registration.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The token that guards this head's writes ([`crate::EtcdKv::fenced`]).
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Whether this head may serve now: cheap (a clock read and two
    /// atomic loads), meant to be checked before every reply.
    pub fn is_serving(&self) -> bool {
        self.clock.serving()
    }

    /// The current fence state.
    pub fn state(&self) -> FenceState {
        self.clock.publish();
        *self.clock.state.borrow()
    }

    /// Changes of the fence state, for an async task that closes the
    /// listeners when serving stops.
    pub fn subscribe(&self) -> watch::Receiver<FenceState> {
        self.clock.state.subscribe()
    }

    /// Until when this head may serve without another renewal.
    pub fn serving_until(&self) -> Instant {
        self.clock.deadline()
    }

    /// Claims the address of head `slot` (this head's own at start, a
    /// dead head's on takeover). Succeeds only while this registration is
    /// alive, no one else owns the address and, for another head's
    /// address, that head is not registered. Returns whether this head
    /// now owns it.
    pub fn claim_address(&self, slot: &str) -> Result<bool> {
        check_name("head", slot)?;
        if !self.is_serving() {
            return Err(ClusterError::Fenced(format!(
                "{} is not serving",
                self.head
            )));
        }
        let owner_key = keys::owner(&self.cluster, slot);
        let mut compares = vec![
            self.fence.compare(),
            Compare::create_revision(owner_key.clone(), CompareOp::Equal, 0),
        ];
        if slot != self.head {
            compares.push(Compare::create_revision(
                keys::head(&self.cluster, slot),
                CompareOp::Equal,
                0,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::put(
                owner_key.clone(),
                self.head.clone(),
                Some(PutOptions::new().with_lease(self.lease)),
            )])
            .or_else([self.fence.read(), TxnOp::get(owner_key, None)]);
        let caller = self.etcd.caller().clone();
        let fence = self.fence.clone();
        let lease = self.lease;
        let mine = self.etcd.block_on(async move {
            let resp = caller
                .call("claim address", Retry::IfNotSent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(true);
            }
            let answers = resp.op_responses();
            if !fence.held(answers.first()) {
                return Err(ClusterError::Fenced(format!(
                    "registration {} is gone",
                    fence.key()
                )));
            }
            // Already ours (claimed before, same lease) counts as owned.
            Ok(match answers.get(1) {
                Some(TxnOpResponse::Get(g)) => {
                    g.kvs().first().is_some_and(|kv| kv.lease() == lease)
                }
                _ => false,
            })
        })?;
        if mine {
            let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
            if !owned.iter().any(|s| s == slot) {
                owned.push(slot.to_string());
            }
            tracing::info!(head = %self.head, address_of = slot, "owns the address");
        }
        Ok(mine)
    }

    /// Gives up the address of `slot` (failback: its own head is back).
    pub fn release_address(&self, slot: &str) -> Result<()> {
        check_name("head", slot)?;
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| s != slot);
        let owner_key = keys::owner(&self.cluster, slot);
        let txn = Txn::new()
            .when([Compare::lease(
                owner_key.clone(),
                CompareOp::Equal,
                self.lease,
            )])
            .and_then([TxnOp::delete(owner_key, None)]);
        let caller = self.etcd.caller().clone();
        self.etcd.block_on(async move {
            caller
                .call("release address", Retry::Idempotent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            Ok(())
        })
    }

    /// Whether this head believes it owns the address of `slot` now: it
    /// claimed it and is serving.
    pub fn owns_address(&self, slot: &str) -> bool {
        self.is_serving()
            && self
                .owned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|s| s == slot)
    }

    /// The registered heads, read from etcd now.
    pub fn heads(&self) -> Result<Vec<HeadRecord>> {
        let caller = self.etcd.caller().clone();
        let prefix = keys::heads(&self.cluster);
        let (map, _) = self
            .etcd
            .block_on(async move { read_heads(&caller, &prefix).await })?;
        Ok(map.into_values().collect())
    }

    /// Follows the registrations of this cluster.
    pub fn watch_heads(&self) -> HeadWatch {
        HeadWatch::start(&self.etcd, &self.cluster)
    }

    /// Leaves the cluster: stops renewing and revokes the lease, which
    /// removes the registration and every address claim at once.
    pub fn leave(self) -> Result<()> {
        self.tasks.iter().for_each(|t| t.abort());
        self.clock.lost.store(true, Ordering::Release);
        self.clock.publish();
        let caller = self.etcd.caller().clone();
        let lease = self.lease;
        self.etcd.block_on(async move {
            caller
                .call("lease revoke", Retry::Idempotent, |mut c| async move {
                    c.lease_revoke(lease).await
                })
                .await?;
            Ok(())
        })
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Without renewals the lease expires on its own; the fence is
        // already closed for anyone still holding a clone of the state.
        self.tasks.iter().for_each(|t| t.abort());
        self.clock.lost.store(true, Ordering::Release);
        self.clock.publish();
    }
}

async fn revoke(caller: &Caller, lease: i64) {
    let r = caller
        .call("lease revoke", Retry::Idempotent, |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(lease = format_args!("{lease:x}"), error = %e, "could not revoke a lease; it expires by itself");
    }
}

/// One renewal: the lease's remaining TTL in seconds (0: it is gone).
async fn renew_once(caller: &Caller, lease: i64) -> Result<i64> {
    caller
        .call("lease keepalive", Retry::Idempotent, |mut c| async move {
            match c.lease_keep_alive(lease).await {
                Ok((_keeper, _stream)) => Ok(1),
                // etcd-client reports a TTL of 0 ("lease not found") as an
                // error; it is an answer, not a failure.
                Err(etcd_client::Error::LeaseKeepAliveError(m)) if m.contains("not found") => Ok(0),
                Err(e) => Err(e),
            }
        })
        .await
}

/// Renews the lease every quarter lease and moves the fence forward
/// after each success. A renewal's deadline is below half a lease
/// (`ClusterConfig::validate`), so a failing one ends before the fence.
async fn renew(
    caller: Caller,
    lease: i64,
    granted: Duration,
    clock: Arc<FenceClock>,
    head: String,
) {
    let period = granted / 4;
    let mut next = Instant::now() + period;
    loop {
        tokio::time::sleep_until(next.into()).await;
        // Measured before sending: etcd restarts the lease when it gets
        // the request, which is later, so the fence errs on the safe side.
        let sent = Instant::now();
        match renew_once(&caller, lease).await {
            Ok(ttl) if ttl > 0 => {
                let was = clock.serving();
                clock.extend(sent + granted / 2);
                clock.publish();
                if !was {
                    tracing::warn!(%head, "lease renewed before it expired: serving again");
                }
                next = sent + period;
            }
            Ok(_) => {
                tracing::error!(%head, lease = format_args!("{lease:x}"), "lease expired: this head is out of the cluster");
                clock.lost.store(true, Ordering::Release);
                clock.publish();
                return;
            }
            Err(e) => {
                tracing::warn!(%head, error = %e, "lease renewal failed");
                next = Instant::now() + RENEW_RETRY;
            }
        }
    }
}

/// Publishes the fence state the moment the serving deadline passes, so a
/// subscriber learns it at once, not at the next renewal attempt.
async fn fence_timer(clock: Arc<FenceClock>, head: String) {
    loop {
        let deadline = clock.deadline();
        tokio::time::sleep_until(deadline.into()).await;
        if clock.deadline() > deadline {
            continue;
        }
        if *clock.state.borrow() == FenceState::Serving {
            tracing::error!(%head, "lease not renewed for half its time: stopped serving");
        }
        clock.publish();
        if clock.lost.load(Ordering::Acquire) {
            return;
        }
        // Suspended: look again shortly (a late renewal may extend it).
        tokio::time::sleep(FENCE_POLL).await;
    }
}

/// The registrations under `prefix`, and the revision they were read at.
async fn read_heads(caller: &Caller, prefix: &[u8]) -> Result<(BTreeMap<String, HeadRecord>, i64)> {
    let start = prefix.to_vec();
    let end = keys::prefix_end(prefix);
    let resp = caller
        .call("list heads", Retry::Idempotent, |mut c| {
            let (start, end) = (start.clone(), end.clone());
            async move {
                c.get(
                    start,
                    Some(
                        GetOptions::new()
                            .with_range(end)
                            .with_limit(MAX_HEADS as i64),
                    ),
                )
                .await
            }
        })
        .await?;
    if resp.more() {
        tracing::warn!(
            max = MAX_HEADS,
            "more registered heads than allowed; ignoring the rest"
        );
    }
    let mut map = BTreeMap::new();
    for kv in resp.kvs() {
        match HeadRecord::decode(
            kv.key(),
            prefix.len(),
            kv.value(),
            kv.lease(),
            kv.create_revision(),
        ) {
            Ok(r) => {
                map.insert(r.head.clone(), r);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a head registration"),
        }
    }
    Ok((map, resp.header().map_or(0, |h| h.revision())))
}

/// What changed among the registered heads since a watcher last looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadsChange {
    /// Registrations that appeared (a restarted head is a new one).
    pub joined: Vec<HeadRecord>,
    /// Registrations that are gone: their lease expired or was revoked.
    /// These are takeover candidates.
    pub vanished: Vec<HeadRecord>,
}

/// The registrations as the watch task last saw them.
struct View {
    heads: BTreeMap<String, HeadRecord>,
    /// Bumped at every change.
    version: u64,
    /// False while the watch is re-reading (etcd unreachable): the view
    /// may be out of date, and no takeover should be decided from it.
    current: bool,
}

struct Shared {
    view: Mutex<View>,
    changed: Condvar,
}

/// Follows `/<c>/heads/` with an etcd watch (re-read in full whenever the
/// watch breaks), for takeover decisions.
pub struct HeadWatch {
    shared: Arc<Shared>,
    /// The registrations this watcher has been told about.
    seen: BTreeMap<String, HeadRecord>,
    seen_version: u64,
    task: tokio::task::JoinHandle<()>,
}

impl HeadWatch {
    /// Starts following the registrations of `cluster`.
    pub fn start(etcd: &Etcd, cluster: &str) -> HeadWatch {
        let shared = Arc::new(Shared {
            view: Mutex::new(View {
                heads: BTreeMap::new(),
                version: 0,
                current: false,
            }),
            changed: Condvar::new(),
        });
        let task = etcd.handle().spawn(follow(
            etcd.caller().clone(),
            keys::heads(cluster),
            shared.clone(),
        ));
        HeadWatch {
            shared,
            seen: BTreeMap::new(),
            seen_version: 0,
            task,
        }
    }

    /// The registered heads as last seen, and whether that view is current
    /// (false while etcd cannot be reached).
    pub fn live(&self) -> (Vec<HeadRecord>, bool) {
        let v = self
            .shared
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (v.heads.values().cloned().collect(), v.current)
    }

    /// Waits up to `timeout` for the registrations to differ from what
    /// this watcher last reported, and reports the difference. Only a
    /// current view is reported, so a head is never declared vanished
    /// because etcd could not be read.
    pub fn next_change(&mut self, timeout: Duration) -> Option<HeadsChange> {
        let deadline = Instant::now() + timeout;
        let mut v = self
            .shared
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if v.current && v.version != self.seen_version {
                let now = v.heads.clone();
                self.seen_version = v.version;
                drop(v);
                let change = diff(&self.seen, &now);
                self.seen = now;
                if change != HeadsChange::default() {
                    return Some(change);
                }
                v = self
                    .shared
                    .view
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            v = self
                .shared
                .changed
                .wait_timeout(v, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for HeadWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn diff(
    before: &BTreeMap<String, HeadRecord>,
    after: &BTreeMap<String, HeadRecord>,
) -> HeadsChange {
    let mut c = HeadsChange::default();
    for (h, r) in before {
        if after
            .get(h)
            .is_none_or(|n| n.registration != r.registration)
        {
            c.vanished.push(r.clone());
        }
    }
    for (h, r) in after {
        if before
            .get(h)
            .is_none_or(|o| o.registration != r.registration)
        {
            c.joined.push(r.clone());
        }
    }
    c
}

fn publish(shared: &Shared, f: impl FnOnce(&mut View)) {
    let mut v = shared.view.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut v);
    v.version += 1;
    shared.changed.notify_all();
}

/// The watch task: read everything, then follow the watch from that
/// revision; on any break, mark the view stale and start over.
async fn follow(caller: Caller, prefix: Vec<u8>, shared: Arc<Shared>) {
    loop {
        match watch_once(&caller, &prefix, &shared).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "watch of head registrations broke; re-reading"),
        }
        publish(&shared, |v| v.current = false);
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

async fn watch_once(caller: &Caller, prefix: &[u8], shared: &Shared) -> Result<()> {
    let (heads, revision) = read_heads(caller, prefix).await?;
    publish(shared, |v| {
        v.heads = heads;
        v.current = true;
    });
    let (i, mut client) = caller.pinned();
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = match tokio::time::timeout(
        caller.request_timeout(),
        client.watch(prefix.to_vec(), Some(opts)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable(format!("watch: {e}")));
        }
        Err(_) => {
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable("watch: no answer".into()));
        }
    };
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                caller.fail_over(i, true);
                return Err(ClusterError::Unavailable("watch stream ended".into()));
            }
            Err(e) => {
                caller.fail_over(i, true);
                return Err(ClusterError::Unavailable(format!("watch: {e}")));
            }
        };
        if msg.canceled() {
            // Compaction, or the member lost its leader (require-leader).
            caller.fail_over(i, true);
            return Err(ClusterError::Unavailable(format!(
                "watch canceled: {} (compacted at {})",
                msg.cancel_reason(),
                msg.compact_revision()
            )));
        }
        if msg.events().is_empty() {
            continue;
        }
        publish(shared, |v| {
            for ev in msg.events() {
                let Some(kv) = ev.kv() else { continue };
                let head =
                    String::from_utf8_lossy(kv.key().get(prefix.len()..).unwrap_or_default())
                        .into_owned();
                match ev.event_type() {
                    EventType::Delete => {
                        v.heads.remove(&head);
                    }
                    EventType::Put => {
                        match HeadRecord::decode(
                            kv.key(),
                            prefix.len(),
                            kv.value(),
                            kv.lease(),
                            kv.create_revision(),
                        ) {
                            Ok(r) if v.heads.len() < MAX_HEADS || v.heads.contains_key(&r.head) => {
                                v.heads.insert(r.head.clone(), r);
                            }
                            Ok(r) => {
                                tracing::warn!(head = %r.head, max = MAX_HEADS, "too many heads; ignoring")
                            }
                            Err(e) => tracing::warn!(error = %e, "ignoring a head registration"),
                        }
                    }
                }
            }
        });
    }
}
