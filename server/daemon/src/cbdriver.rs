//! The callback driver: carries out the callbacks the state table asks
//! for ([`CbWork`]) — CB_RECALL, CB_GETATTR and the 4.0 CB_NULL probe —
//! over the client's callback path:
//!
//! * 4.1/4.2: the session's back channel, a connection the client opened
//!   (RFC 8881 §2.10.3.1), with CB_SEQUENCE first in every CB_COMPOUND;
//! * 4.0: a connection the server opens to the address the client gave in
//!   SETCLIENTID (RFC 7530 §3.3.5, §16.33). The server connects only when
//!   that address is on the host the SETCLIENTID came from: a client may
//!   not point the server at a third machine (docs/delegations.md).
//!
//! Every callback is bounded by [`CB_TIMEOUT`] and at most
//! [`MAX_CALLBACKS`] run at once; a transport failure marks the client's
//! callback path down, which the client sees as SEQ4_STATUS_CB_PATH_DOWN
//! (4.1) or NFS4ERR_CB_PATH_DOWN from RENEW (4.0).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nfs4d_xdr::codec::Unpack;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::Reassembler;
use nfs4d_xdr::rpc::{self, Credential, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use crate::callback::{CbChannel, CbError};
use nfs4d_core::server::Server;
use nfs4d_core::state::deleg::{CallbackSink, CbWork, CB_QUEUE};
use nfs4d_core::state::session::BackChannel;
use nfs4d_core::state::{ClientId, SessionId};

/// How long one callback may take, connection set-up included.
pub const CB_TIMEOUT: Duration = Duration::from_secs(5);
/// Callbacks in flight at once.
pub const MAX_CALLBACKS: usize = 64;
/// Largest callback reply accepted on a 4.0 callback connection.
const MAX_CB_RECORD: usize = 1 << 20;
/// Tries of a back-channel probe the client answers with "not yet"
/// (NFS4ERR_DELAY, NFS4ERR_BADSESSION), and the pause between them.
const PROBE_TRIES: u32 = 10;
const PROBE_PAUSE: Duration = Duration::from_millis(100);
/// 4.0 callback connections kept open (one per client).
const MAX_CB40_CONNS: usize = 4096;

const _: () = assert!(MAX_CALLBACKS <= CB_QUEUE);

/// Connection ids of 4.0 callback connections count down from here, so
/// they never equal an id of an accepted connection.
static NEXT_CB_CONN: AtomicU64 = AtomicU64::new(u64::MAX);

type Conns40 = Arc<Mutex<HashMap<ClientId, CbChannel>>>;

/// The connection endpoint behind a session's back channel: the transport
/// put a [`CbChannel`] there when the connection was bound.
fn endpoint(b: &BackChannel) -> Option<CbChannel> {
    b.endpoint.downcast_ref::<CbChannel>().cloned()
}

/// The core's callback queue: work the state table queues for the driver
/// ([`CallbackSink`]). Empty until a driver runs.
#[derive(Debug, Default)]
pub struct CbSender(Mutex<Option<mpsc::Sender<CbWork>>>);

impl CbSender {
    /// Connects the driver.
    fn attach(&self, tx: mpsc::Sender<CbWork>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }
}

impl CallbackSink for CbSender {
    fn push(&self, w: CbWork) -> bool {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(tx) => tx.try_send(w).is_ok(),
            None => false,
        }
    }
}

/// Attaches a driver to the server's callback queue and runs it, together
/// with the watcher of local leases.
pub fn start(srv: Arc<Server>, queue: &CbSender) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::channel(CB_QUEUE);
    queue.attach(tx);
    tokio::spawn(async move {
        let watcher = tokio::spawn(watch_leases(srv.clone()));
        run(srv, rx).await;
        watcher.abort();
    })
}

/// The kernel signals a lease break with SIGIO (fcntl(2) "Leases"). Once
/// SIGIO has a handler, leases may be taken; each signal, and a tick each
/// second in case signals were merged, reconciles leases and delegations
/// ([`Server::sync_leases`]). Lease work touches the backend and the state
/// lock, so it runs on the blocking pool.
async fn watch_leases(srv: Arc<Server>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigio = match signal(SignalKind::io()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGIO; local processes will not break delegations");
            return;
        }
    };
    srv.leases_watched
        .store(true, std::sync::atomic::Ordering::Release);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigio.recv() => {}
            _ = tick.tick() => {}
        }
        let s = srv.clone();
        let _ = tokio::task::spawn_blocking(move || s.sync_leases()).await;
    }
}

