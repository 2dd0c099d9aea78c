//! Stable client records and the grace period after a restart (RFC 7530
//! §9.6, RFC 8881 §8.4).
//!
//! A record per confirmed client lives in the `clients` tree of the
//! server's durable key-value store (the one the handle map lives in;
//! sled on a single head). It is written when a
//! client is confirmed (4.0 SETCLIENTID_CONFIRM, 4.1 first CREATE_SESSION)
//! and flushed before the reply, so a client the server acknowledged is
//! always known after a crash (RFC 8881 §8.4.3: without that a server
//! could grant conflicting state to another client during grace). It is
//! removed on DESTROY_CLIENTID and on lease expiry.
//!
//! At start the records of the previous instance are the clients allowed
//! to reclaim. The grace period lasts at most `grace_time`, does not happen
//! when there are no records, and ends early once every 4.1 client in the
//! records has sent RECLAIM_COMPLETE and — if any 4.0 client is among them,
//! which has no way to say it is done — one lease period has passed
//! (RFC 7530 §9.6.2: a 4.0 client reclaims within a lease period).
//!
//! Single-key writes only, as everywhere in the key-value store (see
//! `nfs4d_kv`).
//!
//! A head of a cluster keeps its records elsewhere ([`ClientDb`]: per head
//! and per epoch in etcd) and shares the grace period with the other heads
//! ([`ClusterGrace`], after NFS-Ganesha's rados_cluster): no head grants
//! new state that could conflict with a reclaim while any head is still
//! waiting for its clients. When a head takes over a dead head's clients
//! ([`Recovery::adopt`]), those clients may reclaim on it for at most one
//! lease, and less once they have all said RECLAIM_COMPLETE.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use nfs4d_kv::{Kv, KvError, Pair, Tree};

/// Where the stable client records live: the `clients` tree of the
/// server's key-value store on a single head, per head and epoch in etcd
/// for a head of a cluster (the daemon's implementation).
pub trait ClientDb: Send + Sync {
    /// The records the previous instance of this server left: the clients
    /// that may reclaim.
    fn load(&self) -> Result<Vec<Pair>, KvError>;
    /// Records a client; durable when it returns (before the reply that
    /// confirms the client leaves).
    fn put(&self, key: &[u8], record: &[u8]) -> Result<(), KvError>;
    /// Forgets a client; durable when it returns.
    fn remove(&self, key: &[u8]) -> Result<(), KvError>;
}

/// Whether a head of a cluster may grant new state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No head is in grace: grant.
    Open,
    /// Some head's clients are reclaiming: new state that could conflict
    /// with a reclaim is NFS4ERR_GRACE.
    Grace,
    /// The cluster's grace state cannot be read (etcd without quorum):
    /// NFS4ERR_DELAY, the client retries.
    Unknown,
}

/// The cluster-wide grace period, as the daemon keeps it in etcd.
pub trait ClusterGrace: Send + Sync {
    /// Whether this head may grant new state (cheap: called on the request
    /// path).
    fn gate(&self) -> Gate;
    /// This head's own grace period is over: none of its clients is still
    /// to reclaim. Must not block (the daemon records it in the background).
    fn lifted(&self);
}

/// The `clients` tree of a key-value store as a [`ClientDb`] (a single
/// head: sled).
struct KvClientDb {
    kv: Arc<dyn Kv>,
    tree: Arc<dyn Tree>,
}

impl ClientDb for KvClientDb {
    fn load(&self) -> Result<Vec<Pair>, KvError> {
        self.tree.scan_prefix(b"").collect()
    }

    fn put(&self, key: &[u8], record: &[u8]) -> Result<(), KvError> {
        self.tree.insert(key, record)?;
        self.kv.flush()
    }

    fn remove(&self, key: &[u8]) -> Result<(), KvError> {
        self.tree.remove(key)?;
        self.kv.flush()
    }
}

use super::Principal;
use crate::error::NfsError;

/// Value format version of a record.
const RECORD_V1: u8 = 1;

