//! The checks behind the fuzz targets, as plain functions: the
//! `fuzz_targets/*.rs` binaries feed them libFuzzer's inputs, and
//! `xdr/tests/fuzz_regressions.rs` replays the inputs kept in
//! `fuzz/regressions/<target>/` under `cargo test` (docs/fuzzing.md).
//! Each function panics when a property fails; nothing else may panic.

#![allow(clippy::missing_panics_doc)]

use nfs4d_xdr::codec::{Pack, Unpack};
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::{Reassembler, RecordError, HEADER_LEN, LAST_FRAGMENT, MAX_FRAGMENTS};
use nfs4d_xdr::rpc::{self, AuthStat, Credential, Message, Refusal};
use std::fmt::Debug;
use std::io::Cursor;

/// Record-marking reassembly (RFC 5531 §11): the stream is fed in
/// fuzzer-chosen chunk sizes and must yield exactly the records, and the
/// error, that a whole-stream reference parser finds — never a panic and
/// never a record past the limit.
pub mod record {
    #![allow(unused_imports)]
    use super::*;

    /// Parses a whole stream at once: the records it completes and the error
    /// that stops it, if any (an incomplete tail is not an error).
    fn reference(mut s: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<RecordError>) {
        let mut recs = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut frags = 0;
        loop {
            if s.len() < HEADER_LEN {
                return (recs, None);
            }
            let w = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            s = &s[HEADER_LEN..];
            let len = (w & !LAST_FRAGMENT) as usize;
            frags += 1;
            if frags > MAX_FRAGMENTS {
                return (recs, Some(RecordError::TooManyFragments));
            }
            let size = cur.len() + len;
            if size > max {
                return (recs, Some(RecordError::TooLarge { size, max }));
            }
            if s.len() < len {
                return (recs, None);
            }
            cur.extend_from_slice(&s[..len]);
            s = &s[len..];
            if w & LAST_FRAGMENT != 0 {
                recs.push(std::mem::take(&mut cur));
                frags = 0;
            }
        }
    }

    /// Runs the check on one input.
    pub fn run(data: &[u8]) {
        if data.len() < 2 {
            return;
        }
        // Small limits so the fuzzer reaches them; chunk sizes from a seed.
        let max = usize::from(data[0]) * 4;
        let mut seed = u32::from(data[1]) | 1;
        let stream = &data[2..];
        let (want, want_err) = reference(stream, max);

        let mut ra = Reassembler::new(max);
        let mut got = Vec::new();
        let mut err = None;
        let mut input = stream;
        'outer: while !input.is_empty() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = ((seed >> 16) as usize % 19).min(input.len());
            let mut chunk = &input[..n];
            input = &input[n..];
            // One call consumes at most one record; call until the chunk is used.
            while !chunk.is_empty() {
                let before = chunk.len();
                match ra.feed(&mut chunk) {
                    Ok(Some(rec)) => {
                        assert!(rec.len() >= HEADER_LEN);
                        assert!(rec.len() - HEADER_LEN <= max, "record past the limit");
                        let hdr = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
                        assert_eq!(hdr, (rec.len() - HEADER_LEN) as u32 | LAST_FRAGMENT);
                        got.push(rec[HEADER_LEN..].to_vec());
                    }
                    Ok(None) => assert!(chunk.is_empty(), "stopped early without a record"),
                    Err(e) => {
                        err = Some(e);
                        break 'outer;
                    }
                }
                assert!(chunk.len() < before || chunk.is_empty(), "no progress");
            }
        }
        assert_eq!(got, want);
        assert_eq!(err, want_err);
        if err.is_none() && want.is_empty() && stream.is_empty() {
            assert!(ra.is_idle());
        }
    }
}

/// ONC RPC call header and credential parsing (RFC 5531 §9, AUTH_SYS
/// §14.2.1) on records as the transport hands them over: never a panic;
/// a call's argument slice lies inside the record; an AUTH_NONE or
/// AUTH_SYS call re-encoded with the project's encoder parses back to the
/// same header and credential; every refusal encodes to a parseable reply.
pub mod rpc_call {
    #![allow(unused_imports)]
    use super::*;

