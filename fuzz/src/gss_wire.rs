//! The check behind the `gss_wire` fuzz target: RPCSEC_GSS decoding
//! (`nfs4d_gss::wire`, `nfs4d_gss::rpc`) and the sequence window
//! (`nfs4d_gss::window`) on hostile bytes. Kept out of `lib.rs` because
//! it needs the `nfs4d-gss` crate, which `xdr/tests/fuzz_regressions.rs`
//! (including `lib.rs`) does not; `fuzz_targets/gss_wire.rs` and
//! `server/gss/tests/fuzz_regressions.rs` include this file by path.
//!
//! The first byte picks what the rest is:
//!
//! * 0: a call message (after the record mark): `parse_call` never panics
//!   and its slices tile the message; an RPCSEC_GSS credential decodes or
//!   is refused for the reason its bytes give, and decodes to the same
//!   fields once re-encoded; the arguments go through every body decoder
//!   within their bounds.
//! * 1: a reply message: `parse_reply` and `decode_init_res` never panic;
//!   a decoded `rpc_gss_init_res` re-encodes to one that decodes equal.
//! * 2: a credential body alone, as in 0.
//! * 3: big-endian sequence numbers fed to a `SeqWindow`, which must agree
//!   with a model that remembers every number accepted.
//!
//! Every property failure panics; nothing else may.

use std::collections::HashSet;

use nfs4d_gss::rpc::{self, CallError, RawReply};
use nfs4d_gss::window::{Seen, SeqWindow, SEQ_WINDOW};
use nfs4d_gss::wire::{
    self, CredError, MAX_AUTH_BYTES, MAX_CHECKSUM, MAX_HANDLE, MAX_TOKEN, RPCSEC_GSS,
};
use nfs4d_gss::xdr::XdrError;

/// Runs the check on one input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => call(rest),
        1 => reply(rest),
        2 => cred(rest),
        _ => window(rest),
    }
}

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fn call(msg: &[u8]) {
    let mut rec = vec![0u8; rpc::RECORD_MARK];
    rec.extend_from_slice(msg);
    rpc::finish_record(&mut rec);
    let c = match rpc::parse_call(&rec) {
        Ok(c) => c,
        Err(CallError::Short) => {
            assert!(msg.len() < 8);
            return;
        }
        Err(_) => {
            assert_eq!(
                rpc::record_xid(&rec),
                msg.get(..4)
                    .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            );
            return;
        }
    };
    let body = &rec[rpc::RECORD_MARK..];
    // header | verifier flavor, length, body, padding | arguments
    assert_eq!(c.header.as_ptr(), body.as_ptr());
    assert!(within(body, c.cred) && within(body, c.verf) && within(body, c.args));
    assert!(c.cred.len() <= MAX_AUTH_BYTES && c.verf.len() <= MAX_AUTH_BYTES);
    let verf_end = c.header.len() + 8 + c.verf.len() + (4 - c.verf.len() % 4) % 4;
    assert_eq!(verf_end + c.args.len(), body.len());
    if c.cred_flavor == RPCSEC_GSS {
        cred(c.cred);
    }
    bodies(c.args);
}

fn cred(bytes: &[u8]) {
    match wire::decode_cred(bytes) {
        Ok(cr) => {
            assert!(within(bytes, cr.handle));
            let again = wire::encode_cred(&cr);
            assert_eq!(wire::decode_cred(&again), Ok(cr));
            // Only the padding may differ.
            assert_eq!(again.len(), bytes.len());
        }
        Err(CredError::Version(v)) => {
            assert_ne!(v, wire::RPCSEC_GSS_VERS_1);
            assert_eq!(bytes.get(..4), Some(&v.to_be_bytes()[..]));
        }
        Err(CredError::Proc(p)) => assert!(p > 3),
        Err(CredError::Service(s)) => assert!(s == 0 || s > 3),
        Err(CredError::Malformed(_)) => {}
    }
}

fn bodies(args: &[u8]) {
    if let Ok(token) = wire::decode_init_arg(args) {
        assert!(token.len() <= MAX_TOKEN && within(args, token));
        assert_eq!(wire::encode_init_arg(token).len(), args.len());
    }
    if let Ok((data, checksum)) = wire::decode_integ(args) {
        assert!(checksum.len() <= MAX_CHECKSUM && within(args, data) && within(args, checksum));
        if let Ok((seq, inner)) = wire::split_data_body(data) {
            let mut out = Vec::new();
            wire::encode_integ_into::<_, ()>(&mut out, seq, inner, |_| Ok(checksum.to_vec()))
                .unwrap();
            assert_eq!(wire::decode_integ(&out), Ok((data, checksum)));
        }
    }
    if let Ok(token) = wire::decode_priv(args) {
        assert!(within(args, token));
        let mut out = Vec::new();
        wire::encode_priv_into(&mut out, token);
        assert_eq!(out.len(), args.len());
    }
}

fn reply(msg: &[u8]) {
    let mut rec = vec![0u8; rpc::RECORD_MARK];
    rec.extend_from_slice(msg);
    rpc::finish_record(&mut rec);
    if let Ok(RawReply::Accepted { verf, body, .. }) = rpc::parse_reply(&rec) {
        assert!(verf.len() <= MAX_AUTH_BYTES && within(&rec, verf) && within(&rec, body));
        if let Ok(res) = wire::decode_init_res(body) {
            assert!(res.handle.len() <= MAX_HANDLE && res.token.len() <= MAX_TOKEN);
            assert_eq!(wire::decode_init_res(&wire::encode_init_res(&res)), Ok(res));
        }
    }
    match wire::decode_init_res(msg) {
        Ok(res) => assert_eq!(wire::decode_init_res(&wire::encode_init_res(&res)), Ok(res)),
        Err(XdrError::TooLong { len, max }) => assert!(len as usize > max),
        Err(_) => {}
    }
}

fn window(bytes: &[u8]) {
    let mut w = SeqWindow::new();
    let mut accepted = HashSet::new();
    let mut top: Option<u32> = None;
    for chunk in bytes.chunks_exact(4) {
        let seq = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let want = match top {
            Some(t) if seq <= t && t - seq >= SEQ_WINDOW => Seen::TooOld,
            _ if accepted.contains(&seq) => Seen::Replay,
            _ => Seen::Fresh,
        };
        assert_eq!(w.check(seq), want, "seq {seq}");
        if want == Seen::Fresh {
            accepted.insert(seq);
            top = Some(top.map_or(seq, |t| t.max(seq)));
        }
    }
}
