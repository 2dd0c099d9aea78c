//! Stable client records, per head and per epoch (RFC 8881 §8.4.2.1,
//! RFC 7530 §9.6.3.4).
//!
//! A head records every client it acknowledged in the database of its
//! head id and the current epoch C, before the confirming reply leaves;
//! the record's bytes are the server's own (owner id, principal, flags).
//! During grace, a reclaim is allowed only from a client recorded in the
//! recovery epoch R's database of the head whose clients are reclaiming —
//! its own after a restart, the dead head's after a takeover. Keeping one
//! database per epoch gives rados_cluster's atomic switch: the database
//! of epoch C only becomes the one reclaims are checked against when
//! grace ends and C becomes the next R. Databases older than what the
//! rules need are pruned ([`ClientRecords::prune`]).

use std::sync::Arc;

use nfs4d_kv::{Pair, Tree};

use crate::config::check_name;
use crate::error::{ClusterError, Result};
use crate::etcd::{Etcd, Retry};
use crate::fence::Fence;
use crate::grace::GraceDb;
use crate::keys;
use crate::kv::EtcdTree;

/// Most records [`ClientRecords::list`] returns; a head with more clients
/// than this is refused rather than read into memory without bound.
pub const MAX_CLIENTS: usize = 1 << 16;
/// Most epoch databases [`ClientRecords::epochs`] reports per head.
pub const MAX_EPOCHS: usize = 256;

/// The client records of one cluster.
#[derive(Clone)]
pub struct ClientRecords {
    etcd: Etcd,
    cluster: String,
    fence: Option<Fence>,
}

impl ClientRecords {
    /// The records of `cluster`, written without a fence (tools, tests).
    pub fn new(etcd: &Etcd, cluster: &str) -> Result<ClientRecords> {
        check_name("cluster name", cluster)?;
        Ok(ClientRecords {
            etcd: etcd.clone(),
            cluster: cluster.to_string(),
            fence: None,
        })
    }

