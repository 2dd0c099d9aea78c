//! [`nfs4d_kv::Kv`] over etcd: the trees a single head keeps in sled,
//! shared by every head of a cluster.
//!
//! * A tree is the key prefix `/<cluster>/kv/<tree>/`.
//! * Reads are linearizable (etcd's default): a get sees every write
//!   acknowledged before it started, on any head.
//! * [`Tree::compare_and_swap`] and [`Kv::commit`] are etcd transactions.
//! * [`Tree::scan_prefix`] reads pages of [`PAGE_KEYS`] keys, all at the
//!   revision of the first page, so a scan is one consistent snapshot and
//!   holds one page in memory.
//! * [`Kv::flush`] does nothing: etcd acknowledges a write once a quorum
//!   has it on disk.
//! * With a [`Fence`] every write is refused once this head's registration
//!   is gone, so a head that lost its lease cannot change the map.
//!
//! No quorum or no member reachable: [`KvError::Unavailable`] within the
//! configured request deadline.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use nfs4d_kv::{Batch, KeyState, Kv, KvError, KvResult, Pair, Tree};

use crate::config::{check_name, MAX_NAME_LEN};
use crate::error::{ClusterError, Result};
use crate::etcd::{Etcd, Retry, MAX_RESPONSE_BYTES};
use crate::fence::Fence;
use crate::keys;

/// Longest key a tree accepts (the handle map's longest is a name index
/// entry: export, parent id and a 255-byte name).
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value a tree accepts.
pub const MAX_VALUE_LEN: usize = 256 << 10;
/// Keys per scan page.
pub const PAGE_KEYS: usize = 128;
/// Most bytes of keys and values in one [`Kv::commit`].
pub const MAX_BATCH_BYTES: usize = 512 << 10;
/// etcd's default limit on one request (`--max-request-bytes`).
const ETCD_MAX_REQUEST_BYTES: usize = 1536 << 10;
/// Bytes a key gains in etcd: `/<cluster>/kv/<tree>/`.
const KEY_PREFIX_MAX: usize = 2 * MAX_NAME_LEN + 8;
/// Room for framing, the fence comparison and a transaction's failure
/// branch in one request.
const REQUEST_OVERHEAD: usize = 16 << 10;

// A compare-and-swap carries the key three times and two values.
const _: () = assert!(
    3 * (MAX_KEY_LEN + KEY_PREFIX_MAX) + 2 * MAX_VALUE_LEN + REQUEST_OVERHEAD
        <= ETCD_MAX_REQUEST_BYTES
);
// A commit's keys and values, each key also read back on failure.
const _: () = assert!(
    MAX_BATCH_BYTES
        + 3 * nfs4d_kv::MAX_BATCH_OPS * (KEY_PREFIX_MAX + MAX_KEY_LEN)
        + REQUEST_OVERHEAD
        <= ETCD_MAX_REQUEST_BYTES
);
// A scan page must fit in one response.
const _: () =
    assert!(PAGE_KEYS * (MAX_KEY_LEN + KEY_PREFIX_MAX + MAX_VALUE_LEN) <= MAX_RESPONSE_BYTES);

/// The key-value store of one cluster.
#[derive(Clone)]
pub struct EtcdKv {
    etcd: Etcd,
    cluster: String,
    fence: Option<Fence>,
}

impl EtcdKv {
    /// The trees of cluster `cluster`, written without a fence (tools,
    /// tests); a serving head uses [`EtcdKv::fenced`].
    pub fn new(etcd: &Etcd, cluster: &str) -> Result<EtcdKv> {
        check_name("cluster name", cluster)?;
        Ok(EtcdKv {
            etcd: etcd.clone(),
            cluster: cluster.to_string(),
            fence: None,
        })
    }

