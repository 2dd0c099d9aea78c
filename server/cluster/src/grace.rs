//! The cluster grace database, after NFS-Ganesha's rados_cluster design.
//!
//! When one head restarts, or a survivor takes over a dead head's clients,
//! those clients reclaim their opens and locks (RFC 8881 §8.4.2). Until
//! they have, no head may grant state that could conflict with a reclaim,
//! so the grace period is a property of the whole cluster:
//!
//! * `current` (C) is the cluster's epoch; `recovery` (R) is the epoch
//!   clients may reclaim from, and non-zero exactly while the cluster is
//!   in grace.
//! * Each head has two flags: NEED (it has clients that may reclaim) and
//!   ENFORCING (it refuses new conflicting state, NFS4ERR_GRACE).
//! * Starting grace: R = C, C = C + 1, unless already in grace (then the
//!   head joins the one in force); the head sets NEED and ENFORCING.
//! * Every other head sets ENFORCING as soon as it sees R != 0. A head
//!   lets its clients reclaim only once every live head enforces.
//! * Lifting: a head done with its reclaims clears NEED; whoever clears
//!   the last NEED sets R = 0. Heads then clear ENFORCING and grant new
//!   state again. A head may not stop enforcing while R != 0.
//! * Takeover: a survivor clears the dead head's flags (a fenced head
//!   grants nothing) and sets its own NEED, in the same step.
//!
//! The database is one etcd key, changed by read-modify-write
//! transactions on its revision, each a [`GraceDb`] transition; a head's
//! writes are fenced by its registration.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, Txn, TxnOp, TxnOpResponse, WatchOptions};

use crate::config::check_name;
use crate::error::{show_key, ClusterError, Result};
use crate::etcd::{Etcd, Retry};
use crate::fence::Fence;
use crate::keys;
use crate::membership::MAX_HEADS;

/// Read-modify-write cycles tried before giving up under contention.
const MAX_UPDATE_ATTEMPTS: usize = 32;
const MAGIC: &[u8] = b"nfs4d-grace 1\n";

/// One head's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadFlags {
    /// The head has clients that may reclaim.
    pub need: bool,
    /// The head refuses new state that could conflict with a reclaim.
    pub enforcing: bool,
}

/// The grace database: epochs and per-head flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceDb {
    /// C: the current epoch (starts at 1).
    pub current: u64,
    /// R: the epoch clients reclaim from; 0 when not in grace.
    pub recovery: u64,
    /// Flags of every member head.
    pub heads: BTreeMap<String, HeadFlags>,
}

impl Default for GraceDb {
    fn default() -> Self {
        GraceDb {
            current: 1,
            recovery: 0,
            heads: BTreeMap::new(),
        }
    }
}

impl GraceDb {
    /// Whether a cluster-wide grace period is in force.
    pub fn in_grace(&self) -> bool {
        self.recovery != 0
    }

    fn flags(&mut self, head: &str) -> Result<&mut HeadFlags> {
        check_name("head", head)?;
        if !self.heads.contains_key(head) && self.heads.len() >= MAX_HEADS {
            return Err(ClusterError::Grace(format!("more than {MAX_HEADS} heads")));
        }
        Ok(self.heads.entry(head.to_string()).or_default())
    }

    /// Makes `head` a member with no flags (a head with no clients to
    /// recover joining a cluster not in grace).
    pub fn add(&mut self, head: &str) -> Result<()> {
        self.flags(head).map(|_| ())
    }

    /// `head` needs a grace period: starts one (R = C, C = C + 1) unless
    /// one is in force, and sets its NEED and ENFORCING.
    pub fn start(&mut self, head: &str) -> Result<()> {
        self.flags(head)?;
        if !self.in_grace() {
            self.recovery = self.current;
            self.current = self
                .current
                .checked_add(1)
                .ok_or_else(|| ClusterError::Grace("epoch space exhausted".into()))?;
        }
        let f = self.flags(head)?;
        f.need = true;
        f.enforcing = true;
        Ok(())
    }

    /// Like [`GraceDb::start`], but only into a grace period in force.
    pub fn join(&mut self, head: &str) -> Result<()> {
        if !self.in_grace() {
            return Err(ClusterError::Grace(format!(
                "{head} cannot join: no grace period in force"
            )));
        }
        self.start(head)
    }

