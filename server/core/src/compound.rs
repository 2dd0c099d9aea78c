//! The COMPOUND processor (RFC 7530 §15.2, RFC 8881 §16.2 and §2.10.6).
//!
//! Operations are decoded one at a time, so a malformed operation gets
//! NFS4ERR_BADXDR at its own position and everything before it still runs.
//! The rules every operation shares — current filehandle required, what
//! may come first in a 4.1 COMPOUND, minor-version validity, reply-size
//! bounds — are applied here, in one place, from the descriptor table in
//! [`crate::ops`]. Results are encoded straight into the reply record:
//! status and count are patched in at the end, so READ data is copied once.
//!
//! This module does no I/O of its own beyond calling handlers; it runs on
//! a blocking thread and takes time only from the server's clock.

use std::io::Cursor;
use std::sync::Arc;

use nfs4d_xdr::codec::Unpack;
use nfs4d_xdr::nfs4::{nfs_opnum4, nfsstat4};
use nfs4d_xdr::rpc::{self, Refusal};

pub use crate::context::{Cx, Followup, RequestCtx, SessionCtx, SplicedWrite};
use crate::error::NfsError;
use crate::export_access::Denial;
use crate::ops::{self, Flags};
use crate::reply::{self, Record};
use crate::server::Server;

/// Longest COMPOUND tag accepted (a tag is echoed, never interpreted).
pub use nfs4d_xdr::compound::MAX_TAG;