    /// Runs the check on one input.
    pub fn run(data: &[u8]) {
        // The reassembler's output: a synthetic header, then the message.
        let mut rec = vec![0u8; 4];
        rec.extend_from_slice(data);
        rpc::finish_record(&mut rec);
        match rpc::parse(&rec) {
            Message::Call(c) => {
                let start = c.args.as_ptr() as usize - rec.as_ptr() as usize;
                assert!(start >= 4 && start + c.args.len() <= rec.len());
                let comparable = match &c.cred {
                    Credential::None => true,
                    // The encoder clamps to the RFC 5531 bounds (255-byte
                    // machine name, 16 groups); compare within them.
                    Credential::Sys { machine, gids, .. } => {
                        machine.len() <= 255 && gids.len() <= 16
                    }
                    Credential::Other(_) => false,
                };
                if comparable {
                    let again = rpc::call_record(c.xid, c.prog, c.vers, c.proc_, &c.cred, c.args);
                    match rpc::parse(&again) {
                        Message::Call(d) => {
                            assert_eq!(
                                (d.xid, d.prog, d.vers, d.proc_),
                                (c.xid, c.prog, c.vers, c.proc_)
                            );
                            assert_eq!(d.cred, c.cred);
                            assert_eq!(d.args, c.args);
                        }
                        other => panic!("re-encoded call parsed as {other:?}"),
                    }
                }
                for why in [
                    Refusal::ProgUnavail,
                    Refusal::ProgMismatch { low: 4, high: 4 },
                    Refusal::ProcUnavail,
                    Refusal::GarbageArgs,
                    Refusal::SystemErr,
                    Refusal::RpcMismatch,
                    Refusal::Auth(AuthStat::BadCred),
                    Refusal::Auth(AuthStat::TooWeak),
                ] {
                    let r = rpc::refusal_reply(c.xid, why);
                    assert!(matches!(rpc::parse(&r), Message::Reply(x) if x.xid == c.xid));
                }
            }
            Message::Reply(r) => {
                if let Some(res) = r.results {
                    let start = res.as_ptr() as usize - rec.as_ptr() as usize;
                    assert!(start + res.len() <= rec.len());
                }
            }
            Message::RpcMismatch { .. } | Message::BadCredential { .. } | Message::Garbage => {}
        }
    }
}

/// COMPOUND argument decoding as the server does it (the header through
/// `nfs4d_xdr::compound::decode_header`, which must agree with the
/// generated `COMPOUND4args` decoder, then one `nfs_argop4` at a time),
/// plus a mode that puts a chosen operation number in front of fuzzer
/// bytes so every operation's argument decoder is reached, and the other
/// messages the server or the project client decode (CB_COMPOUND,
/// replies). Never a panic; every step consumes input or stops.
pub mod compound_args {
    #![allow(unused_imports)]
    use super::*;
    use nfs4d_xdr::codec::Error;
    use nfs4d_xdr::compound::{decode_header, MAX_TAG};

    /// Operation numbers: every one the NFSv4.0–4.2 specs define, and ILLEGAL.
    fn opnum(b: u8) -> u32 {
        if b == 255 {
            10044
        } else {
            3 + u32::from(b) % 73
        }
    }

    fn compound_like_the_server(data: &[u8]) {
        let mut cur = Cursor::new(data);
        let Ok(h) = decode_header(&mut cur) else {
            return;
        };
        // Length word, tag padded to four bytes, minor version, count.
        let padded = h.tag.len().div_ceil(4) * 4;
        assert!(h.tag.len() <= MAX_TAG, "tag past the limit");
        assert_eq!(cur.position() as usize, 12 + padded, "header size");
        for _ in 0..h.count {
            let at = cur.position();
            match nfs_argop4::unpack(&mut cur) {
                Ok(_) => assert!(cur.position() > at, "an operation consumed nothing"),
                Err(_) => return,
            }
        }
    }

    /// The header decoder and the generated `COMPOUND4args` decoder agree:
    /// whatever the latter decodes with a tag within the limit has that
    /// header, and a longer tag is refused for its length.
    fn header_agrees_with_the_generated_decoder(data: &[u8]) {
        let header = decode_header(&mut Cursor::new(data));
        let Ok((args, _)) = nfs4d_xdr::from_bytes_prefix::<COMPOUND4args>(data) else {
            // The header may still decode: the operations may be broken.
            return;
        };
        if args.tag.len() > MAX_TAG {
            assert!(
                matches!(header, Err(Error::InvalidLen(n)) if n == args.tag.len()),
                "a {}-byte tag gave {header:?}",
                args.tag.len()
            );
            return;
        }
        match header {
            Ok(h) => {
                assert_eq!(h.tag, &args.tag[..]);
                assert_eq!(h.minorversion, args.minorversion);
                assert_eq!(h.count as usize, args.argarray.len());
            }
            Err(e) => panic!("header of a decodable COMPOUND refused: {e}"),
        }
    }

