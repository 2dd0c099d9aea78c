//! The NFSv4 client engine: one connection to a server (over any
//! [`Transport`]), its client id, and for 4.1/4.2 its session with a
//! fore-channel slot table. Calls are made here one at a time (slot 0,
//! blocking); [`crate::pipeline`] keeps every slot busy on the same client.
//!
//! The client speaks to any NFSv4 server (nfs4d or another). It builds
//! COMPOUNDs from the generated types and leaves the request mostly to
//! the caller: tests steer sequence ids, credentials and raw bytes
//! themselves to provoke the server's error paths.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::{self, Credential, Message};

use crate::transport::{Tcp, Transport};
use crate::wire::{self, bad, PROC_COMPOUND};

/// Low bits of an xid that name the slot the call was sent on, so that a
/// pipelined reply finds its slot without a lookup.
pub const SLOT_BITS: u32 = 10;
/// Most fore-channel slots a client uses.
pub const MAX_SLOTS: u32 = 1 << SLOT_BITS;

/// The request and reply size a session asks for: a 1 MiB WRITE or READ
/// plus its headers. Replies that large must pass the transport.
const MAX_IO_RECORD: u32 = (1 << 20) + (64 << 10);
const _: () = assert!(MAX_IO_RECORD as usize <= crate::transport::MAX_RECORD);

/// How long a blocking call waits for its reply by default: a server that
/// stops answering fails the test instead of hanging it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`Client::compound_retrying`] waits out NFS4ERR_DELAY and
/// NFS4ERR_GRACE: about 10 s in all.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
const RETRIES: u32 = 500;

/// A client: one connection, one client id, at most one session.
pub struct Client {
    pub(crate) transport: Box<dyn Transport>,
    /// Counter in the high bits of xids.
    xid: u32,
    /// Credential sent with every call.
    pub cred: Credential,
    /// Minor version of COMPOUNDs.
    pub minor: u32,
    /// Client id (4.0 or 4.1).
    pub clientid: clientid4,
    /// 4.1 session id, once created: COMPOUNDs then start with SEQUENCE.
    pub session: Option<sessionid4>,
    /// Next sequence id of each fore-channel slot; its length is the
    /// number of slots the server granted (1 before a session exists).
    pub seqids: Vec<u32>,
    /// Largest request and reply the server accepts on the session.
    pub max_request: u32,
    pub max_response: u32,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Back-channel operations the server sent, in order (CB_SEQUENCE
    /// left out).
    pub callbacks: Vec<nfs_cb_argop4>,
    /// What CB_GETATTR answers: (size, change). `None`: NFS4ERR_BADHANDLE.
    pub cb_attrs: Option<(u64, u64)>,
}

/// How [`Client::establish41_with`] sets up the client and its session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Fore-channel slots to ask for (the server may grant fewer; at most
    /// [`MAX_SLOTS`]).
    pub slots: u32,
    /// Make this connection the session's back channel too
    /// (CREATE_SESSION4_FLAG_CONN_BACK_CHAN), so the server can send
    /// callbacks and grant delegations.
    pub back_channel: bool,
    /// EXCHANGE_ID's `eia_flags`.
    pub exchange_flags: u32,
    /// EXCHANGE_ID's `co_verifier`: the client's boot instance. The same
    /// owner with another verifier is a rebooted client whose earlier
    /// state the server drops (RFC 8881 §2.4).
    pub verifier: verifier4,
    /// Implementation name announced in `eia_client_impl_id` (servers may
    /// adapt to known clients; the Linux kernel sends "Linux <release> …").
    pub impl_name: Option<String>,
    /// Send RECLAIM_COMPLETE once the session exists. `false` for a client
    /// that is about to reclaim state after a server restart.
    pub reclaim_complete: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            slots: 8,
            back_channel: false,
            exchange_flags: 0,
            verifier: [7; 8],
            impl_name: None,
            reclaim_complete: true,
        }
    }
}