/// Key of a client's record: its minor version family (0 or 1) and owner
/// id. A 4.0 and a 4.1 client with the same owner id are different clients
/// (RFC 8881 §2.4: client ids of different minor versions are distinct).
pub fn record_key(family: u32, owner: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.push(u8::from(family >= 1));
    k.extend_from_slice(owner);
    k
}

fn encode(principal: &Principal, reclaim_complete: bool) -> Vec<u8> {
    let mut v = vec![RECORD_V1, u8::from(reclaim_complete)];
    match principal {
        Principal::Anonymous => v.push(0),
        Principal::Uid(u) => {
            v.push(1);
            v.extend_from_slice(&u.to_be_bytes());
        }
        Principal::Gss(name) => {
            // A principal name came in a context-creation token, which
            // the transport bounds at 64 KiB: its length fits.
            v.push(2);
            v.extend_from_slice(&(name.len() as u32).to_be_bytes());
            v.extend_from_slice(name.as_bytes());
        }
    }
    v
}

/// One client of the previous server instance.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Previous {
    /// Minor version family: 0 (4.0) or 1 (4.1+).
    family: u32,
    /// RECLAIM_COMPLETE received from it in this instance (4.1).
    done: bool,
    /// Confirmed again in this instance (its record is current).
    back: bool,
}

/// Grace period bookkeeping.
#[derive(Debug, Default)]
struct Grace {
    /// Clock time the grace period started.
    start_ms: u64,
    /// Upper bound (`grace_time`).
    limit_ms: u64,
    /// One lease period (the 4.0 reclaim window).
    lease_ms: u64,
    /// A reclaim keeps grace open for [`reclaim_window_ms`] more, past
    /// `limit_ms` by at most one lease (knfsd does the same; pynfs REBT5):
    /// a client reclaiming slowly near the end is not cut off mid-way.
    extended_until_ms: u64,
    /// Reclaims allowed so far, and the clock time of the last one (for
    /// the log line that ends grace: how long grace outlived the last
    /// reclaim).
    reclaims: u64,
    last_reclaim_ms: u64,
    /// The grace period is over (or never started).
    over: bool,
    /// Clients of the previous instance, by record key.
    previous: HashMap<Vec<u8>, Previous>,
}

/// How long a reclaim keeps grace open past its limit: a quarter lease, at
/// least a second. Many clients reclaiming one after the other on a busy
/// machine leave gaps of more than a second between reclaims (pynfs REBT3b
/// saw them at a load average of 20); the window must bridge them, or
/// grace ends in the middle of the reclaims.
fn reclaim_window_ms(lease_ms: u64) -> u64 {
    (lease_ms / 4).max(1000)
}

/// The clients of `records` (format-checked; unknown formats are ignored
/// rather than keep the server from starting).
fn previous_clients(records: Vec<Pair>) -> HashMap<Vec<u8>, Previous> {
    records
        .into_iter()
        .filter(|(k, v)| !k.is_empty() && v.first() == Some(&RECORD_V1))
        .map(|(k, _)| {
            let family = u32::from(k[0]);
            (
                k,
                Previous {
                    family,
                    done: false,
                    back: false,
                },
            )
        })
        .collect()
}

/// Whether a reclaim may proceed.
#[derive(Debug, Clone, PartialEq)]
pub enum ReclaimCheck {
    /// In grace and the client is one of the previous instance's.
    Allowed,
    /// Refuse with this error.
    Refused(NfsError),
}

/// A file by export and object id.
pub type OpenFileKey = (u32, u64);

fn open_file_key(k: OpenFileKey) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&k.0.to_be_bytes());
    b[4..].copy_from_slice(&k.1.to_be_bytes());
    b
}

/// The open set of exports whose handles expire at reboot (see
/// [`Recovery::note_open`]).
#[derive(Debug, Default)]
struct OpenFiles {
    /// Files recorded by this instance (open now, or open until a lease
    /// expiry this instance did not prune).
    recorded: HashSet<OpenFileKey>,
    /// Files the previous instance had open: their handles stay usable
    /// through grace so the opens can be reclaimed.
    previous: HashSet<OpenFileKey>,
}

