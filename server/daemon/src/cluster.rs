//! This server as one head of a cluster sharing etcd (docs/cluster.md):
//! joining, the handle map on etcd with coherent caches, stable client
//! records per head and epoch, the cluster's grace period, fencing and
//! takeover of a dead head's address.
//!
//! The core sees none of it: it gets a [`ClusterParts`] (the shared
//! identity, a serving check, a [`ClientDb`] and a [`ClusterGrace`]); the
//! handle map gets a fenced [`EtcdKv`] and a [`Coherence`] barrier.
//! Everything here blocks on etcd, so it runs on the blocking pool or on
//! threads of its own, never on a tokio worker.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nfs4d_cluster::{
    AddressTakeover, ChangeFeed, ClientRecords, ClusterConfig, ClusterError, ClusterIdentity, Etcd,
    EtcdKv, FeedEvent, FenceState, Grace, GraceDb, Membership, Peers,
};
use nfs4d_core::server::{ClusterParts, Server};
use nfs4d_core::state::recovery::{ClientDb, ClusterGrace, Gate};
use nfs4d_fhmap::{Coherence, FhMap, ObjectId};
use nfs4d_kv::{KvError, Pair};

/// How often the grace keeper re-reads the grace database (a head learns
/// that grace started or ended within this).
const GRACE_POLL: Duration = Duration::from_millis(250);
/// How often a head re-reads where each export is served (a head learns
/// of a migration within this).
const MOVES_POLL: Duration = Duration::from_millis(500);
/// The tree of the cluster's key-value store that says which head serves
/// an export that was migrated: export path → head id.
const MOVES_TREE: &str = "moves";
/// Pause between attempts to bind a taken-over address.
const BIND_RETRY: Duration = Duration::from_millis(200);
/// Object ids a head reserves at a time: one compare-and-swap on the
/// shared counter per this many new objects.
const ID_BLOCK: u64 = 256;

/// Why this head could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("[cluster]: {0}")]
    Config(String),
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
}

/// Reads the `[cluster]` section of the configuration file.
pub fn config(table: &toml::Table) -> Result<ClusterConfig, JoinError> {
    let c: ClusterConfig = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| JoinError::Config(e.message().to_string()))?;
    c.validate()?;
    Ok(c)
}

/// This head: its membership and what it shares through etcd.
pub struct Head {
    pub cfg: ClusterConfig,
    pub etcd: Etcd,
    pub membership: Arc<Membership>,
    /// The handle map's trees, every write fenced by this registration.
    pub kv: EtcdKv,
    pub identity: ClusterIdentity,
    records: ClientRecords,
    grace: Grace,
    /// The epoch whose client database this head writes.
    write_epoch: u64,
    /// This head's records from its previous lives (the clients that may
    /// reclaim), read at join.
    previous: Mutex<Option<Vec<Pair>>>,
    keeper: Arc<GraceKeeper>,
    feed: Mutex<Option<ChangeFeed>>,
}