    /// The same records, every write guarded by `fence`.
    pub fn fenced(&self, fence: Fence) -> ClientRecords {
        ClientRecords {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// The database of `head` for `epoch`, as a tree keyed by client.
    pub fn database(&self, head: &str, epoch: u64) -> Result<Arc<dyn Tree>> {
        check_name("head", head)?;
        Ok(Arc::new(EtcdTree::at_prefix(
            &self.etcd,
            keys::clients(&self.cluster, head, epoch),
            self.fence.clone(),
        )))
    }

    /// Records `client` (the server's key for it) with `record`.
    pub fn put(&self, head: &str, epoch: u64, client: &[u8], record: &[u8]) -> Result<()> {
        self.database(head, epoch)?
            .insert(client, record)
            .map_err(kv_error)
    }

    /// Forgets `client` (DESTROY_CLIENTID, lease expiry).
    pub fn remove(&self, head: &str, epoch: u64, client: &[u8]) -> Result<()> {
        self.database(head, epoch)?.remove(client).map_err(kv_error)
    }

    /// The record of `client`, if any.
    pub fn get(&self, head: &str, epoch: u64, client: &[u8]) -> Result<Option<Vec<u8>>> {
        self.database(head, epoch)?.get(client).map_err(kv_error)
    }

    /// Every record of `head` in `epoch`, in key order (at most
    /// [`MAX_CLIENTS`]).
    pub fn list(&self, head: &str, epoch: u64) -> Result<Vec<Pair>> {
        let db = self.database(head, epoch)?;
        let mut out = Vec::new();
        for item in db.scan_prefix(b"") {
            if out.len() == MAX_CLIENTS {
                return Err(ClusterError::Refused(format!(
                    "more than {MAX_CLIENTS} client records for {head} in epoch {epoch}"
                )));
            }
            out.push(item.map_err(kv_error)?);
        }
        Ok(out)
    }

    /// Whether `client` of head `owner` may reclaim: grace is in force and
    /// the client is in `owner`'s database of the recovery epoch.
    pub fn may_reclaim(&self, db: &GraceDb, owner: &str, client: &[u8]) -> Result<bool> {
        if !db.in_grace() {
            return Ok(false);
        }
        Ok(self.get(owner, db.recovery, client)?.is_some())
    }

    /// Copies every record of `head` from epoch `from` to `to`: a
    /// surviving head establishes its clients in the new epoch when grace
    /// starts, so a crash during or after that grace finds them.
    pub fn carry_over(&self, head: &str, from: u64, to: u64) -> Result<usize> {
        let records = self.list(head, from)?;
        let target = self.database(head, to)?;
        for (k, v) in &records {
            target.insert(k, v).map_err(kv_error)?;
        }
        Ok(records.len())
    }

    /// The epochs for which `head` has a database, ascending.
    pub fn epochs(&self, head: &str) -> Result<Vec<u64>> {
        check_name("head", head)?;
        let prefix = keys::clients_of_head(&self.cluster, head);
        let caller = self.etcd.caller().clone();
        self.etcd.block_on(async move {
            let end = keys::prefix_end(&prefix);
            let mut from = prefix.clone();
            let mut epochs = Vec::new();
            // Skip from one epoch's first key to the end of its range: one
            // request per epoch, however many clients each holds.
            while epochs.len() < MAX_EPOCHS {
                let (start, stop) = (from.clone(), end.clone());
                let resp = caller
                    .call("client epochs", Retry::Idempotent, |mut c| {
                        let (start, stop) = (start.clone(), stop.clone());
                        let opts = etcd_client::GetOptions::new()
                            .with_range(stop)
                            .with_limit(1)
                            .with_keys_only();
                        async move { c.get(start, Some(opts)).await }
                    })
                    .await?;
                let Some(kv) = resp.kvs().first() else { break };
                let rest = kv.key().get(prefix.len()..).unwrap_or_default();
                let epoch = rest
                    .get(..16)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ClusterError::Corrupt {
                        key: crate::error::show_key(kv.key()),
                        why: "no epoch in a client record key".into(),
                    })?;
                epochs.push(epoch);
                // Past every key of this epoch: `<prefix><16 hex digits>/`.
                match kv.key().get(..prefix.len() + 17) {
                    Some(epoch_prefix) => from = keys::prefix_end(epoch_prefix),
                    None => break,
                }
            }
            Ok(epochs)
        })
    }

    /// Deletes the databases of `head` that the grace rules no longer
    /// need: during grace everything older than R; otherwise everything
    /// but C. Returns the epochs deleted.
    pub fn prune(&self, head: &str, db: &GraceDb) -> Result<Vec<u64>> {
        let doomed: Vec<u64> = self
            .epochs(head)?
            .into_iter()
            .filter(|&e| {
                if db.in_grace() {
                    e < db.recovery
                } else {
                    e != db.current
                }
            })
            .collect();
        for &e in &doomed {
            self.drop_epoch(head, e)?;
        }
        Ok(doomed)
    }

    /// Deletes every database of `head` but the one of epoch `keep`
    /// (`None`: all of them). A head that recorded its clients in its own
    /// epoch calls this when its grace ends; a survivor calls it with
    /// `None` for a dead head whose records it copied. Returns the epochs
    /// deleted.
    pub fn drop_epochs_except(&self, head: &str, keep: Option<u64>) -> Result<Vec<u64>> {
        let doomed: Vec<u64> = self
            .epochs(head)?
            .into_iter()
            .filter(|&e| Some(e) != keep)
            .collect();
        for &e in &doomed {
            self.drop_epoch(head, e)?;
        }
        Ok(doomed)
    }

    fn drop_epoch(&self, head: &str, epoch: u64) -> Result<()> {
        let prefix = keys::clients(&self.cluster, head, epoch);
        let fence = self.fence.clone();
        let caller = self.etcd.caller().clone();
        self.etcd.block_on(async move {
            let del = etcd_client::TxnOp::delete(
                prefix.clone(),
                Some(etcd_client::DeleteOptions::new().with_range(keys::prefix_end(&prefix))),
            );
            let txn = match &fence {
                Some(f) => etcd_client::Txn::new().when([f.compare()]).and_then([del]),
                None => etcd_client::Txn::new().and_then([del]),
            };
            let resp = caller
                .call("drop client epoch", Retry::Idempotent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            match &fence {
                Some(f) if !resp.succeeded() => Err(ClusterError::Fenced(format!(
                    "registration {} is gone",
                    f.key()
                ))),
                _ => Ok(()),
            }
        })
    }
}

fn kv_error(e: nfs4d_kv::KvError) -> ClusterError {
    match e {
        nfs4d_kv::KvError::Unavailable(m) if m.contains("fenced") => ClusterError::Fenced(m),
        nfs4d_kv::KvError::Unavailable(m) => ClusterError::Unavailable(m),
        nfs4d_kv::KvError::Store(m) => ClusterError::Refused(m),
    }
}
