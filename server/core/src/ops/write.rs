//! WRITE (RFC 8881 §18.32, RFC 7530 §16.36): writes file data under a
//! stateid, as durably as asked.

use std::io::Cursor;

use nfs4d_xdr::codec::{unpack_opaque_borrowed, Unpack};
use nfs4d_xdr::nfs4::{stable_how4, stateid4, WRITE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use nfs4d_store::Stability;

/// WRITE4args (RFC 8881 §18.32.1) with the data borrowed from the
/// request: a 1 MiB WRITE copied out of its record into a buffer of its
/// own, only to be handed to the store as a slice, was a tenth of the
/// server's CPU on sequential writes.
#[derive(Debug)]
pub struct WriteArgs<'a> {
    /// The stateid the write is done under.
    pub stateid: stateid4,
    /// Where in the file.
    pub offset: u64,
    /// How durable the data must be before the reply.
    pub stable: stable_how4,
    /// The data, inside the request's record.
    pub data: &'a [u8],
    /// Where the data begins in the COMPOUND's arguments: a WRITE whose
    /// data the transport spliced into a pipe is found by it
    /// ([`crate::context::SplicedWrite`]).
    pub at: usize,
}

impl<'a> WriteArgs<'a> {
    /// Decodes the arguments as the generated WRITE4args decoder does,
    /// consuming the same bytes, except that the data is not copied.
    pub fn decode(cur: &mut Cursor<&'a [u8]>) -> nfs4d_xdr::codec::Result<WriteArgs<'a>> {
        let (stateid, _) = stateid4::unpack(cur)?;
        let (offset, _) = u64::unpack(cur)?;
        let (stable, _) = stable_how4::unpack(cur)?;
        // The length word is 4 bytes; the data follows it.
        let at = cur.position() as usize + 4;
        let (data, _) = unpack_opaque_borrowed(cur, None)?;
        Ok(WriteArgs {
            stateid,
            offset,
            stable,
            data,
            at,
        })
    }
}

/// WRITE: NFS4ERR_ROFS on a read-only export; an offset + length past
/// 2^64 - 1 is NFS4ERR_INVAL, past the largest file size NFS4ERR_FBIG (the
/// backend's check). The stateid is admitted as for READ
/// ([`super::read::admit`]); the READ bypass stateid counts as anonymous
/// (RFC 8881 §18.32.3). The data is committed exactly as `stable` asks
/// (UNSTABLE4: page cache, to be COMMITted; DATA_SYNC4: fdatasync;
/// FILE_SYNC4: fsync), and `committed` says so. A zero-length write
/// touches nothing (§18.32.4: it SHOULD NOT change the modify time).
pub fn run(cx: &mut Cx, a: WriteArgs<'_>) -> NfsResult<WRITE4resok> {
    // The data is in a pipe if the transport spliced this WRITE's; taken
    // first, so that it is released whatever this WRITE answers.
    let mut piped = if a.data.is_empty() {
        cx.spliced.take_if(|w| w.at == a.at).map(|w| w.data)
    } else {
        None
    };
    let cur = cx.cfh()?.clone();
    let sid = cx.resolve_stateid(&a.stateid)?;
    let (e, _, _) = common::obj(cx, &cur, NfsError::IsDir)?;
    common::writable(cx, e)?;
    let len = piped.as_ref().map_or(a.data.len(), |p| p.len()) as u64;
    let end = a.offset.checked_add(len).ok_or(NfsError::Inval)?;
    let range = (len > 0).then(|| (a.offset, end - 1));
    let (e, path) = super::read::admit(cx, &cur, &sid, true, range)?;
    let stability = match a.stable {
        stable_how4::UNSTABLE4 => Stability::Unstable,
        stable_how4::DATA_SYNC4 => Stability::DataSync,
        stable_how4::FILE_SYNC4 => Stability::FileSync,
    };
    let (written, done) = match piped.as_deref_mut() {
        Some(p) if !p.is_empty() => e.store().write_piped(path, a.offset, p, stability)?,
        _ if a.data.is_empty() => (0, stability),
        _ => e.store().write(path, a.offset, a.data, stability)?,
    };
    cx.srv.metrics.written_bytes(written as u64);
    if done.max(stability) != Stability::Unstable {
        // Stable data must stay reachable through the client's handle,
        // also on an async export (namespace/lazy.rs).
        if let crate::namespace::vfs::Node::Obj { id, .. } = &cur.node {
            cx.srv.vfs.make_object_durable(e, *id)?;
        }
    }
    Ok(WRITE4resok {
        // At most the request's length, which the record size bounds.
        count: u32::try_from(written).map_err(|_| NfsError::ServerFault)?,
        // What the store guaranteed: at least what was asked (RFC 8881
        // §18.32.3 lets a server commit more than asked, never less).
        committed: match done.max(stability) {
            Stability::Unstable => stable_how4::UNSTABLE4,
            Stability::DataSync => stable_how4::DATA_SYNC4,
            Stability::FileSync => stable_how4::FILE_SYNC4,
        },
        writeverf: cx.srv.write_verifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_xdr::nfs4::WRITE4args;

    /// The borrowed decoding reads what the generated decoder reads, and
    /// stops at the same byte; cut short it fails as that one does.
    #[test]
    fn borrowed_decoding_matches_the_generated_one() {
        for len in [0usize, 1, 5, 4096, 70_001] {
            let args = WRITE4args {
                stateid: stateid4 {
                    seqid: 7,
                    other: [3; 12],
                },
                offset: 1 << 40,
                stable: stable_how4::DATA_SYNC4,
                data: (0..len).map(|i| (i * 11 + 5) as u8).collect(),
            };
            let mut bytes = nfs4d_xdr::to_bytes(&args);
            bytes.extend_from_slice(b"tail");
            let mut a = Cursor::new(&bytes[..]);
            let got = WriteArgs::decode(&mut a).expect("decodes");
            let mut b = Cursor::new(&bytes[..]);
            let (want, _) = WRITE4args::unpack(&mut b).expect("decodes");
            assert_eq!(a.position(), b.position(), "{len} bytes");
            assert_eq!(
                (got.stateid, got.offset, got.stable, got.data),
                (want.stateid, want.offset, want.stable, &want.data[..])
            );
            for cut in [1, 5, bytes.len() - 4] {
                let short = &bytes[..bytes.len() - 4 - cut];
                assert!(WriteArgs::decode(&mut Cursor::new(short)).is_err());
                assert!(WRITE4args::unpack(&mut Cursor::new(short)).is_err());
            }
        }
    }
}
