//! What the client puts on the wire and takes off it: COMPOUND call
//! records (RFC 7530 §15.2, RFC 8881 §16.2 and §18.46 for SEQUENCE) and the
//! classification and decoding of what the server sends back.

use std::io::{self, Cursor};

use nfs4d_xdr::codec::{Pack, Unpack};
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::HEADER_LEN;
use nfs4d_xdr::rpc::{self, Credential, Message};

/// The NFS program and version 4.
pub const NFS_PROGRAM: u32 = 100003;
pub const NFS_V4: u32 = 4;
/// Procedures of NFSv4: NULL and COMPOUND (RFC 7530 §15).
pub const PROC_NULL: u32 = 0;
pub const PROC_COMPOUND: u32 = 1;

/// An `InvalidData` error: the server sent something the client cannot use.
pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Encodes the arguments of a COMPOUND of minor version `minor`: `seq`
/// (its SEQUENCE, 4.1 on) followed by `ops`, with an empty tag. Encoding
/// the array by hand rather than through `COMPOUND4args` spares cloning
/// the operations into a new vector for every call.
pub fn compound_body(
    minor: u32,
    seq: Option<&nfs_argop4>,
    ops: &[nfs_argop4],
) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(256);
    let count = ops.len() + usize::from(seq.is_some());
    // tag<> (empty), minorversion, then the argarray count.
    for word in [0u32, minor, count as u32] {
        body.extend_from_slice(&word.to_be_bytes());
    }
    for op in seq.into_iter().chain(ops) {
        op.pack(&mut body).map_err(|e| bad(e.to_string()))?;
    }
    Ok(body)
}

/// Wraps the arguments of procedure `proc_` into a call record. With
/// `payload_len > 0` the last operation must be a WRITE whose `data` is
/// empty: its length word (the last 4 bytes of `body`) is patched and the
/// record mark grown so that the caller sends the payload bytes (and their
/// XDR padding) right after this buffer without copying them into it.
pub fn encode_call(
    xid: u32,
    cred: &Credential,
    proc_: u32,
    body: &[u8],
    payload_len: usize,
) -> Vec<u8> {
    let mut rec = rpc::call_record(xid, NFS_PROGRAM, NFS_V4, proc_, cred, body);
    if payload_len > 0 {
        let n = rec.len();
        debug_assert_eq!(&rec[n - 4..], &[0, 0, 0, 0]);
        rec[n - 4..].copy_from_slice(&(payload_len as u32).to_be_bytes());
        let total = n - HEADER_LEN + payload_len + pad(payload_len);
        nfs4d_xdr::record::write_header(&mut rec, total);
    }
    rec
}

/// XDR padding after `n` bytes of opaque data.
pub fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// The results part of a reply record (after the RPC header).
pub fn results(reply: &[u8]) -> io::Result<&[u8]> {
    match rpc::parse(reply) {
        Message::Reply(r) => r.results.ok_or_else(|| bad("call not accepted")),
        _ => Err(bad("not a reply")),
    }
}

/// The COMPOUND result in a reply record.
pub fn compound_result(reply: &[u8]) -> io::Result<COMPOUND4res> {
    COMPOUND4res::unpack(&mut Cursor::new(results(reply)?))
        .map(|(res, _)| res)
        .map_err(|e| bad(format!("undecodable COMPOUND reply: {e}")))
}

/// A decoded COMPOUND reply.
pub struct Reply {
    pub res: COMPOUND4res,
    /// With READ data skimmed (see [`decode`]): the length of the READ
    /// data, which was skipped (the `data` of the READ result is empty).
    pub read_len: Option<usize>,
}

/// What a record from the server holds.
pub enum Incoming<'a> {
    /// A reply to one of the client's calls.
    Reply {
        xid: u32,
        res: Result<Reply, String>,
    },
    /// A back-channel call from the server.
    Call {
        xid: u32,
        proc_: u32,
        args: &'a [u8],
    },
    /// Anything else (nothing a client answers).
    Other,
}

/// Classifies a record from the server and decodes a COMPOUND reply. With
/// `skim_read`, READ data is skipped rather than copied out: the generated
/// decoder copies READ data into a growing vector (several copies of every
/// MiB), which made a load generator sharing the cores with the server
/// spend more CPU than necessary.
pub fn decode(record: &[u8], skim_read: bool) -> Incoming<'_> {
    match rpc::parse(record) {
        Message::Reply(r) => {
            let res = match r.results {
                None => Err("RPC call not accepted".to_string()),
                Some(body) if skim_read => decode_skimming(body),
                Some(body) => COMPOUND4res::unpack(&mut Cursor::new(body))
                    .map(|(res, _)| Reply {
                        res,
                        read_len: None,
                    })
                    .map_err(|e| format!("undecodable COMPOUND reply: {e}")),
            };
            Incoming::Reply { xid: r.xid, res }
        }
        Message::Call(c) => Incoming::Call {
            xid: c.xid,
            proc_: c.proc_,
            args: c.args,
        },
        _ => Incoming::Other,
    }
}