    /// `head` refuses new conflicting state from now on.
    pub fn enforce(&mut self, head: &str) -> Result<()> {
        self.flags(head)?.enforcing = true;
        Ok(())
    }

    /// `head` has no more clients to wait for. Ends the grace period
    /// (R = 0) when no head needs it any more; returns whether it ended.
    pub fn lift(&mut self, head: &str) -> Result<bool> {
        self.flags(head)?.need = false;
        if self.in_grace() && !self.heads.values().any(|f| f.need) {
            self.recovery = 0;
            return Ok(true);
        }
        Ok(!self.in_grace())
    }

    /// `head` grants new state again; refused while grace is in force.
    pub fn stop_enforcing(&mut self, head: &str) -> Result<()> {
        if self.in_grace() {
            return Err(ClusterError::Grace(format!(
                "{head} may not stop enforcing during grace (recovery epoch {})",
                self.recovery
            )));
        }
        self.flags(head)?.enforcing = false;
        Ok(())
    }

    /// `survivor` takes over the clients of `dead`: the dead head's flags
    /// go (it is fenced and grants nothing) and the survivor needs grace.
    pub fn take_over(&mut self, survivor: &str, dead: &str) -> Result<()> {
        check_name("head", dead)?;
        if survivor == dead {
            return Err(ClusterError::Grace(format!(
                "{dead} cannot take itself over"
            )));
        }
        self.heads.remove(dead);
        self.start(survivor)
    }

    /// Removes `head` from the database (decommissioned); ends grace if it
    /// was the last that needed it.
    pub fn remove(&mut self, head: &str) {
        self.heads.remove(head);
        if self.in_grace() && !self.heads.values().any(|f| f.need) {
            self.recovery = 0;
        }
    }

    /// Whether every head of `live` enforces: only then may the heads that
    /// need grace let their clients reclaim.
    pub fn all_enforcing<'a>(&self, live: impl IntoIterator<Item = &'a str>) -> bool {
        live.into_iter()
            .all(|h| self.heads.get(h).is_some_and(|f| f.enforcing))
    }

    /// Whether `head` may grant new (non-reclaim) state: the cluster is
    /// not in grace and the head no longer enforces.
    pub fn may_grant(&self, head: &str) -> bool {
        !self.in_grace() && !self.heads.get(head).is_some_and(|f| f.enforcing)
    }

    /// Whether `head`'s clients may reclaim: grace is in force and it
    /// needs it.
    pub fn may_reclaim(&self, head: &str) -> bool {
        self.in_grace() && self.heads.get(head).is_some_and(|f| f.need)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&self.recovery.to_be_bytes());
        for (h, f) in &self.heads {
            // Head ids are at most 64 bytes (config::MAX_NAME_LEN).
            out.push(h.len() as u8);
            out.extend_from_slice(h.as_bytes());
            out.push(u8::from(f.need) | u8::from(f.enforcing) << 1);
        }
        out
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<GraceDb> {
        let corrupt = |why: &str| ClusterError::Corrupt {
            key: show_key(key),
            why: why.into(),
        };
        let rest = v
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("unknown format"))?;
        let (epochs, mut rest) = rest
            .split_at_checked(16)
            .ok_or_else(|| corrupt("truncated"))?;
        let (c, r) = epochs.split_at(8);
        let u64_of = |b: &[u8]| {
            b.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("truncated"))
        };
        let mut db = GraceDb {
            current: u64_of(c)?,
            recovery: u64_of(r)?,
            heads: BTreeMap::new(),
        };
        if db.current == 0 || db.recovery >= db.current {
            return Err(corrupt("epochs out of order"));
        }
        while let Some((&len, tail)) = rest.split_first() {
            let (name, tail) = tail
                .split_at_checked(usize::from(len))
                .ok_or_else(|| corrupt("truncated head"))?;
            let (&flags, tail) = tail
                .split_first()
                .ok_or_else(|| corrupt("truncated flags"))?;
            let name = std::str::from_utf8(name).map_err(|_| corrupt("head id not UTF-8"))?;
            check_name("head", name).map_err(|_| corrupt("bad head id"))?;
            if flags > 3 || db.heads.len() >= MAX_HEADS {
                return Err(corrupt("bad flags or too many heads"));
            }
            db.heads.insert(
                name.to_string(),
                HeadFlags {
                    need: flags & 1 != 0,
                    enforcing: flags & 2 != 0,
                },
            );
            rest = tail;
        }
        Ok(db)
    }
}

