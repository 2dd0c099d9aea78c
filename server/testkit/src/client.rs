//! A small synchronous NFSv4 client over one TCP connection, used by the
//! integration tests and tools of this project to speak to any NFSv4
//! server (nfs4d or another). It builds COMPOUNDs from the generated types
//! and keeps 4.1 session sequencing (slot 0) or 4.0 client ids.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nfs4d_xdr::codec::Unpack;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::Reassembler;
use nfs4d_xdr::rpc::{self, Credential, Message};

/// NFS program and version.
const PROG: u32 = 100003;
const VERS: u32 = 4;

/// A client connection.
pub struct Client {
    stream: TcpStream,
    ra: Reassembler,
    pending: Vec<u8>,
    xid: u32,
    /// Credential sent with every call.
    pub cred: Credential,
    /// Minor version of COMPOUNDs.
    pub minor: u32,
    /// 4.1 session id, once created.
    pub session: Option<sessionid4>,
    /// Next SEQUENCE sequence id for slot 0.
    pub seq: u32,
    /// Client id (4.0 or 4.1).
    pub clientid: clientid4,
    /// Back-channel operations the server sent, in order (CB_SEQUENCE
    /// left out).
    pub callbacks: Vec<nfs_cb_argop4>,
    /// What CB_GETATTR answers: (size, change). `None`: NFS4ERR_BADHANDLE.
    pub cb_attrs: Option<(u64, u64)>,
    /// Ask for a back channel in CREATE_SESSION.
    back_channel: bool,
}

