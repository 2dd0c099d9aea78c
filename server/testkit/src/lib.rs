//! What nfs4d's tests and load generator drive NFSv4 servers with: one
//! client engine ([`Client`]) used a call at a time by the tests and with
//! every session slot busy by the load generator ([`pipeline`]), over a
//! transport seam ([`transport`]: TCP, or a core in the same process,
//! [`inproc`]), and
//! the COMPOUND builders they share ([`ops`]).

pub mod callback;
pub mod client;
pub mod inproc;
pub mod ops;
pub mod pipeline;
pub mod transport;
pub mod wire;

pub use client::{Client, SessionOptions};