/// The grace database of one cluster in etcd.
#[derive(Clone)]
pub struct Grace {
    etcd: Etcd,
    key: Vec<u8>,
    fence: Option<Fence>,
}

impl Grace {
    /// The database of `cluster`, updated without a fence (tools, tests).
    pub fn new(etcd: &Etcd, cluster: &str) -> Result<Grace> {
        check_name("cluster name", cluster)?;
        Ok(Grace {
            etcd: etcd.clone(),
            key: keys::grace(cluster),
            fence: None,
        })
    }

    /// The same database, every update guarded by `fence`.
    pub fn fenced(&self, fence: Fence) -> Grace {
        Grace {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// The database now (linearizable) and its etcd revision (0: absent,
    /// the initial database).
    pub fn load(&self) -> Result<(GraceDb, i64)> {
        let caller = self.etcd.caller().clone();
        let key = self.key.clone();
        self.etcd.block_on(async move {
            let resp = caller
                .call("grace load", Retry::Idempotent, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            match resp.kvs().first() {
                Some(kv) => Ok((GraceDb::decode(&key, kv.value())?, kv.mod_revision())),
                None => Ok((GraceDb::default(), 0)),
            }
        })
    }

    /// Applies `change` to the database atomically: read, change, write
    /// if no one wrote in between, else again from the new state. A
    /// `change` that fails aborts without writing. Returns its result and
    /// the database as written.
    pub fn update<T>(
        &self,
        mut change: impl FnMut(&mut GraceDb) -> Result<T>,
    ) -> Result<(T, GraceDb)> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let (before, revision) = self.load()?;
            let mut db = before.clone();
            let out = change(&mut db)?;
            if db == before && revision != 0 {
                return Ok((out, db));
            }
            if self.write(&db, revision)? {
                return Ok((out, db));
            }
        }
        Err(ClusterError::Unavailable(format!(
            "grace database contended: {MAX_UPDATE_ATTEMPTS} updates lost in a row"
        )))
    }

    /// Writes `db` if the key is still at `revision`; false if it moved.
    fn write(&self, db: &GraceDb, revision: i64) -> Result<bool> {
        let key = self.key.clone();
        let value = db.encode();
        let fence = self.fence.clone();
        let caller = self.etcd.caller().clone();
        self.etcd.block_on(async move {
            let mut compares = vec![Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )];
            let mut reads = Vec::new();
            if let Some(f) = &fence {
                compares.push(f.compare());
                reads.push(f.read());
            }
            let txn = Txn::new()
                .when(compares)
                .and_then([TxnOp::put(key.clone(), value, None)])
                .or_else(reads);
            // Not retried after an unclear failure: the next cycle reads
            // the key again and sees whether this write landed.
            let resp = caller
                .call("grace update", Retry::IfNotSent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(true);
            }
            if let Some(f) = &fence {
                let answers = resp.op_responses();
                let first: Option<&TxnOpResponse> = answers.first();
                if !f.held(first) {
                    return Err(ClusterError::Fenced(format!(
                        "registration {} is gone",
                        f.key()
                    )));
                }
            }
            Ok(false)
        })
    }

