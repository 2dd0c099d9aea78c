//! The bytes of a regular file: sparse, in fixed-size chunks. A chunk that
//! is absent is a hole and reads as zeros, so a file truncated up to a
//! terabyte costs nothing, and SEEK_DATA / SEEK_HOLE fall out of the
//! chunk map.
//!
//! Invariants: no chunk lies wholly at or past the end of file, and the
//! bytes of the last chunk past the end of file are zero (so extending the
//! file shows zeros without touching it).

use std::collections::BTreeMap;

/// Bytes per chunk: the allocation unit, and the alignment CLONE wants.
pub const CHUNK: usize = 4096;
const CHUNK64: u64 = CHUNK as u64;

/// The largest file size (and offset + length of any range): file offsets
/// are signed on the systems clients run on.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

type Chunk = Box<[u8; CHUNK]>;

#[derive(Debug, Default, Clone)]
pub struct FileData {
    size: u64,
    chunks: BTreeMap<u64, Chunk>,
}

/// Chunk indices `[first, last]` covering the non-empty range
/// `[off, off + len)`.
fn span(off: u64, len: u64) -> (u64, u64) {
    (off / CHUNK64, (off + len - 1) / CHUNK64)
}

impl FileData {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held in chunks.
    pub fn allocated(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK64
    }

    /// Bytes new chunks would take to hold `[off, off + len)` (`off + len`
    /// must not overflow).
    pub fn missing(&self, off: u64, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let (first, last) = span(off, len);
        let present = self.chunks.range(first..=last).count() as u64;
        (last - first + 1 - present) * CHUNK64
    }

    /// Appends up to `len` bytes at `off` to `buf` (holes as zeros);
    /// returns how many.
    pub fn read(&self, off: u64, len: usize, buf: &mut Vec<u8>) -> usize {
        let avail = self.size.saturating_sub(off);
        let n = usize::try_from(avail).unwrap_or(usize::MAX).min(len);
        buf.reserve(n);
        let mut pos = off;
        let end = off + n as u64;
        while pos < end {
            let within = (pos % CHUNK64) as usize;
            let take = (CHUNK - within).min((end - pos) as usize);
            match self.chunks.get(&(pos / CHUNK64)) {
                Some(c) => buf.extend_from_slice(&c[within..within + take]),
                None => buf.resize(buf.len() + take, 0),
            }
            pos += take as u64;
        }
        n
    }

