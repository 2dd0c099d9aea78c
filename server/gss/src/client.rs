//! The client side of RPCSEC_GSS version 1, sans-IO like the server
//! engine: it builds call records and checks reply records; the caller
//! moves them.
//!
//! ```text
//! let mut c = GssClient::new(&gss, Some("FILE:/tmp/krb5cc_1000"), "nfs/server@REALM")?;
//! while !c.established() {
//!     let reply = send(c.init_call(xid, PROG, VERS)?);
//!     c.init_reply(&reply)?;
//! }
//! let (call, sent) = c.call(xid, PROG, VERS, PROC, Service::Privacy, &args)?;
//! let results = c.reply(&sent, &send(call))?;
//! ```

use crate::gssapi::{
    AcquireError, Buffer, Cred, Gss, GssError, Name, SecContext, StepError, GSS_S_CONTINUE_NEEDED,
};
use crate::rpc::{self, RawReply, ReplyError, Verifier, AUTH_NONE};
use crate::wire::{self, Cred as WireCred, GssProc, Service, MAXSEQ, RPCSEC_GSS};
use crate::xdr::XdrError;

/// What went wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No initiator credentials (no ticket cache, expired tickets).
    #[error("no Kerberos credentials: {0}")]
    Credentials(#[from] AcquireError),
    /// A GSS-API call failed.
    #[error(transparent)]
    Gss(#[from] GssError),
    /// The server's context-creation token was refused locally.
    #[error("context establishment failed: {0}")]
    Establish(GssError),
    /// The server refused context creation (`rpc_gss_init_res` status).
    #[error("the server refused the context: {message} (major {major:#x}, minor {minor})")]
    Refused {
        /// GSS major status from the server.
        major: u32,
        /// GSS minor status from the server.
        minor: u32,
        /// The local library's text for them.
        message: String,
    },
    /// MSG_DENIED / AUTH_ERROR with this `auth_stat`.
    #[error("call denied: auth_stat {0}")]
    Denied(u32),
    /// MSG_DENIED / RPC_MISMATCH.
    #[error("call denied: RPC version mismatch")]
    RpcMismatch,
    /// MSG_ACCEPTED with this non-SUCCESS `accept_stat`.
    #[error("call not executed: accept_stat {0}")]
    NotExecuted(u32),
    /// The reply's verifier or body is not protected by the context.
    #[error("reply not authenticated by the context: {0}")]
    Forged(&'static str),
    /// The reply does not decode.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The reply answers another call.
    #[error("reply to xid {got}, expected {want}")]
    WrongXid {
        /// The reply's xid.
        got: u32,
        /// The call's xid.
        want: u32,
    },
    /// Called in the wrong state (data before establishment, creation
    /// after it, or sequence numbers used up: a new context is needed).
    #[error("{0}")]
    State(&'static str),
}

impl From<ReplyError> for ClientError {
    fn from(e: ReplyError) -> Self {
        ClientError::Malformed(e.to_string())
    }
}

impl From<XdrError> for ClientError {
    fn from(e: XdrError) -> Self {
        ClientError::Malformed(e.to_string())
    }
}

/// A call sent, to match and check its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Transaction id.
    pub xid: u32,
    /// Sequence number used.
    pub seq: u32,
    /// Protection used.
    pub service: Service,
    destroy: bool,
}

/// An RPCSEC_GSS client context with one server.
pub struct GssClient {
    gss: Gss,
    cred: Cred,
    target: Name,
    sec: SecContext,
    /// The token to send in the next creation call.
    pending: Option<Buffer>,
    local_complete: bool,
    established: bool,
    handle: Vec<u8>,
    seq_window: u32,
    next_seq: u32,
}

impl std::fmt::Debug for GssClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssClient")
            .field("established", &self.established)
            .field("seq_window", &self.seq_window)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl GssClient {
    /// Starts a context towards `target` (`nfs/host@REALM`, or the
    /// host-based `nfs@host`) with the tickets in credential cache
    /// `ccache` (the default cache when `None`).
    pub fn new(gss: &Gss, ccache: Option<&str>, target: &str) -> Result<GssClient, ClientError> {
        let cred = gss.initiator_cred(None, ccache)?;
        let target = if target.contains('/') {
            gss.principal(target)?
        } else {
            gss.host_service(target)?
        };
        let mut sec = SecContext::new(gss);
        let step = sec
            .init(&cred, &target, None)
            .map_err(|e: StepError| ClientError::Establish(e.error))?;
        Ok(GssClient {
            gss: gss.clone(),
            cred,
            target,
            sec,
            local_complete: step.complete,
            pending: Some(step.token),
            established: false,
            handle: Vec::new(),
            seq_window: 0,
            next_seq: 1,
        })
    }

    /// True once both sides completed context creation.
    pub fn established(&self) -> bool {
        self.established
    }

    /// The server's context handle (empty before the first reply).
    pub fn handle(&self) -> &[u8] {
        &self.handle
    }

    /// The server's sequence window.
    pub fn seq_window(&self) -> u32 {
        self.seq_window
    }

    /// The sequence number the next [`GssClient::call`] uses.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The next creation call (RPCSEC_GSS_INIT, then CONTINUE_INIT) to
    /// the NULL procedure of `prog`/`vers`.
    pub fn init_call(&self, xid: u32, prog: u32, vers: u32) -> Result<Vec<u8>, ClientError> {
        let token = self
            .pending
            .as_ref()
            .ok_or(ClientError::State("no context-creation token to send"))?;
        let cred = WireCred {
            proc_: if self.handle.is_empty() {
                GssProc::Init
            } else {
                GssProc::ContinueInit
            },
            seq: 0,
            service: Service::None,
            handle: &self.handle,
        };
        let body = wire::encode_cred(&cred);
        rpc::call_record::<ClientError>(
            xid,
            prog,
            vers,
            0,
            RPCSEC_GSS,
            &body,
            |_| Ok(Verifier::none()),
            &wire::encode_init_arg(token),
        )
    }

    /// Takes the reply to a creation call; true when the context is
    /// established, false when another [`GssClient::init_call`] is due.
    pub fn init_reply(&mut self, record: &[u8]) -> Result<bool, ClientError> {
        let (verf_flavor, verf, body) = accepted_success(record, None)?;
        let res = wire::decode_init_res(body)?;
        if res.major & 0xffff_0000 != 0 {
            return Err(ClientError::Refused {
                major: res.major,
                minor: res.minor,
                message: self.gss.status_message(res.major, res.minor),
            });
        }
        if res.handle.is_empty() {
            return Err(ClientError::Malformed(
                "context creation reply without a handle".into(),
            ));
        }
        self.handle = res.handle.to_vec();
        self.seq_window = res.seq_window;
        self.pending = None;
        if !self.local_complete {
            let step = self
                .sec
                .init(&self.cred, &self.target, Some(res.token))
                .map_err(|e| ClientError::Establish(e.error))?;
            self.local_complete = step.complete;
            if !step.token.is_empty() {
                self.pending = Some(step.token);
            }
        }
        let server_complete = res.major & GSS_S_CONTINUE_NEEDED == 0;
        if !server_complete {
            if self.pending.is_none() {
                return Err(ClientError::State(
                    "server wants another token and GSS-API has none",
                ));
            }
            return Ok(false);
        }
        if !self.local_complete {
            return Err(ClientError::State(
                "server completed the context before GSS-API did",
            ));
        }
        // §5.2.3.1: the verifier is the MIC of the window.
        if verf_flavor != RPCSEC_GSS {
            return Err(ClientError::Forged(
                "creation reply verifier is not RPCSEC_GSS",
            ));
        }
        self.sec
            .verify_mic(&self.seq_window.to_be_bytes(), verf)
            .map_err(|_| ClientError::Forged("creation reply verifier does not verify"))?;
        self.established = true;
        self.pending = None;
        Ok(true)
    }

    /// A MIC over `data` with this context (for building calls by hand).
    pub fn mic(&mut self, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        Ok(self.sec.get_mic(data)?.to_vec())
    }

    /// `data` wrapped with this context (for building calls by hand).
    pub fn wrap(&mut self, data: &[u8], confidential: bool) -> Result<Vec<u8>, ClientError> {
        Ok(self.sec.wrap(data, confidential)?.to_vec())
    }

    /// A call record with credential `cred` (this context's handle is
    /// not filled in for you) whose header MIC this context computes, and
    /// `body` as the already protected arguments.
    pub fn build_call(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &WireCred<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let cred_body = wire::encode_cred(cred);
        let sec = &mut self.sec;
        rpc::call_record(
            xid,
            prog,
            vers,
            proc_,
            RPCSEC_GSS,
            &cred_body,
            |header| {
                Ok::<_, ClientError>(Verifier {
                    flavor: RPCSEC_GSS,
                    body: sec.get_mic(header)?.to_vec(),
                })
            },
            body,
        )
    }

    /// The arguments protected as `service` requires for sequence number
    /// `seq` (RFC 2203 §5.3.2).
    pub fn protect(
        &mut self,
        seq: u32,
        service: Service,
        args: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        Ok(match service {
            Service::None => args.to_vec(),
            Service::Integrity => {
                let mut out = Vec::new();
                let sec = &mut self.sec;
                wire::encode_integ_into(&mut out, seq, args, |d| sec.get_mic(d))?;
                out
            }
            Service::Privacy => {
                let wrapped = self.sec.wrap(&wire::data_body(seq, args), true)?;
                let mut out = Vec::with_capacity(wrapped.len() + 8);
                wire::encode_priv_into(&mut out, &wrapped);
                out
            }
        })
    }

    /// A DATA call with the next sequence number.
    pub fn call(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        service: Service,
        args: &[u8],
    ) -> Result<(Vec<u8>, Sent), ClientError> {
        let seq = self.take_seq()?;
        self.call_with_seq(xid, prog, vers, proc_, service, seq, args)
    }

    /// A DATA call with sequence number `seq` (a retransmission must use
    /// a new one, RFC 2203 §5.3.3.1).
    pub fn call_with_seq(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        service: Service,
        seq: u32,
        args: &[u8],
    ) -> Result<(Vec<u8>, Sent), ClientError> {
        if !self.established {
            return Err(ClientError::State("context not established"));
        }
        let body = self.protect(seq, service, args)?;
        let handle = self.handle.clone();
        let cred = WireCred {
            proc_: GssProc::Data,
            seq,
            service,
            handle: &handle,
        };
        let rec = self.build_call(xid, prog, vers, proc_, &cred, &body)?;
        Ok((
            rec,
            Sent {
                xid,
                seq,
                service,
                destroy: false,
            },
        ))
    }

    /// The RPCSEC_GSS_DESTROY call (RFC 2203 §5.4) to the NULL procedure.
    pub fn destroy_call(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
    ) -> Result<(Vec<u8>, Sent), ClientError> {
        if !self.established {
            return Err(ClientError::State("context not established"));
        }
        let seq = self.take_seq()?;
        let handle = self.handle.clone();
        let cred = WireCred {
            proc_: GssProc::Destroy,
            seq,
            service: Service::None,
            handle: &handle,
        };
        let rec = self.build_call(xid, prog, vers, 0, &cred, &[])?;
        Ok((
            rec,
            Sent {
                xid,
                seq,
                service: Service::None,
                destroy: true,
            },
        ))
    }

    fn take_seq(&mut self) -> Result<u32, ClientError> {
        if self.next_seq >= MAXSEQ {
            return Err(ClientError::State(
                "sequence numbers used up: create a new context",
            ));
        }
        let s = self.next_seq;
        self.next_seq += 1;
        Ok(s)
    }

    /// Checks the reply to `sent` and returns its results, unprotected.
    pub fn reply(&mut self, sent: &Sent, record: &[u8]) -> Result<Vec<u8>, ClientError> {
        let (verf_flavor, verf, body) = accepted_success(record, Some(sent.xid))?;
        if verf_flavor != RPCSEC_GSS {
            return Err(ClientError::Forged("reply verifier is not RPCSEC_GSS"));
        }
        self.sec
            .verify_mic(&sent.seq.to_be_bytes(), verf)
            .map_err(|_| ClientError::Forged("reply verifier does not verify"))?;
        if sent.destroy {
            return Ok(body.to_vec());
        }
        match sent.service {
            Service::None => Ok(body.to_vec()),
            Service::Integrity => {
                let (data, checksum) = wire::decode_integ(body)?;
                self.sec
                    .verify_mic(data, checksum)
                    .map_err(|_| ClientError::Forged("reply checksum does not verify"))?;
                let (seq, results) = wire::split_data_body(data)?;
                if seq != sent.seq {
                    return Err(ClientError::Forged(
                        "reply body for another sequence number",
                    ));
                }
                Ok(results.to_vec())
            }
            Service::Privacy => {
                let token = wire::decode_priv(body)?;
                let (plain, confidential) = self
                    .sec
                    .unwrap(token)
                    .map_err(|_| ClientError::Forged("reply body does not unwrap"))?;
                if !confidential {
                    return Err(ClientError::Forged("privacy reply was not encrypted"));
                }
                let (seq, results) = wire::split_data_body(&plain)?;
                if seq != sent.seq {
                    return Err(ClientError::Forged(
                        "reply body for another sequence number",
                    ));
                }
                Ok(results.to_vec())
            }
        }
    }
}

/// The verifier and results of a SUCCESS reply, or the error it carries.
fn accepted_success(record: &[u8], xid: Option<u32>) -> Result<(u32, &[u8], &[u8]), ClientError> {
    match rpc::parse_reply(record)? {
        RawReply::AuthError { stat, .. } => Err(ClientError::Denied(stat)),
        RawReply::RpcMismatch { .. } => Err(ClientError::RpcMismatch),
        RawReply::Accepted {
            xid: got,
            verf_flavor,
            verf,
            stat,
            body,
        } => {
            if let Some(want) = xid {
                if got != want {
                    return Err(ClientError::WrongXid { got, want });
                }
            }
            if stat != 0 {
                return Err(ClientError::NotExecuted(stat));
            }
            if verf_flavor != RPCSEC_GSS && verf_flavor != AUTH_NONE {
                return Err(ClientError::Forged(
                    "reply verifier of an unexpected flavor",
                ));
            }
            Ok((verf_flavor, verf, body))
        }
    }
}
