//! A transport that speaks RPCSEC_GSS (RFC 2203) with Kerberos 5 over
//! another transport, with the client side of the `nfs4d_gss` engine.
//!
//! The [`crate::Client`] above it builds its calls as always (AUTH_SYS);
//! this layer establishes a context when it is made, then re-encodes
//! every outgoing call with the context's credential and verifier and its
//! arguments protected as the current [`Service`] asks, and turns every
//! reply back into the plain form the client reads (AUTH_NONE verifier,
//! the results unprotected) after checking its verifier and, for krb5i and
//! krb5p, its checksum or encryption. A reply that does not verify fails
//! the receive. Error replies (AUTH_ERROR, GARBAGE_ARGS …) pass unchanged,
//! so a caller sees them with [`crate::wire::results`] failing.
//!
//! Records that are not calls of the client (its answers to back-channel
//! calls, which stay AUTH_SYS) pass unchanged, and so do calls that
//! already carry an RPCSEC_GSS credential: tests build those by hand with
//! [`GssHandle::with_context`] to send forged or replayed calls on the
//! same connection, and read the server's answer raw.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nfs4d_gss::rpc::{self as grpc, RawReply};
use nfs4d_gss::{Gss, GssClient, Sent, Service, RPCSEC_GSS};
use nfs4d_xdr::record::{Reassembler, HEADER_LEN};
use nfs4d_xdr::rpc;

use crate::transport::{Sender, Transport, MAX_RECORD};
use crate::wire::{bad, NFS_PROGRAM, NFS_V4};

/// Calls remembered for their replies; the oldest are forgotten past this
/// (a call the server dropped gets no reply).
const MAX_OUTSTANDING: usize = 4096;
/// How long context creation waits for each reply.
const INIT_WAIT: Duration = Duration::from_secs(30);

/// What the sending and receiving ends share: the context, the service
/// and the calls awaiting replies.
struct Shared {
    ctx: GssClient,
    service: Service,
    sent: HashMap<u32, Sent>,
    order: VecDeque<u32>,
}

impl Shared {
    fn remember(&mut self, s: Sent) {
        if self.sent.insert(s.xid, s).is_none() {
            self.order.push_back(s.xid);
        }
        while self.order.len() > MAX_OUTSTANDING {
            if let Some(old) = self.order.pop_front() {
                self.sent.remove(&old);
            }
        }
    }
}

/// A handle on the context of a [`GssTransport`], kept by tests after the
/// transport went into a [`crate::Client`].
#[derive(Clone)]
pub struct GssHandle(Arc<Mutex<Shared>>);

impl GssHandle {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The service later calls use.
    pub fn set_service(&self, service: Service) {
        self.lock().service = service;
    }

    /// The service calls use now.
    pub fn service(&self) -> Service {
        self.lock().service
    }

    /// Runs `f` with the context (to build calls by hand: forged
    /// checksums, reused sequence numbers, DESTROY).
    pub fn with_context<R>(&self, f: impl FnOnce(&mut GssClient) -> R) -> R {
        f(&mut self.lock().ctx)
    }
}

/// A transport carrying RPCSEC_GSS calls over `inner`.
pub struct GssTransport {
    inner: Box<dyn Transport>,
    handle: GssHandle,
    out: Reassembler,
}

/// Establishes a context with the tickets of credential cache `ccache`
/// (the default cache for `None`) towards `target` (`nfs/host@REALM`, or
/// the host-based `nfs@host`) over `inner`.
fn establish(
    inner: &mut dyn Transport,
    gss: &Gss,
    ccache: Option<&str>,
    target: &str,
) -> io::Result<GssClient> {
    let mut ctx = GssClient::new(gss, ccache, target).map_err(|e| bad(e.to_string()))?;
    let mut xid = 0x6000_0000u32;
    for _ in 0..4 {
        if ctx.established() {
            return Ok(ctx);
        }
        xid += 1;
        let call = ctx
            .init_call(xid, NFS_PROGRAM, NFS_V4)
            .map_err(|e| bad(e.to_string()))?;
        inner.send(&[&call])?;
        let reply = inner.recv(INIT_WAIT)?;
        ctx.init_reply(&reply).map_err(|e| bad(e.to_string()))?;
    }
    if ctx.established() {
        Ok(ctx)
    } else {
        Err(bad("RPCSEC_GSS context creation does not converge"))
    }
}

