//! READ_PLUS (RFC 7862 §15.10): READ that describes holes instead of
//! sending their zeros.

use nfs4d_xdr::nfs4::{data4, data_info4, read_plus_content, read_plus_res4, READ_PLUS4args};

use super::common;
use crate::config::MAX_IO;
use crate::context::Cx;
use crate::error::NfsResult;
use nfs4d_store::{RelPath, Store};

/// Reply bytes kept free around READ_PLUS's result in a COMPOUND (RPC
/// header, status, tag, SEQUENCE and PUTFH results), as READ keeps.
const OVERHEAD: u32 = 512;

/// Encoded size of `rpr_eof` and the array length.
const RES_FIXED: u64 = 8;
/// Encoded size of a hole segment: discriminant, offset, length.
const HOLE_BYTES: u64 = 4 + 8 + 8;
/// Encoded size of a data segment without its data: discriminant, offset,
/// opaque length.
const DATA_FIXED: u64 = 4 + 8 + 4;

/// READ_PLUS: admitted exactly as READ ([`super::read::admit`]: stateid
/// rules, NFS4ERR_ISDIR / NFS4ERR_SYMLINK / NFS4ERR_WRONG_TYPE, §15.10.3),
/// the count clamped as READ's (MAX_IO and the session's maximum reply; a
/// short result is allowed, §15.10.3). The result covers
/// `[offset, offset + returned)` in contiguous segments: holes — found
/// with `SEEK_DATA`/`SEEK_HOLE` — as `NFS4_CONTENT_HOLE`, the rest as
/// `NFS4_CONTENT_DATA`. Holes are reported only within the requested range
/// (the RFC's "SHOULD be returned in their entirety" is not followed, so
/// the result never describes more than the client asked for, as knfsd
/// does). At or past end of file the result is empty with eof; a zero count
/// returns no segments; eof is TRUE when the result reaches end of file.
pub fn run(cx: &mut Cx, a: READ_PLUS4args) -> NfsResult<read_plus_res4> {
    let cur = cx.cfh()?.clone();
    let sid = cx.resolve_stateid(&a.rpa_stateid)?;
    // The whole encoded result must fit the session's reply.
    let room = match &cx.session {
        Some(s) => u64::from(s.fore.max_response.saturating_sub(OVERHEAD)),
        None => u64::from(MAX_IO) + 4096,
    };
    let count = u64::from(a.rpa_count.min(MAX_IO)).min(room.saturating_sub(RES_FIXED + DATA_FIXED));
    let range = (count > 0).then(|| (a.rpa_offset, a.rpa_offset.saturating_add(count - 1)));
    let (e, path) = super::read::admit(cx, &cur, &sid, false, range)?;
    let attrs = e.store().stat(path)?;
    common::regular_file(cx, attrs.kind)?;
    let res = segments(&*e.store(), path, a.rpa_offset, count, attrs.size, room);
    if let Ok(r) = &res {
        // Holes count as the bytes they stand for: what the client reads.
        let n = r.rpr_contents.iter().map(|c| match c {
            read_plus_content::NFS4_CONTENT_DATA(d) => d.d_data.len() as u64,
            read_plus_content::NFS4_CONTENT_HOLE(h) => h.di_length,
            read_plus_content::default(_) => 0,
        });
        cx.srv.metrics.read_bytes(n.sum());
    }
    res
}

