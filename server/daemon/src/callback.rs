//! Back-channel endpoints: how the server calls a client (CB_NULL,
//! CB_COMPOUND) over a connection the client opened (4.1 back channel on
//! the fore connection, RFC 8881 §2.10.3.1).
//!
//! A [`CbChannel`] holds no socket: it queues call records on the
//! connection's writer and matches replies, which the connection's reader
//! hands back by xid through [`CbChannel::deliver`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nfs4d_xdr::rpc::{self, Credential};
use tokio::sync::{mpsc, oneshot};

/// Why a callback did not produce results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CbError {
    /// The connection is gone.
    #[error("back channel connection closed")]
    Closed,
    /// No reply in time.
    #[error("callback timed out")]
    Timeout,
    /// The client refused the call at the RPC level.
    #[error("callback refused by the client")]
    Refused,
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Option<Vec<u8>>>>>>;

/// A connection's back-channel endpoint. Cheap to clone.
#[derive(Clone)]
pub struct CbChannel {
    /// Connection id.
    pub conn: u64,
    tx: mpsc::Sender<nfs4d_core::reply::Record>,
    pending: Pending,
    xid: Arc<AtomicU32>,
    /// The back channel's single slot (RFC 8881 §2.10.6.3: the server
    /// asks for one): held across a CB_SEQUENCE-carrying CB_COMPOUND.
    pub slot: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for CbChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CbChannel(conn {})", self.conn)
    }
}

/// Bound on outstanding back-channel calls per connection (the back
/// channel has one slot; a few extra cover CB_NULL probes).
pub const MAX_PENDING_CALLS: usize = 16;

impl CbChannel {
    /// An endpoint writing call records into `tx`.
    pub fn new(conn: u64, tx: mpsc::Sender<nfs4d_core::reply::Record>) -> Self {
        CbChannel {
            conn,
            tx,
            pending: Arc::default(),
            xid: Arc::new(AtomicU32::new(0x6e66_0000)),
            slot: Arc::default(),
        }
    }

    /// Sends a call and waits for its results (the bytes after the reply header).
    pub async fn call(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &Credential,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CbError> {
        let xid = self.xid.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() >= MAX_PENDING_CALLS {
                return Err(CbError::Timeout);
            }
            p.insert(xid, done);
        }
        let rec = rpc::call_record(xid, prog, vers, proc_, cred, args);
        if self.tx.send(rec.into()).await.is_err() {
            self.forget(xid);
            return Err(CbError::Closed);
        }
        let out = tokio::time::timeout(timeout, wait).await;
        self.forget(xid);
        match out {
            Ok(Ok(Some(res))) => Ok(res),
            Ok(Ok(None)) => Err(CbError::Refused),
            Ok(Err(_)) => Err(CbError::Closed),
            Err(_) => Err(CbError::Timeout),
        }
    }

    fn forget(&self, xid: u32) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&xid);
    }

    /// Hands a reply read from the connection to the waiting caller.
    /// Returns false when no call with that xid is outstanding.
    pub fn deliver(&self, xid: u32, results: Option<Vec<u8>>) -> bool {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&xid);
        match waiter {
            Some(w) => {
                let _ = w.send(results);
                true
            }
            None => false,
        }
    }
}