/// Stable client records and the grace period.
#[derive(Default)]
pub struct Recovery {
    /// `None`: no stable storage (unit tests); nothing survives a restart.
    kv: Option<Arc<dyn Kv>>,
    /// The client records.
    db: Option<Arc<dyn ClientDb>>,
    /// The cluster's grace period, for a head of a cluster.
    cluster: Option<Arc<dyn ClusterGrace>>,
    /// Name of the tree of open files (`open_files`; per head in a cluster).
    open_tree_name: String,
    grace: Mutex<Grace>,
    /// Tree of open files (`open_files`), when loaded.
    open_tree: Option<Arc<dyn Tree>>,
    opens: Mutex<OpenFiles>,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("durable", &self.kv.is_some())
            .finish()
    }
}

impl Recovery {
    /// Makes the writes so far durable (before the reply that depends on
    /// them leaves).
    fn flush(&self) -> Result<(), KvError> {
        match &self.kv {
            Some(kv) => kv.flush(),
            None => Ok(()),
        }
    }

    /// Loads the previous instance's records from the `clients` tree of
    /// `kv` and starts a grace period at `now_ms` if there are any.
    pub fn open(
        kv: Arc<dyn Kv>,
        now_ms: u64,
        grace_ms: u64,
        lease_ms: u64,
    ) -> Result<Recovery, KvError> {
        let db = Arc::new(KvClientDb {
            tree: kv.tree("clients")?,
            kv: kv.clone(),
        });
        Recovery::open_with(db, kv, "open_files", None, now_ms, grace_ms, lease_ms)
    }

    /// [`Recovery::open`] with the records in `db`, the open files in the
    /// tree `open_tree` of `kv`, and, for a head of a cluster, the
    /// cluster's grace period.
    pub fn open_with(
        db: Arc<dyn ClientDb>,
        kv: Arc<dyn Kv>,
        open_tree: &str,
        cluster: Option<Arc<dyn ClusterGrace>>,
        now_ms: u64,
        grace_ms: u64,
        lease_ms: u64,
    ) -> Result<Recovery, KvError> {
        let previous = previous_clients(db.load()?);
        let r = Recovery {
            kv: Some(kv),
            db: Some(db),
            cluster,
            open_tree_name: open_tree.to_string(),
            grace: Mutex::new(Grace::default()),
            open_tree: None,
            opens: Mutex::new(OpenFiles::default()),
        };
        r.start_grace(previous, now_ms, grace_ms, lease_ms);
        Ok(r)
    }

    /// A head of a cluster took over a dead head's address: that head's
    /// clients (`records`, from its stable records) may reclaim here. They
    /// join the grace period in force, or start one of at most `lease_ms`
    /// (a client that does not come back within a lease has lost its state,
    /// RFC 8881 §8.4.3); it ends earlier once each of them is done (4.1:
    /// RECLAIM_COMPLETE; 4.0: after one lease). Their records are written
    /// into this head's database first, so a crash of this head during the
    /// takeover still lets them reclaim on whoever takes it over.
    pub fn adopt(&self, records: Vec<Pair>, now_ms: u64, lease_ms: u64) {
        if let Some(db) = &self.db {
            for (k, v) in &records {
                if let Err(e) = db.put(k, v) {
                    tracing::error!(error = %e, "copying a taken-over client record failed");
                }
            }
        }
        let adopted = previous_clients(records);
        let n = adopted.len();
        let mut g = self.g();
        if g.over {
            *g = Grace {
                start_ms: now_ms,
                limit_ms: lease_ms,
                lease_ms,
                extended_until_ms: 0,
                reclaims: 0,
                last_reclaim_ms: 0,
                over: adopted.is_empty(),
                previous: adopted,
            };
        } else {
            // Joins the grace in force: one more lease from now at most.
            let until = now_ms.saturating_sub(g.start_ms) + lease_ms;
            g.limit_ms = g.limit_ms.max(until);
            for (k, p) in adopted {
                g.previous.entry(k).or_insert(p);
            }
        }
        let over = g.over;
        drop(g);
        tracing::info!(
            clients = n,
            "took over a dead head's clients: they may reclaim here"
        );
        if over {
            if let Some(c) = &self.cluster {
                c.lifted();
            }
        }
    }

