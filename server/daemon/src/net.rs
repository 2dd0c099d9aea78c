//! The TCP transport: accepts connections, reassembles records, answers
//! RPC-level errors, queues COMPOUNDs — and every RPCSEC_GSS call, which a
//! runner authenticates (`gss.rs`) — for the connection's runners
//! (`exec.rs`, on the blocking pool) and writes replies in whatever order
//! they finish. It also carries back-channel calls out
//! and their replies in, on the same connection.
//!
//! Limits: connections (excess ones are closed at once with a log line),
//! requests in flight per connection (reading pauses while the limit is
//! reached, which pushes back on the client through TCP), and record size
//! (an oversized record closes that connection only). A large WRITE's data
//! is spliced from the socket into a pipe rather than read (`wsplice.rs`);
//! pipes are bounded (`MAX_PIPES` of store-local's pipe pool), and without
//! one the data is read as before.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nfs4d_store::PipedSource;
use nfs4d_store_local::{socket_pending, Loaded, Pipes};
use nfs4d_xdr::record::Reassembler;
use nfs4d_xdr::rpc::{self, AuthStat, Credential, Message, Refusal};
use std::io::{self, IoSlice};

use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::callback::CbChannel;
use crate::exec::{ConnQueue, Job};
use crate::metrics::CONNECTIONS;
use crate::wsplice::{self, Located};
use nfs4d_core::auth::RPCSEC_GSS;
use nfs4d_core::compound::{Followup, RequestCtx};
use nfs4d_core::reply::{Batch, Part, Record};
use nfs4d_core::server::Server;
use nfs4d_gss::GssServer;
use nfs4d_store::PipedData;

/// NFS program number, and the only NFS version served.
pub use nfs4d_xdr::nfs4::{NFS4_PROGRAM as NFS_PROGRAM, NFS_V4 as NFS_VERSION};
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 256 << 10;
/// A record body with at least this much still to come is read straight
/// onto the record ([`Reassembler::body_buf`]); less is cheaper to copy
/// than to read with a system call of its own.
const DIRECT_MIN: usize = 16 << 10;
// A short read after a large body (DIRECT_MIN bytes) is shorter than a full one.
const _: () = assert!(DIRECT_MIN < READ_CHUNK);
/// The largest WRITE spliced. Clients write at most the session's request
/// size, 1 MiB and a little by default; a larger WRITE is read as before.
/// A pipe of this size is what an unprivileged process may have
/// (`/proc/sys/fs/pipe-max-size`).
const WRITE_PIPE: usize = 1 << 20;
/// Capacity of a WRITE's pipe where the kernel allows it. A pipe has a slot
/// per 4 KiB of capacity, and a splice from a socket takes a slot per piece
/// of the socket's buffers: loopback delivers a MiB in some 32 pieces, a
/// network of 1,500-byte frames in over 700, more than the 256 slots of a
/// 1 MiB pipe.
const WRITE_PIPE_ROOMY: usize = 4 << 20;
// Only data that would have been read straight onto the record is spliced.
const _: () = assert!(wsplice::SPLICE_MIN >= DIRECT_MIN && wsplice::SPLICE_MIN <= WRITE_PIPE);
const _: () = assert!(WRITE_PIPE <= WRITE_PIPE_ROOMY);
/// Records a connection reads as before after a splice it gave up (its pipe
/// filled), doubling at each one given up in a row, up to
/// [`SPLICE_BACKOFF_MAX`]: a client whose data arrives in pieces too small
/// for the pipe pays for a splice and its undoing rarely.
const SPLICE_BACKOFF: u32 = 16;
const SPLICE_BACKOFF_MAX: u32 = 4096;

