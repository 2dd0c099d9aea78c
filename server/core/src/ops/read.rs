//! READ (RFC 8881 §18.22, RFC 7530 §16.23): reads file data under a
//! stateid. Also the admission check WRITE shares ([`admit`]).

use nfs4d_xdr::nfs4::{nfs_opnum4, nfsstat4, stateid4, READ4args, READ4resok};

use super::common;
use crate::auth::GssService;
use crate::config::MAX_IO;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{CurFh, Export};
use crate::reply::{Detached, Payload};
use crate::state::open::{IoGrant, IoIntent};
use nfs4d_store::RelPath;

/// Reply bytes around READ's data in a 4.1 COMPOUND (RPC reply header,
/// COMPOUND status, tag, SEQUENCE and PUTFH results, READ's own header),
/// kept free when the count is fitted to the session's reply size.
const READ_OVERHEAD: u32 = 512;

/// A READ's result before it is encoded: its data in a buffer, or left
/// in a kernel pipe by the store ([`Store::read_piped`]).
///
/// [`Store::read_piped`]: nfs4d_store::Store::read_piped
#[derive(Debug)]
pub struct ReadOk {
    /// Whether the read reached end of file.
    pub eof: bool,
    /// The data read.
    pub data: Payload,
}

/// READ: the count is clamped to MAX_IO and, in 4.1, to what the session's
/// maximum reply leaves room for (a short read is allowed, RFC 8881
/// §18.22.4); reading at or past the end of file returns no data and eof.
pub fn run(cx: &mut Cx, a: READ4args) -> NfsResult<ReadOk> {
    let cur = cx.cfh()?.clone();
    let sid = cx.resolve_stateid(&a.stateid)?;
    let mut max = MAX_IO;
    if let Some(s) = &cx.session {
        max = max.min(s.fore.max_response.saturating_sub(READ_OVERHEAD));
    }
    let count = a.count.min(max);
    let range = (count > 0).then(|| (a.offset, a.offset.saturating_add(u64::from(count) - 1)));
    let (e, path) = admit(cx, &cur, &sid, false, range)?;
    if count as usize >= DETACH_MIN && may_pipe(cx) {
        if let Some((piped, eof)) = e.store().read_piped(path, a.offset, count as usize)? {
            cx.srv.metrics.read_bytes(piped.len() as u64);
            return Ok(ReadOk {
                eof,
                data: Payload::Piped(piped),
            });
        }
    }
    let mut data = cx.srv.read_buffers.take(count as usize);
    let (_, eof) = e.store().read(path, a.offset, count as usize, &mut data)?;
    cx.srv.metrics.read_bytes(data.len() as u64);
    Ok(ReadOk {
        eof,
        data: Payload::Buf(data),
    })
}

/// Whether this READ's data may stay in a pipe: the COMPOUND has no
/// detached data yet (one per reply), and the reply is sent as it is, not
/// checksummed or encrypted as a whole (RPCSEC_GSS integrity, privacy),
/// which would read the pipe back out. A reply the session's slot keeps
/// reads it back out too, which is correct but no gain; such replies are
/// small.
fn may_pipe(cx: &Cx) -> bool {
    cx.detached.is_none()
        && cx
            .req
            .gss
            .as_deref()
            .is_none_or(|g| g.service < GssService::Integrity)
}

/// READ data at least this long is sent from its own buffer (one more
/// part in the connection's vectored write) instead of being copied into
/// the encoded reply; shorter data is cheaper to copy.
const DETACH_MIN: usize = 16 << 10;

/// Encodes READ's result. The data of the first large READ of a COMPOUND
/// is not copied into `out` but handed to the reply as detached data
/// ([`crate::reply`]): copying 1 MiB per READ was a tenth of the server's
/// CPU on sequential reads. Data in a pipe is always detached when it can
/// be. The bytes on the wire are the same.
pub fn finish(cx: &mut Cx, out: &mut Vec<u8>, op: nfs_opnum4, r: NfsResult<ReadOk>) -> nfsstat4 {
    match r {
        Ok(res)
            if cx.detached.is_none()
                && (matches!(res.data, Payload::Piped(_)) || res.data.len() >= DETACH_MIN) =>
        {
            match encode_detached(out, op, res) {
                Ok(d) => {
                    cx.detached = Some(d);
                    nfsstat4::NFS4_OK
                }
                Err(res) => finish_inline(out, op, res),
            }
        }
        Ok(res) => finish_inline(out, op, res),
        Err(e) => super::finish::<READ4resok>(out, op, Err(e)),
    }
}

/// Encodes an OK READ result with its data in `out`.
fn finish_inline(out: &mut Vec<u8>, op: nfs_opnum4, res: ReadOk) -> nfsstat4 {
    let data = match res.data.into_vec() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "READ data could not be read out of its pipe");
            return super::finish::<READ4resok>(out, op, Err(NfsError::Io));
        }
    };
    super::finish(out, op, Ok(READ4resok { eof: res.eof, data }))
}