/// Decodes a COMPOUND reply like `COMPOUND4res::unpack`, except that a
/// successful READ result keeps only the length of its data.
fn decode_skimming(body: &[u8]) -> Result<Reply, String> {
    let err = |e: nfs4d_xdr::codec::Error| format!("undecodable COMPOUND reply: {e}");
    let word = |at: u64| -> Result<u32, String> {
        let at = at as usize;
        body.get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| "truncated COMPOUND reply".to_string())
    };
    let mut cur = Cursor::new(body);
    let (status, _) = nfsstat4::unpack(&mut cur).map_err(err)?;
    let (tag, _) = nfs4d_xdr::codec::unpack_opaque_var(&mut cur, None).map_err(err)?;
    let (count, _) = u32::unpack(&mut cur).map_err(err)?;
    let mut resarray = Vec::new();
    let mut read_len = None;
    for _ in 0..count {
        let at = cur.position();
        if word(at)? != nfs_opnum4::OP_READ as u32 || word(at + 4)? != nfsstat4::NFS4_OK as u32 {
            // Not a READ, or a failed one (small): decode it the ordinary way.
            resarray.push(nfs_resop4::unpack(&mut cur).map_err(err)?.0);
            continue;
        }
        let eof = word(at + 8)? != 0;
        let len = word(at + 12)? as usize;
        let end = at + 16 + (len + pad(len)) as u64;
        if end > body.len() as u64 {
            return Err("truncated READ data".into());
        }
        cur.set_position(end);
        read_len = Some(len);
        resarray.push(nfs_resop4::OP_READ(READ4res::NFS4_OK(READ4resok {
            eof,
            data: Vec::new(),
        })));
    }
    Ok(Reply {
        res: COMPOUND4res {
            status,
            tag,
            resarray,
        },
        read_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_reply(data: &[u8]) -> COMPOUND4res {
        COMPOUND4res {
            status: nfsstat4::NFS4_OK,
            tag: b"t".to_vec(),
            resarray: vec![
                nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(SEQUENCE4resok::default())),
                nfs_resop4::OP_PUTFH(PUTFH4res {
                    status: nfsstat4::NFS4_OK,
                }),
                nfs_resop4::OP_READ(READ4res::NFS4_OK(READ4resok {
                    eof: true,
                    data: data.to_vec(),
                })),
                // Something after the READ, to check the skip lands right.
                nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(GETFH4resok { object: vec![9; 6] })),
            ],
        }
    }

    #[test]
    fn skimming_matches_full_decoding_but_for_read_data() {
        for len in [0usize, 1, 5, 8, 4096] {
            let full = read_reply(&vec![0xab; len]);
            let body = nfs4d_xdr::to_bytes(&full);
            let got = decode_skimming(&body).expect("decodes");
            assert_eq!(got.read_len, Some(len));
            let mut want = full.clone();
            want.resarray[2] = nfs_resop4::OP_READ(READ4res::NFS4_OK(READ4resok {
                eof: true,
                data: vec![],
            }));
            assert_eq!(got.res, want, "len {len}");
            assert!(
                decode_skimming(&body[..body.len() - 4]).is_err(),
                "truncated, len {len}"
            );
        }
    }

    #[test]
    fn a_failed_read_is_decoded_whole_when_skimming() {
        let res = COMPOUND4res {
            status: nfsstat4::NFS4ERR_ACCESS,
            tag: vec![],
            resarray: vec![nfs_resop4::OP_READ(READ4res::default(
                nfsstat4::NFS4ERR_ACCESS,
            ))],
        };
        let got = decode_skimming(&nfs4d_xdr::to_bytes(&res)).expect("decodes");
        assert_eq!((got.res, got.read_len), (res, None));
    }

    #[test]
    fn write_payload_sent_apart_makes_a_valid_call() {
        let payload = b"hello";
        let ops = vec![nfs_argop4::OP_WRITE(WRITE4args {
            stateid: stateid4::default(),
            offset: 7,
            stable: stable_how4::UNSTABLE4,
            data: Vec::new(),
        })];
        let body = compound_body(2, None, &ops).expect("encodes");
        let mut rec = encode_call(42, &Credential::None, PROC_COMPOUND, &body, payload.len());
        rec.extend_from_slice(payload);
        rec.extend_from_slice(&[0; 3][..pad(payload.len())]);
        let Message::Call(call) = rpc::parse(&rec) else {
            panic!("not a call")
        };
        assert_eq!((call.xid, call.proc_), (42, PROC_COMPOUND));
        let args: COMPOUND4args = nfs4d_xdr::from_bytes(call.args).expect("whole record decodes");
        assert_eq!(args.minorversion, 2);
        match &args.argarray[..] {
            [nfs_argop4::OP_WRITE(w)] => assert_eq!((w.offset, &w.data[..]), (7, &payload[..])),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hand_encoded_compound_equals_the_generated_encoding() {
        let seq = nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: [3; 16],
            sa_sequenceid: 9,
            sa_slotid: 2,
            sa_highest_slotid: 7,
            sa_cachethis: true,
        });
        let ops = vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH];
        let want = COMPOUND4args {
            tag: vec![],
            minorversion: 1,
            argarray: [vec![seq.clone()], ops.clone()].concat(),
        };
        let got = compound_body(1, Some(&seq), &ops).unwrap();
        assert_eq!(got, nfs4d_xdr::to_bytes(&want));
    }

    #[test]
    fn records_that_are_not_replies_are_classified() {
        let call = rpc::call_record(5, 0x4000_0000, 1, 1, &Credential::None, &[1, 2, 3, 4]);
        assert!(matches!(
            decode(&call, false),
            Incoming::Call {
                xid: 5,
                proc_: 1,
                args: [1, 2, 3, 4]
            }
        ));
        assert!(matches!(decode(&[0, 0, 0, 0, 1], false), Incoming::Other));
        let refused = rpc::refusal_reply(6, rpc::Refusal::GarbageArgs);
        assert!(matches!(
            decode(&refused, false),
            Incoming::Reply {
                xid: 6,
                res: Err(_)
            }
        ));
        assert!(results(&refused).is_err());
        assert!(results(&call).is_err());
    }
}