impl Head {
    /// Joins the cluster as `cfg.head`, publishing `listen`: registers
    /// under a lease (waiting out the lease of this head's previous life),
    /// claims its own address, reads its client records of earlier lives
    /// and enters the grace database — starting a grace period if it has
    /// clients to wait for, in which case it returns only once every live
    /// head enforces it, so its clients may reclaim at once.
    pub fn join(cfg: ClusterConfig, listen: SocketAddr) -> Result<Arc<Head>, JoinError> {
        if listen.port() == 0 {
            return Err(JoinError::Config(
                "a head must listen on a fixed port: other heads take its address over".into(),
            ));
        }
        let etcd = Etcd::connect(&cfg)?;
        let addr = listen.to_string();
        // A restarted head finds its previous registration until that
        // lease expires; an etcd that has just started, or is busy, may
        // leave a request unanswered. Both pass within a lease or two.
        let deadline = Instant::now() + cfg.lease() * 2 + cfg.request_timeout();
        let membership = Arc::new(at_start(&cfg.head, deadline, "register", || {
            Membership::join(&etcd, &cfg, &addr)
        })?);
        let fence = membership.fence();
        // A survivor that took this head's address over keeps it until it
        // releases it (no automatic failback): wait at most a lease.
        let deadline = Instant::now() + cfg.lease() * 2;
        while !at_start(&cfg.head, deadline, "claim its address", || {
            membership.claim_address(&cfg.head)
        })? {
            if Instant::now() >= deadline {
                return Err(JoinError::Config(format!(
                    "the address of {} is served by another head",
                    cfg.head
                )));
            }
            std::thread::sleep(START_RETRY);
        }
        let deadline = Instant::now() + cfg.lease() * 2;
        let identity = at_start(&cfg.head, deadline, "read the cluster identity", || {
            ClusterIdentity::ensure(&etcd, &cfg.name)
        })?;
        let kv = EtcdKv::new(&etcd, &cfg.name)?.fenced(fence.clone());
        let records = ClientRecords::new(&etcd, &cfg.name)?.fenced(fence.clone());
        let grace = Grace::new(&etcd, &cfg.name)?.fenced(fence);
        let previous = at_start(&cfg.head, deadline, "read its client records", || {
            records_of(&records, &cfg.head)
        })?;
        let me = cfg.head.clone();
        let needs = !previous.is_empty();
        // Each step below is idempotent (a head already added, enforcing,
        // or needing the grace period in force changes nothing), so a
        // write whose outcome etcd did not report may be made again.
        let (_, db) = at_start(&cfg.head, deadline, "enter the grace database", || {
            grace.update(|db| {
                if needs {
                    db.start(&me)
                } else {
                    db.add(&me)?;
                    if db.in_grace() {
                        db.enforce(&me)?;
                    }
                    Ok(())
                }
            })
        })?;
        let write_epoch = db.current;
        tracing::info!(
            head = %me,
            clients = previous.len(),
            epoch = write_epoch,
            in_grace = db.in_grace(),
            "joined the cluster"
        );
        let keeper = GraceKeeper::new(grace.clone(), me.clone());
        keeper.clone().run(membership.clone());
        let head = Arc::new(Head {
            cfg,
            etcd,
            membership,
            kv,
            identity,
            records,
            grace,
            write_epoch,
            previous: Mutex::new(Some(previous)),
            keeper,
            feed: Mutex::new(None),
        });
        if needs {
            head.wait_all_enforcing()?;
        }
        Ok(head)
    }

    /// What the core needs of this head.
    pub fn parts(self: &Arc<Self>) -> ClusterParts {
        let m = self.membership.clone();
        ClusterParts {
            head: self.cfg.head.clone(),
            owner_major: self.identity.major_id.clone(),
            scope: self.identity.scope.clone(),
            serving: Arc::new(move || m.is_serving()),
            grace: self.keeper.clone(),
            clients: Arc::new(HeadClients { head: self.clone() }),
            id_block: ID_BLOCK,
        }
    }

