//! The server identity every head advertises (RFC 8881 §2.10.4, §2.10.5).
//!
//! A client decides whether two addresses reach "the same server" from
//! EXCHANGE_ID's `server_owner` and `server_scope`: heads that give the
//! same major id and scope are one server to it, so state and handles it
//! got from one head are presented to another without a fresh client id,
//! which is what a failover needs. The identity is created once per
//! cluster, by whichever head comes first, and read by all others.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use crate::config::check_name;
use crate::error::{show_key, ClusterError, Result};
use crate::etcd::{Etcd, Retry};
use crate::keys;

const MAGIC: &str = "nfs4d-identity 1";
/// Longest identity field accepted from etcd (NFS4_OPAQUE_LIMIT).
const MAX_FIELD: usize = 1024;

/// The `server_owner.so_major_id` and `server_scope` of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// `so_major_id`, the same on every head.
    pub major_id: Vec<u8>,
    /// `server_scope`, the same on every head.
    pub scope: Vec<u8>,
}

impl ClusterIdentity {
    /// Reads the cluster's identity, creating it if this is the first head.
    /// It is derived from the etcd cluster's id and the revision at
    /// creation, so two clusters (or one rebuilt from scratch, whose state
    /// is gone) never share an identity.
    pub fn ensure(etcd: &Etcd, cluster: &str) -> Result<ClusterIdentity> {
        check_name("cluster name", cluster)?;
        let key = keys::identity(cluster);
        let caller = etcd.caller().clone();
        let name = cluster.to_string();
        let value = etcd.block_on(async move {
            let probe = caller
                .call("identity", Retry::Idempotent, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            if let Some(kv) = probe.kvs().first() {
                return Ok(kv.value().to_vec());
            }
            let (id, rev) = probe
                .header()
                .map_or((0, 0), |h| (h.cluster_id(), h.revision()));
            let text = format!("nfs4d:{name}:{id:016x}:{rev}");
            let fresh = format!("{MAGIC}\n{text}\n{text}\n").into_bytes();
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), fresh.clone(), None)])
                .or_else([TxnOp::get(key.clone(), None)]);
            let resp = caller
                .call("create identity", Retry::Idempotent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(fresh);
            }
            // Another head created it first (or our first attempt did):
            // use what is stored.
            match resp.op_responses().first() {
                Some(TxnOpResponse::Get(g)) => Ok(g
                    .kvs()
                    .first()
                    .map(|kv| kv.value().to_vec())
                    .unwrap_or(fresh)),
                _ => Ok(fresh),
            }
        })?;
        decode(&keys::identity(cluster), &value)
    }
}

fn decode(key: &[u8], value: &[u8]) -> Result<ClusterIdentity> {
    let corrupt = |why: &str| ClusterError::Corrupt {
        key: show_key(key),
        why: why.into(),
    };
    let text = std::str::from_utf8(value).map_err(|_| corrupt("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(corrupt("unknown format"));
    }
    let mut field = || {
        lines
            .next()
            .filter(|l| !l.is_empty() && l.len() <= MAX_FIELD)
            .map(|l| l.as_bytes().to_vec())
            .ok_or_else(|| corrupt("missing field"))
    };
    Ok(ClusterIdentity {
        major_id: field()?,
        scope: field()?,
    })
}