    /// Waits up to `timeout` for the database to change after `revision`
    /// (from [`Grace::load`]) and returns the new state, or `None` if it
    /// did not change in time. How a head learns that grace started or
    /// ended without polling.
    pub fn wait_change(&self, revision: i64, timeout: Duration) -> Result<Option<(GraceDb, i64)>> {
        let caller = self.etcd.caller().clone();
        let key = self.key.clone();
        // The synchronous facade waits a few request deadlines at most.
        let timeout = timeout.min(caller.request_timeout() * 3);
        let waited = self.etcd.block_on(async move {
            let (i, mut client) = caller.pinned();
            let opts = WatchOptions::new().with_start_revision(revision + 1);
            let run = async {
                let mut stream = client.watch(key.clone(), Some(opts)).await?;
                loop {
                    let Some(msg) = stream.message().await? else {
                        return Ok::<_, etcd_client::Error>(None);
                    };
                    if msg.canceled() {
                        return Ok(None);
                    }
                    if let Some(ev) = msg.events().last() {
                        return Ok(Some(match (ev.event_type(), ev.kv()) {
                            (EventType::Put, Some(kv)) => {
                                Some((kv.value().to_vec(), kv.mod_revision()))
                            }
                            _ => None,
                        }));
                    }
                }
            };
            match tokio::time::timeout(timeout, run).await {
                Err(_) => Ok(None),
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    caller.fail_over(i, true);
                    Err(ClusterError::Unavailable(format!("grace watch: {e}")))
                }
            }
        });
        match waited {
            Ok(Some(Some((v, rev)))) => Ok(Some((GraceDb::decode(&self.key, &v)?, rev))),
            Ok(Some(None)) => Ok(Some((GraceDb::default(), 0))),
            Ok(None) => Ok(None),
            Err(ClusterError::Unavailable(m)) if m.contains("did not complete") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_head_restarting_starts_and_lifts_grace() {
        let mut db = GraceDb::default();
        db.add("a").expect("add");
        db.add("b").expect("add");
        assert!(!db.in_grace());
        assert!(db.may_grant("a"));
        db.start("a").expect("start");
        assert_eq!((db.current, db.recovery), (2, 1));
        assert!(db.may_reclaim("a") && !db.may_reclaim("b"));
        assert!(!db.may_grant("b"), "nobody grants new state during grace");
        assert!(!db.all_enforcing(["a", "b"]), "b does not enforce yet");
        db.enforce("b").expect("enforce");
        assert!(db.all_enforcing(["a", "b"]));
        assert!(
            db.stop_enforcing("b").is_err(),
            "b may not stop during grace"
        );
        assert_eq!(db.lift("a"), Ok(true));
        assert_eq!((db.current, db.recovery), (2, 0));
        assert!(
            !db.may_grant("b"),
            "still enforcing until it clears the flag"
        );
        db.stop_enforcing("b").expect("stop");
        db.stop_enforcing("a").expect("stop");
        assert!(db.may_grant("a") && db.may_grant("b"));
    }

    #[test]
    fn grace_lasts_until_every_head_that_needs_it_has_lifted() {
        let mut db = GraceDb::default();
        db.start("a").expect("start");
        // b restarts during a's grace: it joins, the epoch stays.
        db.join("b").expect("join");
        assert_eq!((db.current, db.recovery), (2, 1));
        assert_eq!(db.lift("a"), Ok(false));
        assert!(db.in_grace());
        assert_eq!(db.lift("b"), Ok(true));
        assert!(!db.in_grace());
        assert!(db.join("c").is_err(), "nothing to join now");
        // The next grace is a new epoch.
        db.start("c").expect("start");
        assert_eq!((db.current, db.recovery), (3, 2));
    }

    #[test]
    fn takeover_moves_the_need_to_the_survivor() {
        let mut db = GraceDb::default();
        db.start("a").expect("start");
        db.lift("a").expect("lift");
        db.stop_enforcing("a").expect("stop");
        db.add("b").expect("add");
        db.start("a").expect("a restarts and dies during its grace");
        db.take_over("b", "a").expect("takeover");
        assert!(!db.heads.contains_key("a"));
        assert!(db.may_reclaim("b"));
        assert_eq!(db.lift("b"), Ok(true), "a's stale need does not hold grace");
        assert!(db.take_over("b", "b").is_err());
    }

    #[test]
    fn removing_the_last_needy_head_ends_grace() {
        let mut db = GraceDb::default();
        db.start("a").expect("start");
        db.enforce("b").expect("enforce");
        db.remove("a");
        assert!(!db.in_grace());
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let mut db = GraceDb::default();
        db.start("head-1").expect("start");
        db.enforce("h2").expect("enforce");
        let bytes = db.encode();
        assert_eq!(GraceDb::decode(b"k", &bytes), Ok(db.clone()));
        for cut in 0..bytes.len() {
            let r = GraceDb::decode(b"k", &bytes[..cut]);
            // Truncation at a record boundary is a shorter valid list;
            // anywhere else it is an error, never a panic.
            if let Ok(d) = r {
                assert!(d.heads.len() < db.heads.len());
            }
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 9;
        assert!(GraceDb::decode(b"k", &bad).is_err(), "flags out of range");
        let mut bad = bytes;
        bad[MAGIC.len() + 15] = 5; // R = 5 > C
        assert!(GraceDb::decode(b"k", &bad).is_err(), "epochs out of order");
        assert!(GraceDb::default().start(&"x".repeat(65)).is_err());
    }
}
