//! The nfs4d daemon: the network side of the server and everything that
//! touches the operating system for the core (`nfs4d_core`), which has
//! neither sockets nor a runtime nor system calls.
//!
//! - [`net`]: TCP connections, record marking, RPC classification, the
//!   connection's writer and back-channel replies;
//! - [`exec`]: the runners that take a connection's COMPOUNDs off the
//!   network threads (stores, sled and file systems block);
//! - [`cbdriver`] and [`callback`]: calls to clients (recalls, probes);
//! - [`flusher`]: the background flush of `async` exports;
//! - [`ctl`]: the admin socket; [`reload`]: re-reading the configuration;
//! - [`metrics`] and [`metered`]: metrics on the admin HTTP listener;
//! - [`gss`]: RPCSEC_GSS (Kerberos): the engine from the `[gss]` section,
//!   and calls authenticated, unwrapped and answered in the runners;
//! - [`cluster`]: this server as one head of a cluster sharing etcd;
//! - [`startup`]: the state directory, the stores and the server object;
//! - [`clock`], [`nss`]: the clock, the user/group names the core asks
//!   for and the accounts Kerberos principals map to.

pub mod callback;
pub mod cbdriver;
pub mod clock;
pub mod cluster;
pub mod ctl;
pub mod exec;
pub mod flusher;
pub mod gss;
pub mod metered;
pub mod metrics;
pub mod net;
pub mod nss;
pub mod reload;
pub mod startup;
pub mod wsplice;
