//! ONC RPC v2 (RFC 5531) message handling on top of the `onc-rpc` crate.
//!
//! `onc-rpc` parses and serialises call/reply headers and AUTH_SYS
//! credentials; this module adapts it to records produced by
//! [`crate::record::Reassembler`] and classifies what a server must answer
//! when a message cannot be parsed (RFC 5531 §9: RPC_MISMATCH, AUTH_ERROR).

use onc_rpc::auth::AuthFlavor;
use onc_rpc::{
    AcceptedReply, AcceptedStatus, AuthError, CallBody, MessageType, RejectedReply, ReplyBody,
    RpcMessage,
};

use crate::record::{write_header, HEADER_LEN};

/// RPC protocol version this module speaks (RFC 5531 §9).
pub const RPC_VERSION: u32 = 2;
/// `msg_type` of a call.
pub const MSG_CALL: u32 = 0;
/// `msg_type` of a reply.
pub const MSG_REPLY: u32 = 1;

/// Credentials of a call, reduced to what the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// AUTH_NONE (flavor 0).
    None,
    /// AUTH_SYS (flavor 1): trusted uid/gid/groups and the client's machine name.
    Sys {
        /// Stamp chosen by the client.
        stamp: u32,
        /// Client machine name.
        machine: String,
        /// Effective user id.
        uid: u32,
        /// Effective group id.
        gid: u32,
        /// Supplementary groups (at most 16).
        gids: Vec<u32>,
    },
    /// Any other flavor (AUTH_SHORT, AUTH_DH, RPCSEC_GSS …), kept by number.
    Other(u32),
}

/// A decoded call header and the procedure arguments that follow it.
#[derive(Debug)]
pub struct Call<'a> {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// The caller's credential.
    pub cred: Credential,
    /// Procedure arguments (XDR).
    pub args: &'a [u8],
}

/// A decoded reply (for calls this server made on a back channel).
#[derive(Debug)]
pub struct Reply<'a> {
    /// Transaction id of the call answered.
    pub xid: u32,
    /// The results when the call was accepted and succeeded, `None` otherwise.
    pub results: Option<&'a [u8]>,
}

/// What a record turned out to be.
#[derive(Debug)]
pub enum Message<'a> {
    /// A call to serve.
    Call(Call<'a>),
    /// A reply to a call this side made.
    Reply(Reply<'a>),
    /// A call with an RPC version other than 2: answer RPC_MISMATCH.
    RpcMismatch {
        /// Transaction id.
        xid: u32,
    },
    /// A call whose credential or verifier cannot be decoded: answer
    /// AUTH_ERROR with AUTH_BADCRED.
    BadCredential {
        /// Transaction id.
        xid: u32,
    },
    /// Nothing that can be answered (too short, unknown message type).
    Garbage,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// Classifies a record (as produced by the reassembler: 4 header bytes, then
/// the message).
pub fn parse(record: &[u8]) -> Message<'_> {
    let body = &record[HEADER_LEN.min(record.len())..];
    let (Some(xid), Some(mtype)) = (be32(body, 0), be32(body, 4)) else {
        return Message::Garbage;
    };
    if mtype == MSG_CALL && be32(body, 8).is_some_and(|v| v != RPC_VERSION) {
        return Message::RpcMismatch { xid };
    }
    match RpcMessage::try_from(record) {
        Ok(msg) => match msg.message() {
            MessageType::Call(call) => Message::Call(Call {
                xid,
                prog: call.program(),
                vers: call.program_version(),
                proc_: call.procedure(),
                cred: credential(call.auth_credentials()),
                args: call.payload(),
            }),
            MessageType::Reply(ReplyBody::Accepted(acc)) => Message::Reply(Reply {
                xid,
                results: match acc.status() {
                    AcceptedStatus::Success(p) => Some(p),
                    _ => None,
                },
            }),
            MessageType::Reply(ReplyBody::Denied(_)) => {
                Message::Reply(Reply { xid, results: None })
            }
        },
        // Past xid, type and version only prog/vers/proc (fixed size) and the
        // two auth bodies remain: a parse failure there is a bad credential.
        Err(_) if mtype == MSG_CALL && body.len() >= 24 => Message::BadCredential { xid },
        Err(_) => Message::Garbage,
    }
}

fn credential(flavor: &AuthFlavor<&[u8]>) -> Credential {
    match flavor {
        AuthFlavor::AuthNone(_) => Credential::None,
        AuthFlavor::AuthUnix(p) => Credential::Sys {
            stamp: p.stamp(),
            machine: String::from_utf8_lossy(p.machine_name()).into_owned(),
            uid: p.uid(),
            gid: p.gid(),
            gids: p.gids().map(<[u32]>::to_vec).unwrap_or_default(),
        },
        AuthFlavor::AuthShort(_) => Credential::Other(2),
        AuthFlavor::Unknown { id, .. } => Credential::Other(*id),
        _ => Credential::Other(u32::MAX),
    }
}

/// Accepted-reply outcomes other than success (RFC 5531 §9 `accept_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// PROG_UNAVAIL.
    ProgUnavail,
    /// PROG_MISMATCH with the supported version range.
    ProgMismatch {
        /// Lowest version served.
        low: u32,
        /// Highest version served.
        high: u32,
    },
    /// PROC_UNAVAIL.
    ProcUnavail,
    /// GARBAGE_ARGS.
    GarbageArgs,
    /// SYSTEM_ERR.
    SystemErr,
    /// Denied: RPC_MISMATCH (we speak version 2 only).
    RpcMismatch,
    /// Denied: AUTH_ERROR with this `auth_stat`.
    Auth(AuthStat),
}