/// Encodes an OK READ result as [`super::finish`] would, except that the
/// data stays out of `out`: returned as detached at its place (after the
/// length word; the XDR padding that follows it is in `out`). Data too
/// long for an XDR length is given back (never: reads are at most 16 MiB).
fn encode_detached(out: &mut Vec<u8>, op: nfs_opnum4, res: ReadOk) -> Result<Detached, ReadOk> {
    let Ok(len) = u32::try_from(res.data.len()) else {
        return Err(res);
    };
    super::put_u32(out, op as i32 as u32);
    super::put_u32(out, nfsstat4::NFS4_OK as i32 as u32);
    super::put_u32(out, u32::from(res.eof));
    super::put_u32(out, len);
    let at = out.len();
    out.extend_from_slice(&[0; 3][..(4 - res.data.len() % 4) % 4]);
    Ok(Detached { at, data: res.data })
}

/// Whether the caller may do this I/O on the current file under `sid`
/// (RFC 7530 §9.1.6, RFC 8881 §18.22.3/§18.32.3), returning the export and
/// path to do it on.
///
/// The state side (share reservations, open mode, mandatory byte-range
/// locks, stateid validity) is [`crate::state::StateManager::check_io`].
/// I/O under a special stateid was authorised by no OPEN, so the current
/// file must be a regular file the caller has permission for by its mode
/// bits (read, or execute for reading, as OPEN allows; write). I/O under an
/// open or lock stateid was authorised by its OPEN; the 4.0 lease of its
/// client is renewed. The pseudo filesystem has only directories
/// (NFS4ERR_ISDIR); a stateid of another file is NFS4ERR_BAD_STATEID,
/// unless the current file is no regular file at all (its type error).
pub(super) fn admit<'c>(
    cx: &'c Cx,
    cur: &'c CurFh,
    sid: &stateid4,
    write: bool,
    range: Option<(u64, u64)>,
) -> NfsResult<(&'c Export, &'c RelPath)> {
    let (e, path, id) = common::obj(cx, cur, NfsError::IsDir)?;
    if crate::state::special::is_anonymous(sid) || (write && crate::state::special::is_bypass(sid))
    {
        common::refuse_in_grace(cx)?;
    }
    let io = IoIntent { write, range };
    match cx
        .srv
        .state
        .check_io(sid, (e.id, id), io, cx.minor, cx.session_client())
    {
        Ok(IoGrant::State { client }) => {
            if cx.minor == 0 {
                // Any use of a client's stateid renews its lease (RFC 7530
                // §9.6); a failure shows up in its next stateful request.
                let _ = cx.srv.state.renew(client);
            }
            // A stateid presented by another principal than the one that
            // opened is no ticket by itself: that caller needs the access
            // by mode, the file's owner excepted (as knfsd; pynfs WRT19).
            let opener = cx
                .srv
                .state
                .lock()
                .clients
                .get(&client)
                .map(|c| c.principal.clone());
            if opener != Some(cx.req.principal()) {
                let a = e.store().stat(path)?;
                if common::user(cx).uid != a.uid {
                    let want = if write {
                        common::MAY_WRITE
                    } else {
                        common::MAY_READ | common::MAY_EXEC
                    };
                    if common::allowed(cx, &a, want) == 0 {
                        return Err(NfsError::Access);
                    }
                }
            }
        }
        Ok(IoGrant::Special) => {
            let a = e.store().stat(path)?;
            common::regular_file(cx, a.kind)?;
            if write {
                common::require(cx, &a, common::MAY_WRITE)?;
            } else if common::allowed(cx, &a, common::MAY_READ | common::MAY_EXEC) == 0 {
                return Err(NfsError::Access);
            }
        }
        Err(NfsError::BadStateid) => {
            common::regular_file(cx, e.store().stat(path)?.kind)?;
            return Err(NfsError::BadStateid);
        }
        Err(err) => return Err(err),
    }
    Ok((e, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detached encoding, put back together, is byte for byte what the
    /// generated encoder gives, for every padding length.
    #[test]
    fn detached_encoding_matches_packed() {
        for (n, eof) in [
            (0, true),
            (1, false),
            (2, true),
            (3, false),
            (4, true),
            (65_537, false),
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut packed = vec![9, 9];
            let st = super::super::finish(
                &mut packed,
                nfs_opnum4::OP_READ,
                Ok(READ4resok {
                    eof,
                    data: data.clone(),
                }),
            );
            assert_eq!(st, nfsstat4::NFS4_OK);
            let mut out = vec![9, 9];
            let res = ReadOk {
                eof,
                data: data.into(),
            };
            let mut d = encode_detached(&mut out, nfs_opnum4::OP_READ, res).expect("encodable");
            let joined = crate::reply::join(&out, Some(&mut d), 0).expect("in memory");
            assert_eq!(joined, packed, "n={n}");
        }
    }
}