    /// Writes `data` at `off`, allocating chunks and extending the file.
    /// The caller checked the range against [`MAX_FILE_SIZE`] and the
    /// space against its budget ([`FileData::missing`]).
    pub fn write(&mut self, off: u64, data: &[u8]) {
        let mut pos = off;
        let mut rest = data;
        while !rest.is_empty() {
            let within = (pos % CHUNK64) as usize;
            let take = (CHUNK - within).min(rest.len());
            let chunk = self
                .chunks
                .entry(pos / CHUNK64)
                .or_insert_with(|| Box::new([0; CHUNK]));
            chunk[within..within + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            pos += take as u64;
        }
        self.size = self.size.max(pos);
    }

    /// Sets the size; returns the bytes of chunks freed.
    pub fn truncate(&mut self, size: u64) -> u64 {
        let before = self.allocated();
        let keep = size.div_ceil(CHUNK64);
        drop(self.chunks.split_off(&keep));
        if let Some(c) = self.chunks.get_mut(&(size / CHUNK64)) {
            let within = (size % CHUNK64) as usize;
            c[within..].fill(0);
        }
        self.size = size;
        before - self.allocated()
    }

    /// Zeroes `[off, off + len)` inside the file, releasing whole chunks;
    /// returns the bytes freed. The size does not change.
    pub fn zero_range(&mut self, off: u64, len: u64) -> u64 {
        let end = off.saturating_add(len).min(self.size);
        if off >= end {
            return 0;
        }
        let before = self.allocated();
        let (first, last) = span(off, end - off);
        let present: Vec<u64> = self.chunks.range(first..=last).map(|(k, _)| *k).collect();
        for idx in present {
            let start = idx * CHUNK64;
            let (lo, hi) = (off.max(start), end.min(start + CHUNK64));
            if lo == start && hi == start + CHUNK64 {
                self.chunks.remove(&idx);
            } else if let Some(c) = self.chunks.get_mut(&idx) {
                c[(lo - start) as usize..(hi - start) as usize].fill(0);
            }
        }
        before - self.allocated()
    }

    /// Allocates zeroed chunks for `[off, off + len)`, extending the file
    /// when the range ends past it (the caller checked range and budget).
    pub fn allocate(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (first, last) = span(off, len);
        for idx in first..=last {
            self.chunks
                .entry(idx)
                .or_insert_with(|| Box::new([0; CHUNK]));
        }
        self.size = self.size.max(off + len);
    }

    /// The first offset at or after `off` inside a chunk, before end of
    /// file.
    pub fn seek_data(&self, off: u64) -> Option<u64> {
        if off >= self.size {
            return None;
        }
        let (idx, _) = self.chunks.range(off / CHUNK64..).next()?;
        let pos = off.max(idx * CHUNK64);
        (pos < self.size).then_some(pos)
    }

    /// The first offset at or after `off` in a hole, end of file counting
    /// as one; `None` at or past end of file.
    pub fn seek_hole(&self, off: u64) -> Option<u64> {
        if off >= self.size {
            return None;
        }
        let mut expect = off / CHUNK64;
        for (idx, _) in self.chunks.range(expect..) {
            if *idx != expect {
                break;
            }
            expect += 1;
        }
        let hole = if expect == off / CHUNK64 {
            off
        } else {
            expect * CHUNK64
        };
        Some(hole.min(self.size))
    }

    /// The first piece of `[off, end)` (clipped to the file): up to the
    /// next chunk boundary, its bytes where a chunk holds them, or `None`
    /// for a hole, which comes as one piece however long, so walking a
    /// huge sparse range costs what its data costs. `None` when the range
    /// is empty.
    pub fn piece(&self, off: u64, end: u64) -> Option<(u64, Option<Vec<u8>>)> {
        let end = end.min(self.size);
        if off >= end {
            return None;
        }
        let idx = off / CHUNK64;
        Some(match self.chunks.get(&idx) {
            Some(c) => {
                let within = (off % CHUNK64) as usize;
                let take = (CHUNK64 - within as u64).min(end - off) as usize;
                (take as u64, Some(c[within..within + take].to_vec()))
            }
            None => {
                let next = self
                    .chunks
                    .range(idx..)
                    .next()
                    .map_or(end, |(k, _)| (k * CHUNK64).min(end));
                (next - off, None)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &FileData) -> Vec<u8> {
        let mut b = Vec::new();
        d.read(0, usize::MAX, &mut b);
        b
    }

    #[test]
    fn write_read_and_gaps() {
        let mut d = FileData::default();
        d.write(5000, b"xyz");
        assert_eq!(d.size(), 5003);
        assert_eq!(d.allocated(), CHUNK64, "only the touched chunk");
        let b = all(&d);
        assert!(b[..5000].iter().all(|&x| x == 0));
        assert_eq!(&b[5000..], b"xyz");
        let mut piece = Vec::new();
        assert_eq!(d.read(4094, 4, &mut piece), 4, "across a chunk boundary");
        assert_eq!(d.read(4995, 10, &mut piece), 8, "short at EOF");
        assert_eq!(piece, [0, 0, 0, 0, 0, 0, 0, 0, 0, b'x', b'y', b'z']);
        assert_eq!(d.read(6000, 10, &mut piece), 0);
        assert_eq!(d.missing(0, 10_000), 2 * CHUNK64);
        assert_eq!(d.missing(4096, 10), 0);
    }

    #[test]
    fn truncate_zeroes_the_tail() {
        let mut d = FileData::default();
        d.write(0, &[9; 10_000]);
        assert_eq!(d.truncate(4100), CHUNK64, "the third chunk is freed");
        d.truncate(9000);
        let b = all(&d);
        assert!(b[..4100].iter().all(|&x| x == 9));
        assert!(b[4100..].iter().all(|&x| x == 0), "cut bytes stay cut");
        assert_eq!(d.truncate(0), 2 * CHUNK64);
        assert_eq!(d.allocated(), 0);
    }

    #[test]
    fn zero_range_frees_whole_chunks() {
        let mut d = FileData::default();
        d.write(0, &[1; 3 * CHUNK + 100]);
        assert_eq!(d.zero_range(100, 2 * CHUNK64), CHUNK64);
        let b = all(&d);
        assert!(b[..100].iter().all(|&x| x == 1));
        assert!(b[100..100 + 2 * CHUNK].iter().all(|&x| x == 0));
        assert!(b[100 + 2 * CHUNK..].iter().all(|&x| x == 1));
        assert_eq!(d.zero_range(1 << 30, 10), 0, "past EOF");
        assert_eq!(d.size(), 3 * CHUNK64 + 100);
    }

    #[test]
    fn seeks() {
        let mut d = FileData::default();
        d.write(2 * CHUNK64, &[1; CHUNK]);
        d.truncate(10 * CHUNK64);
        assert_eq!(d.seek_data(0), Some(2 * CHUNK64));
        assert_eq!(d.seek_data(2 * CHUNK64 + 3), Some(2 * CHUNK64 + 3));
        assert_eq!(d.seek_data(3 * CHUNK64), None);
        assert_eq!(d.seek_hole(0), Some(0));
        assert_eq!(d.seek_hole(2 * CHUNK64), Some(3 * CHUNK64));
        assert_eq!(d.seek_hole(10 * CHUNK64), None);
        d.allocate(3 * CHUNK64, 7 * CHUNK64);
        assert_eq!(
            d.seek_hole(2 * CHUNK64),
            Some(10 * CHUNK64),
            "EOF is a hole"
        );
    }

    #[test]
    fn pieces_skip_holes_in_one_step() {
        let mut d = FileData::default();
        d.write(1 << 40, b"end");
        assert_eq!(d.piece(0, u64::MAX), Some((1 << 40, None)));
        assert_eq!(d.piece(1 << 40, u64::MAX), Some((3, Some(b"end".to_vec()))));
        assert_eq!(d.piece((1 << 40) + 3, u64::MAX), None);
        assert_eq!(d.piece(5, 5), None);
    }
}