/// Errors after which a 4.0 owner's seqid does not advance (RFC 7530 §9.1.7).
fn seqid_advances(st: nfsstat4) -> bool {
    use nfsstat4::*;
    !matches!(
        st,
        NFS4ERR_STALE_CLIENTID
            | NFS4ERR_STALE_STATEID
            | NFS4ERR_BAD_STATEID
            | NFS4ERR_BAD_SEQID
            | NFS4ERR_BADXDR
            | NFS4ERR_RESOURCE
            | NFS4ERR_NOFILEHANDLE
            | NFS4ERR_MOVED
    )
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// An operation's result carrying only an error status. SETATTR's result
/// has `attrsset` even on error (RFC 7530 §16.32), so it gets an empty one.
fn put_status(out: &mut Vec<u8>, op: u32, st: nfsstat4) {
    put_u32(out, op);
    put_u32(out, st as i32 as u32);
    if op == nfs_opnum4::OP_SETATTR as u32 {
        put_u32(out, 0);
    }
}

/// A READ's data could not be read back out of its pipe for a reply kept
/// whole: the request fails as a server error (SYSTEM_ERR) rather than
/// caching a reply without its data.
fn unreadable_pipe(e: &std::io::Error) -> Refusal {
    tracing::error!(error = %e, "READ data could not be read out of its pipe; failing the request");
    Refusal::SystemErr
}

/// Runs a COMPOUND and returns the complete reply record, or the RPC-level
/// refusal when its header cannot be decoded (GARBAGE_ARGS). `spliced` is
/// the data of a WRITE the transport left in a pipe.
pub fn process(
    srv: &Server,
    req: &RequestCtx,
    xid: u32,
    args: &[u8],
    spliced: Option<SplicedWrite>,
) -> Result<(Record, Vec<Followup>), Refusal> {
    let mut cur = Cursor::new(args);
    let h = nfs4d_xdr::compound::decode_header(&mut cur).map_err(|e| {
        tracing::warn!(peer = %req.peer, xid, error = %e, "undecodable COMPOUND header");
        Refusal::GarbageArgs
    })?;
    let (tag, minor, count) = (h.tag, h.minorversion, h.count);
    // The tag is a utf8str_cs: invalid UTF-8 is NFS4ERR_INVAL before any
    // operation runs (RFC 8881 §16.2.3, §14.4).
    let bad_tag = match std::str::from_utf8(tag) {
        Ok(s) => s.chars().any(crate::namespace::vfs::is_noncharacter),
        Err(_) => true,
    };
    let drc_key = (minor == 0).then(|| {
        let principal = req.gss.as_deref().map(|g| g.principal.as_str());
        crate::drc::key(req.peer, xid, principal, args)
    });
    if let Some(cached) = drc_key.as_ref().and_then(|k| srv.state.drc.get(k)) {
        tracing::debug!(peer = %req.peer, xid, "4.0 retransmission answered from the duplicate request cache");
        return Ok((cached.to_vec().into(), Vec::new()));
    }

    let mut out = Vec::with_capacity(512);
    rpc::begin_success_reply(xid, &mut out);
    let body = out.len();
    put_u32(&mut out, 0); // status, patched below
    nfs4d_xdr::codec::pack_opaque_var(tag, None, &mut out).map_err(|_| Refusal::SystemErr)?;
    let count_at = out.len();
    put_u32(&mut out, 0); // result count, patched below

    let mut cx = Cx {
        srv,
        req,
        minor,
        cfh: None,
        sfh: None,
        cur_stateid: None,
        saved_stateid: None,
        session: None,
        durable_upto: 0,
        seq_owner: None,
        replay: None,
        replay_all: None,
        op_index: 0,
        op_count: count as usize,
        // The request's size counts the data spliced out of it (SEQUENCE
        // checks it against the session's limit).
        args_len: args.len() + spliced.as_ref().map_or(0, |w| w.data.len()),
        followups: Vec::new(),
        modified: false,
        cred: crate::export_access::request_cred(&req.cred, req.gss.as_deref()),
        cred_export: None,
        detached: None,
        fresh: std::cell::Cell::new(None),
        spliced,
    };
    let (status, done) = if bad_tag {
        tracing::warn!(peer = %req.peer, "COMPOUND tag is not UTF-8");
        (NfsError::Inval.status(), 0)
    } else if minor > 2 {
        tracing::warn!(peer = %req.peer, minor, "COMPOUND with unsupported minor version");
        (NfsError::MinorVersMismatch.status(), 0)
    } else if !srv.may_serve() {
        // A head of a cluster whose membership lapsed: it may be taken
        // over any moment, so it changes nothing and answers DELAY; the
        // client retries, here or at the head that takes the address over
        // (docs/cluster.md, fencing).
        tracing::debug!(peer = %req.peer, xid, "not serving (cluster membership lapsed): DELAY");
        let st = NfsError::Delay.status();
        if count == 0 {
            (st, 0)
        } else {
            let opnum = peek_u32(&cur).unwrap_or(nfs_opnum4::OP_ILLEGAL as u32);
            put_status(&mut out, opnum, st);
            (st, 1)
        }
    } else {
        run_ops(&mut cx, &mut cur, &mut out, body)
    };

    if let Some(cached) = cx.replay_all.take() {
        // 4.1 retransmission: the original reply, byte for byte.
        out.truncate(body);
        out.extend_from_slice(&cached);
        rpc::finish_record(&mut out);
        return Ok((out.into(), Vec::new()));
    }
    out[body..body + 4].copy_from_slice(&(status as i32).to_be_bytes());
    out[count_at..count_at + 4].copy_from_slice(&(done as u32).to_be_bytes());

    if let Some(s) = &cx.session {
        let len = (out.len() - body + cx.detached_len()) as u32;
        let keep = len <= s.fore.max_response_cached;
        // The slot keeps the reply in one piece (detached data copied in).
        let cached = match keep.then(|| reply::join(&out, cx.detached.as_mut(), body)) {
            None => None,
            Some(Ok(v)) => Some(Arc::new(v)),
            Some(Err(e)) => {
                srv.state.slot_done(&s.id, s.slot, None);
                return Err(unreadable_pipe(&e));
            }
        };
        srv.state.slot_done(&s.id, s.slot, cached);
    }
    if cx.durable_upto > 0 {
        let timed = srv.metrics.enabled();
        let t0 = if timed { srv.clock.monotonic_ns() } else { 0 };
        if let Err(e) = srv.fhmap.make_durable(cx.durable_upto) {
            tracing::error!(error = %e, "filehandle map flush failed; failing the request");
            return Err(Refusal::SystemErr);
        }
        if timed {
            srv.metrics
                .flush_waited(srv.clock.monotonic_ns().saturating_sub(t0));
        }
    }
    // The record's length counts the detached data sent after `out`'s head.
    reply::finish_record(&mut out, cx.detached_len());
    if let (Some(k), true) = (drc_key, cx.modified) {
        match &mut cx.detached {
            None => srv.state.drc.put(k, &out),
            // The cache keeps the reply in one piece (rare: a COMPOUND
            // with a large READ that also changed something).
            Some(d) => {
                let whole = reply::join(&out, Some(d), 0).map_err(|e| unreadable_pipe(&e))?;
                srv.state.drc.put(k, &whole);
            }
        }
    }
    let rec = Record {
        bytes: out,
        detached: cx.detached,
    };
    Ok((rec, cx.followups))
}

/// Runs the operations; returns the COMPOUND status and how many results
/// were written.
fn run_ops(
    cx: &mut Cx,
    cur: &mut Cursor<&[u8]>,
    out: &mut Vec<u8>,
    body: usize,
) -> (nfsstat4, usize) {
    let span =
        tracing::debug_span!("compound", peer = %cx.req.peer, minor = cx.minor, ops = cx.op_count);
    let _enter = span.enter();
    // Operations are counted here, in one place, whatever ended them
    // (crate::metrics); the clock is read only while metrics are wanted.
    let metrics = &cx.srv.metrics;
    let timed = metrics.enabled();
    if timed {
        metrics.compound_done();
    }
    let mut done = 0;
    let mut status = nfsstat4::NFS4_OK;
    // One clock read per operation: an operation ends when the next begins.
    let mut t0 = if timed {
        cx.srv.clock.monotonic_ns()
    } else {
        0
    };
    for i in 0..cx.op_count {
        let (opnum, st, more) = run_one(cx, cur, out, body, i);
        if timed {
            let t = cx.srv.clock.monotonic_ns();
            metrics.op_done(opnum, st, t.saturating_sub(t0));
            t0 = t;
        }
        if cx.replay_all.is_some() {
            return (st, 0);
        }
        done += 1;
        status = st;
        if !more {
            break;
        }
    }
    (status, done)
}

/// Runs operation `i`: returns its number (OP_ILLEGAL for numbers that
/// name none), its status, and whether the COMPOUND goes on.
fn run_one(
    cx: &mut Cx,
    cur: &mut Cursor<&[u8]>,
    out: &mut Vec<u8>,
    body: usize,
    i: usize,
) -> (u32, nfsstat4, bool) {
    const ILLEGAL: u32 = nfs_opnum4::OP_ILLEGAL as i32 as u32;
    let max_ops = cx.srv.cfg.limits.max_ops as usize;
    cx.op_index = i;
    let opnum = match u32::unpack(cur) {
        Ok((v, _)) => v,
        Err(_) => {
            // Fewer operations than the count claimed.
            let st = NfsError::BadXdr.status();
            put_status(out, ILLEGAL, st);
            tracing::warn!(peer = %cx.req.peer, index = i, "COMPOUND truncated before an operation");
            return (ILLEGAL, st, false);
        }
    };
    let Some(desc) = ops::describe(opnum) else {
        let st = NfsError::OpIllegal.status();
        put_status(out, ILLEGAL, st);
        tracing::debug!(opnum, "illegal operation");
        return (ILLEGAL, st, false);
    };
    // Limits on the COMPOUND as a whole are reported at its first
    // operation: 4.0 has only NFS4ERR_RESOURCE for this (RFC 7530
    // §15.2.4); 4.1 has NFS4ERR_TOO_MANY_OPS (RFC 8881 §15.1.1.4).
    if i == 0 && cx.op_count > max_ops {
        let st = if cx.minor == 0 {
            NfsError::Resource
        } else {
            NfsError::TooManyOps
        };
        tracing::warn!(peer = %cx.req.peer, ops = cx.op_count, max_ops, "COMPOUND has too many operations");
        put_status(out, opnum, st.status());
        return (opnum, st.status(), false);
    }
    if let Err(e) = precheck(cx, desc, i, out.len() - body + cx.detached_len()) {
        let st = e.status();
        tracing::debug!(op = desc.name, status = ?st, "refused before running");
        put_status(out, opnum, st);
        return (opnum, st, false);
    }
    let start = out.len();
    let fh_before = cx.cfh.as_ref().map(|c| c.fh.clone());
    let mut st = match (desc.run)(cx, desc, cur, out, guard_before) {
        ops::Step::Done(st) => st,
        ops::Step::BadXdr(e) => {
            tracing::warn!(peer = %cx.req.peer, op = desc.name, error = %e, "undecodable operation arguments");
            let st = NfsError::BadXdr.status();
            put_status(out, opnum, st);
            return (opnum, st, false);
        }
        ops::Step::Refused(e) => {
            put_status(out, opnum, e.status());
            return (opnum, e.status(), false);
        }
    };
    if st == nfsstat4::NFS4_OK {
        let next = (i + 1 < cx.op_count).then(|| peek_u32(cur)).flatten();
        if let Err(e) = guard_after(cx, desc, next) {
            // The operation only set the current filehandle (PUTFH,
            // LOOKUP …), so replacing its result undoes nothing.
            out.truncate(start);
            cx.drop_detached_from(start);
            st = e.status();
            put_status(out, opnum, st);
        }
    }
    // A new current filehandle invalidates the current stateid unless
    // the operation set both (RFC 8881 §16.2.3.1.2).
    let sets_stateid = desc.flags.contains(Flags::SETS_STATEID);
    if !sets_stateid && cx.cfh.as_ref().map(|c| &c.fh) != fh_before.as_ref() {
        cx.cur_stateid = None;
    }
    if let Some(bytes) = cx.replay.take() {
        // A 4.0 retransmission: the original reply and its status.
        out.truncate(start);
        cx.drop_detached_from(start);
        out.extend_from_slice(&bytes);
        st = bytes
            .get(4..8)
            .and_then(|b| nfsstat4::try_from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok())
            .unwrap_or(NfsError::ServerFault.status());
    }
    if cx.replay_all.is_some() {
        return (opnum, st, false);
    }
    if let Some((kind, owner, seqid)) = cx.seq_owner.take() {
        if seqid_advances(st) {
            // The result of this operation starts at `start`, after any
            // READ data of the COMPOUND: the join copies no data, so it
            // cannot fail.
            match reply::join(out, cx.detached.as_mut(), start) {
                Ok(result) => cx.srv.state.record_seqid(kind, owner, seqid, result),
                Err(e) => tracing::error!(error = %e, "seqid reply not recorded"),
            }
        }
    }
    if st == nfsstat4::NFS4_OK {
        tracing::debug!(op = desc.name, "ok");
        (opnum, st, true)
    } else {
        tracing::debug!(op = desc.name, status = ?st, "failed");
        (opnum, st, false)
    }
}

/// The next word of the arguments without consuming it.
fn peek_u32(cur: &Cursor<&[u8]>) -> Option<u32> {
    let at = cur.position() as usize;
    let b = cur.get_ref().get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The export of the current filehandle, for export objects.
fn cfh_export(cx: &Cx) -> Option<u32> {
    cx.cfh.as_ref().and_then(|c| c.obj()).map(|o| o.0)
}

/// Export `id`'s verdict on this request's host, port and flavor.
fn export_verdict(cx: &Cx, id: u32) -> Result<(), Denial> {
    match cx.srv.vfs.export(id) {
        Ok(e) => {
            crate::export_access::check(&e.cfg, cx.req.peer, &cx.req.cred, cx.req.gss.as_deref())
                .map(|_| ())
        }
        Err(_) => Ok(()),
    }
}

/// The status for a denial: a host or port the export does not admit is
/// NFS4ERR_ACCESS, a flavor it does not accept NFS4ERR_WRONGSEC (RFC 8881
/// §2.6.3.1, RFC 7530 §3.3.1). The log line names the client.
fn refuse(cx: &Cx, id: u32, d: Denial) -> NfsError {
    let path = cx
        .srv
        .vfs
        .export(id)
        .map(|e| e.cfg.path.as_str())
        .unwrap_or("?");
    // Rate-limited per client address (crate::ratelimit).
    if let Some(held) = cx
        .srv
        .refusals
        .admit(cx.req.peer.ip(), cx.srv.clock.now_ms())
    {
        tracing::warn!(
            peer = %cx.req.peer,
            export = %path,
            flavor = crate::export_access::flavor_of(&cx.req.cred, cx.req.gss.as_deref()),
            reason = d.reason(),
            held_back = held,
            "export access refused"
        );
    }
    match d {
        Denial::Host | Denial::Port => NfsError::Access,
        Denial::Flavor => NfsError::WrongSec,
    }
}

/// Before an operation that uses the current filehandle: its export must
/// admit this request. SECINFO and SECINFO_NO_NAME never answer
/// NFS4ERR_WRONGSEC (RFC 8881 §2.6.3.1.1); LOOKUP and LOOKUPP are judged
/// by the object they reach ([`guard_after`]). Also sets the effective
/// (squashed) credential for the current export.
fn guard_before(cx: &mut Cx, desc: &ops::OpDesc) -> Result<(), NfsError> {
    let export = cfh_export(cx);
    if export != cx.cred_export {
        cx.cred = match export.and_then(|id| cx.srv.vfs.export(id).ok()) {
            Some(e) => {
                crate::export_access::effective_cred(&e.cfg, &cx.req.cred, cx.req.gss.as_deref())
            }
            None => crate::export_access::request_cred(&cx.req.cred, cx.req.gss.as_deref()),
        };
        cx.cred_export = export;
    }
    match export {
        Some(id)
            if desc.flags.contains(Flags::NEED_FH) && !desc.flags.contains(Flags::OWN_SECURITY) =>
        {
            export_verdict(cx, id).map_err(|d| refuse(cx, id, d))?
        }
        _ => {}
    }
    // Past the gate: the operation runs.
    cx.modified |= desc.flags.contains(Flags::MODIFIES);
    Ok(())
}

/// After an operation that made a filehandle current, the rules of RFC
/// 8881 §2.6.3.1.1 (and knfsd's reading of them):
///
/// * PUTFH, PUTROOTFH, PUTPUBFH, RESTOREFH answer NFS4ERR_WRONGSEC only
///   when an operation follows that would use the handle as is: not when
///   they end the COMPOUND, and not before SECINFO / SECINFO_NO_NAME (the
///   client is asking which flavor to use) or LOOKUP / LOOKUPP / OPEN,
///   which decide for themselves on the object they reach.
/// * LOOKUP and LOOKUPP answer NFS4ERR_WRONGSEC for the object reached.
/// * A host or port the export does not admit gets NFS4ERR_ACCESS at once:
///   no flavor would help. (PUTFH's error list in RFC 8881 §15.2 has no
///   ACCESS; its alternatives STALE and WRONGSEC would make the client
///   discard a valid handle or negotiate a flavor that cannot succeed.)
fn guard_after(cx: &mut Cx, desc: &ops::OpDesc, next: Option<u32>) -> Result<(), NfsError> {
    let put_like = desc.flags.contains(Flags::PUTS_FH);
    let lookup_like = desc.flags.contains(Flags::LOOKS_UP);
    if !put_like && !lookup_like {
        return Ok(());
    }
    let Some(id) = cfh_export(cx) else {
        return Ok(());
    };
    match export_verdict(cx, id) {
        Ok(()) => Ok(()),
        Err(Denial::Flavor) if put_like => {
            // The COMPOUND ends here, or the next operation settles the
            // flavor question itself.
            let defers = match next.map(|n| (n, ops::describe(n))) {
                None => true,
                Some((_, Some(d))) => d.flags.contains(Flags::PICKS_FLAVOR),
                // A number that names no operation uses no handle (it
                // will fail as illegal); OP_ILLEGAL itself does not defer.
                Some((n, None)) => n != nfs_opnum4::OP_ILLEGAL as i32 as u32,
            };
            if defers {
                Ok(())
            } else {
                Err(refuse(cx, id, Denial::Flavor))
            }
        }
        Err(d) => Err(refuse(cx, id, d)),
    }
}

/// The checks the descriptor table asks for, in RFC order.
fn precheck(
    cx: &Cx,
    desc: &ops::OpDesc,
    index: usize,
    reply_so_far: usize,
) -> Result<(), NfsError> {
    if cx.minor >= 1 {
        let is_seq = desc.flags.contains(Flags::SEQUENCE);
        if index == 0 && !is_seq && !desc.flags.contains(Flags::SESSIONLESS) {
            return Err(NfsError::OpNotInSession);
        }
        if index > 0 && is_seq {
            return Err(NfsError::SequencePos);
        }
        if index == 0
            && desc.flags.contains(Flags::SESSIONLESS)
            && cx.op_count > 1
            && desc.flags.contains(Flags::ONLY_OP)
        {
            return Err(NfsError::NotOnlyOp);
        }
        if let Some(s) = &cx.session {
            let bound = reply_so_far as u64 + u64::from(desc.reply_bound);
            if bound > u64::from(s.fore.max_response) {
                return Err(NfsError::RepTooBig);
            }
            if s.cachethis && bound > u64::from(s.fore.max_response_cached) {
                return Err(NfsError::RepTooBigToCache);
            }
        }
    }
    if desc.flags.contains(Flags::NEED_FH) && cx.cfh.is_none() {
        return Err(NfsError::NoFileHandle);
    }
    // A file system that moved to another server (RFC 7530 §8.4.2, RFC
    // 8881 §11.3): only what lets the client find where it went runs.
    if desc.flags.contains(Flags::NEED_FH) && !desc.flags.contains(Flags::ABSENT_OK) {
        if let Some(export) = cfh_export(cx) {
            if cx.srv.vfs.moved_to(export).is_some() {
                tracing::debug!(op = desc.name, export, "file system moved: MOVED");
                return Err(NfsError::Moved);
            }
        }
    }
    Ok(())
}