async fn run(srv: Arc<Server>, mut rx: mpsc::Receiver<CbWork>) {
    let limit = Arc::new(Semaphore::new(MAX_CALLBACKS));
    let conns: Conns40 = Arc::default();
    while let Some(w) = rx.recv().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let srv = srv.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            handle(&srv, &conns, w).await;
            drop(permit);
        });
    }
}

async fn handle(srv: &Arc<Server>, conns: &Conns40, w: CbWork) {
    match w {
        CbWork::Recall {
            client,
            stateid,
            fh,
        } => {
            let op = nfs_cb_argop4::OP_CB_RECALL(CB_RECALL4args {
                stateid: stateid.clone(),
                truncate: false,
                fh,
            });
            let res = compound(srv, conns, client, op).await;
            match &res {
                Ok(r) if r.status == nfsstat4::NFS4_OK => {
                    tracing::debug!(client = format_args!("{client:#x}"), "CB_RECALL delivered");
                }
                // The client answered: the path works, whatever it said.
                // An unreturned delegation is revoked after a lease period.
                Ok(r) => tracing::info!(
                    client = format_args!("{client:#x}"),
                    status = ?r.status,
                    "client refused CB_RECALL"
                ),
                Err(e) => tracing::warn!(
                    client = format_args!("{client:#x}"),
                    error = %e,
                    "CB_RECALL not delivered; callback path marked down"
                ),
            }
            srv.state
                .recall_outcome(client, Some(&stateid.other), res.is_ok());
        }
        CbWork::Getattr { client, fh, reply } => {
            let op = nfs_cb_argop4::OP_CB_GETATTR(CB_GETATTR4args {
                fh,
                attr_request: vec![(1 << FATTR4_CHANGE) | (1 << FATTR4_SIZE)],
            });
            let res = compound(srv, conns, client, op).await;
            let attrs = match &res {
                Ok(r) => r.resarray.iter().find_map(|op| match op {
                    nfs_cb_resop4::OP_CB_GETATTR(CB_GETATTR4res::NFS4_OK(ok)) => {
                        size_and_change(&ok.obj_attributes)
                    }
                    _ => None,
                }),
                Err(e) => {
                    tracing::warn!(client = format_args!("{client:#x}"), error = %e, "CB_GETATTR failed");
                    None
                }
            };
            if res.is_err() {
                srv.state.recall_outcome(client, None, false);
            }
            let _ = reply.try_send(attrs);
        }
        CbWork::RecallAny { client, keep } => {
            let op = nfs_cb_argop4::OP_CB_RECALL_ANY(CB_RECALL_ANY4args {
                craa_objects_to_keep: keep,
                craa_type_mask: vec![
                    (1 << RCA4_TYPE_MASK_RDATA_DLG) | (1 << RCA4_TYPE_MASK_WDATA_DLG),
                ],
            });
            let res = compound(srv, conns, client, op).await;
            if let Err(e) = &res {
                tracing::info!(client = format_args!("{client:#x}"), error = %e, "CB_RECALL_ANY failed");
            }
            srv.state.recall_outcome(client, None, res.is_ok());
        }
        CbWork::Probe40 { client } => {
            let up = probe40(srv, conns, client).await;
            tracing::info!(
                client = format_args!("{client:#x}"),
                up,
                "4.0 callback path probed"
            );
            srv.state.set_cb40_up(client, up);
        }
    }
}

/// Size and change from a CB_GETATTR answer: the two attributes asked
/// for, in bit order (change is bit 3, size bit 4; RFC 8881 §5.8.1).
fn size_and_change(f: &fattr4) -> Option<(u64, u64)> {
    let word = f.attrmask.first().copied().unwrap_or(0);
    let want = (1 << FATTR4_CHANGE) | (1 << FATTR4_SIZE);
    if word & want != want || f.attr_vals.len() < 16 {
        return None;
    }
    let change = u64::from_be_bytes(f.attr_vals[0..8].try_into().ok()?);
    let size = u64::from_be_bytes(f.attr_vals[8..16].try_into().ok()?);
    Some((size, change))
}