/// The pipes WRITE data is spliced into, for all connections.
fn write_pipes() -> &'static Pipes {
    static PIPES: std::sync::OnceLock<Pipes> = std::sync::OnceLock::new();
    PIPES
        .get_or_init(|| Pipes::try_new(WRITE_PIPE_ROOMY).unwrap_or_else(|_| Pipes::new(WRITE_PIPE)))
}
/// Replies gathered into one socket write (at least one reply, whatever
/// its size).
const WRITE_BATCH: usize = 256 << 10;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` resolves; then stops reading
/// requests on every connection and waits up to `drain` for the requests
/// in flight to finish and their replies to be sent. `gss` is the
/// RPCSEC_GSS engine, when Kerberos is served.
pub async fn serve(
    srv: Arc<Server>,
    queue: &crate::cbdriver::CbSender,
    listener: TcpListener,
    gss: Option<Arc<GssServer>>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let reaper = tokio::spawn(reap_leases(srv.clone(), gss.clone()));
    let flusher = tokio::spawn(crate::flusher::run(srv.clone()));
    let callbacks = crate::cbdriver::start(srv.clone(), queue);
    accept(srv, listener, gss, shutdown, drain).await;
    reaper.abort();
    callbacks.abort();
    flusher.abort();
}

/// Accepts connections on `listener` until `shutdown` resolves; then
/// stops reading requests on its connections and waits up to `drain` for
/// the requests in flight to finish and their replies to be sent.
/// [`serve`] runs one for the configured address; a head of a cluster
/// runs another for each dead head's address it took over (each with its
/// own connection limit).
pub async fn accept(
    srv: Arc<Server>,
    listener: TcpListener,
    gss: Option<Arc<GssServer>>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let max_conns = srv.cfg.limits.max_connections;
    let conns = Arc::new(Semaphore::new(max_conns as usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            acc = listener.accept() => match acc {
                Ok((stream, peer)) => {
                    let Ok(permit) = conns.clone().try_acquire_owned() else {
                        CONNECTIONS.refused.fetch_add(1, Ordering::Relaxed);
                        if let Some(held) = srv.refusals.admit(peer.ip(), srv.clock.now_ms()) {
                            tracing::warn!(%peer, limit = max_conns, held_back = held, "connection limit reached; closing new connection");
                        }
                        drop(stream);
                        continue;
                    };
                    CONNECTIONS.accepted.fetch_add(1, Ordering::Relaxed);
                    let srv = srv.clone();
                    let stop = stop_rx.clone();
                    let gss = gss.clone();
                    tokio::spawn(async move {
                        CONNECTIONS.open.fetch_add(1, Ordering::Relaxed);
                        connection(srv, gss, stream, peer, stop).await;
                        CONNECTIONS.open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = max_conns as usize - conns.available_permits();
    tracing::info!(
        connections = open,
        timeout_secs = drain.as_secs(),
        "listener closed; draining connections"
    );
    // Every connection gives its permit back once its requests are done.
    let drained = tokio::time::timeout(drain, conns.acquire_many(max_conns)).await;
    if drained.is_err() {
        tracing::warn!(
            connections = max_conns as usize - conns.available_permits(),
            "requests still running after the shutdown timeout; not waiting for them"
        );
    }
}

/// Expires leases once a second (RFC 8881 §8.3), and RPCSEC_GSS
/// contexts whose lifetime or idle time ran out.
async fn reap_leases(srv: Arc<Server>, gss: Option<Arc<GssServer>>) {
    const _: () = assert!(crate::gss::SWEEP_EVERY.as_secs() == 1);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Expiry writes client records to sled, and deleting a GSS
        // context calls into GSS-API: not on a tokio worker.
        let s = srv.clone();
        let g = gss.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.state.expire_leases();
            if let Some(g) = g {
                g.sweep(s.clock.now_ms());
            }
        })
        .await;
    }
}

async fn connection(
    srv: Arc<Server>,
    gss: Option<Arc<GssServer>>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, conn, "connection opened");
    let (mut rd, mut wr) = stream.into_split();
    let limit = srv.cfg.limits.max_in_flight as usize;
    let (tx, mut rx) = mpsc::channel::<Record>(limit + crate::callback::MAX_PENDING_CALLS);
    let buffers = srv.clone();
    let writer = tokio::spawn(async move {
        while let Some(rec) = rx.recv().await {
            // Replies that finished while the previous write was under way
            // leave together: one system call for a pipelining client's
            // burst, and no reply waits for another to be produced. A
            // READ's data goes from its own buffer (vectored write).
            let mut batch = Batch::default();
            batch.push(rec);
            while batch.has_room(WRITE_BATCH) {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if let Err(e) = write_batch(&mut batch, &mut wr).await {
                tracing::debug!(%peer, error = %e, "write failed; dropping connection");
                break;
            }
            for part in batch.into_parts() {
                if let Part::Bytes(b) = part {
                    buffers.read_buffers.give(b);
                }
            }
        }
    });
    let cb = CbChannel::new(conn, tx.clone());
    let inflight = Arc::new(Semaphore::new(limit));
    let queue = ConnQueue::new(srv.clone(), tx.clone(), peer, limit, spawn_followups);
    let mut ra = Reassembler::new(srv.cfg.limits.max_record as usize);
    let mut buf = vec![0u8; READ_CHUNK];
    // Whether the last read went straight onto a large record's body.
    let mut streaming = false;
    // The data of the record in progress, spliced into a pipe; and whether
    // splicing was tried for that record and given up.
    let mut spliced: Option<(usize, Box<dyn PipedSource>)> = None;
    let mut unspliceable = false;
    // Large records still to read as before after a splice given up, and
    // how many the next one given up sets.
    let (mut splice_skip, mut splice_backoff) = (0u32, SPLICE_BACKOFF);
    let to = Handoff {
        srv: &srv,
        gss: gss.as_ref(),
        conn,
        peer,
        cb: &cb,
        queue: &queue,
        inflight: &inflight,
    };
    'read: loop {
        let pending = ra.body_pending();
        // A large WRITE's data goes from the socket into a pipe.
        let mut step = Ok(None);
        let mut did_splice = false;
        if pending >= wsplice::SPLICE_MIN && spliced.is_none() && !unspliceable && splice_skip > 0 {
            splice_skip -= 1;
            unspliceable = true;
        }
        if pending >= wsplice::SPLICE_MIN && spliced.is_none() && !unspliceable {
            if let Some(loc) = ra
                .whole_len()
                .and_then(|whole| wsplice::locate(ra.partial(), whole, WRITE_PIPE))
            {
                let r = tokio::select! {
                    r = splice_write(&rd, &mut ra, loc) => r,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match r {
                    Ok(Spliced::Done(pipe, done)) => {
                        CONNECTIONS.writes_spliced.fetch_add(1, Ordering::Relaxed);
                        splice_backoff = SPLICE_BACKOFF;
                        spliced = Some((loc.data_at, Box::new(pipe)));
                        step = Ok(done);
                        did_splice = true;
                    }
                    Ok(Spliced::Fallback(done)) => {
                        CONNECTIONS.splice_fallbacks.fetch_add(1, Ordering::Relaxed);
                        splice_skip = splice_backoff;
                        splice_backoff = (splice_backoff * 2).min(SPLICE_BACKOFF_MAX);
                        unspliceable = true;
                        step = done;
                        did_splice = true;
                    }
                    Ok(Spliced::NoPipe) => unspliceable = true,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "read failed while splicing a WRITE");
                        break;
                    }
                }
            }
        }
        if did_splice {
            streaming = true;
            if !deliver(
                step,
                &mut [].as_slice(),
                &mut ra,
                &mut spliced,
                &mut unspliceable,
                &to,
            )
            .await
            {
                break 'read;
            }
            continue;
        }
        // The rest of a large record's body is read straight onto the
        // record, not through `buf` (a copy of every byte of a WRITE).
        let pending = ra.body_pending();
        let direct = pending >= DIRECT_MIN;
        // After a large body, the next record of a stream of WRITEs is
        // likely large too: a short read takes its header and little of
        // its body through `buf`, where a full one would copy up to
        // READ_CHUNK of it (3 % of the server's CPU in seqwrite). Small
        // records go back to full reads as soon as one is read this way.
        let cap = if streaming { DIRECT_MIN } else { READ_CHUNK };
        streaming = direct;
        let got = if direct {
            let body = ra.body_buf();
            let mut rest = (&mut rd).take(pending as u64);
            tokio::select! {
                r = rest.read_buf(body) => r,
                _ = stop.wait_for(|s| *s) => break,
            }
        } else {
            tokio::select! {
                r = rd.read(&mut buf[..cap]) => r,
                // Shutting down: no new requests; those in flight finish below.
                _ = stop.wait_for(|s| *s) => break,
            }
        };
        let n = match got {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
        };
        // Bytes read onto the record may have completed it; bytes read
        // into `buf` are fed to the reassembler, record after record.
        let mut input: &[u8] = if direct { &[] } else { &buf[..n] };
        let step = if direct { ra.body_read() } else { Ok(None) };
        if !deliver(
            step,
            &mut input,
            &mut ra,
            &mut spliced,
            &mut unspliceable,
            &to,
        )
        .await
        {
            break 'read;
        }
    }
    drop(tx);
    drop(cb);
    drop(queue);
    // Let requests still running send their replies, then stop the writer:
    // sessions may keep this connection's back-channel sender alive, so the
    // writer would not end by itself.
    let _ =
        tokio::time::timeout(Duration::from_secs(30), inflight.acquire_many(limit as u32)).await;
    writer.abort();
    srv.state.connection_closed(conn);
    tracing::debug!(%peer, conn, "connection closed");
}

/// Where a connection's completed records go: its queue, with what
/// [`handle_record`] needs to know of the connection.
struct Handoff<'a> {
    srv: &'a Arc<Server>,
    gss: Option<&'a Arc<GssServer>>,
    conn: u64,
    peer: SocketAddr,
    cb: &'a CbChannel,
    queue: &'a Arc<ConnQueue>,
    inflight: &'a Arc<Semaphore>,
}

/// Hands on the record `step` completed, then feeds `input` to the
/// reassembler record after record, handing each on. The first record
/// completed takes the data spliced for it. False when the connection is
/// to close (bad record marking, or shutting down).
async fn deliver(
    mut step: Result<Option<Vec<u8>>, nfs4d_xdr::record::RecordError>,
    input: &mut &[u8],
    ra: &mut Reassembler,
    spliced: &mut Option<(usize, Box<dyn PipedSource>)>,
    unspliceable: &mut bool,
    to: &Handoff<'_>,
) -> bool {
    loop {
        match step {
            Ok(Some(rec)) => {
                let Ok(permit) = to.inflight.clone().acquire_owned().await else {
                    return false;
                };
                *unspliceable = false;
                handle_record(
                    to.srv,
                    to.gss,
                    rec,
                    spliced.take(),
                    to.conn,
                    to.peer,
                    to.cb,
                    to.queue,
                    permit,
                );
            }
            Ok(None) => {}
            Err(e) => {
                let peer = to.peer;
                tracing::warn!(%peer, error = %e, "bad record marking; closing connection");
                return false;
            }
        }
        if input.is_empty() {
            return true;
        }
        step = ra.feed(input);
    }
}

/// What became of a WRITE's data the connection tried to splice.
enum Spliced {
    /// All of it is in the pipe; the record (cut at the data, its length
    /// rewritten to 0) goes on as usual, and may have completed.
    Done(Loaded, Option<Vec<u8>>),
    /// The pipe filled before the data was all in (the socket's buffers
    /// need more of its slots than it has): what it took is back in the
    /// record, whose body is read on as before.
    Fallback(Result<Option<Vec<u8>>, nfs4d_xdr::record::RecordError>),
    /// No pipe to spare: the data is read as before.
    NoPipe,
}

/// Splices the data of the WRITE at `loc`, part of the record in progress,
/// from the socket into a pipe. The bytes of it already read onto the
/// record are moved into the pipe first.
async fn splice_write(
    rd: &OwnedReadHalf,
    ra: &mut Reassembler,
    loc: Located,
) -> io::Result<Spliced> {
    let have = ra.partial().len().saturating_sub(loc.data_at);
    if have >= loc.data_len {
        return Ok(Spliced::NoPipe);
    }
    let Some(mut pipe) = write_pipes().take() else {
        return Ok(Spliced::NoPipe);
    };
    let head = ra.cut(loc.data_at);
    if let Err(e) = pipe.push(&head) {
        tracing::debug!(error = %e, "could not fill a pipe for a WRITE; reading it");
        ra.uncut(&head);
        return Ok(Spliced::NoPipe);
    }
    ra.patch_u32(loc.len_at, 0);
    let sock: &TcpStream = rd.as_ref();
    let mut got = 0;
    let want = loc.data_len - have;
    // Splices refused while the socket had bytes waiting, in a row.
    let mut refused = 0;
    while got < want {
        // The system call is made whatever tokio believes of the socket's
        // readiness: the read before may have emptied what tokio saw
        // while more had already arrived.
        match pipe.fill_from_socket(sock.as_fd(), want - got) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => {
                got += k;
                refused = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Bytes waiting that the pipe would not take, twice (the
                // first time they may have arrived just after the splice
                // found none): the pipe is full.
                if socket_pending(sock.as_fd())? > 0 {
                    refused += 1;
                    if refused >= 2 {
                        tracing::debug!(
                            got,
                            want,
                            in_pipe = PipedSource::len(&pipe),
                            "a WRITE's pipe filled before its data was in; reading it"
                        );
                        return Ok(Spliced::Fallback(unsplice(ra, loc, &head, &mut pipe)));
                    }
                    continue;
                }
                // Nothing waiting: forget a readiness tokio may still hold
                // from before, look once more (bytes that arrive after the
                // forgetting make the socket ready again), then wait.
                let _ = sock.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
                if socket_pending(sock.as_fd())? == 0 {
                    sock.readable().await?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    let done = ra
        .skip_body(got)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(Spliced::Done(pipe, done))
}

/// Puts a WRITE's data back into its record: the length word, the bytes
/// that were read onto the record, then what the pipe took from the socket.
fn unsplice(
    ra: &mut Reassembler,
    loc: Located,
    head: &[u8],
    pipe: &mut Loaded,
) -> Result<Option<Vec<u8>>, nfs4d_xdr::record::RecordError> {
    ra.patch_u32(loc.len_at, loc.data_len as u32);
    let taken = match nfs4d_store::PipedData::read_out(pipe) {
        Ok(b) => b,
        // The bytes are lost with the pipe: the record cannot be rebuilt.
        Err(e) => {
            tracing::warn!(error = %e, "a spliced WRITE's pipe could not be read back; closing connection");
            return Err(nfs4d_xdr::record::RecordError::TooManyFragments);
        }
    };
    ra.uncut(head);
    ra.body_buf()
        .extend_from_slice(taken.get(head.len()..).unwrap_or_default());
    ra.body_read()
}

fn handle_record(
    srv: &Arc<Server>,
    gss: Option<&Arc<GssServer>>,
    rec: Vec<u8>,
    spliced: Option<(usize, Box<dyn PipedSource>)>,
    conn: u64,
    peer: SocketAddr,
    cb: &CbChannel,
    queue: &Arc<ConnQueue>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let tx = queue.tx();
    // One line per refused call, with the client's address and the reason,
    // rate-limited per address (nfs4d_core::ratelimit).
    let refused = |reason: &str, detail: Option<(&str, u32)>| {
        CONNECTIONS.rpc_refused.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = srv.refusals.admit(peer.ip(), srv.clock.now_ms()) {
            match detail {
                Some((what, v)) => {
                    tracing::warn!(%peer, reason, value = v, field = what, held_back = held, "request refused")
                }
                None => tracing::warn!(%peer, reason, held_back = held, "request refused"),
            }
        }
    };
    let refuse = |xid, why, permit: tokio::sync::OwnedSemaphorePermit| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(rpc::refusal_reply(xid, why).into()).await;
            drop(permit);
        });
    };
    let (xid, cred, args_at, engine) = match rpc::parse(&rec) {
        Message::Reply(r) => {
            if !cb.deliver(r.xid, r.results.map(<[u8]>::to_vec)) {
                tracing::debug!(%peer, xid = r.xid, "reply to no outstanding callback");
            }
            return;
        }
        Message::RpcMismatch { xid } => {
            refused("RPC version other than 2", Some(("xid", xid)));
            return refuse(xid, Refusal::RpcMismatch, permit);
        }
        Message::BadCredential { xid } => {
            refused("undecodable credential", Some(("xid", xid)));
            return refuse(xid, Refusal::Auth(AuthStat::BadCred), permit);
        }
        Message::Garbage => {
            refused(
                "undecodable RPC message dropped",
                Some(("length", rec.len() as u32)),
            );
            return;
        }
        Message::Call(c) => {
            if c.prog != NFS_PROGRAM {
                refused("call to a program not served", Some(("program", c.prog)));
                return refuse(c.xid, Refusal::ProgUnavail, permit);
            }
            if c.vers != NFS_VERSION {
                refused(
                    "call for an NFS version not served",
                    Some(("version", c.vers)),
                );
                return refuse(
                    c.xid,
                    Refusal::ProgMismatch {
                        low: NFS_VERSION,
                        high: NFS_VERSION,
                    },
                    permit,
                );
            }
            // RPCSEC_GSS calls are authenticated by a runner; NULL carries
            // context creation and destruction (RFC 2203 §5.2), so it goes
            // there too.
            let engine = match c.cred {
                Credential::Other(RPCSEC_GSS) => match gss {
                    Some(g) => Some(g.clone()),
                    None => {
                        refused(
                            "RPCSEC_GSS call, but Kerberos is not served (see the start-up log)",
                            Some(("xid", c.xid)),
                        );
                        return refuse(c.xid, Refusal::Auth(AuthStat::BadCred), permit);
                    }
                },
                Credential::Other(flavor) => {
                    refused(
                        "unsupported authentication flavor",
                        Some(("flavor", flavor)),
                    );
                    return refuse(c.xid, Refusal::Auth(AuthStat::BadCred), permit);
                }
                _ => None,
            };
            match c.proc_ {
                0 if engine.is_some() => {
                    // A context is state held for the host: one that no
                    // export admits may not create any (as for COMPOUND).
                    if !srv.vfs.any_export_admits(peer) {
                        refused(
                            "no export admits this client address and port (RPCSEC_GSS call)",
                            Some(("xid", c.xid)),
                        );
                        return refuse(c.xid, Refusal::Auth(AuthStat::TooWeak), permit);
                    }
                }
                0 => {
                    let mut out = Vec::new();
                    rpc::begin_success_reply(c.xid, &mut out);
                    rpc::finish_record(&mut out);
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(out.into()).await;
                        drop(permit);
                    });
                    return;
                }
                1 => {
                    // A host no export admits (address or source port) has
                    // nothing to use; refusing its COMPOUNDs at the RPC
                    // level also keeps it from creating client state.
                    // AUTH_TOOWEAK: "rejected for security reasons" (RFC
                    // 5531 §9).
                    if !srv.vfs.any_export_admits(peer) {
                        refused(
                            "no export admits this client address and port",
                            Some(("xid", c.xid)),
                        );
                        return refuse(c.xid, Refusal::Auth(AuthStat::TooWeak), permit);
                    }
                }
                p => {
                    refused("unknown procedure", Some(("procedure", p)));
                    return refuse(c.xid, Refusal::ProcUnavail, permit);
                }
            }
            let at = c.args.as_ptr() as usize - rec.as_ptr() as usize;
            (c.xid, c.cred, at, engine)
        }
    };
    let req = RequestCtx {
        cred,
        gss: None,
        conn,
        peer,
        cb: Some(nfs4d_core::state::session::BackChannel {
            conn,
            endpoint: Arc::new(cb.clone()),
        }),
    };
    queue.submit(Job {
        req,
        xid,
        rec,
        args_at,
        permit,
        gss: engine,
        spliced: spliced.map(|(at, data)| nfs4d_core::compound::SplicedWrite { at, data }),
    });
}

/// Runs a COMPOUND's followups on the runtime (called by runners).
fn spawn_followups(srv: Arc<Server>, followups: Vec<Followup>) {
    tokio::spawn(async move {
        for f in followups {
            run_followup(&srv, f).await;
        }
    });
}

async fn run_followup(srv: &Arc<Server>, f: Followup) {
    match f {
        Followup::ProbeBackChannel(sid) => {
            let up = crate::cbdriver::probe_session(srv, &sid).await;
            srv.state.set_cb_up(&sid, up);
            tracing::debug!(up, "back channel probe");
        }
    }
}

/// Where the writer sends replies: a byte stream that also takes the
/// bytes of a pipe.
trait Sink: AsyncWrite + Unpin {
    /// Moves all bytes of `p` into the stream, after what was written.
    async fn splice_all(&mut self, p: &mut dyn PipedData) -> io::Result<()>;
}

impl Sink for OwnedWriteHalf {
    /// `splice(2)` from the pipe into the socket: the pipe's page
    /// references go to the socket without a copy through user space.
    async fn splice_all(&mut self, p: &mut dyn PipedData) -> io::Result<()> {
        let sock: &TcpStream = self.as_ref();
        while !p.is_empty() {
            sock.writable().await?;
            match sock.try_io(Interest::WRITABLE, || p.splice_to(sock.as_fd())) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writes a batch of replies, in order: each run of in-memory parts with as
/// few vectored writes as the socket allows, each piped part spliced.
async fn write_batch<W: Sink>(batch: &mut Batch, wr: &mut W) -> io::Result<()> {
    let parts = batch.parts_mut();
    let mut i = 0;
    while i < parts.len() {
        let run = parts[i..]
            .iter()
            .position(|p| matches!(p, Part::Piped(_)))
            .unwrap_or(parts.len() - i);
        let mut slices: Vec<IoSlice<'_>> = parts[i..i + run]
            .iter()
            .filter_map(|p| match p {
                Part::Bytes(b) => Some(IoSlice::new(b)),
                Part::Piped(_) => None,
            })
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = wr.write_vectored(rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        if let Some(Part::Piped(p)) = parts.get_mut(i + run) {
            wr.splice_all(p.as_mut()).await?;
        }
        i += run + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl Sink for Trickle {
        async fn splice_all(&mut self, p: &mut dyn PipedData) -> io::Result<()> {
            let bytes = p.read_out()?;
            self.write_all(&bytes).await
        }
    }

    /// Bytes standing in for a pipe's.
    #[derive(Debug)]
    struct FakePipe(Vec<u8>);

    impl PipedData for FakePipe {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn splice_to(&mut self, _: std::os::fd::BorrowedFd<'_>) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn read_out(&mut self) -> io::Result<Vec<u8>> {
            Ok(std::mem::take(&mut self.0))
        }
    }

    /// Piped READ data goes out between its record's head and tail, in
    /// order with the records around it.
    #[test]
    fn piped_parts_are_sent_in_place() {
        use nfs4d_core::reply::{finish_record, Detached, Payload};
        let mut batch = Batch::default();
        let mut want = Vec::new();
        for i in 0..3u8 {
            let small: Vec<u8> = vec![i; 40];
            want.extend_from_slice(&small);
            batch.push(small.into());
            let data: Vec<u8> = (0..5000u32).map(|b| (b as u8) ^ i).collect();
            let mut bytes = vec![0; 4];
            bytes.extend_from_slice(b"head");
            let at = bytes.len();
            bytes.extend_from_slice(b"tail");
            finish_record(&mut bytes, data.len());
            want.extend_from_slice(&bytes[..at]);
            want.extend_from_slice(&data);
            want.extend_from_slice(&bytes[at..]);
            batch.push(Record {
                bytes,
                detached: Some(Detached {
                    at,
                    data: Payload::Piped(Box::new(FakePipe(data))),
                }),
            });
        }
        let mut w = Trickle {
            out: Vec::new(),
            step: 3,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(write_batch(&mut batch, &mut w)).unwrap();
        assert_eq!(w.out, want);
    }

    #[test]
    fn batches_survive_partial_vectored_writes() {
        let mut batch = Batch::default();
        let mut want = Vec::new();
        for i in 0..5u8 {
            let rec: Vec<u8> = (0..(50 + 1000 * u32::from(i)))
                .map(|b| b as u8 ^ i)
                .collect();
            want.extend_from_slice(&rec);
            batch.push(rec.into());
        }
        for step in [1, 5, 4096, usize::MAX] {
            let mut w = Trickle {
                out: Vec::new(),
                step,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(write_batch(&mut batch, &mut w)).unwrap();
            assert_eq!(w.out, want, "step {step}");
        }
    }
}