    /// Whether new state (a non-reclaim OPEN or LOCK, and the changes
    /// [`crate::ops::common::refuse_in_grace`] lists) may be granted now:
    /// not during this server's grace period, nor while the cluster is in
    /// grace (NFS4ERR_GRACE), nor while the cluster's state is unknown
    /// (NFS4ERR_DELAY).
    pub fn new_state_allowed(&self, now_ms: u64) -> Result<(), NfsError> {
        if self.in_grace(now_ms) {
            return Err(NfsError::Grace);
        }
        match self.cluster.as_ref().map(|c| c.gate()) {
            None | Some(Gate::Open) => Ok(()),
            Some(Gate::Grace) => Err(NfsError::Grace),
            Some(Gate::Unknown) => Err(NfsError::Delay),
        }
    }

    fn start_grace(
        &self,
        previous: HashMap<Vec<u8>, Previous>,
        now_ms: u64,
        grace_ms: u64,
        lease_ms: u64,
    ) {
        let mut g = self.g();
        *g = Grace {
            start_ms: now_ms,
            limit_ms: grace_ms,
            lease_ms,
            extended_until_ms: 0,
            reclaims: 0,
            last_reclaim_ms: 0,
            over: previous.is_empty(),
            previous,
        };
        if !g.over {
            tracing::info!(
                clients = g.previous.len(),
                limit_s = grace_ms / 1000,
                "grace period started: clients of the previous instance may reclaim"
            );
            return;
        }
        drop(g);
        if let Some(c) = &self.cluster {
            c.lifted();
        }
    }

    fn g(&self) -> std::sync::MutexGuard<'_, Grace> {
        self.grace.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn o(&self) -> std::sync::MutexGuard<'_, OpenFiles> {
        self.opens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the previous instance's open set from `tree` (the
    /// `open_files` tree). Volatile handles that expire at reboot carry
    /// the boot epoch, so after a restart the handle of a file open at the
    /// crash is expired — yet CLAIM_PREVIOUS names the file by exactly
    /// that handle (RFC 8881 §18.16.3, RFC 7530 §16.16.5), and with
    /// FH4_NOEXPIRE_WITH_OPEN the server promised it would not expire
    /// while open (RFC 8881 §4.2.3). So the files open at the crash count
    /// as open for handle validation until grace ends. Without a grace
    /// period nothing can be reclaimed and the set is dropped at once.
    pub fn load_open_files(&mut self) -> Result<(), KvError> {
        let Some(kv) = self.kv.clone() else {
            return Ok(());
        };
        let tree = kv.tree(&self.open_tree_name)?;
        let mut previous = HashSet::new();
        for kv in tree.scan_prefix(b"") {
            let (k, _) = kv?;
            let Ok(b) = <[u8; 12]>::try_from(k.as_ref()) else {
                continue;
            };
            let export = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let id = u64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
            previous.insert((export, id));
        }
        let over = self.g().over;
        if over {
            for k in &previous {
                tree.remove(&open_file_key(*k))?;
            }
            kv.flush()?;
            previous.clear();
        } else if !previous.is_empty() {
            tracing::info!(
                files = previous.len(),
                "files open before the restart keep their volatile handles through grace"
            );
        }
        self.o().previous = previous;
        self.open_tree = Some(tree);
        Ok(())
    }

    /// Records durably (flushed before returning, so before the OPEN reply)
    /// that a file of an export whose handles expire at reboot is open. Only
    /// the first open of a file writes; the caller skips other exports,
    /// whose handles survive a restart anyway.
    pub fn note_open(&self, key: OpenFileKey) {
        let Some(t) = &self.open_tree else { return };
        // Held across the write: a second opener must not answer before the
        // first one's record is durable.
        let mut o = self.o();
        if o.recorded.contains(&key) {
            return;
        }
        let r = t
            .insert(&open_file_key(key), &[])
            .and_then(|_| self.flush());
        match r {
            Ok(()) => {
                o.recorded.insert(key);
            }
            Err(e) => {
                tracing::error!(error = %e, "recording an open file failed; its volatile handle will not survive a restart")
            }
        }
    }