/// The first xid of a connection: different for every connection and
/// run. A server's duplicate request cache recognises retransmissions by
/// xid (RFC 5531 §9; nfs4d's 4.0 cache by address, xid and arguments), so
/// a client that restarted at the same xid on every reconnection would
/// have new requests answered from the cache as if retransmitted.
fn initial_xid() -> u32 {
    static CONNECTIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    (now ^ std::process::id().rotate_left(16)).wrapping_add(n.wrapping_mul(0x9e37_79b9))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Client {
    /// Connects as root with AUTH_SYS.
    pub fn connect(addr: SocketAddr, minor: u32) -> io::Result<Client> {
        Self::from_stream(TcpStream::connect(addr)?, minor)
    }

    /// A client over a connection the caller made (e.g. from a chosen
    /// source address or port), as root with AUTH_SYS.
    pub fn from_stream(stream: TcpStream, minor: u32) -> io::Result<Client> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            ra: Reassembler::new(64 << 20),
            pending: Vec::new(),
            xid: initial_xid(),
            cred: Credential::Sys {
                stamp: 1,
                machine: "nfs4d-test".into(),
                uid: 0,
                gid: 0,
                gids: vec![],
            },
            minor,
            session: None,
            seq: 1,
            clientid: 0,
            callbacks: Vec::new(),
            cb_attrs: None,
            back_channel: false,
        })
    }

    /// Sends raw bytes (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one record (with its 4-byte header).
    pub fn recv_record(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if !self.pending.is_empty() {
                let mut input: &[u8] = &self.pending;
                let got = self.ra.feed(&mut input).map_err(|e| bad(e.to_string()))?;
                let used = self.pending.len() - input.len();
                self.pending.drain(..used);
                if let Some(rec) = got {
                    return Ok(rec);
                }
            }
            let mut buf = vec![0u8; 256 << 10];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Calls a procedure; returns the reply record. Back-channel calls the
    /// server makes meanwhile are answered ([`Client::answer_callback`]).
    pub fn call(&mut self, proc_: u32, args: &[u8]) -> io::Result<Vec<u8>> {
        self.xid = self.xid.wrapping_add(1);
        let xid = self.xid;
        let rec = rpc::call_record(xid, PROG, VERS, proc_, &self.cred, args);
        self.stream.write_all(&rec)?;
        loop {
            let reply = self.recv_record()?;
            match rpc::parse(&reply) {
                Message::Reply(r) if r.xid == xid => return Ok(reply),
                Message::Call(c) => {
                    let out = self.answer_callback(c.xid, c.proc_, c.args);
                    self.stream.write_all(&out)?;
                }
                _ => {}
            }
        }
    }

    /// Answers back-channel calls arriving within `wait` (a client that
    /// is not sending requests still has to answer recalls).
    pub fn serve_callbacks(&mut self, wait: Duration) -> io::Result<()> {
        let until = std::time::Instant::now() + wait;
        let old = self.stream.read_timeout()?;
        let result = loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break Ok(());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.recv_record() {
                Ok(rec) => {
                    if let Message::Call(c) = rpc::parse(&rec) {
                        let out = self.answer_callback(c.xid, c.proc_, c.args);
                        self.stream.write_all(&out)?;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break Ok(())
                }
                Err(e) => break Err(e),
            }
        };
        self.stream.set_read_timeout(old)?;
        result
    }

    /// The reply record to a back-channel call: CB_NULL succeeds; in a
    /// CB_COMPOUND, CB_SEQUENCE is echoed, CB_RECALL accepted and
    /// CB_GETATTR answered from `cb_attrs`. Every operation is recorded in
    /// `callbacks`.
    pub fn answer_callback(&mut self, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rpc::begin_success_reply(xid, &mut out);
        if proc_ == 1 {
            let res = match CB_COMPOUND4args::unpack(&mut io::Cursor::new(args)) {
                Ok((a, _)) => self.cb_compound(a),
                Err(_) => CB_COMPOUND4res {
                    status: nfsstat4::NFS4ERR_BADXDR,
                    tag: Vec::new(),
                    resarray: Vec::new(),
                },
            };
            out.extend_from_slice(&nfs4d_xdr::to_bytes(&res));
        }
        rpc::finish_record(&mut out);
        out
    }

    fn cb_compound(&mut self, a: CB_COMPOUND4args) -> CB_COMPOUND4res {
        let mut resarray = Vec::new();
        let mut status = nfsstat4::NFS4_OK;
        for op in a.argarray {
            let res = match &op {
                nfs_cb_argop4::OP_CB_SEQUENCE(s) => {
                    nfs_cb_resop4::OP_CB_SEQUENCE(CB_SEQUENCE4res::NFS4_OK(CB_SEQUENCE4resok {
                        csr_sessionid: s.csa_sessionid,
                        csr_sequenceid: s.csa_sequenceid,
                        csr_slotid: s.csa_slotid,
                        csr_highest_slotid: s.csa_highest_slotid,
                        csr_target_highest_slotid: s.csa_highest_slotid,
                    }))
                }
                nfs_cb_argop4::OP_CB_RECALL(_) => nfs_cb_resop4::OP_CB_RECALL(CB_RECALL4res {
                    status: nfsstat4::NFS4_OK,
                }),
                nfs_cb_argop4::OP_CB_RECALL_ANY(_) => {
                    nfs_cb_resop4::OP_CB_RECALL_ANY(CB_RECALL_ANY4res {
                        crar_status: nfsstat4::NFS4_OK,
                    })
                }
                nfs_cb_argop4::OP_CB_GETATTR(_) => match self.cb_attrs {
                    Some((size, change)) => {
                        let mut vals = change.to_be_bytes().to_vec();
                        vals.extend_from_slice(&size.to_be_bytes());
                        nfs_cb_resop4::OP_CB_GETATTR(CB_GETATTR4res::NFS4_OK(CB_GETATTR4resok {
                            obj_attributes: fattr4 {
                                attrmask: vec![(1 << FATTR4_CHANGE) | (1 << FATTR4_SIZE)],
                                attr_vals: vals,
                            },
                        }))
                    }
                    None => {
                        status = nfsstat4::NFS4ERR_BADHANDLE;
                        nfs_cb_resop4::OP_CB_GETATTR(CB_GETATTR4res::default(status))
                    }
                },
                _ => {
                    status = nfsstat4::NFS4ERR_NOTSUPP;
                    nfs_cb_resop4::OP_CB_ILLEGAL(CB_ILLEGAL4res { status })
                }
            };
            if !matches!(op, nfs_cb_argop4::OP_CB_SEQUENCE(_)) {
                self.callbacks.push(op);
            }
            resarray.push(res);
            if status != nfsstat4::NFS4_OK {
                break;
            }
        }
        CB_COMPOUND4res {
            status,
            tag: a.tag,
            resarray,
        }
    }

    /// The results part of a reply record (after the RPC header).
    pub fn results(reply: &[u8]) -> io::Result<&[u8]> {
        match rpc::parse(reply) {
            Message::Reply(r) => r.results.ok_or_else(|| bad("call not accepted")),
            _ => Err(bad("not a reply")),
        }
    }

    /// Sends a COMPOUND of exactly these operations.
    pub fn compound_raw(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        let args = COMPOUND4args {
            tag: Vec::new(),
            minorversion: self.minor,
            argarray: ops,
        };
        let bytes = nfs4d_xdr::try_to_bytes(&args).map_err(|e| bad(e.to_string()))?;
        let reply = self.call(1, &bytes)?;
        let res = Self::results(&reply)?;
        let (r, _) =
            COMPOUND4res::unpack(&mut io::Cursor::new(res)).map_err(|e| bad(e.to_string()))?;
        Ok(r)
    }

    /// Sends a COMPOUND, prefixed with SEQUENCE when a 4.1 session exists.
    pub fn compound(&mut self, mut ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        if let Some(sid) = self.session {
            ops.insert(
                0,
                nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
                    sa_sessionid: sid,
                    sa_sequenceid: self.seq,
                    sa_slotid: 0,
                    sa_highest_slotid: 0,
                    sa_cachethis: true,
                }),
            );
            self.seq = self.seq.wrapping_add(1);
        }
        self.compound_raw(ops)
    }

    /// EXCHANGE_ID + CREATE_SESSION (4.1/4.2).
    pub fn establish41(&mut self, owner: &[u8]) -> io::Result<()> {
        self.establish41_as(owner, None)
    }

    /// EXCHANGE_ID + CREATE_SESSION (4.1/4.2), announcing implementation
    /// name `impl_name` in EXCHANGE_ID's `eia_client_impl_id` (servers may
    /// adapt to known clients; the Linux kernel sends "Linux <release> …").
    pub fn establish41_as(&mut self, owner: &[u8], impl_name: Option<&str>) -> io::Result<()> {
        self.session41(owner, impl_name)?;
        self.reclaim_complete()
    }

    /// EXCHANGE_ID + CREATE_SESSION without RECLAIM_COMPLETE: a client
    /// that is about to reclaim state after a server restart.
    pub fn establish41_reclaiming(&mut self, owner: &[u8]) -> io::Result<()> {
        self.session41(owner, None)
    }

    /// Like [`Client::establish41`], with this connection also the
    /// session's back channel (CREATE_SESSION4_FLAG_CONN_BACK_CHAN), so the
    /// server can send callbacks and grant delegations.
    pub fn establish41_with_callbacks(&mut self, owner: &[u8]) -> io::Result<()> {
        self.back_channel = true;
        self.establish41(owner)
    }

    /// [`Client::establish41_reclaiming`] with a back channel.
    pub fn establish41_reclaiming_with_callbacks(&mut self, owner: &[u8]) -> io::Result<()> {
        self.back_channel = true;
        self.session41(owner, None)
    }

    /// RECLAIM_COMPLETE (4.1): the client has reclaimed all it will.
    pub fn reclaim_complete(&mut self) -> io::Result<()> {
        let r = self.compound(vec![nfs_argop4::OP_RECLAIM_COMPLETE(
            RECLAIM_COMPLETE4args { rca_one_fs: false },
        )])?;
        if r.status != nfsstat4::NFS4_OK {
            return Err(bad(format!("RECLAIM_COMPLETE failed: {:?}", r.status)));
        }
        Ok(())
    }

    fn session41(&mut self, owner: &[u8], impl_name: Option<&str>) -> io::Result<()> {
        let r = self.compound_raw(vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
            eia_clientowner: client_owner4 {
                co_verifier: [7; 8],
                co_ownerid: owner.to_vec(),
            },
            eia_flags: 0,
            eia_state_protect: state_protect4_a::SP4_NONE,
            eia_client_impl_id: impl_name
                .map(|n| nfs_impl_id4 {
                    nii_domain: b"nfs4d.test".to_vec(),
                    nii_name: n.as_bytes().to_vec(),
                    nii_date: nfstime4 {
                        seconds: 0,
                        nseconds: 0,
                    },
                })
                .into_iter()
                .collect(),
        })])?;
        let Some(nfs_resop4::OP_EXCHANGE_ID(EXCHANGE_ID4res::NFS4_OK(ok))) = r.resarray.first()
        else {
            return Err(bad(format!("EXCHANGE_ID failed: {:?}", r.status)));
        };
        self.clientid = ok.eir_clientid;
        let seq = ok.eir_sequenceid;
        let chan = channel_attrs4 {
            ca_headerpadsize: 0,
            ca_maxrequestsize: 1 << 20 | 4096,
            ca_maxresponsesize: 1 << 20 | 4096,
            ca_maxresponsesize_cached: 64 << 10,
            ca_maxoperations: 16,
            ca_maxrequests: 8,
            ca_rdma_ird: vec![],
        };
        let r = self.compound_raw(vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
            csa_clientid: self.clientid,
            csa_sequence: seq,
            csa_flags: if self.back_channel {
                CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            } else {
                0
            },
            csa_fore_chan_attrs: chan.clone(),
            csa_back_chan_attrs: chan,
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: vec![callback_sec_parms4::AUTH_NONE],
        })])?;
        let Some(nfs_resop4::OP_CREATE_SESSION(CREATE_SESSION4res::NFS4_OK(ok))) =
            r.resarray.first()
        else {
            return Err(bad(format!("CREATE_SESSION failed: {:?}", r.status)));
        };
        self.session = Some(ok.csr_sessionid);
        self.seq = 1;
        Ok(())
    }

    /// SETCLIENTID + SETCLIENTID_CONFIRM (4.0).
    pub fn establish40(&mut self, owner: &[u8]) -> io::Result<()> {
        let r = self.compound_raw(vec![nfs_argop4::OP_SETCLIENTID(SETCLIENTID4args {
            client: nfs_client_id4 {
                verifier: [3; 8],
                id: owner.to_vec(),
            },
            callback: cb_client4 {
                cb_program: 0x4000_0000,
                cb_location: netaddr4 {
                    na_r_netid: b"tcp".to_vec(),
                    na_r_addr: b"127.0.0.1.0.0".to_vec(),
                },
            },
            callback_ident: 1,
        })])?;
        let Some(nfs_resop4::OP_SETCLIENTID(SETCLIENTID4res::NFS4_OK(ok))) = r.resarray.first()
        else {
            return Err(bad(format!("SETCLIENTID failed: {:?}", r.status)));
        };
        let (id, verf) = (ok.clientid, ok.setclientid_confirm);
        let r = self.compound_raw(vec![nfs_argop4::OP_SETCLIENTID_CONFIRM(
            SETCLIENTID_CONFIRM4args {
                clientid: id,
                setclientid_confirm: verf,
            },
        )])?;
        if r.status != nfsstat4::NFS4_OK {
            return Err(bad(format!("SETCLIENTID_CONFIRM failed: {:?}", r.status)));
        }
        self.clientid = id;
        Ok(())
    }
}

/// Shorthand for a LOOKUP argument.
pub fn lookup(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_LOOKUP(LOOKUP4args {
        objname: name.as_bytes().to_vec(),
    })
}

/// Shorthand for GETATTR of the given attribute numbers.
pub fn getattr(attrs: &[u32]) -> nfs_argop4 {
    let mut bm: Vec<u32> = Vec::new();
    for &a in attrs {
        let w = (a / 32) as usize;
        if bm.len() <= w {
            bm.resize(w + 1, 0);
        }
        bm[w] |= 1 << (a % 32);
    }
    nfs_argop4::OP_GETATTR(GETATTR4args { attr_request: bm })
}