/// Where a client's callbacks go.
enum Path {
    /// A 4.1 session's back channel.
    Session {
        sid: SessionId,
        cb: CbChannel,
        program: u32,
        cred: Credential,
        minor: u32,
    },
    /// A 4.0 callback address.
    V40 {
        addr: SocketAddr,
        program: u32,
        ident: u32,
    },
}

fn path_of(srv: &Server, client: ClientId) -> Option<Path> {
    let g = srv.state.lock();
    let c = g.clients.get(&client)?;
    if c.minor == 0 {
        let cb = &c.callback;
        let addr = parse_uaddr(&cb.netid, &cb.addr)?;
        if Some(addr.ip()) != cb.peer {
            tracing::info!(
                client = format_args!("{client:#x}"),
                callback = %addr,
                peer = ?cb.peer,
                "4.0 callback address is not the client's own host; no callbacks"
            );
            return None;
        }
        return Some(Path::V40 {
            addr,
            program: cb.program,
            ident: cb.ident,
        });
    }
    // Prefer a back channel that answered its probe.
    let mut best: Option<&nfs4d_core::state::Session> = None;
    for s in c.sessions.iter().filter_map(|s| g.sessions.get(s)) {
        if s.cb.is_some() && (best.is_none() || (s.cb_up && !best.is_some_and(|b| b.cb_up))) {
            best = Some(s);
        }
    }
    let s = best?;
    Some(Path::Session {
        sid: s.id,
        cb: endpoint(s.cb.as_ref()?)?,
        program: s.cb_program,
        cred: s.cb_cred.clone(),
        minor: s.minor,
    })
}

/// A universal address (RFC 5665 §5.2.3.3/4): "h1.h2.h3.h4.p1.p2" for
/// "tcp", an IPv6 address followed by ".p1.p2" for "tcp6".
pub fn parse_uaddr(netid: &str, uaddr: &str) -> Option<SocketAddr> {
    let mut parts = uaddr.rsplitn(3, '.');
    let lo: u16 = parts.next()?.parse().ok()?;
    let hi: u16 = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    if hi > 255 || lo > 255 {
        return None;
    }
    let ip: IpAddr = match netid {
        "tcp" => IpAddr::V4(host.parse().ok()?),
        "tcp6" => IpAddr::V6(host.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, (hi << 8) | lo))
}

/// The AUTH_SYS credential of 4.0 callbacks. The Linux client's callback
/// service refuses CB_COMPOUND under AUTH_NONE.
fn cred40() -> Credential {
    Credential::Sys {
        stamp: 0,
        machine: "nfs4d".into(),
        uid: 0,
        gid: 0,
        gids: Vec::new(),
    }
}

/// One operation in a CB_COMPOUND to `client`; CB_SEQUENCE is added for
/// 4.1 sessions.
async fn compound(
    srv: &Arc<Server>,
    conns: &Conns40,
    client: ClientId,
    op: nfs_cb_argop4,
) -> Result<CB_COMPOUND4res, CbError> {
    match path_of(srv, client).ok_or(CbError::Closed)? {
        Path::Session {
            sid,
            cb,
            program,
            cred,
            minor,
        } => {
            let _slot = cb.slot.lock().await;
            let seq = srv.state.next_cb_seq(&sid).ok_or(CbError::Closed)?;
            let args = CB_COMPOUND4args {
                tag: Vec::new(),
                minorversion: minor,
                callback_ident: 0,
                argarray: vec![
                    nfs_cb_argop4::OP_CB_SEQUENCE(CB_SEQUENCE4args {
                        csa_sessionid: sid,
                        csa_sequenceid: seq,
                        csa_slotid: 0,
                        csa_highest_slotid: 0,
                        csa_cachethis: false,
                        csa_referring_call_lists: vec![],
                    }),
                    op,
                ],
            };
            let res = call_compound(&cb, program, &cred, &args).await;
            srv.state.cb_seq_done(&sid, seq, seq_taken(&res));
            res
        }
        Path::V40 {
            addr,
            program,
            ident,
        } => {
            let args = CB_COMPOUND4args {
                tag: Vec::new(),
                minorversion: 0,
                callback_ident: ident,
                argarray: vec![op],
            };
            // A cached connection may have died since its last use: one
            // retry on a fresh connection.
            for fresh in [false, true] {
                let cb = conn40(conns, client, addr, fresh).await?;
                match call_compound(&cb, program, &cred40(), &args).await {
                    Err(CbError::Closed) if !fresh => continue,
                    other => return other,
                }
            }
            Err(CbError::Closed)
        }
    }
}