    /// The file's last open is gone. Flushed too, so what the next
    /// instance exempts is exactly what was open at the crash (a leftover
    /// would only keep an expired handle of the same object usable during
    /// grace, but the exemption should be no wider than promised).
    pub fn note_closed(&self, key: OpenFileKey) {
        let Some(t) = &self.open_tree else { return };
        let mut o = self.o();
        if o.recorded.remove(&key) && !o.previous.contains(&key) {
            if let Err(e) = t.remove(&open_file_key(key)).and_then(|_| self.flush()) {
                tracing::warn!(error = %e, "removing an open-file record failed");
            }
        }
    }

    /// Was the file open when the previous instance stopped, and may it
    /// still be reclaimed (grace)?
    pub fn open_before_restart(&self, key: OpenFileKey, now_ms: u64) -> bool {
        if !self.o().previous.contains(&key) {
            return false;
        }
        self.in_grace(now_ms)
    }

    /// At the end of grace: the previous instance's open files that were
    /// not opened again (reclaimed) are forgotten.
    fn forget_previous_opens(&self) {
        let mut o = self.o();
        let gone: Vec<OpenFileKey> = o
            .previous
            .iter()
            .filter(|k| !o.recorded.contains(k))
            .copied()
            .collect();
        o.previous.clear();
        drop(o);
        let Some(t) = &self.open_tree else { return };
        for k in gone {
            if let Err(e) = t.remove(&open_file_key(k)) {
                tracing::warn!(error = %e, "removing an open-file record failed");
            }
        }
    }

    /// True while the grace period lasts; ends it (once) when its time is
    /// up or every previous client is done.
    pub fn in_grace(&self, now_ms: u64) -> bool {
        let mut g = self.g();
        if g.over {
            return false;
        }
        let elapsed = now_ms.saturating_sub(g.start_ms);
        let all_41_done = g.previous.values().all(|p| p.family == 0 || p.done);
        let any_40 = g.previous.values().any(|p| p.family == 0);
        let ended = (elapsed >= g.limit_ms && now_ms >= g.extended_until_ms)
            || (all_41_done && (!any_40 || elapsed >= g.lease_ms));
        if ended {
            g.over = true;
            let since_last_reclaim_ms = if g.reclaims > 0 {
                now_ms.saturating_sub(g.last_reclaim_ms)
            } else {
                elapsed
            };
            tracing::info!(
                elapsed_ms = elapsed,
                reclaims = g.reclaims,
                since_last_reclaim_ms,
                "grace period over"
            );
            // Clients that did not come back during grace have lost their
            // state for good (RFC 8881 §8.4.3): forget them, or every later
            // restart would wait for them again.
            let gone: Vec<Vec<u8>> = g
                .previous
                .iter()
                .filter(|(_, p)| !p.back)
                .map(|(k, _)| k.clone())
                .collect();
            drop(g);
            for k in gone {
                self.remove(&k);
            }
            self.forget_previous_opens();
            if let Some(c) = &self.cluster {
                c.lifted();
            }
        }
        !ended
    }

    /// May the client with this record key reclaim now? Outside grace:
    /// NFS4ERR_NO_GRACE (RFC 7530 §9.6.2, RFC 8881 §18.16.3). In grace, a
    /// client the previous instance did not know cannot have held state:
    /// NFS4ERR_RECLAIM_BAD for 4.0, NFS4ERR_NO_GRACE for 4.1 (RFC 8881
    /// §8.4.3: "the server MUST NOT allow the client to reclaim ... and
    /// returns NFS4ERR_NO_GRACE"), as for a 4.1 client that already sent
    /// RECLAIM_COMPLETE (§18.51.3).
    pub fn may_reclaim(&self, now_ms: u64, key: &[u8]) -> ReclaimCheck {
        if !self.in_grace(now_ms) {
            return ReclaimCheck::Refused(NfsError::NoGrace);
        }
        let mut g = self.g();
        let cap = g.start_ms + g.limit_ms + g.lease_ms;
        match g.previous.get(key) {
            Some(p) if p.family >= 1 && p.done => ReclaimCheck::Refused(NfsError::NoGrace),
            Some(_) => {
                let until = now_ms + reclaim_window_ms(g.lease_ms);
                g.extended_until_ms = g.extended_until_ms.max(until.min(cap));
                g.reclaims += 1;
                g.last_reclaim_ms = now_ms;
                ReclaimCheck::Allowed
            }
            None if key.first() == Some(&0) => ReclaimCheck::Refused(NfsError::ReclaimBad),
            None => ReclaimCheck::Refused(NfsError::NoGrace),
        }
    }