    fn one_op(op: u32, rest: &[u8]) {
        let mut bytes = op.to_be_bytes().to_vec();
        bytes.extend_from_slice(rest);
        let _ = nfs4d_xdr::from_bytes_prefix::<nfs_argop4>(&bytes);
        let _ = nfs4d_xdr::from_bytes_prefix::<nfs_resop4>(&bytes);
        let _ = nfs4d_xdr::from_bytes_prefix::<nfs_cb_argop4>(&bytes);
        let _ = nfs4d_xdr::from_bytes_prefix::<nfs_cb_resop4>(&bytes);
    }

    /// Runs the check on one input.
    pub fn run(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        match mode % 4 {
            0 => {
                compound_like_the_server(rest);
                header_agrees_with_the_generated_decoder(rest);
            }
            1 => {
                if let Some((&b, args)) = rest.split_first() {
                    one_op(opnum(b), args);
                }
            }
            2 => {
                header_agrees_with_the_generated_decoder(rest);
                let _ = nfs4d_xdr::from_bytes_prefix::<CB_COMPOUND4args>(rest);
            }
            _ => {
                let _ = nfs4d_xdr::from_bytes_prefix::<COMPOUND4res>(rest);
                let _ = nfs4d_xdr::from_bytes_prefix::<CB_COMPOUND4res>(rest);
                let _ = nfs4d_xdr::from_bytes_prefix::<fattr4>(rest);
            }
        }
    }
}

/// Decode → encode → decode: whatever the decoders accept must encode
/// (no bound is broken), take exactly as many bytes as were consumed, and
/// decode back to an equal value whose encoding is identical.
pub mod roundtrip {
    #![allow(unused_imports)]
    use super::*;

    fn check<T>(data: &[u8])
    where
        T: for<'a> Unpack<Cursor<&'a [u8]>> + Pack<Vec<u8>> + PartialEq + Debug,
    {
        let Ok((v, used)) = nfs4d_xdr::from_bytes_prefix::<T>(data) else {
            return;
        };
        let enc = match nfs4d_xdr::try_to_bytes(&v) {
            Ok(b) => b,
            Err(e) => panic!("decoded value does not encode: {e}: {v:?}"),
        };
        assert_eq!(
            enc.len(),
            used,
            "encoding size differs from the bytes decoded: {v:?}"
        );
        let (w, used2) = nfs4d_xdr::from_bytes_prefix::<T>(&enc).expect("re-decode");
        assert_eq!(used2, enc.len());
        assert_eq!(v, w);
        assert_eq!(nfs4d_xdr::try_to_bytes(&w).expect("re-encode"), enc);
    }

    fn with_op(b: u8, rest: &[u8]) -> Vec<u8> {
        let op: u32 = if b == 255 {
            10044
        } else {
            3 + u32::from(b) % 73
        };
        let mut v = op.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    /// Runs the check on one input.
    pub fn run(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        match mode % 8 {
            0 => check::<COMPOUND4args>(rest),
            1 => {
                if let Some((&b, r)) = rest.split_first() {
                    check::<nfs_argop4>(&with_op(b, r));
                }
            }
            2 => {
                if let Some((&b, r)) = rest.split_first() {
                    check::<nfs_resop4>(&with_op(b, r));
                }
            }
            3 => check::<COMPOUND4res>(rest),
            4 => check::<CB_COMPOUND4args>(rest),
            5 => check::<CB_COMPOUND4res>(rest),
            6 => check::<fattr4>(rest),
            _ => {
                if let Some((&b, r)) = rest.split_first() {
                    let op =
                        [4u32, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 10044][usize::from(b) % 13];
                    let mut v = op.to_be_bytes().to_vec();
                    v.extend_from_slice(r);
                    check::<nfs_cb_argop4>(&v);
                    check::<nfs_cb_resop4>(&v);
                }
            }
        }
    }
}
