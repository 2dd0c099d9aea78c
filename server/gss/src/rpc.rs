//! The ONC RPC envelope (RFC 5531 §9) as RPCSEC_GSS needs it: the call
//! header split into the bytes a verifier's MIC covers (RFC 2203 §5.3.1),
//! replies carrying RPCSEC_GSS verifiers and the RPCSEC_GSS `auth_stat`
//! values (RFC 2203 §4), and the record mark (RFC 5531 §11).
//!
//! Records here include the 4-byte record mark, like those the transport's
//! reassembler yields and sends: a one-fragment record.

use crate::wire::MAX_AUTH_BYTES;
use crate::xdr::{put_opaque, put_u32, Reader, XdrError};

/// Length of the record mark.
pub const RECORD_MARK: usize = 4;
const LAST_FRAGMENT: u32 = 0x8000_0000;
const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;
/// RPC protocol version 2.
pub const RPC_VERSION: u32 = 2;
/// AUTH_NONE.
pub const AUTH_NONE: u32 = 0;

/// `auth_stat` values a server sends (RFC 5531 §9, RFC 2203 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthStat {
    /// AUTH_BADCRED (1): the credential cannot be used.
    BadCred,
    /// AUTH_REJECTEDCRED (2): the client must begin a new session.
    RejectedCred,
    /// AUTH_BADVERF (3): the verifier is not what the flavor needs.
    BadVerf,
    /// AUTH_TOOWEAK (5): rejected for security reasons.
    TooWeak,
    /// AUTH_FAILED (7): reason unknown.
    Failed,
    /// RPCSEC_GSS_CREDPROBLEM (13): the credential could not be verified.
    CredProblem,
    /// RPCSEC_GSS_CTXPROBLEM (14): the context is unknown, expired or used up.
    CtxProblem,
}

impl AuthStat {
    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            AuthStat::BadCred => 1,
            AuthStat::RejectedCred => 2,
            AuthStat::BadVerf => 3,
            AuthStat::TooWeak => 5,
            AuthStat::Failed => 7,
            AuthStat::CredProblem => 13,
            AuthStat::CtxProblem => 14,
        }
    }
}

/// `accept_stat` values (RFC 5531 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcceptStat {
    /// SUCCESS.
    Success,
    /// GARBAGE_ARGS.
    GarbageArgs,
    /// SYSTEM_ERR.
    SystemErr,
}

impl AcceptStat {
    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            AcceptStat::Success => 0,
            AcceptStat::GarbageArgs => 4,
            AcceptStat::SystemErr => 5,
        }
    }
}

/// An `opaque_auth` verifier to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// Flavor: [`AUTH_NONE`] or RPCSEC_GSS.
    pub flavor: u32,
    /// Body (a MIC for RPCSEC_GSS), at most [`MAX_AUTH_BYTES`].
    pub body: Vec<u8>,
}

impl Verifier {
    /// The AUTH_NONE verifier.
    pub fn none() -> Verifier {
        Verifier {
            flavor: AUTH_NONE,
            body: Vec::new(),
        }
    }
}

fn put_auth(out: &mut Vec<u8>, flavor: u32, body: &[u8]) {
    put_u32(out, flavor);
    put_opaque(out, body);
}

/// Writes the record mark of a one-fragment record once `record` is
/// complete.
pub fn finish_record(record: &mut [u8]) {
    let len = record.len().saturating_sub(RECORD_MARK);
    // Records stay far below 2 GiB (the transport bounds them at 64 MiB).
    let mark = len.min(!LAST_FRAGMENT as usize) as u32 | LAST_FRAGMENT;
    if let Some(m) = record.get_mut(..RECORD_MARK) {
        m.copy_from_slice(&mark.to_be_bytes());
    }
}

/// Starts an accepted reply in `out` (which should be empty): record
/// mark, `xid`, the verifier and `stat`. For SUCCESS the caller appends
/// the results; then [`finish_record`].
pub fn begin_accepted(out: &mut Vec<u8>, xid: u32, verf: &Verifier, stat: AcceptStat) {
    out.extend_from_slice(&[0; RECORD_MARK]);
    put_u32(out, xid);
    put_u32(out, REPLY);
    put_u32(out, MSG_ACCEPTED);
    put_auth(out, verf.flavor, &verf.body);
    put_u32(out, stat.number());
}

/// A complete accepted reply.
pub fn accepted_record(xid: u32, verf: &Verifier, stat: AcceptStat, results: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + verf.body.len() + results.len());
    begin_accepted(&mut out, xid, verf, stat);
    out.extend_from_slice(results);
    finish_record(&mut out);
    out
}

