//! What nfs4d's tests and load generator drive NFSv4 servers with: one
//! client engine ([`Client`]) used a call at a time by the tests and with
//! every session slot busy by the load generator ([`pipeline`]), over a
//! transport seam ([`transport`]: TCP, or a core in the same process,
//! [`inproc`]; and [`gss`]: RPCSEC_GSS with Kerberos over either), the
//! COMPOUND builders they share ([`ops`]), and a real S3 server for the
//! object-store tests ([`s3s`]).

pub mod callback;
pub mod client;
pub mod gss;
pub mod inproc;
pub mod ops;
pub mod pipeline;
pub mod s3s;
pub mod transport;
pub mod wire;

pub use client::{Client, SessionOptions};