    /// Makes the handle map coherent with the other heads: follows the
    /// `objects` tree to drop cached records others changed, and makes
    /// every change to existing records wait for the others to apply it.
    pub fn share_map(&self, map: &Arc<FhMap>) -> Result<(), JoinError> {
        let m = Arc::downgrade(map);
        let on: nfs4d_cluster::FeedFn = Arc::new(move |ev: FeedEvent<'_>| {
            let Some(map) = m.upgrade() else { return };
            match ev {
                FeedEvent::Reset => map.invalidate_all(),
                FeedEvent::Changed(k) => match <[u8; 8]>::try_from(k) {
                    Ok(b) => map.invalidate([ObjectId(u64::from_be_bytes(b))]),
                    Err(_) => map.invalidate_all(),
                },
            }
        });
        let feed = ChangeFeed::start(
            &self.etcd,
            &self.cfg.name,
            &self.cfg.head,
            self.membership.lease(),
            "objects",
            on,
        )?;
        *self.feed.lock().unwrap_or_else(PoisonError::into_inner) = Some(feed);
        map.set_coherence(Arc::new(Barrier {
            peers: Peers::new(&self.etcd, &self.cfg.name, &self.cfg.head)?,
            membership: self.membership.clone(),
            // A head that cannot apply a change loses its registration
            // within a lease; past that the change is visible anyway.
            limit: self.cfg.lease() + self.cfg.request_timeout(),
        }));
        Ok(())
    }

    /// Waits until every live head enforces the grace period in force (or
    /// there is none): only then may this head's reclaiming clients be let
    /// in, since no head can grant conflicting state any more.
    fn wait_all_enforcing(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.cfg.lease() * 2;
        loop {
            let (db, _) = self.grace.load()?;
            let live = self.membership.heads()?;
            if !db.in_grace() || db.all_enforcing(live.iter().map(|h| h.head.as_str())) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Unavailable(
                    "heads did not all enforce the grace period in time".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Takes over dead head `dead`'s clients after claiming its address:
    /// the grace database moves its need to this head, its client records
    /// are copied here and dropped there, and once every live head
    /// enforces, its clients may reclaim on this head.
    fn take_over(&self, srv: &Server, dead: &str) -> Result<(), ClusterError> {
        let me = self.cfg.head.clone();
        self.keeper.start_grace(|db| db.take_over(&me, dead))?;
        let records = records_of(&self.records, dead)?;
        let n = records.len();
        srv.state.recovery.adopt(
            records,
            srv.state.now(),
            u64::from(srv.cfg.lease_time) * 1000,
        );
        self.records.drop_epochs_except(dead, None)?;
        self.wait_all_enforcing()?;
        tracing::info!(head = %me, dead, clients = n, "took over a dead head");
        Ok(())
    }
}

/// Pause between start-up attempts.
const START_RETRY: Duration = Duration::from_millis(500);

/// Runs start-up step `what` until it succeeds, fails for good, or
/// `deadline` passes. Retried: etcd did not answer in time
/// ([`ClusterError::Unavailable`]: a fresh or busy cluster, an election)
/// and, for the registration, an earlier registration of this id that
/// is still alive — this head's previous life, or this start's own
/// register whose reply was lost, until its revoked or expiring lease
/// removes it. Every step given here must be safe to repeat.
fn at_start<T>(
    head: &str,
    deadline: Instant,
    what: &str,
    mut step: impl FnMut() -> Result<T, ClusterError>,
) -> Result<T, ClusterError> {
    loop {
        match step() {
            Ok(v) => return Ok(v),
            Err(e @ (ClusterError::Unavailable(_) | ClusterError::HeadInUse { .. }))
                if Instant::now() < deadline =>
            {
                tracing::info!(head, error = %e, "cannot {what} yet; trying again");
                std::thread::sleep(START_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every client record of `head`, over all its epochs (a head that
/// restarted during its own grace has records in more than one).
fn records_of(records: &ClientRecords, head: &str) -> Result<Vec<Pair>, ClusterError> {
    let mut all: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for e in records.epochs(head)? {
        all.extend(records.list(head, e)?);
    }
    Ok(all.into_iter().collect())
}

/// The core's client records of this head: its database of its epoch.
struct HeadClients {
    head: Arc<Head>,
}

impl ClientDb for HeadClients {
    fn load(&self) -> Result<Vec<Pair>, KvError> {
        Ok(self
            .head
            .previous
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default())
    }

    fn put(&self, key: &[u8], record: &[u8]) -> Result<(), KvError> {
        let h = &self.head;
        Ok(h.records.put(&h.cfg.head, h.write_epoch, key, record)?)
    }

    fn remove(&self, key: &[u8]) -> Result<(), KvError> {
        let h = &self.head;
        Ok(h.records.remove(&h.cfg.head, h.write_epoch, key)?)
    }
}

/// The handle map's barrier: a change to existing records is applied by
/// every other head before the reply leaves.
struct Barrier {
    peers: Peers,
    membership: Arc<Membership>,
    limit: Duration,
}

impl Coherence for Barrier {
    fn changed(&self, revision: u64) -> Result<(), KvError> {
        let revision = i64::try_from(revision).unwrap_or(i64::MAX);
        let m = &self.membership;
        Ok(self
            .peers
            .wait_applied(revision, self.limit, &|| m.is_serving())?)
    }
}

const GATE_OPEN: u8 = 0;
const GATE_GRACE: u8 = 1;
const GATE_UNKNOWN: u8 = 2;

/// Keeps this head's view of the grace database and its own flags: sets
/// ENFORCING as soon as it sees a grace period, clears it once grace is
/// over, and lifts its NEED when the core says its clients are done.
///
/// The gate follows one rule: closed whenever the database says this head
/// enforces, or may be about to. It is closed before ENFORCING is written
/// (a head that needs grace lets its clients reclaim as soon as every
/// live head is marked enforcing, RFC 8881 §8.4.2.1), and opens only with
/// the write that clears ENFORCING. So once a client of this head has been
/// granted new state after a grace period, no later request sees that
/// grace period again.
struct GraceKeeper {
    grace: Grace,
    me: String,
    gate: AtomicU8,
    lift: AtomicBool,
    /// Held across one look at the database together with the gate it
    /// sets, and across a takeover's start of grace: a look that read the
    /// database before this head started a grace period cannot open the
    /// gate after it.
    turn: Mutex<()>,
    wake: (Mutex<()>, Condvar),
}

impl GraceKeeper {
    fn new(grace: Grace, me: String) -> Arc<GraceKeeper> {
        Arc::new(GraceKeeper {
            grace,
            me,
            gate: AtomicU8::new(GATE_GRACE),
            lift: AtomicBool::new(false),
            turn: Mutex::new(()),
            wake: (Mutex::new(()), Condvar::new()),
        })
    }

    /// Follows the grace database on a thread of its own, until this head
    /// loses its membership or the keeper is dropped.
    fn run(self: Arc<Self>, membership: Arc<Membership>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        let spawned = std::thread::Builder::new()
            .name("nfs4d-grace".into())
            .spawn(move || {
                while let Some(k) = weak.upgrade() {
                    if membership.state() == FenceState::Lost {
                        k.set_gate(GATE_UNKNOWN);
                        return;
                    }
                    let failed = {
                        let _turn = k.turn.lock().unwrap_or_else(PoisonError::into_inner);
                        let gate = match k.step() {
                            Ok(g) => g,
                            Err(e) => {
                                tracing::warn!(error = %e, "grace database unavailable: new state waits");
                                GATE_UNKNOWN
                            }
                        };
                        k.set_gate(gate);
                        gate == GATE_UNKNOWN
                    };
                    // A lift asked for during the look is not waited on
                    // (one that failed is tried again after a pause).
                    let g = k.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
                    if failed || !k.lift.load(Ordering::Acquire) {
                        let _ = k.wake.1.wait_timeout(g, GRACE_POLL);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the grace keeper; new state stays refused");
        }
    }

    fn set_gate(&self, gate: u8) {
        if self.gate.swap(gate, Ordering::AcqRel) != gate {
            tracing::info!(
                gate = ["open", "grace", "unknown"][usize::from(gate)],
                "cluster grace gate changed"
            );
        }
    }

    /// Starts (or joins) a grace period that this head needs, by `change`
    /// (a takeover). The gate closes before the database is written and no
    /// look begun earlier can reopen it; if the write fails, the next look
    /// sets the gate from the database.
    fn start_grace(
        &self,
        change: impl FnMut(&mut GraceDb) -> Result<(), ClusterError>,
    ) -> Result<GraceDb, ClusterError> {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.set_gate(GATE_GRACE);
        let ((), db) = self.grace.update(change)?;
        Ok(db)
    }

    /// One look at the grace database; returns the gate. Called with
    /// `turn` held.
    fn step(&self) -> Result<u8, ClusterError> {
        let me = self.me.as_str();
        if self.lift.swap(false, Ordering::AcqRel) {
            match self.grace.update(|db| db.lift(me)) {
                Ok((ended, _)) => tracing::info!(
                    head = me,
                    cluster_grace_over = ended,
                    "lifted this head's need for grace"
                ),
                Err(e) => {
                    // Tried again at the next look: a need never lifted
                    // would hold every head in grace.
                    self.lift.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        let (db, _) = self.grace.load()?;
        let flags = db.heads.get(me).copied().unwrap_or_default();
        if db.in_grace() {
            if !flags.enforcing {
                self.set_gate(GATE_GRACE);
                self.grace.update(|db: &mut GraceDb| db.enforce(me))?;
            }
            return Ok(GATE_GRACE);
        }
        if flags.enforcing || !db.heads.contains_key(me) {
            let (_, db) = self.grace.update(|db: &mut GraceDb| {
                if db.in_grace() {
                    // A grace period started since the load.
                    self.set_gate(GATE_GRACE);
                    db.enforce(me)
                } else {
                    db.stop_enforcing(me)
                }
            })?;
            // The database as written: ENFORCING cleared outside grace
            // opens the gate now, not one poll later.
            return Ok(if db.may_grant(me) {
                GATE_OPEN
            } else {
                GATE_GRACE
            });
        }
        Ok(GATE_OPEN)
    }
}

impl ClusterGrace for GraceKeeper {
    fn gate(&self) -> Gate {
        match self.gate.load(Ordering::Acquire) {
            GATE_OPEN => Gate::Open,
            GATE_GRACE => Gate::Grace,
            _ => Gate::Unknown,
        }
    }

    fn lifted(&self) {
        self.lift.store(true, Ordering::Release);
        // Under the lock: the keeper either sees the flag before it waits
        // or is waiting and gets the notification.
        let _g = self.wake.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.1.notify_all();
    }
}

/// Follows the other heads and takes over the address of any that dies:
/// claims it (one survivor wins), takes over its clients and grace, and
/// with `address_takeover = "bind"` binds its listen address and serves
/// it through `serve`. Runs on a thread of its own until the process
/// ends.
pub fn watch_and_take_over(
    head: Arc<Head>,
    srv: Arc<Server>,
    serve: impl Fn(String, SocketAddr) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("nfs4d-takeover".into())
        .spawn(move || {
            let mut watch = head.membership.watch_heads();
            // Heads seen dead whose address no one has claimed yet.
            let mut dead: BTreeMap<String, String> = BTreeMap::new();
            loop {
                if head.membership.state() == FenceState::Lost {
                    return;
                }
                if let Some(change) = watch.next_change(Duration::from_secs(1)) {
                    for h in change.vanished {
                        if h.head != head.cfg.head {
                            tracing::warn!(head = %h.head, addr = %h.addr, "a head vanished");
                            dead.insert(h.head, h.addr);
                        }
                    }
                    for h in change.joined {
                        dead.remove(&h.head);
                    }
                }
                let slots: Vec<(String, String)> =
                    dead.iter().map(|(h, a)| (h.clone(), a.clone())).collect();
                for (slot, addr) in slots {
                    match head.membership.claim_address(&slot) {
                        Ok(true) => {
                            dead.remove(&slot);
                            tracing::warn!(dead = %slot, %addr, "claimed a dead head's address");
                            if let Err(e) = head.take_over(&srv, &slot) {
                                tracing::error!(dead = %slot, error = %e, "takeover incomplete");
                            }
                            if head.cfg.address_takeover == AddressTakeover::Bind {
                                match addr.parse() {
                                    Ok(a) => serve(slot.clone(), a),
                                    Err(e) => {
                                        tracing::error!(%addr, error = %e, "dead head's address unusable")
                                    }
                                }
                            }
                        }
                        // Someone else owns it, or it came back.
                        Ok(false) => {}
                        Err(e) => tracing::warn!(dead = %slot, error = %e, "cannot claim a dead head's address yet"),
                    }
                }
            }
        })
        .map(|_| ())
}

/// Binds `addr` once it is free (its dead owner's socket may linger for a
/// moment), for as long as this head owns `slot`.
pub async fn bind_when_free(
    addr: SocketAddr,
    head: Arc<Head>,
    slot: String,
) -> Option<tokio::net::TcpListener> {
    loop {
        if !head.membership.owns_address(&slot) {
            return None;
        }
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "taken-over address not free yet");
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    }
}

/// Ends the process when this head's membership is lost: it must stop
/// serving for good (a survivor may own its address now) and join anew
/// as a fresh instance, whose clients then reclaim.
pub async fn exit_when_lost(head: Arc<Head>) {
    let mut rx = head.membership.subscribe();
    loop {
        if *rx.borrow_and_update() == FenceState::Lost {
            tracing::error!(head = %head.cfg.head, "cluster membership lost: exiting");
            std::process::exit(3);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts this head's cluster duties next to the server: exit when the
/// membership is lost, and take over dead heads' addresses, serving each
/// on its own accept loop. Call on the runtime.
pub fn run_head(head: Arc<Head>, srv: Arc<Server>, gss: Option<Arc<nfs4d_gss::GssServer>>) {
    let _ = THIS_HEAD.set(head.clone());
    tokio::spawn(exit_when_lost(head.clone()));
    if let Err(e) = follow_moves(head.clone(), srv.clone()) {
        tracing::error!(error = %e, "cannot follow export placements");
    }
    let rt = tokio::runtime::Handle::current();
    let (h, s) = (head.clone(), srv.clone());
    let serve = move |slot: String, addr: SocketAddr| {
        let (h, s, g) = (h.clone(), s.clone(), gss.clone());
        rt.spawn(async move {
            if let Some(l) = bind_when_free(addr, h, slot.clone()).await {
                tracing::warn!(%addr, dead = %slot, "serving a dead head's address");
                // Served until the process ends: nothing to drain.
                crate::net::accept(s, l, g, std::future::pending(), Duration::ZERO).await;
            }
        });
    };
    if let Err(e) = watch_and_take_over(head, srv, serve) {
        tracing::error!(error = %e, "cannot start the takeover thread; dead heads will not be taken over");
    }
}

/// This process's head, for the admin socket (`ctl migrate --to-head`).
static THIS_HEAD: std::sync::OnceLock<Arc<Head>> = std::sync::OnceLock::new();

/// This process's head, once it serves.
pub fn this_head() -> Option<Arc<Head>> {
    THIS_HEAD.get().cloned()
}

impl Head {
    /// `nfs4d ctl migrate --export X --to-head B`: from now on export `X`
    /// is served by head `to` only; every other head answers NFS4ERR_MOVED
    /// for it, with `fs_locations` naming `to` (RFC 7530 §8.4, RFC 8881
    /// §11). Handles stay valid on `to` (the map is shared), except that an
    /// export whose volatile handles expire on migration has them expired,
    /// as FH4_VOL_MIGRATION advertises. Moving an export back to its
    /// original head is the same command.
    pub fn migrate(&self, srv: &Server, export: &str, to: &str) -> Result<String, String> {
        let heads = self.membership.heads().map_err(|e| e.to_string())?;
        let target = heads
            .iter()
            .find(|h| h.head == to)
            .ok_or_else(|| format!("no live head {to:?}"))?;
        let e = srv
            .vfs
            .exports()
            .into_iter()
            .find(|e| {
                nfs4d_core::config::normalize_pseudo(&e.cfg.path)
                    == nfs4d_core::config::normalize_pseudo(export)
            })
            .ok_or_else(|| format!("no export at {export:?}"))?;
        let tree = nfs4d_kv::Kv::tree(&self.kv, MOVES_TREE).map_err(|e| e.to_string())?;
        tree.insert(e.cfg.path.as_bytes(), to.as_bytes())
            .map_err(|e| e.to_string())?;
        let expired = e.policy().migration;
        if expired {
            srv.fhmap
                .expire(ObjectId::export_root(e.id))
                .map_err(|e| e.to_string())?;
        }
        self.apply_moves(srv).map_err(|e| e.to_string())?;
        Ok(format!(
            "export {} now served by head {to} ({}); volatile handles {}",
            e.cfg.path,
            target.addr,
            if expired { "expired" } else { "kept" }
        ))
    }

    /// Reads where each export is served and answers NFS4ERR_MOVED for
    /// those another head serves.
    fn apply_moves(&self, srv: &Server) -> Result<(), KvError> {
        let tree = nfs4d_kv::Kv::tree(&self.kv, MOVES_TREE)?;
        let mut moves = BTreeMap::new();
        for item in tree.scan_prefix(b"") {
            let (k, v) = item?;
            moves.insert(k, v);
        }
        let heads = self.membership.heads().map_err(KvError::from)?;
        for e in srv.vfs.exports() {
            let to = moves
                .get(e.cfg.path.as_bytes())
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|h| *h != self.cfg.head);
            let servers = to.map(|to| {
                // fs_locations names a server, not a port (RFC 7530 §8.8):
                // the host part of the head's published address.
                heads
                    .iter()
                    .find(|h| h.head == to)
                    .map(|h| h.location.clone().unwrap_or_else(|| host_of(&h.addr)))
                    .into_iter()
                    .collect::<Vec<String>>()
            });
            let was = srv.vfs.moved_to(e.id);
            if was != servers {
                tracing::warn!(export = %e.cfg.path, to = ?servers, "export placement changed");
                srv.vfs.set_moved(&e.cfg.path, servers);
            }
        }
        Ok(())
    }
}

/// The host part of `ip:port` (`[v6]:port` too).
fn host_of(addr: &str) -> String {
    match addr.parse::<SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => addr.to_string(),
    }
}

/// Follows where each export is served, on a thread of its own.
fn follow_moves(head: Arc<Head>, srv: Arc<Server>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("nfs4d-moves".into())
        .spawn(move || loop {
            if head.membership.state() == FenceState::Lost {
                return;
            }
            if let Err(e) = head.apply_moves(&srv) {
                tracing::debug!(error = %e, "cannot read export placements now");
            }
            std::thread::sleep(MOVES_POLL);
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_cluster::testing::{Blackhole, EtcdCluster};
    use nfs4d_core::state::recovery::ClusterGrace;

    const LEASE: u64 = 3;

    /// A keeper of head `me` whose looks the test takes itself, and an
    /// unfenced handle on the same database for what other heads do.
    fn keeper(c: &EtcdCluster, me: &str) -> (Arc<GraceKeeper>, Grace) {
        let e = Etcd::connect(&c.config("k", me, LEASE)).expect("connect");
        let grace = Grace::new(&e, "k").expect("grace");
        (GraceKeeper::new(grace.clone(), me.into()), grace)
    }

    fn look(k: &GraceKeeper) -> Gate {
        let gate = k.step().expect("step");
        k.set_gate(gate);
        k.gate()
    }

    /// A head started while etcd does not answer (a fresh cluster still
    /// electing, a member busy with its disk) waits for it within the
    /// start-up deadline instead of exiting at its first unanswered
    /// request.
    #[test]
    fn a_head_starts_once_a_silent_etcd_answers() {
        let Some(c) = EtcdCluster::start(1) else {
            return;
        };
        let hole = Blackhole::start(&c.endpoints()[0]);
        hole.cut();
        let mut cfg = c.config("s", "a", LEASE);
        cfg.etcd = vec![hole.url()];
        // Silent for longer than two request deadlines: every first try
        // of the registration fails.
        let silence = cfg.request_timeout() * 2;
        assert!(
            silence < cfg.lease() * 2,
            "the head's start-up deadline covers it"
        );
        let healer = std::thread::spawn(move || {
            std::thread::sleep(silence);
            hole.heal();
            hole
        });
        let head = Head::join(cfg, "127.0.0.1:2049".parse().expect("addr")).expect("join");
        let _hole = healer.join().expect("healer");
        assert!(head.membership.is_serving());
        assert!(head.membership.owns_address("a"));
        let heads = head.membership.heads().expect("heads");
        assert_eq!(heads.len(), 1, "registered once: {heads:?}");
    }

    #[test]
    fn the_gate_closes_with_a_takeover_and_opens_once_with_the_lift() {
        let Some(c) = EtcdCluster::start(1) else {
            return;
        };
        let (k, other) = keeper(&c, "b");
        other.update(|db| db.add("a")).expect("a joins");
        assert_eq!(look(&k), Gate::Open, "no grace: b grants");

        // b takes a over: its gate is closed when the database says b
        // enforces, without waiting for the next look.
        let db = k
            .start_grace(|db| db.take_over("b", "a"))
            .expect("take over");
        assert!(db.may_reclaim("b"));
        assert_eq!(k.gate(), Gate::Grace);
        assert_eq!(look(&k), Gate::Grace);

        // b's clients are done: the one look that lifts b's need and
        // clears its ENFORCING opens the gate, and it stays open.
        k.lifted();
        assert_eq!(look(&k), Gate::Open);
        let (db, _) = other.load().expect("load");
        assert!(!db.in_grace());
        assert!(db.may_grant("b"));
        assert_eq!(look(&k), Gate::Open);

        // Another head needing grace closes the gate at the next look,
        // and b is marked enforcing only with its gate closed.
        other.update(|db| db.start("c")).expect("c needs grace");
        assert_eq!(look(&k), Gate::Grace);
        let (db, _) = other.load().expect("load");
        assert!(db.all_enforcing(["b", "c"]));
        assert!(!db.may_grant("b"));
    }

    #[test]
    fn a_lift_that_could_not_be_written_is_tried_again() {
        let Some(c) = EtcdCluster::start(1) else {
            return;
        };
        let cfg = c.config("k", "b", LEASE);
        let e = Etcd::connect(&cfg).expect("connect");
        let m = Membership::join(&e, &cfg, "127.0.0.1:2049").expect("join");
        let k = GraceKeeper::new(
            Grace::new(&e, "k").expect("grace").fenced(m.fence()),
            "b".into(),
        );
        k.start_grace(|db| db.start("b")).expect("start");
        m.leave().expect("leave");
        k.lifted();
        assert!(matches!(k.step(), Err(ClusterError::Fenced(_))));
        assert!(
            k.lift.load(Ordering::Acquire),
            "the lift is still pending for the next look"
        );
    }
}