/// A complete MSG_DENIED / AUTH_ERROR reply.
pub fn auth_error_record(xid: u32, stat: AuthStat) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&[0; RECORD_MARK]);
    put_u32(&mut out, xid);
    put_u32(&mut out, REPLY);
    put_u32(&mut out, MSG_DENIED);
    put_u32(&mut out, AUTH_ERROR);
    put_u32(&mut out, stat.number());
    finish_record(&mut out);
    out
}

/// A call header split for RPCSEC_GSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCall<'a> {
    /// Transaction id.
    pub xid: u32,
    /// RPC version (2 for a call this module parsed).
    pub rpcvers: u32,
    /// Program.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure.
    pub proc_: u32,
    /// Credential flavor.
    pub cred_flavor: u32,
    /// Credential body.
    pub cred: &'a [u8],
    /// Verifier flavor.
    pub verf_flavor: u32,
    /// Verifier body.
    pub verf: &'a [u8],
    /// The message from the xid through the credential: what an
    /// RPCSEC_GSS verifier's MIC covers (RFC 2203 §5.3.1).
    pub header: &'a [u8],
    /// The procedure's arguments (as sent: wrapped under integrity or
    /// privacy).
    pub args: &'a [u8],
}

/// Why a record is not a usable call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Shorter than a record mark, an xid and a message type.
    #[error("record too short for an RPC message")]
    Short,
    /// A reply, or an unknown message type.
    #[error("not an RPC call (message type {0})")]
    NotACall(u32),
    /// RPC version other than 2: answer RPC_MISMATCH.
    #[error("RPC version {0}")]
    RpcVersion(u32),
    /// The header or an authenticator does not decode (truncated, or a
    /// body over 400 bytes): answer AUTH_BADCRED.
    #[error("undecodable call header: {0}")]
    Header(XdrError),
}

/// The transaction id of a record, when it has one (for answering a call
/// that [`parse_call`] refused).
pub fn record_xid(record: &[u8]) -> Option<u32> {
    let w = record.get(RECORD_MARK..RECORD_MARK + 4)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// Splits a call record (record mark included).
pub fn parse_call(record: &[u8]) -> Result<RawCall<'_>, CallError> {
    let msg = record.get(RECORD_MARK..).ok_or(CallError::Short)?;
    let mut r = Reader::new(msg);
    let xid = r.u32().map_err(|_| CallError::Short)?;
    let mtype = r.u32().map_err(|_| CallError::Short)?;
    if mtype != CALL {
        return Err(CallError::NotACall(mtype));
    }
    let rpcvers = r.u32().map_err(CallError::Header)?;
    if rpcvers != RPC_VERSION {
        return Err(CallError::RpcVersion(rpcvers));
    }
    let prog = r.u32().map_err(CallError::Header)?;
    let vers = r.u32().map_err(CallError::Header)?;
    let proc_ = r.u32().map_err(CallError::Header)?;
    let cred_flavor = r.u32().map_err(CallError::Header)?;
    let cred = r.opaque(MAX_AUTH_BYTES).map_err(CallError::Header)?;
    let header_len = msg.len() - r.rest().len();
    let verf_flavor = r.u32().map_err(CallError::Header)?;
    let verf = r.opaque(MAX_AUTH_BYTES).map_err(CallError::Header)?;
    Ok(RawCall {
        xid,
        rpcvers,
        prog,
        vers,
        proc_,
        cred_flavor,
        cred,
        verf_flavor,
        verf,
        header: &msg[..header_len],
        args: r.rest(),
    })
}

/// Builds a call record. `verf` computes the verifier from the header
/// bytes (xid through credential), as RPCSEC_GSS DATA calls need.
pub fn call_record<E>(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred_flavor: u32,
    cred: &[u8],
    verf: impl FnOnce(&[u8]) -> Result<Verifier, E>,
    args: &[u8],
) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(RECORD_MARK + 40 + cred.len() + 64 + args.len());
    out.extend_from_slice(&[0; RECORD_MARK]);
    put_u32(&mut out, xid);
    put_u32(&mut out, CALL);
    put_u32(&mut out, RPC_VERSION);
    put_u32(&mut out, prog);
    put_u32(&mut out, vers);
    put_u32(&mut out, proc_);
    put_auth(&mut out, cred_flavor, cred);
    let v = verf(&out[RECORD_MARK..])?;
    put_auth(&mut out, v.flavor, &v.body);
    out.extend_from_slice(args);
    finish_record(&mut out);
    Ok(out)
}