/// `auth_stat` values (RFC 5531 §9) the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    /// AUTH_BADCRED.
    BadCred,
    /// AUTH_REJECTEDCRED.
    RejectedCred,
    /// AUTH_TOOWEAK.
    TooWeak,
}

fn serialise(xid: u32, body: ReplyBody<&[u8], &[u8]>) -> Vec<u8> {
    let msg = RpcMessage::new(xid, MessageType::Reply(body));
    let mut out = Vec::with_capacity(msg.serialised_len() as usize);
    // Serialising into a Vec cannot fail: lengths are bounded by the
    // (empty) payloads built here.
    let _ = msg.serialise_into(&mut out);
    out
}

/// Length of what [`begin_success_reply`] writes: the record header, then
/// xid, REPLY, MSG_ACCEPTED, the AUTH_NONE verifier (flavor and empty
/// body) and SUCCESS. The results follow at this offset (a transport that
/// protects results, RPCSEC_GSS, takes them from there).
pub const SUCCESS_HEADER_LEN: usize = HEADER_LEN + 6 * 4;

/// Starts a successful reply record for `xid`: record header, RPC reply
/// header with an AUTH_NONE verifier. The caller appends the results and
/// then calls [`finish_record`].
pub fn begin_success_reply(xid: u32, out: &mut Vec<u8>) {
    let empty: &[u8] = &[];
    out.extend_from_slice(&serialise(
        xid,
        ReplyBody::Accepted(AcceptedReply::new(
            AuthFlavor::AuthNone(None),
            AcceptedStatus::Success(empty),
        )),
    ));
}

/// Fixes up the record header once the whole reply is in `out`.
pub fn finish_record(out: &mut [u8]) {
    let len = out.len() - HEADER_LEN;
    write_header(out, len);
}

/// A complete record refusing call `xid`.
pub fn refusal_reply(xid: u32, why: Refusal) -> Vec<u8> {
    let accepted =
        |status| ReplyBody::Accepted(AcceptedReply::new(AuthFlavor::AuthNone(None), status));
    let body = match why {
        Refusal::ProgUnavail => accepted(AcceptedStatus::ProgramUnavailable),
        Refusal::ProgMismatch { low, high } => {
            accepted(AcceptedStatus::ProgramMismatch { low, high })
        }
        Refusal::ProcUnavail => accepted(AcceptedStatus::ProcedureUnavailable),
        Refusal::GarbageArgs => accepted(AcceptedStatus::GarbageArgs),
        Refusal::SystemErr => accepted(AcceptedStatus::SystemError),
        Refusal::RpcMismatch => ReplyBody::Denied(RejectedReply::RpcVersionMismatch {
            low: RPC_VERSION,
            high: RPC_VERSION,
        }),
        Refusal::Auth(stat) => ReplyBody::Denied(RejectedReply::AuthError(match stat {
            AuthStat::BadCred => AuthError::BadCredentials,
            AuthStat::RejectedCred => AuthError::RejectedCredentials,
            AuthStat::TooWeak => AuthError::TooWeak,
        })),
    };
    serialise(xid, body)
}