impl SessionOptions {
    /// The default options, without RECLAIM_COMPLETE: a client that is
    /// about to reclaim state after a server restart.
    pub fn reclaiming() -> Self {
        SessionOptions {
            reclaim_complete: false,
            ..SessionOptions::default()
        }
    }
}

/// The first xid counter of a connection: different for every connection
/// and run. A server's duplicate request cache recognises retransmissions
/// by xid (RFC 5531 §9; nfs4d's 4.0 cache by address, xid and arguments),
/// so a client that restarted at the same xid on every reconnection would
/// have new requests answered from the cache as if retransmitted.
fn initial_xid() -> u32 {
    static CONNECTIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    (now ^ std::process::id().rotate_left(16)).wrapping_add(n.wrapping_mul(0x9e37_79b9))
}

impl Client {
    /// Connects over TCP as root with AUTH_SYS.
    pub fn connect(addr: SocketAddr, minor: u32) -> io::Result<Client> {
        Ok(Client::over(Box::new(Tcp::connect(addr)?), minor))
    }

    /// A client over a TCP connection the caller made (e.g. from a chosen
    /// source address or port), as root with AUTH_SYS.
    pub fn from_stream(stream: TcpStream, minor: u32) -> io::Result<Client> {
        Ok(Client::over(Box::new(Tcp::new(stream)?), minor))
    }

    /// A client over any transport, as root with AUTH_SYS.
    pub fn over(transport: Box<dyn Transport>, minor: u32) -> Client {
        Client {
            transport,
            xid: initial_xid(),
            cred: Credential::Sys {
                stamp: 1,
                machine: "nfs4d-test".into(),
                uid: 0,
                gid: 0,
                gids: vec![],
            },
            minor,
            clientid: 0,
            session: None,
            seqids: vec![1],
            max_request: 0,
            max_response: 0,
            timeout: DEFAULT_TIMEOUT,
            callbacks: Vec::new(),
            cb_attrs: None,
        }
    }

    /// A fresh xid for a call on `slot`.
    pub fn next_xid(&mut self, slot: usize) -> u32 {
        self.xid = self.xid.wrapping_add(1);
        (self.xid << SLOT_BITS) | (slot as u32 & (MAX_SLOTS - 1))
    }

