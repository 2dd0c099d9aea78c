//! NFSv4.0/4.1/4.2 wire types (RFC 7530, 5661, 7862, 8276), generated at
//! build time from `xdr/spec/*.x` by `xdr/build.rs`, whose documentation
//! gives the XDR → Rust mapping. Names are exactly the RFC names, hence
//! the lint exceptions.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/nfs4_generated.rs"));
