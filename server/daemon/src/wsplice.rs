//! Finding a large WRITE's data in a record whose body is still arriving,
//! so that the connection can splice the data from the socket into a pipe
//! instead of reading it into the record (net.rs).
//!
//! Read into the record, a WRITE's data is copied twice on the server:
//! from the socket's buffers into the record, and from the record into the
//! page cache. Spliced, the pipe takes references to the socket's pages and
//! the store splices them into the file: the page cache's copy is the only
//! one (docs/performance.md, "Streaming against the file-ended streams").
//!
//! Only the shape every NFSv4.1 and 4.2 client sends for a WRITE is looked
//! for: an AUTH_NONE or AUTH_SYS call of COMPOUND whose operations begin
//! SEQUENCE, PUTFH, WRITE (RFC 8881 §2.10.6.1: SEQUENCE comes first). Any
//! other record is read as before. RPCSEC_GSS calls never are: integrity
//! and privacy need the bytes of the whole call in user space, and the
//! engine that checks them reads the record.

use nfs4d_xdr::nfs4::{nfs_opnum4, NFS4_FHSIZE};
use nfs4d_xdr::record::HEADER_LEN;

/// Smallest WRITE whose data is spliced: below it, the system calls of a
/// pipe cost more than the copy they save.
pub const SPLICE_MIN: usize = 64 << 10;

/// RPC message type of a call (RFC 5531 §9).
const CALL: u32 = 0;
/// NFS program number and version, and the COMPOUND procedure.
const NFS_PROGRAM: u32 = 100_003;
const NFS_V4: u32 = 4;
const COMPOUND: u32 = 1;
/// Credential and verifier bodies are at most 400 bytes (RFC 5531 §8.2).
const MAX_AUTH_BODY: u32 = 400;
/// Longest COMPOUND tag looked past; a longer one is read as before.
const MAX_TAG: u32 = 1024;
/// Bytes of SEQUENCE4args: sessionid (16), sequenceid, slotid,
/// highest_slotid, cachethis (4 each).
const SEQUENCE_ARGS: usize = 32;
/// Bytes of WRITE4args before its data's length: stateid (16), offset (8),
/// stable (4).
const WRITE_HEAD: usize = 28;

/// Where a WRITE's data is in a record (offsets from the record's spare
/// header bytes, as the reassembler holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Offset of the data's length word.
    pub len_at: usize,
    /// Offset of the data's first byte.
    pub data_at: usize,
    /// Bytes of data.
    pub data_len: usize,
}

/// Reads big-endian u32s from a prefix of a record; `None` past its end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Skips `n` bytes and their XDR padding.
    fn skip_padded(&mut self, n: u32) -> Option<()> {
        self.pos = self.pos.checked_add((n as usize).div_ceil(4) * 4)?;
        (self.pos <= self.buf.len()).then_some(())
    }
}