/// A decoded reply (client side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawReply<'a> {
    /// MSG_ACCEPTED.
    Accepted {
        /// Transaction id.
        xid: u32,
        /// Verifier flavor.
        verf_flavor: u32,
        /// Verifier body.
        verf: &'a [u8],
        /// `accept_stat` number.
        stat: u32,
        /// What follows the status (the results for SUCCESS).
        body: &'a [u8],
    },
    /// MSG_DENIED with RPC_MISMATCH.
    RpcMismatch {
        /// Transaction id.
        xid: u32,
    },
    /// MSG_DENIED with AUTH_ERROR.
    AuthError {
        /// Transaction id.
        xid: u32,
        /// `auth_stat` number.
        stat: u32,
    },
}

/// Why a reply record does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a reply, or an unknown `reply_stat` / `reject_stat`.
    #[error("not an RPC reply")]
    NotAReply,
    /// Truncated or oversized fields.
    #[error("undecodable reply: {0}")]
    Xdr(XdrError),
}

/// Decodes a reply record (record mark included).
pub fn parse_reply(record: &[u8]) -> Result<RawReply<'_>, ReplyError> {
    let msg = record
        .get(RECORD_MARK..)
        .ok_or(ReplyError::Xdr(XdrError::Truncated))?;
    let mut r = Reader::new(msg);
    let xid = r.u32().map_err(ReplyError::Xdr)?;
    if r.u32().map_err(ReplyError::Xdr)? != REPLY {
        return Err(ReplyError::NotAReply);
    }
    match r.u32().map_err(ReplyError::Xdr)? {
        MSG_ACCEPTED => {
            let verf_flavor = r.u32().map_err(ReplyError::Xdr)?;
            let verf = r.opaque(MAX_AUTH_BYTES).map_err(ReplyError::Xdr)?;
            let stat = r.u32().map_err(ReplyError::Xdr)?;
            Ok(RawReply::Accepted {
                xid,
                verf_flavor,
                verf,
                stat,
                body: r.rest(),
            })
        }
        MSG_DENIED => match r.u32().map_err(ReplyError::Xdr)? {
            RPC_MISMATCH => Ok(RawReply::RpcMismatch { xid }),
            AUTH_ERROR => Ok(RawReply::AuthError {
                xid,
                stat: r.u32().map_err(ReplyError::Xdr)?,
            }),
            _ => Err(ReplyError::NotAReply),
        },
        _ => Err(ReplyError::NotAReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_splits_into_header_verifier_and_arguments() {
        let rec = call_record::<()>(
            7,
            100003,
            4,
            1,
            6,
            b"credential",
            |h| {
                assert_eq!(&h[..4], &7u32.to_be_bytes());
                Ok(Verifier {
                    flavor: 6,
                    body: h.len().to_be_bytes().to_vec(),
                })
            },
            b"ARGS",
        )
        .unwrap();
        let c = parse_call(&rec).unwrap();
        assert_eq!(
            (c.xid, c.prog, c.vers, c.proc_, c.cred_flavor),
            (7, 100003, 4, 1, 6)
        );
        assert_eq!(c.cred, b"credential");
        assert_eq!(c.verf_flavor, 6);
        assert_eq!(c.verf, &c.header.len().to_be_bytes());
        // xid, type, rpcvers, prog, vers, proc, flavor, length, 12 body bytes.
        assert_eq!(c.header.len(), 8 * 4 + 12);
        assert_eq!(c.args, b"ARGS");
        assert_eq!(record_xid(&rec), Some(7));
    }

    #[test]
    fn truncated_and_odd_calls_are_refused() {
        let rec = call_record::<()>(9, 1, 2, 3, 6, b"abcd", |_| Ok(Verifier::none()), b"").unwrap();
        for cut in 0..rec.len() {
            let r = parse_call(&rec[..cut]);
            assert!(r.is_err(), "cut at {cut} parsed");
        }
        let mut v3 = rec.clone();
        v3[12..16].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(parse_call(&v3), Err(CallError::RpcVersion(3)));
        let mut reply = rec.clone();
        reply[8..12].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(parse_call(&reply), Err(CallError::NotACall(1)));
    }

    #[test]
    fn replies_round_trip() {
        let v = Verifier {
            flavor: 6,
            body: b"mic".to_vec(),
        };
        let rec = accepted_record(5, &v, AcceptStat::Success, b"RES!");
        assert_eq!(
            parse_reply(&rec),
            Ok(RawReply::Accepted {
                xid: 5,
                verf_flavor: 6,
                verf: b"mic",
                stat: 0,
                body: b"RES!"
            })
        );
        let rec = auth_error_record(6, AuthStat::CtxProblem);
        assert_eq!(
            parse_reply(&rec),
            Ok(RawReply::AuthError { xid: 6, stat: 14 })
        );
        let mark = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
        assert_eq!(mark, 0x8000_0000 | (rec.len() as u32 - 4));
    }
}