async fn call_compound(
    cb: &CbChannel,
    program: u32,
    cred: &Credential,
    args: &CB_COMPOUND4args,
) -> Result<CB_COMPOUND4res, CbError> {
    let bytes = nfs4d_xdr::try_to_bytes(args).map_err(|_| CbError::Refused)?;
    let res = cb.call(program, 1, 1, cred, &bytes, CB_TIMEOUT).await?;
    let mut cur = std::io::Cursor::new(&res[..]);
    CB_COMPOUND4res::unpack(&mut cur)
        .map(|(r, _)| r)
        .map_err(|_| CbError::Refused)
}

/// Whether the client used the CB_SEQUENCE's sequence id: not when it
/// answered CB_SEQUENCE with an error. Without an answer it may have, and
/// the id is taken as used.
fn seq_taken(res: &Result<CB_COMPOUND4res, CbError>) -> bool {
    match res {
        Ok(r) => !matches!(
            r.resarray.first(),
            Some(nfs_cb_resop4::OP_CB_SEQUENCE(s)) if !matches!(s, CB_SEQUENCE4res::NFS4_OK(_))
        ),
        Err(_) => true,
    }
}

/// CB_NULL, then a CB_COMPOUND holding only CB_SEQUENCE: proves a 4.1
/// client answers on the back channel and accepts the session's
/// sequencing (RFC 8881 §2.10.3.1).
pub async fn probe_session(srv: &Arc<Server>, sid: &SessionId) -> bool {
    let Some(s) = srv.state.session(sid) else {
        return false;
    };
    let Some(cb) = s.cb.as_ref().and_then(endpoint) else {
        return false;
    };
    let _slot = cb.slot.lock().await;
    if let Err(e) = cb
        .call(s.cb_program, 1, 0, &s.cb_cred, &[], CB_TIMEOUT)
        .await
    {
        tracing::info!(error = %e, "back channel CB_NULL failed");
        return false;
    }
    // The client refuses CB_SEQUENCE with NFS4ERR_BADSESSION until it has
    // taken in the CREATE_SESSION reply, and with NFS4ERR_DELAY until it
    // has taken in the BIND_CONN_TO_SESSION reply (it drains its slot
    // tables around that call); the probe follows either reply at once.
    // So those answers mean "not yet": try again shortly, with the same
    // sequence id, rather than report the path down (which makes the
    // client bind again, and the race start over).
    for attempt in 1..=PROBE_TRIES {
        let Some(seq) = srv.state.next_cb_seq(sid) else {
            return false;
        };
        let args = CB_COMPOUND4args {
            tag: Vec::new(),
            minorversion: s.minor,
            callback_ident: 0,
            argarray: vec![nfs_cb_argop4::OP_CB_SEQUENCE(CB_SEQUENCE4args {
                csa_sessionid: *sid,
                csa_sequenceid: seq,
                csa_slotid: 0,
                csa_highest_slotid: 0,
                csa_cachethis: false,
                csa_referring_call_lists: vec![],
            })],
        };
        let res = call_compound(&cb, s.cb_program, &s.cb_cred, &args).await;
        srv.state.cb_seq_done(sid, seq, seq_taken(&res));
        match res {
            Ok(r) if r.status == nfsstat4::NFS4_OK => return true,
            Ok(r)
                if attempt < PROBE_TRIES
                    && matches!(
                        r.status,
                        nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_BADSESSION
                    ) =>
            {
                tokio::time::sleep(PROBE_PAUSE).await;
            }
            Ok(r) => {
                tracing::info!(status = ?r.status, "back channel CB_SEQUENCE refused");
                return false;
            }
            Err(e) => {
                tracing::info!(error = %e, "back channel probe failed");
                return false;
            }
        }
    }
    false
}