    /// The same trees, every write guarded by `fence` (a head's
    /// registration, [`crate::Membership::fence`]).
    pub fn fenced(&self, fence: Fence) -> EtcdKv {
        EtcdKv {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// The tree `name` as its concrete type.
    pub fn etcd_tree(&self, name: &str) -> Result<EtcdTree> {
        check_name("tree name", name)?;
        Ok(EtcdTree {
            etcd: self.etcd.clone(),
            prefix: keys::kv_tree(&self.cluster, name),
            fence: self.fence.clone(),
        })
    }
}

impl Kv for EtcdKv {
    fn tree(&self, name: &str) -> KvResult<Arc<dyn Tree>> {
        Ok(Arc::new(self.etcd_tree(name)?))
    }

    fn flush(&self) -> KvResult<()> {
        // Every acknowledged write is already on a quorum's disks.
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> KvResult<Result<(), usize>> {
        Ok(self.commit_at(batch)?.map(|_| ()))
    }

    fn commit_at(&self, batch: &Batch) -> KvResult<Result<u64, usize>> {
        batch.check_size()?;
        let mut bytes = 0usize;
        for s in batch.checks.iter().chain(&batch.writes) {
            check_name("tree name", &s.tree)?;
            check_key(&s.key)?;
            if let Some(v) = &s.value {
                check_value(v)?;
            }
            bytes += s.key.len() + s.value.as_ref().map_or(0, Vec::len);
        }
        if bytes > MAX_BATCH_BYTES {
            return Err(KvError::Store(format!(
                "batch of {bytes} bytes exceeds {MAX_BATCH_BYTES}"
            )));
        }
        let full = |s: &KeyState| {
            let mut k = keys::kv_tree(&self.cluster, &s.tree);
            k.extend_from_slice(&s.key);
            k
        };
        let checks: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch
            .checks
            .iter()
            .map(|s| (full(s), s.value.clone()))
            .collect();
        // etcd refuses a transaction that writes one key twice; the last
        // write of a key is the one that counts.
        let mut writes: BTreeMap<Vec<u8>, (usize, Option<Vec<u8>>)> = BTreeMap::new();
        for (i, s) in batch.writes.iter().enumerate() {
            writes.insert(full(s), (i, s.value.clone()));
        }
        let mut ordered: Vec<(usize, Vec<u8>, Option<Vec<u8>>)> =
            writes.into_iter().map(|(k, (i, v))| (i, k, v)).collect();
        ordered.sort_by_key(|w| w.0);
        let ops: Vec<TxnOp> = ordered
            .into_iter()
            .map(|(_, k, v)| match v {
                Some(v) => TxnOp::put(k, v, None),
                None => TxnOp::delete(k, None),
            })
            .collect();
        let fence = self.fence.clone();
        let caller = self.etcd.caller().clone();
        let outcome = self.etcd.block_on(async move {
            let mut compares: Vec<Compare> = checks.iter().map(|(k, v)| expect(k, v)).collect();
            let mut reads: Vec<TxnOp> = checks
                .iter()
                .map(|(k, _)| TxnOp::get(k.clone(), None))
                .collect();
            if let Some(f) = &fence {
                compares.push(f.compare());
                reads.push(f.read());
            }
            let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
            let resp = caller
                .call("commit", Retry::IfNotSent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                let revision = resp.header().map_or(0, |h| h.revision());
                return Ok(Ok(u64::try_from(revision).unwrap_or(0)));
            }
            let answers = resp.op_responses();
            if let Some(f) = &fence {
                if !f.held(answers.get(checks.len())) {
                    return Err(fenced(f));
                }
            }
            for (i, (_, want)) in checks.iter().enumerate() {
                if value_of(answers.get(i)) != *want {
                    return Ok(Err(i));
                }
            }
            Err(ClusterError::Refused(
                "transaction failed but every check holds".into(),
            ))
        })?;
        Ok(outcome)
    }
}

/// One tree: the keys under `/<cluster>/kv/<name>/`.
pub struct EtcdTree {
    etcd: Etcd,
    prefix: Vec<u8>,
    fence: Option<Fence>,
}

impl EtcdTree {
    /// The keys under `prefix`, for other record kinds of this crate.
    pub(crate) fn at_prefix(etcd: &Etcd, prefix: Vec<u8>, fence: Option<Fence>) -> EtcdTree {
        EtcdTree {
            etcd: etcd.clone(),
            prefix,
            fence,
        }
    }

    fn full_key(&self, key: &[u8]) -> KvResult<Vec<u8>> {
        check_key(key)?;
        let mut k = self.prefix.clone();
        k.extend_from_slice(key);
        Ok(k)
    }

    /// A put or delete, guarded by the fence when there is one. Both are
    /// idempotent, so they are retried after an unclear failure.
    fn write(&self, key: &[u8], value: Option<&[u8]>) -> KvResult<()> {
        let key = self.full_key(key)?;
        if let Some(v) = value {
            check_value(v)?;
        }
        let value = value.map(<[u8]>::to_vec);
        let fence = self.fence.clone();
        let caller = self.etcd.caller().clone();
        self.etcd.block_on(async move {
            let op = match value {
                Some(v) => TxnOp::put(key, v, None),
                None => TxnOp::delete(key, None),
            };
            let txn = match &fence {
                Some(f) => Txn::new()
                    .when([f.compare()])
                    .and_then([op])
                    .or_else([f.read()]),
                None => Txn::new().and_then([op]),
            };
            let resp = caller
                .call("write", Retry::Idempotent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            match &fence {
                Some(f) if !resp.succeeded() => Err(fenced(f)),
                _ => Ok(()),
            }
        })?;
        Ok(())
    }
}

impl Tree for EtcdTree {
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        let key = self.full_key(key)?;
        let caller = self.etcd.caller().clone();
        let v = self.etcd.block_on(async move {
            let resp = caller
                .call("get", Retry::Idempotent, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
        })?;
        Ok(v)
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.write(key, Some(value))
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.write(key, None)
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> KvResult<Result<(), Option<Vec<u8>>>> {
        let key = self.full_key(key)?;
        for v in old.iter().chain(new.iter()) {
            check_value(v)?;
        }
        let old = old.map(<[u8]>::to_vec);
        let new = new.map(<[u8]>::to_vec);
        let fence = self.fence.clone();
        let caller = self.etcd.caller().clone();
        let r = self.etcd.block_on(async move {
            let mut compares = vec![expect(&key, &old)];
            let mut reads = vec![TxnOp::get(key.clone(), None)];
            if let Some(f) = &fence {
                compares.push(f.compare());
                reads.push(f.read());
            }
            let op = match new {
                Some(v) => TxnOp::put(key.clone(), v, None),
                None => TxnOp::delete(key.clone(), None),
            };
            let txn = Txn::new().when(compares).and_then([op]).or_else(reads);
            // Not retried once it may have been applied: a second attempt
            // would see its own write and report a mismatch.
            let resp = caller
                .call("compare_and_swap", Retry::IfNotSent, |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(Ok(()));
            }
            let answers = resp.op_responses();
            if let Some(f) = &fence {
                if !f.held(answers.get(1)) {
                    return Err(fenced(f));
                }
            }
            Ok(Err(value_of(answers.first())))
        })?;
        Ok(r)
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Box<dyn Iterator<Item = KvResult<Pair>> + 'a> {
        match self.full_key(prefix) {
            Ok(start) => Box::new(Scan {
                tree: self,
                end: keys::prefix_end(&start),
                next: Some(start),
                revision: 0,
                page: VecDeque::new(),
            }),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}

/// A scan in pages, pinned to the revision of its first page.
struct Scan<'a> {
    tree: &'a EtcdTree,
    /// Full etcd key the next page starts at; `None` when done.
    next: Option<Vec<u8>>,
    end: Vec<u8>,
    revision: i64,
    page: VecDeque<Pair>,
}

impl Scan<'_> {
    fn fetch(&mut self, start: Vec<u8>) -> KvResult<()> {
        let caller = self.tree.etcd.caller().clone();
        let end = self.end.clone();
        let revision = self.revision;
        let (kvs, more, rev) = self.tree.etcd.block_on(async move {
            let mut resp = caller
                .call("scan", Retry::Idempotent, |mut c| {
                    let (start, end) = (start.clone(), end.clone());
                    let mut opts = GetOptions::new()
                        .with_range(end)
                        .with_limit(PAGE_KEYS as i64);
                    if revision > 0 {
                        opts = opts.with_revision(revision);
                    }
                    async move { c.get(start, Some(opts)).await }
                })
                .await?;
            let rev = resp.header().map_or(0, |h| h.revision());
            let more = resp.more();
            Ok((resp.take_kvs(), more, rev))
        })?;
        if self.revision == 0 {
            self.revision = rev;
        }
        let plen = self.tree.prefix.len();
        self.next = match kvs.last() {
            Some(last) if more => {
                let mut k = last.key().to_vec();
                k.push(0);
                Some(k)
            }
            _ => None,
        };
        for kv in kvs {
            let (k, v) = kv.into_key_value();
            match k.get(plen..) {
                Some(rel) => self.page.push_back((rel.to_vec(), v)),
                None => {
                    return Err(KvError::Store(format!(
                        "etcd returned {} outside the scanned range",
                        crate::error::show_key(&k)
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Scan<'_> {
    type Item = KvResult<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(p) = self.page.pop_front() {
            return Some(Ok(p));
        }
        let start = self.next.take()?;
        if let Err(e) = self.fetch(start) {
            // A failed page ends the scan: the caller sees the error once.
            self.next = None;
            return Some(Err(e));
        }
        self.page.pop_front().map(Ok)
    }
}

/// The comparison "`key` holds `value`" (`None`: is absent). etcd fails a
/// value comparison on a missing key, so absence is "never created".
fn expect(key: &[u8], value: &Option<Vec<u8>>) -> Compare {
    match value {
        Some(v) => Compare::value(key.to_vec(), CompareOp::Equal, v.clone()),
        None => Compare::create_revision(key.to_vec(), CompareOp::Equal, 0),
    }
}

/// The value a transaction's get returned (`None`: absent).
fn value_of(resp: Option<&TxnOpResponse>) -> Option<Vec<u8>> {
    match resp {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    }
}

fn fenced(f: &Fence) -> ClusterError {
    tracing::error!(registration = %f.key(), "write refused: this head's registration is gone");
    ClusterError::Fenced(format!("registration {} is gone", f.key()))
}

fn check_key(key: &[u8]) -> KvResult<()> {
    if key.len() > MAX_KEY_LEN {
        tracing::warn!(len = key.len(), "key-value key too long");
        return Err(KvError::Store(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(v: &[u8]) -> KvResult<()> {
    if v.len() > MAX_VALUE_LEN {
        tracing::warn!(len = v.len(), "key-value value too long");
        return Err(KvError::Store(format!(
            "value of {} bytes exceeds {MAX_VALUE_LEN}",
            v.len()
        )));
    }
    Ok(())
}
