//! The nfs4d daemon: the network side of the server and everything that
//! touches the operating system for the core (`nfs4d_core`), which has
//! neither sockets nor a runtime nor system calls.
//!
//! - [`net`]: TCP connections, record marking, RPC classification, the
//!   connection's writer and back-channel replies;
//! - [`exec`]: the runners that take a connection's COMPOUNDs off the
//!   network threads (stores, sled and file systems block);
//! - [`cbdriver`] and [`callback`]: calls to clients (recalls, probes);
//! - [`ctl`]: the admin socket;
//! - [`cluster`]: this server as one head of a cluster sharing etcd;
//! - [`startup`]: the state directory, the stores and the server object;
//! - [`clock`], [`nss`]: the clock and the user/group names the core asks for.

pub mod callback;
pub mod cbdriver;
pub mod clock;
pub mod cluster;
pub mod ctl;
pub mod exec;
pub mod net;
pub mod nss;
pub mod startup;