/// Builds a complete call record (used for back-channel calls and by the
/// project's own clients), AUTH_SYS or AUTH_NONE.
pub fn call_record(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred: &Credential,
    args: &[u8],
) -> Vec<u8> {
    let auth = match cred {
        Credential::Sys {
            stamp,
            machine,
            uid,
            gid,
            gids,
        } => AuthFlavor::AuthUnix(onc_rpc::auth::AuthUnixParams::new(
            *stamp,
            // The crate panics past these RFC 5531 bounds: clamp instead.
            &machine.as_bytes()[..machine.len().min(255)],
            *uid,
            *gid,
            gids.iter().copied().take(16),
        )),
        _ => AuthFlavor::AuthNone(None),
    };
    let empty: &[u8] = &[];
    let head = RpcMessage::new(
        xid,
        MessageType::Call(CallBody::new(
            prog,
            vers,
            proc_,
            auth,
            AuthFlavor::AuthNone(None),
            empty,
        )),
    );
    let mut out = Vec::with_capacity(head.serialised_len() as usize + args.len());
    let _ = head.serialise_into(&mut out);
    out.extend_from_slice(args);
    finish_record(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys() -> Credential {
        Credential::Sys {
            stamp: 7,
            machine: "host".into(),
            uid: 1000,
            gid: 100,
            gids: vec![4, 5],
        }
    }

    #[test]
    fn call_round_trip() {
        let rec = call_record(42, 100003, 4, 1, &sys(), &[0, 0, 0, 9]);
        match parse(&rec) {
            Message::Call(c) => {
                assert_eq!((c.xid, c.prog, c.vers, c.proc_), (42, 100003, 4, 1));
                assert_eq!(c.cred, sys());
                assert_eq!(c.args, &[0, 0, 0, 9]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reply_round_trip() {
        let mut out = Vec::new();
        begin_success_reply(9, &mut out);
        assert_eq!(out.len(), SUCCESS_HEADER_LEN);
        assert_eq!(
            &out[HEADER_LEN..],
            &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        out.extend_from_slice(&[1, 2, 3, 4]);
        finish_record(&mut out);
        match parse(&out) {
            Message::Reply(r) => {
                assert_eq!(r.xid, 9);
                assert_eq!(r.results, Some(&[1u8, 2, 3, 4][..]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_rpc_version_is_mismatch() {
        let mut rec = call_record(5, 100003, 4, 0, &Credential::None, &[]);
        rec[4 + 8..4 + 12].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(parse(&rec), Message::RpcMismatch { xid: 5 }));
    }

    #[test]
    fn truncated_credential_is_bad_credential() {
        let rec = call_record(6, 100003, 4, 0, &sys(), &[]);
        let mut cut = rec[..rec.len() - 12].to_vec();
        finish_record(&mut cut);
        assert!(matches!(parse(&cut), Message::BadCredential { xid: 6 }));
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64usize {
            let mut rec: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            if rec.len() >= 4 {
                finish_record(&mut rec);
            }
            let _ = parse(&rec);
        }
    }

    #[test]
    fn refusals_serialise() {
        for why in [
            Refusal::ProgUnavail,
            Refusal::ProgMismatch { low: 4, high: 4 },
            Refusal::GarbageArgs,
            Refusal::RpcMismatch,
            Refusal::Auth(AuthStat::TooWeak),
        ] {
            let rec = refusal_reply(1, why);
            assert!(matches!(parse(&rec), Message::Reply(_)));
        }
    }
}