    /// Notes a 4.1 client's RECLAIM_COMPLETE (possibly ending grace) and
    /// records it durably.
    pub fn reclaim_complete(&self, key: &[u8], principal: &Principal, now_ms: u64) {
        if let Some(p) = self.g().previous.get_mut(key) {
            p.done = true;
        }
        self.in_grace(now_ms);
        self.put(key, principal, true);
    }

    /// Records a confirmed client durably (flushed before returning, so
    /// before the reply that confirms it leaves).
    pub fn put(&self, key: &[u8], principal: &Principal, reclaim_complete: bool) {
        if let Some(p) = self.g().previous.get_mut(key) {
            p.back = true;
        }
        let Some(db) = &self.db else { return };
        if let Err(e) = db.put(key, &encode(principal, reclaim_complete)) {
            tracing::error!(error = %e, "writing a client record failed; it cannot reclaim after a restart");
        }
    }

    /// Forgets a client (destroyed, or its lease expired).
    pub fn remove(&self, key: &[u8]) {
        let Some(db) = &self.db else { return };
        if let Err(e) = db.remove(key) {
            tracing::error!(error = %e, "removing a client record failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prev(entries: &[(u32, &[u8])]) -> HashMap<Vec<u8>, Previous> {
        entries
            .iter()
            .map(|(f, o)| {
                (
                    record_key(*f, o),
                    Previous {
                        family: *f,
                        done: false,
                        back: false,
                    },
                )
            })
            .collect()
    }

    fn rec(entries: &[(u32, &[u8])], now: u64) -> Recovery {
        let r = Recovery::default();
        r.start_grace(prev(entries), now, 90_000, 10_000);
        r
    }

    #[test]
    fn no_clients_no_grace() {
        let r = rec(&[], 0);
        assert!(!r.in_grace(0));
        assert_eq!(
            r.may_reclaim(0, &record_key(1, b"a")),
            ReclaimCheck::Refused(NfsError::NoGrace)
        );
    }

    #[test]
    fn grace_ends_at_the_limit() {
        let r = rec(&[(1, b"a")], 1000);
        assert!(r.in_grace(1000));
        assert!(r.in_grace(90_999));
        assert!(!r.in_grace(91_000));
        assert!(!r.in_grace(1000), "once over, grace never comes back");
    }

    #[test]
    fn reclaim_complete_of_every_41_client_ends_grace() {
        let r = rec(&[(1, b"a"), (1, b"b")], 0);
        let p = Principal::Uid(0);
        r.reclaim_complete(&record_key(1, b"a"), &p, 5);
        assert!(r.in_grace(6));
        assert_eq!(
            r.may_reclaim(6, &record_key(1, b"b")),
            ReclaimCheck::Allowed
        );
        assert_eq!(
            r.may_reclaim(6, &record_key(1, b"a")),
            ReclaimCheck::Refused(NfsError::NoGrace),
            "a client that sent RECLAIM_COMPLETE cannot reclaim"
        );
        r.reclaim_complete(&record_key(1, b"b"), &p, 7);
        assert!(!r.in_grace(7));
    }

    #[test]
    fn reclaims_near_the_end_extend_grace_by_at_most_a_lease() {
        let r = rec(&[(1, b"a")], 0);
        let k = record_key(1, b"a");
        assert_eq!(r.may_reclaim(89_500, &k), ReclaimCheck::Allowed);
        assert!(
            r.in_grace(91_900),
            "extended by the reclaim (a quarter lease)"
        );
        assert!(!r.in_grace(92_000));
        let r = rec(&[(1, b"a")], 0);
        let mut now = 89_000;
        while r.may_reclaim(now, &k) == ReclaimCheck::Allowed {
            now += 500;
        }
        assert_eq!(now, 100_000, "capped at grace_time + one lease");
    }

    #[test]
    fn the_reclaim_window_is_a_quarter_lease_or_a_second() {
        assert_eq!(reclaim_window_ms(10_000), 2_500);
        assert_eq!(reclaim_window_ms(90_000), 22_500);
        assert_eq!(reclaim_window_ms(2_000), 1_000);
    }

    #[test]
    fn a_40_client_keeps_grace_for_one_lease() {
        let r = rec(&[(0, b"a"), (1, b"b")], 0);
        r.reclaim_complete(&record_key(1, b"b"), &Principal::Uid(0), 1);
        assert!(r.in_grace(9_999));
        assert!(!r.in_grace(10_000));
    }

    #[test]
    fn unknown_clients_cannot_reclaim() {
        let r = rec(&[(0, b"a")], 0);
        assert_eq!(
            r.may_reclaim(1, &record_key(0, b"a")),
            ReclaimCheck::Allowed
        );
        assert_eq!(
            r.may_reclaim(1, &record_key(0, b"x")),
            ReclaimCheck::Refused(NfsError::ReclaimBad)
        );
        assert_eq!(
            r.may_reclaim(1, &record_key(1, b"a")),
            ReclaimCheck::Refused(NfsError::NoGrace)
        );
        assert_eq!(
            r.may_reclaim(20_000, &record_key(0, b"a")),
            ReclaimCheck::Refused(NfsError::NoGrace),
            "after grace"
        );
    }

    #[test]
    fn records_survive_reopen() {
        let kv: Arc<dyn Kv> = Arc::new(nfs4d_kv::MemKv::new());
        let r = Recovery::open(kv.clone(), 0, 90_000, 10_000).unwrap();
        assert!(!r.in_grace(0));
        r.put(&record_key(1, b"a"), &Principal::Uid(5), false);
        r.put(&record_key(0, b"b"), &Principal::Anonymous, false);
        r.remove(&record_key(0, b"b"));
        let r = Recovery::open(kv.clone(), 0, 90_000, 10_000).unwrap();
        assert!(r.in_grace(0));
        assert_eq!(
            r.may_reclaim(0, &record_key(1, b"a")),
            ReclaimCheck::Allowed
        );
        assert_eq!(
            r.may_reclaim(0, &record_key(0, b"b")),
            ReclaimCheck::Refused(NfsError::ReclaimBad)
        );
    }
    #[test]
    fn open_set_lasts_until_grace_ends() {
        let db: Arc<dyn Kv> = Arc::new(nfs4d_kv::MemKv::new());
        let start = |db: &Arc<dyn Kv>| {
            let mut r = Recovery::open(db.clone(), 0, 90_000, 10_000).unwrap();
            r.load_open_files().unwrap();
            r
        };
        let r = start(&db);
        r.put(&record_key(1, b"a"), &Principal::Uid(0), false);
        r.note_open((0, 100));
        r.note_open((0, 101));
        r.note_open((0, 102));
        r.note_closed((0, 101));
        assert!(
            !r.open_before_restart((0, 100), 0),
            "no grace: nothing from before"
        );

        // Crash; the next instance exempts what was open, during grace only.
        let r = start(&db);
        assert!(r.open_before_restart((0, 100), 1));
        assert!(r.open_before_restart((0, 102), 1));
        assert!(
            !r.open_before_restart((0, 101), 1),
            "closed before the crash"
        );
        assert!(!r.open_before_restart((1, 100), 1), "another export");
        r.note_open((0, 100)); // reclaimed
        r.reclaim_complete(&record_key(1, b"a"), &Principal::Uid(0), 2);
        assert!(!r.open_before_restart((0, 100), 3), "grace is over");
        // The file not reclaimed is forgotten; the reclaimed one stays.
        let t = db.tree("open_files").unwrap();
        assert_eq!(t.scan_prefix(b"").count(), 1);
        assert!(t.get(&open_file_key((0, 100))).unwrap().is_some());

        // Without client records there is no grace: the set goes at once.
        r.remove(&record_key(1, b"a"));
        let r = start(&db);
        assert!(!r.open_before_restart((0, 100), 0));
        assert_eq!(db.tree("open_files").unwrap().scan_prefix(b"").count(), 0);
    }

    /// A cluster's grace as a test sets it, counting `lifted` calls.
    #[derive(Default)]
    struct TestGate {
        gate: Mutex<Option<Gate>>,
        lifted: std::sync::atomic::AtomicUsize,
    }

    impl ClusterGrace for TestGate {
        fn gate(&self) -> Gate {
            self.gate.lock().unwrap().unwrap_or(Gate::Open)
        }
        fn lifted(&self) {
            self.lifted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn cluster_recovery(gate: &Arc<TestGate>) -> (Recovery, Arc<dyn Kv>) {
        let kv: Arc<dyn Kv> = Arc::new(nfs4d_kv::MemKv::new());
        let db = Arc::new(KvClientDb {
            tree: kv.tree("clients.h").unwrap(),
            kv: kv.clone(),
        });
        let c: Arc<dyn ClusterGrace> = gate.clone();
        let r = Recovery::open_with(db, kv.clone(), "open_files.h", Some(c), 0, 10_000, 10_000)
            .unwrap();
        (r, kv)
    }

    #[test]
    fn the_cluster_gate_holds_new_state_back() {
        let gate = Arc::new(TestGate::default());
        let (r, _) = cluster_recovery(&gate);
        assert_eq!(
            gate.lifted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "no clients of its own: this head needs no grace"
        );
        assert_eq!(r.new_state_allowed(0), Ok(()));
        *gate.gate.lock().unwrap() = Some(Gate::Grace);
        assert_eq!(r.new_state_allowed(0), Err(NfsError::Grace));
        *gate.gate.lock().unwrap() = Some(Gate::Unknown);
        assert_eq!(
            r.new_state_allowed(0),
            Err(NfsError::Delay),
            "unknown cluster state is DELAY, never another error"
        );
    }

    #[test]
    fn adopted_clients_reclaim_for_at_most_a_lease() {
        let gate = Arc::new(TestGate::default());
        let (r, kv) = cluster_recovery(&gate);
        let a41 = record_key(1, b"a");
        let b40 = record_key(0, b"b");
        let records = vec![
            (a41.clone(), encode(&Principal::Uid(0), false)),
            (b40.clone(), encode(&Principal::Uid(0), false)),
        ];
        r.adopt(records, 1_000, 10_000);
        assert_eq!(
            kv.tree("clients.h").unwrap().scan_prefix(b"").count(),
            2,
            "copied into this head's records first"
        );
        assert_eq!(r.may_reclaim(1_500, &a41), ReclaimCheck::Allowed);
        assert_eq!(r.may_reclaim(1_500, &b40), ReclaimCheck::Allowed);
        assert_eq!(
            r.may_reclaim(1_500, &record_key(1, b"stranger")),
            ReclaimCheck::Refused(NfsError::NoGrace)
        );
        assert_eq!(r.new_state_allowed(1_500), Err(NfsError::Grace));
        r.reclaim_complete(&a41, &Principal::Uid(0), 2_000);
        // The 4.0 client keeps grace for one lease from the takeover, and
        // not a moment longer even with no reclaim from it.
        assert!(r.in_grace(10_999));
        assert!(!r.in_grace(11_000));
        assert_eq!(gate.lifted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(r.new_state_allowed(11_000), Ok(()));
    }

    #[test]
    fn adopted_41_clients_end_grace_with_reclaim_complete() {
        let gate = Arc::new(TestGate::default());
        let (r, _) = cluster_recovery(&gate);
        let a = record_key(1, b"a");
        r.adopt(
            vec![(a.clone(), encode(&Principal::Uid(0), false))],
            0,
            10_000,
        );
        assert!(r.in_grace(100));
        r.reclaim_complete(&a, &Principal::Uid(0), 300);
        assert!(!r.in_grace(301), "grace ends at the last RECLAIM_COMPLETE");
    }
}