impl GssTransport {
    /// Creates a context over `inner` and wraps it; calls then go out
    /// under `service`.
    pub fn establish(
        mut inner: Box<dyn Transport>,
        gss: &Gss,
        ccache: Option<&str>,
        target: &str,
        service: Service,
    ) -> io::Result<GssTransport> {
        let ctx = establish(&mut *inner, gss, ccache, target)?;
        Ok(GssTransport {
            inner,
            handle: GssHandle(Arc::new(Mutex::new(Shared {
                ctx,
                service,
                sent: HashMap::new(),
                order: VecDeque::new(),
            }))),
            out: Reassembler::new(MAX_RECORD),
        })
    }

    /// The handle on the context.
    pub fn handle(&self) -> GssHandle {
        self.handle.clone()
    }
}

/// Re-encodes the whole records in `parts` and sends them on `w`.
fn send_protected(
    handle: &GssHandle,
    out: &mut Reassembler,
    w: &mut dyn Sender,
    parts: &[&[u8]],
) -> io::Result<()> {
    for part in parts {
        let mut input: &[u8] = part;
        while !input.is_empty() {
            let Some(rec) = out
                .feed(&mut input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
            else {
                continue;
            };
            let call = match grpc::parse_call(&rec) {
                Ok(c) if c.cred_flavor != RPCSEC_GSS => c,
                // Replies to back-channel calls, hand-built RPCSEC_GSS
                // calls, bytes that are no call: as they are.
                _ => {
                    w.send(&[&rec])?;
                    continue;
                }
            };
            let mut g = handle.lock();
            let service = g.service;
            let (wrapped, sent) = g
                .ctx
                .call(
                    call.xid, call.prog, call.vers, call.proc_, service, call.args,
                )
                .map_err(|e| bad(e.to_string()))?;
            g.remember(sent);
            drop(g);
            w.send(&[&wrapped])?;
        }
    }
    Ok(())
}

impl Sender for GssTransport {
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        send_protected(&self.handle, &mut self.out, &mut *self.inner, parts)
    }

    fn close(&mut self) {
        self.inner.close();
    }
}

impl Transport for GssTransport {
    fn recv(&mut self, wait: Duration) -> io::Result<Vec<u8>> {
        let rec = self.inner.recv(wait)?;
        let xid = match grpc::parse_reply(&rec) {
            Ok(RawReply::Accepted { xid, stat: 0, .. }) => xid,
            Ok(RawReply::Accepted { xid, .. })
            | Ok(RawReply::AuthError { xid, .. })
            | Ok(RawReply::RpcMismatch { xid }) => {
                self.handle.lock().sent.remove(&xid);
                return Ok(rec);
            }
            // A back-channel call.
            Err(_) => return Ok(rec),
        };
        let mut g = self.handle.lock();
        let Some(sent) = g.sent.remove(&xid) else {
            // A reply to a hand-built call: the test reads it raw.
            return Ok(rec);
        };
        let results = g
            .ctx
            .reply(&sent, &rec)
            .map_err(|e| bad(format!("reply to xid {xid:#x}: {e}")))?;
        drop(g);
        let mut out = Vec::with_capacity(rpc::SUCCESS_HEADER_LEN + results.len());
        rpc::begin_success_reply(xid, &mut out);
        out.extend_from_slice(&results);
        rpc::finish_record(&mut out);
        debug_assert!(out.len() >= HEADER_LEN);
        Ok(out)
    }

    fn sender(&self) -> io::Result<Box<dyn Sender>> {
        Ok(Box::new(GssSender {
            inner: self.inner.sender()?,
            handle: self.handle.clone(),
            out: Reassembler::new(MAX_RECORD),
        }))
    }
}

/// Another sending end of a [`GssTransport`], sharing its context.
struct GssSender {
    inner: Box<dyn Sender>,
    handle: GssHandle,
    out: Reassembler,
}

impl Sender for GssSender {
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        send_protected(&self.handle, &mut self.out, &mut *self.inner, parts)
    }

    fn close(&mut self) {
        self.inner.close();
    }
}
