//! Fencing tokens for writes to etcd.
//!
//! A head's registration key (`/<c>/heads/<head>`) lives as long as the
//! head's lease; its create revision identifies this one registration. A
//! write guarded by a [`Fence`] is a transaction that first compares that
//! create revision: once the lease has expired (the key is gone) or the
//! head registered anew (another create revision), the write is refused
//! by etcd itself. So a head that was paused, cut off or slow cannot
//! change shared state after a survivor took over, whatever its own clock
//! believes.

use etcd_client::{Compare, CompareOp, TxnOp, TxnOpResponse};

/// Proof of one live registration, checked by etcd on every guarded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub(crate) key: Vec<u8>,
    pub(crate) create_revision: i64,
}

impl Fence {
    /// The comparison that holds while the registration lives.
    pub(crate) fn compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.create_revision)
    }

    /// A read of the registration key, put in a transaction's failure
    /// branch to tell a lost fence from a failed comparison of the caller.
    pub(crate) fn read(&self) -> TxnOp {
        TxnOp::get(self.key.clone(), None)
    }

    /// Whether the answer to [`Fence::read`] shows the registration alive.
    pub(crate) fn held(&self, resp: Option<&TxnOpResponse>) -> bool {
        match resp {
            Some(TxnOpResponse::Get(g)) => g
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == self.create_revision),
            _ => false,
        }
    }

    /// The registration key, printable.
    pub fn key(&self) -> String {
        crate::error::show_key(&self.key)
    }
}