/// The WRITE whose data may be spliced out of the record whose first bytes
/// are `partial` and whole size `whole` (both counting the spare header
/// bytes), when the record has that shape and the data is at least
/// [`SPLICE_MIN`], at most `max` bytes, a multiple of 4 (no XDR padding to
/// strip), and inside the record. `None` otherwise, and when `partial`
/// ends before the data begins.
pub fn locate(partial: &[u8], whole: usize, max: usize) -> Option<Located> {
    let mut r = Reader {
        buf: partial,
        pos: HEADER_LEN,
    };
    let _xid = r.u32()?;
    if r.u32()? != CALL || r.u32()? != 2 {
        return None;
    }
    if (r.u32()?, r.u32()?, r.u32()?) != (NFS_PROGRAM, NFS_V4, COMPOUND) {
        return None;
    }
    // The credential, then the verifier: AUTH_NONE (0) or AUTH_SYS (1).
    for _ in 0..2 {
        let flavor = r.u32()?;
        let len = r.u32()?;
        if flavor > 1 || len > MAX_AUTH_BODY {
            return None;
        }
        r.skip_padded(len)?;
    }
    let tag = r.u32()?;
    if tag > MAX_TAG {
        return None;
    }
    r.skip_padded(tag)?;
    let minor = r.u32()?;
    if minor == 0 || r.u32()? < 3 {
        return None;
    }
    if r.u32()? != nfs_opnum4::OP_SEQUENCE as u32 {
        return None;
    }
    r.skip_padded(SEQUENCE_ARGS as u32)?;
    if r.u32()? != nfs_opnum4::OP_PUTFH as u32 {
        return None;
    }
    let fh = r.u32()?;
    if fh > NFS4_FHSIZE {
        return None;
    }
    r.skip_padded(fh)?;
    if r.u32()? != nfs_opnum4::OP_WRITE as u32 {
        return None;
    }
    r.skip_padded(WRITE_HEAD as u32)?;
    let len_at = r.pos;
    let data_len = r.u32()? as usize;
    let data_at = r.pos;
    let fits = data_at
        .checked_add(data_len)
        .is_some_and(|end| end <= whole);
    (data_len >= SPLICE_MIN && data_len <= max && data_len.is_multiple_of(4) && fits).then_some(
        Located {
            len_at,
            data_at,
            data_len,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_xdr::nfs4::{
        nfs_argop4, stable_how4, stateid4, COMPOUND4args, PUTFH4args, SEQUENCE4args, WRITE4args,
    };

    const AUTH_SYS_BODY: usize = 20 + 12;

    /// A record (spare header bytes first) of an RPC call of COMPOUND with
    /// `ops`, under `flavor` with a credential body of `cred_len` bytes.
    fn record(flavor: u32, cred_len: usize, minor: u32, ops: Vec<nfs_argop4>) -> Vec<u8> {
        let mut rec = vec![0u8; HEADER_LEN];
        for w in [
            0x1234,
            CALL,
            2,
            NFS_PROGRAM,
            NFS_V4,
            COMPOUND,
            flavor,
            cred_len as u32,
        ] {
            rec.extend_from_slice(&w.to_be_bytes());
        }
        rec.extend(std::iter::repeat_n(7u8, cred_len.div_ceil(4) * 4));
        rec.extend_from_slice(&[0; 8]); // AUTH_NONE verifier
        let args = COMPOUND4args {
            tag: b"tagged".to_vec(),
            minorversion: minor,
            argarray: ops,
        };
        rec.extend_from_slice(&nfs4d_xdr::to_bytes(&args));
        rec
    }

    fn write(len: usize) -> nfs_argop4 {
        nfs_argop4::OP_WRITE(WRITE4args {
            stateid: stateid4 {
                seqid: 1,
                other: [9; 12],
            },
            offset: 1 << 20,
            stable: stable_how4::UNSTABLE4,
            data: (0..len).map(|i| (i % 253) as u8).collect(),
        })
    }

    fn sequence() -> nfs_argop4 {
        nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: [1; 16],
            sa_sequenceid: 5,
            sa_slotid: 0,
            sa_highest_slotid: 15,
            sa_cachethis: false,
        })
    }

    fn putfh(len: usize) -> nfs_argop4 {
        nfs_argop4::OP_PUTFH(PUTFH4args {
            object: vec![3; len],
        })
    }

    fn linux_write(len: usize, fh: usize) -> Vec<nfs_argop4> {
        vec![
            sequence(),
            putfh(fh),
            write(len),
            nfs_argop4::OP_GETATTR(nfs4d_xdr::nfs4::GETATTR4args {
                attr_request: vec![0x18, 0x30_0000],
            }),
        ]
    }

    #[test]
    fn finds_the_data_of_the_write_clients_send() {
        for (flavor, cred, fh) in [(1, AUTH_SYS_BODY, 36), (0, 0, 26), (1, 37, 128)] {
            let len = 1 << 20;
            let rec = record(flavor, cred, 1, linux_write(len, fh));
            // The header, with only the first 100 bytes of data arrived.
            let head_end = rec.len() - len - 16 + 100;
            let at = locate(&rec[..head_end], rec.len(), 1 << 20).expect("located");
            assert_eq!(at.data_len, len);
            assert_eq!(
                &rec[at.data_at..at.data_at + len],
                &(0..len).map(|i| (i % 253) as u8).collect::<Vec<_>>()[..]
            );
            assert_eq!(rec[at.len_at..at.len_at + 4], (len as u32).to_be_bytes());
        }
    }

    #[test]
    fn leaves_every_other_record_alone() {
        let len = 256 << 10;
        let whole = |r: &Vec<u8>| r.len();
        // 4.0 (no sessions, a duplicate request cache keyed on the bytes).
        let r = record(1, AUTH_SYS_BODY, 0, vec![putfh(8), write(len), putfh(8)]);
        assert_eq!(locate(&r, whole(&r), 1 << 20), None);
        // RPCSEC_GSS (6).
        let r = record(6, 40, 1, linux_write(len, 36));
        assert_eq!(locate(&r, whole(&r), 1 << 20), None);
        // Another shape of COMPOUND.
        let r = record(
            1,
            AUTH_SYS_BODY,
            1,
            vec![sequence(), putfh(36), putfh(36), write(len)],
        );
        assert_eq!(locate(&r, whole(&r), 1 << 20), None);
        // Too small, too large for the pipe, or padded.
        for (n, max) in [
            (SPLICE_MIN - 4, 1 << 20),
            (len, len - 4),
            (len + 2, 1 << 20),
        ] {
            let r = record(1, AUTH_SYS_BODY, 2, linux_write(n, 36));
            assert_eq!(locate(&r, whole(&r), max), None, "{n}");
        }
        // A length claiming more than the record holds.
        let r = record(1, AUTH_SYS_BODY, 1, linux_write(len, 36));
        assert_eq!(locate(&r, r.len() - 20, 1 << 20), None);
        // The header not all arrived yet.
        let r = record(1, AUTH_SYS_BODY, 1, linux_write(len, 36));
        let cut = r.len() - len - 16 - 2;
        assert_eq!(locate(&r[..cut], r.len(), 1 << 20), None);
    }

    #[test]
    fn garbage_is_never_located_and_never_panics() {
        let r = record(1, AUTH_SYS_BODY, 1, linux_write(SPLICE_MIN, 36));
        let mut x = 0x9e37_79b9u32;
        for _ in 0..20_000 {
            let mut g = r[..r.len() - SPLICE_MIN + 64].to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % g.len();
                g[i] = (x >> 8) as u8;
            }
            // Whatever it finds is inside the record it was given.
            if let Some(at) = locate(&g, r.len(), 1 << 20) {
                assert!(at.data_at + at.data_len <= r.len());
                assert!(at.len_at + 4 == at.data_at);
            }
        }
    }
}
