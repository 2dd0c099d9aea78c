//! nfs4d: a user-space NFSv4.0/4.1/4.2 server for path-based stores.
//!
//! Data flows one way: TCP record marking ([`net`]) → ONC RPC
//! ([`dispatch`]) → COMPOUND processor ([`compound`]) → one handler per
//! operation ([`ops`]) → state ([`state`]) → filehandle map ([`fhmap`]) →
//! backend ([`backend`]).

pub mod attrs;
pub mod backend;
pub mod callback;
pub mod cbdriver;
pub mod client;
pub mod clock;
pub mod compound;
pub mod config;
pub mod ctl;
pub mod drc;
pub mod error;
pub mod exec;
pub mod export_access;
pub mod fhmap;
pub mod net;
pub mod ops;
pub mod orphans;
pub mod reply;
pub mod server;
pub mod state;
pub mod vfs;