/// CB_NULL to a 4.0 client's callback address (RFC 7530 §10.2.1).
async fn probe40(srv: &Arc<Server>, conns: &Conns40, client: ClientId) -> bool {
    let Some(Path::V40 { addr, program, .. }) = path_of(srv, client) else {
        return false;
    };
    // A new SETCLIENTID may have changed the address: start afresh.
    let Ok(cb) = conn40(conns, client, addr, true).await else {
        return false;
    };
    cb.call(program, 1, 0, &cred40(), &[], CB_TIMEOUT)
        .await
        .is_ok()
}

/// The 4.0 callback connection of `client`, opened on first use (or anew
/// with `fresh`).
async fn conn40(
    conns: &Conns40,
    client: ClientId,
    addr: SocketAddr,
    fresh: bool,
) -> Result<CbChannel, CbError> {
    if !fresh {
        if let Some(cb) = lock(conns).get(&client) {
            return Ok(cb.clone());
        }
    }
    let stream = tokio::time::timeout(CB_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| CbError::Timeout)?
        .map_err(|e| {
            tracing::info!(callback = %addr, error = %e, "cannot connect to 4.0 callback address");
            CbError::Closed
        })?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) =
        mpsc::channel::<nfs4d_core::reply::Record>(crate::callback::MAX_PENDING_CALLS);
    let cb = CbChannel::new(NEXT_CB_CONN.fetch_sub(1, Ordering::Relaxed), tx);
    tokio::spawn(async move {
        while let Some(rec) = rx.recv().await {
            // Calls are built whole (no detached data): no copy here.
            let Ok(bytes) = rec.flatten() else { break };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let reader = cb.clone();
    tokio::spawn(async move {
        let mut ra = Reassembler::new(MAX_CB_RECORD);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut input = &buf[..n];
            while !input.is_empty() {
                match ra.feed(&mut input) {
                    Ok(Some(rec)) => {
                        if let Message::Reply(r) = rpc::parse(&rec) {
                            reader.deliver(r.xid, r.results.map(<[u8]>::to_vec));
                        }
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        }
    });
    let mut g = lock(conns);
    if g.len() >= MAX_CB40_CONNS && !g.contains_key(&client) {
        // Full: forget an arbitrary other client's connection (it is
        // reopened on its next callback).
        if let Some(k) = g.keys().next().copied() {
            g.remove(&k);
        }
    }
    g.insert(client, cb.clone());
    Ok(cb)
}

fn lock(conns: &Conns40) -> std::sync::MutexGuard<'_, HashMap<ClientId, CbChannel>> {
    conns.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universal_addresses() {
        assert_eq!(
            parse_uaddr("tcp", "127.0.0.1.8.1"),
            Some("127.0.0.1:2049".parse().unwrap())
        );
        assert_eq!(
            parse_uaddr("tcp6", "::1.3.232"),
            Some("[::1]:1000".parse().unwrap())
        );
        assert_eq!(parse_uaddr("tcp", "127.0.0.1.256.1"), None);
        assert_eq!(parse_uaddr("tcp", "localhost.1.1"), None);
        assert_eq!(parse_uaddr("udp", "127.0.0.1.1.1"), None);
        assert_eq!(parse_uaddr("tcp", "1.1"), None);
        assert_eq!(parse_uaddr("tcp6", "127.0.0.1.1.1"), None);
    }

    #[test]
    fn cb_getattr_values() {
        let mut vals = 7u64.to_be_bytes().to_vec();
        vals.extend_from_slice(&4096u64.to_be_bytes());
        let f = fattr4 {
            attrmask: vec![(1 << FATTR4_CHANGE) | (1 << FATTR4_SIZE)],
            attr_vals: vals.clone(),
        };
        assert_eq!(size_and_change(&f), Some((4096, 7)));
        let short = fattr4 {
            attrmask: f.attrmask.clone(),
            attr_vals: vals[..12].to_vec(),
        };
        assert_eq!(size_and_change(&short), None);
        let missing = fattr4 {
            attrmask: vec![1 << FATTR4_SIZE],
            attr_vals: vals,
        };
        assert_eq!(size_and_change(&missing), None);
    }
}