    /// Sends raw bytes (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transport.send(&[bytes])
    }

    /// Reads one record (with its 4-byte record mark), waiting at most
    /// [`Client::timeout`].
    pub fn recv_record(&mut self) -> io::Result<Vec<u8>> {
        self.transport.recv(self.timeout)
    }

    /// Calls procedure `proc_` of NFSv4; returns the reply record.
    /// Back-channel calls the server makes meanwhile are answered
    /// ([`Client::answer_callback`]).
    pub fn call(&mut self, proc_: u32, args: &[u8]) -> io::Result<Vec<u8>> {
        let xid = self.next_xid(0);
        let rec = wire::encode_call(xid, &self.cred, proc_, args, 0);
        self.transport.send(&[&rec])?;
        loop {
            let record = self.recv_record()?;
            if self.take_record(&record)? == Some(xid) {
                return Ok(record);
            }
        }
    }

    /// The xid of `record` if it is a reply; a back-channel call is
    /// answered, anything else passed over.
    fn take_record(&mut self, record: &[u8]) -> io::Result<Option<u32>> {
        match rpc::parse(record) {
            Message::Reply(r) => Ok(Some(r.xid)),
            Message::Call(c) => {
                let out = self.answer_callback(c.xid, c.proc_, c.args);
                self.transport.send(&[&out])?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Answers back-channel calls arriving within `wait` (a client that
    /// is not sending requests still has to answer recalls).
    pub fn serve_callbacks(&mut self, wait: Duration) -> io::Result<()> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.transport.recv(left) {
                // No call of ours is outstanding: only calls matter.
                Ok(rec) => {
                    self.take_record(&rec)?;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a COMPOUND of exactly these operations.
    pub fn compound_raw(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        self.send_compound(None, &ops)
    }

    fn send_compound(
        &mut self,
        seq: Option<&nfs_argop4>,
        ops: &[nfs_argop4],
    ) -> io::Result<COMPOUND4res> {
        let body = wire::compound_body(self.minor, seq, ops)?;
        let reply = self.call(PROC_COMPOUND, &body)?;
        wire::compound_result(&reply)
    }

    /// Sends a COMPOUND, prefixed with SEQUENCE on slot 0 when a 4.1
    /// session exists. The slot's sequence id advances when the server
    /// answered the SEQUENCE with success (RFC 8881 §2.10.6.1); a test
    /// replays or skips sequence ids by setting `seqids[0]`.
    pub fn compound(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        self.compound_on_slot0(&ops)
    }

    fn compound_on_slot0(&mut self, ops: &[nfs_argop4]) -> io::Result<COMPOUND4res> {
        if self.session.is_none() {
            return self.send_compound(None, ops);
        }
        let seq = self.sequence(0, true);
        let res = self.send_compound(Some(&seq), ops)?;
        self.sequenced(0, &res);
        Ok(res)
    }

    /// The SEQUENCE operation for the next call on `slot` (of the session,
    /// once there is one).
    pub fn sequence(&self, slot: usize, cache: bool) -> nfs_argop4 {
        nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: self.session.unwrap_or_default(),
            sa_sequenceid: self.seqids[slot],
            sa_slotid: slot as u32,
            sa_highest_slotid: self.seqids.len() as u32 - 1,
            sa_cachethis: cache,
        })
    }

    /// Advances `slot`'s sequence id if `res` starts with a successful
    /// SEQUENCE; returns whether it did.
    pub(crate) fn sequenced(&mut self, slot: usize, res: &COMPOUND4res) -> bool {
        let ok = matches!(
            res.resarray.first(),
            Some(nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(_)))
        );
        if ok {
            self.seqids[slot] = self.seqids[slot].wrapping_add(1);
        }
        ok
    }

    /// Like [`Client::compound`], but resent (for up to ~10 s) while the
    /// server answers NFS4ERR_DELAY (busy) or NFS4ERR_GRACE (freshly
    /// restarted, waiting for reclaims); a failed SEQUENCE is an error.
    pub fn compound_retrying(&mut self, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        let mut attempt = 0;
        loop {
            let res = self.compound_on_slot0(&ops)?;
            let later = matches!(
                res.status,
                nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_GRACE
            );
            if later && attempt < RETRIES {
                attempt += 1;
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            let seq_failed = self.session.is_some()
                && !matches!(
                    res.resarray.first(),
                    Some(nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(_)))
                );
            if seq_failed {
                return Err(bad(format!("SEQUENCE failed: {:?}", res.status)));
            }
            return Ok(res);
        }
    }

    /// Like [`Client::compound_retrying`], but any failing operation is an
    /// error naming `what`.
    pub fn compound_ok(&mut self, what: &str, ops: Vec<nfs_argop4>) -> io::Result<COMPOUND4res> {
        let res = self.compound_retrying(ops)?;
        crate::ops::check(&res, what).map_err(bad)?;
        Ok(res)
    }

    /// EXCHANGE_ID + CREATE_SESSION + RECLAIM_COMPLETE (4.1/4.2) with the
    /// default [`SessionOptions`].
    pub fn establish41(&mut self, owner: &[u8]) -> io::Result<()> {
        self.establish41_with(owner, &SessionOptions::default())
    }

    /// EXCHANGE_ID + CREATE_SESSION (+ RECLAIM_COMPLETE) as `o` says.
    pub fn establish41_with(&mut self, owner: &[u8], o: &SessionOptions) -> io::Result<()> {
        let r = self.compound_raw(vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
            eia_clientowner: client_owner4 {
                co_verifier: o.verifier,
                co_ownerid: owner.to_vec(),
            },
            eia_flags: o.exchange_flags,
            eia_state_protect: state_protect4_a::SP4_NONE,
            eia_client_impl_id: o
                .impl_name
                .iter()
                .map(|n| nfs_impl_id4 {
                    nii_domain: b"nfs4d.test".to_vec(),
                    nii_name: n.as_bytes().to_vec(),
                    nii_date: nfstime4 {
                        seconds: 0,
                        nseconds: 0,
                    },
                })
                .collect(),
        })])?;
        let Some(nfs_resop4::OP_EXCHANGE_ID(EXCHANGE_ID4res::NFS4_OK(ok))) = r.resarray.first()
        else {
            return Err(bad(format!("EXCHANGE_ID failed: {:?}", r.status)));
        };
        self.clientid = ok.eir_clientid;
        let slots = o.slots.clamp(1, MAX_SLOTS);
        let fore = channel_attrs4 {
            ca_headerpadsize: 0,
            ca_maxrequestsize: MAX_IO_RECORD,
            ca_maxresponsesize: MAX_IO_RECORD,
            ca_maxresponsesize_cached: 64 << 10,
            ca_maxoperations: 16,
            ca_maxrequests: slots,
            ca_rdma_ird: vec![],
        };
        let back = channel_attrs4 {
            ca_maxrequests: 8,
            ..fore.clone()
        };
        let r = self.compound_raw(vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
            csa_clientid: self.clientid,
            csa_sequence: ok.eir_sequenceid,
            csa_flags: if o.back_channel {
                CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            } else {
                0
            },
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
        self.session = Some(ok.csr_sessionid);
        self.seqids = vec![1; attrs.ca_maxrequests.clamp(1, slots) as usize];
        self.max_request = attrs.ca_maxrequestsize;
        self.max_response = attrs.ca_maxresponsesize;
        if o.reclaim_complete {
            self.reclaim_complete()?;
        }
        Ok(())
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

    /// SETCLIENTID + SETCLIENTID_CONFIRM (4.0).
    pub fn establish40(&mut self, owner: &[u8]) -> io::Result<()> {
        let r = self.compound_raw(vec![crate::ops::setclientid(owner, [3; 8])])?;
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

    /// 4.0: OPEN_CONFIRM of a new open owner's first open of `name` in the
    /// root; the confirmed stateid.
    pub fn open_confirm(&mut self, name: &str, sid: &stateid4, seqid: u32) -> stateid4 {
        let r = self
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                crate::ops::lookup(name),
                nfs_argop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4args {
                    open_stateid: sid.clone(),
                    seqid,
                }),
            ])
            .expect("OPEN_CONFIRM sent");
        match r.resarray.last() {
            Some(nfs_resop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4res::NFS4_OK(ok))) => {
                ok.open_stateid.clone()
            }
            _ => panic!("OPEN_CONFIRM {r:?}"),
        }
    }

    /// Renews the lease: a SEQUENCE-only COMPOUND in a session, RENEW
    /// (4.0) otherwise.
    pub fn renew(&mut self) -> io::Result<()> {
        let ops = if self.session.is_some() {
            vec![]
        } else {
            vec![nfs_argop4::OP_RENEW(RENEW4args {
                clientid: self.clientid,
            })]
        };
        self.compound_ok("lease renewal", ops).map(|_| ())
    }

    /// DESTROY_SESSION + DESTROY_CLIENTID (4.1), so that the server frees
    /// the client's state now rather than at lease expiry.
    pub fn destroy(&mut self) -> io::Result<()> {
        let Some(sid) = self.session.take() else {
            return Err(bad("no session to destroy"));
        };
        let r = self.compound_raw(vec![nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
            dsa_sessionid: sid,
        })])?;
        if r.status != nfsstat4::NFS4_OK {
            return Err(bad(format!("DESTROY_SESSION failed: {:?}", r.status)));
        }
        let r = self.compound_raw(vec![nfs_argop4::OP_DESTROY_CLIENTID(
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
