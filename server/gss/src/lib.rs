//! RPCSEC_GSS version 1 (RFC 2203) over Kerberos 5 for nfs4d: the
//! security flavors `krb5` (authentication), `krb5i` (integrity) and
//! `krb5p` (privacy).
//!
//! * [`server::GssServer`]: a sans-IO engine. Given a call's credential,
//!   verifier, the header bytes the verifier's MIC covers and the
//!   arguments, it answers context creation (INIT, CONTINUE_INIT over the
//!   NULL procedure) and DESTROY itself, accepts DATA calls (the principal
//!   and its Unix identity, the service, the unwrapped arguments, the
//!   sequence number), or says which RPC error to answer or that the call
//!   is dropped. An accepted call protects its own reply. Contexts are
//!   bounded per client and in all and expire ([`table`]); each keeps a
//!   sequence window with replay detection ([`window`]).
//! * [`client::GssClient`]: context initiation from a credential cache,
//!   calls under each service, reply checking, for the project's own test
//!   clients.
//! * [`wire`], [`rpc`]: the RPCSEC_GSS structures and the RPC envelope as
//!   plain, bounded functions over byte slices (fuzzed: `fuzz/`, target
//!   `gss_wire`).
//! * [`mapping`]: principal to uid/gid, through a [`mapping::UserDb`]
//!   the daemon implements with NSS.
//! * [`gssapi`]: the GSS-API binding, the only module with `unsafe` code.
//!
//! # Binding: MIT GSS-API loaded at run time
//!
//! The binding is a dozen hand-declared `gss_*` functions resolved with
//! `libloading` from `libgssapi_krb5.so.2` when the server starts, not
//! the `libgssapi` crate. That crate generates its bindings with bindgen,
//! which needs libclang and the Kerberos headers (`libkrb5-dev`) at build
//! time, and links the library, so the binary would not start where the
//! library is missing. Loading at run time keeps `cargo build` working on
//! a fresh machine without any Kerberos package, and a server without the
//! library keeps serving AUTH_SYS and reports at start-up, through
//! [`server::StartError`], that krb5 exports cannot be served. The cost is
//! that the prototypes are written by hand: they are few, stable since
//! RFC 2744 (1999; `gss_acquire_cred_from` since MIT Kerberos 1.11), and
//! confined to [`gssapi`] with a SAFETY comment on every `unsafe` block.
//! At run time only Debian's `libgssapi-krb5-2` (and what it pulls in:
//! `libkrb5-3`, `libk5crypto3`, `libcom-err2`, `libkrb5support0`) is
//! needed.
//!
//! Only the Kerberos 5 mechanism is offered (acceptor credentials are
//! acquired for it alone, so SPNEGO or other mechanisms' tokens are
//! refused). RPCSEC_GSS version 2 (RFC 5403) only adds channel bindings,
//! which NFSv4 over TCP does not use; version 2 credentials get
//! AUTH_BADCRED.

pub mod client;
pub mod gssapi;
pub mod mapping;
pub mod rpc;
pub mod server;
pub mod table;
pub mod window;
pub mod wire;
pub mod xdr;

pub use client::{ClientError, GssClient, Sent};
pub use gssapi::{Gss, GssError, LoadError, KRB5_MECH_OID};
pub use mapping::{Identity, Kind, MapConfig, UnixUser, UserDb};
pub use rpc::{AuthStat, Verifier};
pub use server::{Accepted, Decision, GssCall, GssServer, ServerConfig, StartError};
pub use table::Limits;
pub use wire::{Service, RPCSEC_GSS};
