//! What nfs4d's tests and load generator drive servers with: a small
//! synchronous NFSv4 client ([`client`]) and the COMPOUND builders tests
//! share.

pub mod client;
