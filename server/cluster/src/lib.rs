//! The etcd layer of multi-head nfs4d.
//!
//! Several nfs4d heads share one etcd cluster (v3 API) and one store, so a
//! client can move from a dead head to a live one without losing its
//! handles or its state. This crate holds everything the heads share in
//! etcd and the rules for sharing it (docs/cluster.md):
//!
//! * [`Etcd`]: the connection (fail-over between members, deadlines, a
//!   synchronous facade over a private runtime);
//! * [`EtcdKv`]: the [`nfs4d_kv::Kv`] trees (the handle map) in etcd;
//! * [`Membership`]: each head's registration under a lease, the fence
//!   that stops a head before its lease can expire, and the watch that
//!   reports heads that vanished;
//! * [`Grace`] / [`GraceDb`]: the cluster grace database (epochs, per-head
//!   need and enforcing flags);
//! * [`ClientRecords`]: the stable client records, per head and epoch;
//! * [`ClusterIdentity`]: the server owner and scope every head
//!   advertises;
//! * [`ChangeFeed`] and [`Peers`]: cache coherence between heads (change
//!   feeds, the applied-revision barrier).

mod clients;
mod coherence;
mod config;
mod error;
mod etcd;
mod fence;
mod grace;
mod identity;
mod keys;
mod kv;
mod membership;
#[cfg(feature = "testing")]
pub mod testing;

pub use clients::{ClientRecords, MAX_CLIENTS, MAX_EPOCHS};
pub use coherence::{ChangeFeed, FeedEvent, FeedFn, Peers};
pub use config::{AddressTakeover, ClusterConfig};
pub use error::{ClusterError, Result};
pub use etcd::Etcd;
pub use fence::Fence;
pub use grace::{Grace, GraceDb, HeadFlags};
pub use identity::ClusterIdentity;
pub use kv::{EtcdKv, EtcdTree, MAX_BATCH_BYTES, MAX_KEY_LEN, MAX_VALUE_LEN, PAGE_KEYS};
pub use membership::{
    FenceState, HeadRecord, HeadWatch, HeadsChange, Membership, MAX_ADDR_LEN, MAX_HEADS,
};
