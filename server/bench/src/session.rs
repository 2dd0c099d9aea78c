//! One TCP connection carrying one NFSv4.1 session with several fore-channel
//! slots: session setup and teardown, call encoding, reply decoding, and a
//! blocking one-call-at-a-time mode (slot 0) for preparation steps.
//!
//! `nfs4d::client::Client` is not reused here: it hard-codes 8 slots, keeps
//! its socket private and decodes every reply on the caller's thread, while
//! the pipelined engine needs the socket split between a reader and a writer
//! and a sequence id per slot.

use std::io::{self, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nfs4d_xdr::codec::{Pack, Unpack};
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::{Reassembler, HEADER_LEN};
use nfs4d_xdr::rpc::{self, Credential, Message};

/// NFS program, version and the COMPOUND procedure.
const PROG: u32 = 100003;
const VERS: u32 = 4;
const PROC_COMPOUND: u32 = 1;

/// Low bits of an xid that name the slot the call was sent on, so a reply
/// finds its slot without a map lookup (and thus at most 1024 slots).
pub const SLOT_BITS: u32 = 10;
/// Most slots a session may use.
pub const MAX_SLOTS: u32 = 1 << SLOT_BITS;

/// Largest reply record accepted: a 1 MiB READ plus headroom.
const MAX_RECORD: usize = 4 << 20;

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// An established session.
pub struct Session {
    pub stream: TcpStream,
    pub reader: RecordReader,
    pub cred: Credential,
    pub clientid: clientid4,
    pub sessionid: sessionid4,
    /// Next sequence id of each fore-channel slot (its length is the number
    /// of slots the server granted).
    pub seqids: Vec<u32>,
    /// Largest request and reply the server accepts on this session.
    pub max_request: u32,
    pub max_response: u32,
    /// Counter in the high bits of xids.
    xid_counter: u32,
}

/// Reads whole RPC records from a socket.
pub struct RecordReader {
    stream: TcpStream,
    ra: Reassembler,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecordReader {
    pub fn new(stream: TcpStream) -> RecordReader {
        RecordReader {
            stream,
            ra: Reassembler::new(MAX_RECORD),
            // Large enough that a 1 MiB READ reply arrives in a few reads.
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        }
    }

    /// The next record (with its 4-byte header, as `rpc::parse` wants).
    pub fn next_record(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if self.start < self.end {
                let mut input = &self.buf[self.start..self.end];
                let got = self
                    .ra
                    .feed(&mut input)
                    .map_err(|e| bad(format!("{e:?}")))?;
                self.start = self.end - input.len();
                if let Some(rec) = got {
                    return Ok(rec);
                }
            }
            self.start = 0;
            self.end = self.stream.read(&mut self.buf)?;
            if self.end == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }
}

/// Encodes a 4.1 COMPOUND of `seq` (its SEQUENCE) followed by `ops`.
/// Encoding the array by hand rather than through `COMPOUND4args` spares
/// cloning the operations into a new vector for every call.
pub fn compound_body(seq: Option<&nfs_argop4>, ops: &[nfs_argop4]) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(256);
    let count = ops.len() + usize::from(seq.is_some());
    // tag<> (empty), minorversion, then the argarray count.
    for word in [0u32, 1, count as u32] {
        body.extend_from_slice(&word.to_be_bytes());
    }
    for op in seq.into_iter().chain(ops) {
        op.pack(&mut body).map_err(|e| bad(e.to_string()))?;
    }
    Ok(body)
}

/// Wraps a COMPOUND body into a call record. With `payload_len > 0` the
/// last operation must be a WRITE whose `data` is empty: its length word
/// (the last 4 bytes of the body) is patched and the record header grown so
/// that the caller can send the payload bytes (and their XDR padding) right
/// after this buffer without copying them into it.
pub fn encode_call(xid: u32, cred: &Credential, body: &[u8], payload_len: usize) -> Vec<u8> {
    let mut rec = rpc::call_record(xid, PROG, VERS, PROC_COMPOUND, cred, body);
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

/// A decoded COMPOUND reply.
pub struct Reply {
    pub res: COMPOUND4res,
    /// With [`decode_skimming`]: the length of the READ data, which was
    /// skipped (the `data` of the READ result is left empty).
    pub read_len: Option<usize>,
}

/// What a reply record holds.
pub enum Incoming {
    Reply {
        xid: u32,
        res: Result<Reply, String>,
    },
    /// A back-channel call from the server (answered with an empty success).
    Call {
        xid: u32,
    },
    Other,
}

/// Decodes a record read from the server. With `skim_read`, READ data is
/// skipped rather than copied out (see [`decode_skimming`]).
pub fn decode(record: &[u8], skim_read: bool) -> Incoming {
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
        Message::Call(c) => Incoming::Call { xid: c.xid },
        _ => Incoming::Other,
    }
}

/// Decodes a COMPOUND reply like `COMPOUND4res::unpack`, except that a
/// successful READ result keeps only the length of its data. The generated
/// decoder copies READ data into a growing vector (several copies of every
/// MiB); in the streaming workloads that made the generator spend more CPU
/// than necessary on a machine where it shares the cores with the server.
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
        if word(at)? != nfs_opnum4::OP_READ as u32 {
            resarray.push(nfs_resop4::unpack(&mut cur).map_err(err)?.0);
            continue;
        }
        if word(at + 4)? != nfsstat4::NFS4_OK as u32 {
            // A failed READ is small: decode it the ordinary way.
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

/// An empty successful reply to a back-channel call.
pub fn empty_reply(xid: u32) -> Vec<u8> {
    let mut out = Vec::new();
    rpc::begin_success_reply(xid, &mut out);
    rpc::finish_record(&mut out);
    out
}

/// Status of the first failing operation (or OK), with its position.
pub fn first_error(res: &COMPOUND4res) -> Option<(usize, nfsstat4)> {
    if res.status == nfsstat4::NFS4_OK {
        None
    } else {
        Some((res.resarray.len().saturating_sub(1), res.status))
    }
}

impl Session {
    /// Connects and sets up a session asking for `slots` fore-channel slots
    /// (the server may grant fewer). `owner` must be unique per connection:
    /// each connection is its own client, so no client-wide state (open
    /// owners, sequence ids) is shared between connections.
    pub fn connect(addr: SocketAddr, slots: u32, owner: &[u8]) -> io::Result<Session> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        // A server that stops answering must not hang a bounded run forever.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let reader = RecordReader::new(stream.try_clone()?);
        let mut s = Session {
            stream,
            reader,
            cred: Credential::Sys {
                stamp: 1,
                machine: "nfs4d-bench".into(),
                uid: 0,
                gid: 0,
                gids: vec![],
            },
            clientid: 0,
            sessionid: [0; 16],
            seqids: vec![1],
            max_request: 0,
            max_response: 0,
            xid_counter: 0,
        };
        s.establish(slots.clamp(1, MAX_SLOTS), owner)?;
        Ok(s)
    }

    /// A fresh xid for `slot`.
    pub fn xid(&mut self, slot: usize) -> u32 {
        self.xid_counter = self.xid_counter.wrapping_add(1);
        (self.xid_counter << SLOT_BITS) | slot as u32
    }

    /// The SEQUENCE operation for the next call on `slot`.
    pub fn sequence(&self, slot: usize, cache: bool) -> nfs_argop4 {
        nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: self.sessionid,
            sa_sequenceid: self.seqids[slot],
            sa_slotid: slot as u32,
            sa_highest_slotid: self.seqids.len() as u32 - 1,
            sa_cachethis: cache,
        })
    }

    /// Sends one record and waits for the reply with the same xid
    /// (back-channel calls met meanwhile are answered).
    fn roundtrip(&mut self, xid: u32, rec: &[u8]) -> io::Result<COMPOUND4res> {
        self.stream.write_all(rec)?;
        loop {
            let record = self.reader.next_record()?;
            match decode(&record, false) {
                Incoming::Reply { xid: x, res } if x == xid => {
                    return res.map(|r| r.res).map_err(bad)
                }
                Incoming::Call { xid } => self.stream.write_all(&empty_reply(xid))?,
                _ => {}
            }
        }
    }

    /// A COMPOUND without SEQUENCE (session setup).
    fn call_raw(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        let xid = self.xid(0);
        let rec = encode_call(xid, &self.cred, &compound_body(None, &ops)?, 0);
        self.roundtrip(xid, &rec)
    }

    /// A COMPOUND on slot 0, prefixed with SEQUENCE; retried (for up to
    /// ~10 s) while the server answers NFS4ERR_DELAY or NFS4ERR_GRACE. Only for use outside pipelined phases.
    pub fn call(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        for attempt in 0.. {
            let xid = self.xid(0);
            let body = compound_body(Some(&self.sequence(0, true)), &ops)?;
            let rec = encode_call(xid, &self.cred, &body, 0);
            let res = self.roundtrip(xid, &rec)?;
            let seq_ok = matches!(
                res.resarray.first(),
                Some(nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(_)))
            );
            if seq_ok {
                self.seqids[0] = self.seqids[0].wrapping_add(1);
            }
            // DELAY: busy; GRACE: a freshly restarted server still waiting
            // for reclaims. Both mean "try again shortly".
            let later = matches!(
                res.status,
                nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_GRACE
            );
            if later && attempt < 500 {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if !seq_ok {
                return Err(bad(format!("SEQUENCE failed: {:?}", res.status)));
            }
            return Ok(res);
        }
        unreachable!("the retry loop returns")
    }

    /// Like [`Session::call`], but any failing operation is an error.
    pub fn call_ok(&mut self, what: &str, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        let res = self.call(ops)?;
        if let Some((i, st)) = first_error(&res) {
            return Err(bad(format!("{what}: operation {i} failed with {st:?}")));
        }
        Ok(res)
    }

    fn establish(&mut self, slots: u32, owner: &[u8]) -> io::Result<()> {
        let r = self.call_raw(vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
            eia_clientowner: client_owner4 {
                co_verifier: boot_verifier(),
                co_ownerid: owner.to_vec(),
            },
            eia_flags: EXCHGID4_FLAG_USE_NON_PNFS,
            eia_state_protect: state_protect4_a::SP4_NONE,
            eia_client_impl_id: vec![],
        })])?;
        let Some(nfs_resop4::OP_EXCHANGE_ID(EXCHANGE_ID4res::NFS4_OK(ok))) = r.resarray.first()
        else {
            return Err(bad(format!("EXCHANGE_ID failed: {:?}", r.status)));
        };
        self.clientid = ok.eir_clientid;
        let fore = channel_attrs4 {
            ca_headerpadsize: 0,
            // A 1 MiB WRITE or READ plus its headers.
            ca_maxrequestsize: (1 << 20) + (64 << 10),
            ca_maxresponsesize: (1 << 20) + (64 << 10),
            ca_maxresponsesize_cached: 64 << 10,
            ca_maxoperations: 16,
            ca_maxrequests: slots,
            ca_rdma_ird: vec![],
        };
        let back = channel_attrs4 {
            ca_maxrequestsize: 4096,
            ca_maxresponsesize: 4096,
            ca_maxresponsesize_cached: 0,
            ca_maxoperations: 2,
            ca_maxrequests: 1,
            ..fore.clone()
        };
        let r = self.call_raw(vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
            csa_clientid: self.clientid,
            csa_sequence: ok.eir_sequenceid,
            // No back channel: the benchmark never wants callbacks.
            csa_flags: 0,
            csa_fore_chan_attrs: fore,
            csa_back_chan_attrs: back,
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: vec![callback_sec_parms4::AUTH_NONE],
        })])?;
        let Some(nfs_resop4::OP_CREATE_SESSION(CREATE_SESSION4res::NFS4_OK(ok))) =
            r.resarray.first()
        else {
            return Err(bad(format!("CREATE_SESSION failed: {:?}", r.status)));
        };
        let attrs = &ok.csr_fore_chan_attrs;
        self.sessionid = ok.csr_sessionid;
        self.seqids = vec![1; attrs.ca_maxrequests.clamp(1, slots) as usize];
        self.max_request = attrs.ca_maxrequestsize;
        self.max_response = attrs.ca_maxresponsesize;
        self.call_ok(
            "RECLAIM_COMPLETE",
            vec![nfs_argop4::OP_RECLAIM_COMPLETE(RECLAIM_COMPLETE4args {
                rca_one_fs: false,
            })],
        )?;
        Ok(())
    }

    /// Renews the lease (a SEQUENCE-only compound).
    pub fn renew(&mut self) -> io::Result<()> {
        self.call(vec![]).map(|_| ())
    }

    /// DESTROY_SESSION + DESTROY_CLIENTID, so that the server frees the
    /// client's state now rather than at lease expiry (it would otherwise
    /// count in the next run's memory figures).
    pub fn destroy(mut self) -> io::Result<()> {
        let r = self.call_raw(vec![nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
            dsa_sessionid: self.sessionid,
        })])?;
        if r.status != nfsstat4::NFS4_OK {
            return Err(bad(format!("DESTROY_SESSION failed: {:?}", r.status)));
        }
        let r = self.call_raw(vec![nfs_argop4::OP_DESTROY_CLIENTID(
            DESTROY_CLIENTID4args {
                dca_clientid: self.clientid,
            },
        )])?;
        if r.status != nfsstat4::NFS4_OK {
            return Err(bad(format!("DESTROY_CLIENTID failed: {:?}", r.status)));
        }
        Ok(())
    }
}

/// A verifier that differs between runs of the generator, so that a server
/// still holding a previous run's client treats this one as a new instance.
fn boot_verifier() -> verifier4 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id()) << 32).to_be_bytes()
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
    fn write_payload_sent_apart_makes_a_valid_call() {
        let payload = b"hello";
        let ops = vec![nfs_argop4::OP_WRITE(WRITE4args {
            stateid: stateid4::default(),
            offset: 7,
            stable: stable_how4::UNSTABLE4,
            data: Vec::new(),
        })];
        let body = compound_body(None, &ops).expect("encodes");
        let mut rec = encode_call(42, &Credential::None, &body, payload.len());
        rec.extend_from_slice(payload);
        rec.extend_from_slice(&[0; 3][..pad(payload.len())]);
        let Message::Call(call) = rpc::parse(&rec) else {
            panic!("not a call")
        };
        assert_eq!(call.xid, 42);
        let args: COMPOUND4args = nfs4d_xdr::from_bytes(call.args).expect("whole record decodes");
        match &args.argarray[..] {
            [nfs_argop4::OP_WRITE(w)] => assert_eq!((w.offset, &w.data[..]), (7, &payload[..])),
            other => panic!("unexpected {other:?}"),
        }
    }
}
