//! The sans-IO core of nfs4d: COMPOUND processing, the operation table and
//! its handlers, client state, attributes and the namespace layer.
//!
//! Data flows one way: the transport (the daemon) hands a COMPOUND record
//! to [`compound::process`], which runs each operation's handler from the
//! table in [`ops`]; handlers keep the protocol rules and call the
//! [`namespace`] layer for changes that involve the store, the handle
//! map, durability, volatile expiry, orphans and delegation breaks, and
//! for the POSIX permission rules; client state lives in [`state`];
//! objects live in a store (`nfs4d_store::Store`). The core has no
//! sockets, no runtime, no system calls and no clock of its own: time,
//! callbacks to clients and the owner-name mapping come in through traits
//! ([`clock::Clock`], [`state::deleg::CallbackSink`], [`idmap::IdMap`]).

#![forbid(unsafe_code)]

pub mod attrs;
pub mod auth;
pub mod clock;
pub mod compound;
pub mod config;
pub mod context;
pub mod cookies;
pub mod drc;
pub mod error;
pub mod export_access;
pub mod idmap;
pub mod metrics;
pub mod namespace;
pub mod ops;
pub mod ratelimit;
pub mod reply;
pub mod server;
pub mod state;
