//! An nfs4d store on an S3 bucket.
//!
//! # Why OpenDAL
//! The store talks to S3 through [OpenDAL](https://opendal.apache.org)'s
//! `s3` service rather than a client bound to one vendor: OpenDAL puts S3,
//! GCS, Azure Blob, HDFS, WebDAV and dozens more behind one API whose
//! differences are described by a `Capability` value, the same shape as
//! [`nfs4d_store::Capabilities`]. Moving this store to another object
//! service is then mostly a matter of its capabilities, not of a new
//! client. OpenDAL also brings the AWS credential chain (environment,
//! shared profile, container and instance metadata), retries with backoff
//! and timeouts as layers. The few S3 requests its portable API keeps
//! inside (a multipart upload's id, which the crash journal records; a
//! directory marker with metadata; a metadata-only copy) or changes
//! (listings and keys ending in blanks, which its paths trim) are sent by
//! [`client`] through OpenDAL's own HTTP transport and signer library.
//!
//! # Layout
//! Object key = export prefix + path, so the bucket stays an ordinary
//! bucket: directories are common prefixes, plus a zero-byte `dir/` marker
//! for a directory created empty; owner, group, mode and times are user
//! metadata under the names s3fs-fuse uses ([`meta`]); symlinks are
//! objects whose body is the target and whose mode has `S_IFLNK`, as s3fs
//! writes them. See docs/objectstore.md.

mod client;
mod config;
mod errors;
mod journal;
mod meta;
mod rt;
mod stage;
mod store;

pub use client::Requests;
pub use config::{S3Config, S3_MAX_LIST_PAGE, S3_MAX_PART, S3_MAX_PARTS, S3_MIN_PART};
pub use store::S3Store;