/// The segments describing up to `count` bytes at `offset` of the file at
/// `path`, whose size is `size`, in at most `room` encoded bytes.
fn segments(
    b: &dyn Store,
    path: &RelPath,
    offset: u64,
    count: u64,
    size: u64,
    room: u64,
) -> NfsResult<read_plus_res4> {
    let mut contents = Vec::new();
    if offset >= size || count == 0 {
        return Ok(read_plus_res4 {
            rpr_eof: offset >= size,
            rpr_contents: contents,
        });
    }
    let end = offset.saturating_add(count).min(size);
    let mut used = RES_FIXED;
    let mut pos = offset;
    let mut eof = false;
    while pos < end {
        // `None`: only holes up to end of file (or the file shrank).
        let data_at = b.seek_data(path, pos)?.unwrap_or(size);
        if data_at > pos {
            if used + HOLE_BYTES > room {
                break;
            }
            let hole_end = data_at.min(end);
            contents.push(read_plus_content::NFS4_CONTENT_HOLE(data_info4 {
                di_offset: pos,
                di_length: hole_end - pos,
            }));
            used += HOLE_BYTES;
            pos = hole_end;
            continue;
        }
        // Data at `pos`, up to the next hole; `None` means `pos` is no
        // longer inside the file (it shrank since the stat).
        let Some(hole_at) = b.seek_hole(path, pos)? else {
            eof = true;
            break;
        };
        let avail = room.saturating_sub(used + DATA_FIXED) & !3;
        let want = hole_at.min(end).saturating_sub(pos).min(avail);
        if want == 0 {
            break;
        }
        let mut data = Vec::new();
        // `want` <= count <= MAX_IO, so it fits a usize.
        let (n, read_eof) = b.read(path, pos, want as usize, &mut data)?;
        if n == 0 {
            eof = read_eof;
            break;
        }
        used += DATA_FIXED + (n as u64).next_multiple_of(4);
        contents.push(read_plus_content::NFS4_CONTENT_DATA(data4 {
            d_offset: pos,
            d_data: data,
        }));
        pos += n as u64;
        if (n as u64) < want {
            eof = read_eof;
            break;
        }
    }
    Ok(read_plus_res4 {
        rpr_eof: eof || pos >= size,
        rpr_contents: contents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_store::{Name, Owner, Stability, Store};
    use nfs4d_store_local::LocalStore;

    const BLK: u64 = 64 << 10;

    /// A file of `layout` blocks of BLK bytes: `true` data (0xab), `false`
    /// a hole; returns the backend, its directory and the path.
    fn sparse(layout: &[bool]) -> (tempfile::TempDir, LocalStore, RelPath) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalStore::open(dir.path()).expect("backend");
        let name = Name::new(b"f").expect("name");
        b.create_file(
            &RelPath::root(),
            &name,
            0o644,
            Owner { uid: 0, gid: 0 },
            true,
        )
        .expect("create");
        let path = RelPath::root().join(&name);
        let block = vec![0xab; BLK as usize];
        for (i, &d) in layout.iter().enumerate() {
            if d {
                b.write(&path, i as u64 * BLK, &block, Stability::Unstable)
                    .expect("write");
            }
        }
        let len = layout.len() as u64 * BLK;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("f"))
            .expect("open");
        f.set_len(len).expect("truncate");
        (dir, b, path)
    }

    fn holes_supported(b: &LocalStore, path: &RelPath) -> bool {
        b.seek_hole(path, 0).ok().flatten() == Some(0)
    }

    /// (is data, offset, length) per segment.
    fn shape(r: &read_plus_res4) -> Vec<(bool, u64, u64)> {
        r.rpr_contents
            .iter()
            .map(|c| match c {
                read_plus_content::NFS4_CONTENT_DATA(d) => {
                    assert!(d.d_data.iter().all(|&x| x == 0xab));
                    (true, d.d_offset, d.d_data.len() as u64)
                }
                read_plus_content::NFS4_CONTENT_HOLE(h) => (false, h.di_offset, h.di_length),
                read_plus_content::default(_) => panic!("default arm"),
            })
            .collect()
    }

    #[test]
    fn holes_and_data() {
        let (_d, b, p) = sparse(&[false, true, false, false, true]);
        if !holes_supported(&b, &p) {
            eprintln!("filesystem without holes; skipped");
            return;
        }
        let size = 5 * BLK;
        let r = segments(&b, &p, 0, size, size, 1 << 30).expect("read_plus");
        assert_eq!(
            shape(&r),
            [
                (false, 0, BLK),
                (true, BLK, BLK),
                (false, 2 * BLK, 2 * BLK),
                (true, 4 * BLK, BLK)
            ]
        );
        assert!(r.rpr_eof);
        // A range inside a hole, clipped to the request; not at eof.
        let r = segments(&b, &p, 2 * BLK + 10, 100, size, 1 << 30).expect("read_plus");
        assert_eq!(shape(&r), [(false, 2 * BLK + 10, 100)]);
        assert!(!r.rpr_eof);
        // Data then the start of a hole.
        let r = segments(&b, &p, BLK + 5, BLK, size, 1 << 30).expect("read_plus");
        assert_eq!(shape(&r), [(true, BLK + 5, BLK - 5), (false, 2 * BLK, 5)]);
        // Room for the fixed part and a little data: a short result.
        let r = segments(&b, &p, BLK, BLK, size, RES_FIXED + DATA_FIXED + 100).expect("read_plus");
        assert_eq!(shape(&r), [(true, BLK, 100)]);
        assert!(!r.rpr_eof);
    }

    #[test]
    fn trailing_hole_and_eof() {
        let (_d, b, p) = sparse(&[true, false]);
        let size = 2 * BLK;
        let r = segments(&b, &p, 0, 4 * BLK, size, 1 << 30).expect("read_plus");
        let s = shape(&r);
        assert!(r.rpr_eof);
        assert_eq!(s.iter().map(|x| x.2).sum::<u64>(), size);
        // At and past end of file: nothing, eof.
        for off in [size, size + 1, u64::MAX] {
            let r = segments(&b, &p, off, 10, size, 1 << 30).expect("read_plus");
            assert!(r.rpr_eof && r.rpr_contents.is_empty());
        }
        // Zero count: nothing, not eof.
        let r = segments(&b, &p, 0, 0, size, 1 << 30).expect("read_plus");
        assert!(!r.rpr_eof && r.rpr_contents.is_empty());
    }
}
