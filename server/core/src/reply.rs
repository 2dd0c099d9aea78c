//! A reply record as the connection's writer sends it: the encoded bytes,
//! optionally with one large payload (a READ's data) that belongs at a
//! position inside them but was never copied there.
//!
//! Copying a 1 MiB READ's data into the encoded reply was a tenth of the
//! server's CPU on sequential reads (plus page faults on the reply buffer);
//! the writer sends the three parts with one vectored write instead. A
//! store that can leaves the data in a kernel pipe
//! ([`nfs4d_store::PipedData`]), which the writer splices to the socket:
//! then the data is not copied through user space at all.

use std::io;
use std::sync::{Mutex, PoisonError};

use nfs4d_store::PipedData;
use nfs4d_xdr::record::{write_header, HEADER_LEN};

use crate::config::MAX_IO;

/// Where detached data waits.
#[derive(Debug)]
pub enum Payload {
    /// In a buffer of its own.
    Buf(Vec<u8>),
    /// In a kernel pipe, for the writer to splice to the socket.
    Piped(Box<dyn PipedData>),
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Buf(Vec::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Buf(v)
    }
}

impl Payload {
    /// Bytes held.
    pub fn len(&self) -> usize {
        match self {
            Payload::Buf(b) => b.len(),
            Payload::Piped(p) => p.len(),
        }
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in a buffer of their own, read out of the pipe if they
    /// are in one.
    pub fn into_vec(self) -> io::Result<Vec<u8>> {
        match self {
            Payload::Buf(b) => Ok(b),
            Payload::Piped(mut p) => p.read_out(),
        }
    }

    /// The bytes, read out of a pipe first if they are in one: for a reply
    /// that is kept (the session's slot, the 4.0 replay cache) or wrapped
    /// (RPCSEC_GSS integrity, privacy) whole.
    pub fn bytes(&mut self) -> io::Result<&[u8]> {
        if let Payload::Piped(_) = self {
            *self = Payload::Buf(std::mem::take(self).into_vec()?);
        }
        match self {
            Payload::Buf(b) => Ok(b),
            // Replaced by a buffer just above.
            Payload::Piped(_) => Err(io::ErrorKind::Other.into()),
        }
    }
}

/// Data kept out of the encoded bytes: it belongs at offset `at` of them.
#[derive(Debug, Default)]
pub struct Detached {
    /// Offset in the encoded bytes where `data` goes.
    pub at: usize,
    /// The bytes themselves.
    pub data: Payload,
}

/// One complete RPC record: `bytes` with `detached.data` inserted at
/// `detached.at`. The record header at the start of `bytes` counts both.
#[derive(Debug, Default)]
pub struct Record {
    /// Encoded bytes, starting with the record header.
    pub bytes: Vec<u8>,
    /// Data that belongs inside `bytes`, if any.
    pub detached: Option<Detached>,
}

impl From<Vec<u8>> for Record {
    fn from(bytes: Vec<u8>) -> Self {
        Record {
            bytes,
            detached: None,
        }
    }
}

impl Record {
    /// Length of the whole record on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.detached.as_ref().map_or(0, |d| d.data.len())
    }

    /// Whether the record is empty (never for a finished record).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record as one contiguous buffer (a copy only if data is
    /// detached; piped data is read out of its pipe).
    pub fn flatten(mut self) -> io::Result<Vec<u8>> {
        match self.detached {
            None => Ok(self.bytes),
            Some(_) => join(&self.bytes, self.detached.as_mut(), 0),
        }
    }
}

/// `bytes[from..]` with `detached` inserted where it belongs (a detached
/// part before `from` is not included, as it is not in that range). Piped
/// data in the range is read out of its pipe (the only failure).
pub fn join(bytes: &[u8], detached: Option<&mut Detached>, from: usize) -> io::Result<Vec<u8>> {
    // An offset past the end (never built) puts the data at the end, as
    // `Batch::push` does.
    match detached.map(|d| (d.at.min(bytes.len()), d)) {
        Some((at, d)) if at >= from => {
            let data = d.data.bytes()?;
            let mut v = Vec::with_capacity(bytes.len() - from + data.len());
            v.extend_from_slice(&bytes[from..at]);
            v.extend_from_slice(data);
            v.extend_from_slice(&bytes[at..]);
            Ok(v)
        }
        _ => Ok(bytes.get(from..).unwrap_or_default().to_vec()),
    }
}

/// Writes the record header at the start of `bytes` for a record whose
/// body is the rest of `bytes` plus `extra` detached bytes (one fragment,
/// as `rpc::finish_record`).
pub fn finish_record(bytes: &mut [u8], extra: usize) {
    let len = bytes.len() - HEADER_LEN + extra;
    write_header(bytes, len);
}

/// At most this many buffers per write; far below IOV_MAX (1024).
const MAX_PARTS: usize = 64;

/// One piece of a [`Batch`].
#[derive(Debug)]
pub enum Part {
    /// Bytes in memory (merged records, or a READ's buffer).
    Bytes(Vec<u8>),
    /// A READ's data in a pipe.
    Piped(Box<dyn PipedData>),
}

/// Records gathered for one vectored write: runs of small records are
/// merged into one buffer (one copy of a few hundred bytes each, as
/// before), detached data stays a part of its own.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<Part>,
    len: usize,
    /// The last part holds encoded bytes (more may be appended to it), not
    /// detached data.
    open: bool,
}

impl Batch {
    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether another record may still be added.
    pub fn has_room(&self, max_bytes: usize) -> bool {
        self.len < max_bytes && self.parts.len() + 3 <= MAX_PARTS
    }

    /// Appends a record.
    pub fn push(&mut self, rec: Record) {
        self.len += rec.len();
        let Record {
            mut bytes,
            detached,
        } = rec;
        let tail = match detached {
            Some(d) => {
                // An offset past the end is never built; it puts the data
                // at the end rather than panicking.
                let tail = bytes.split_off(d.at.min(bytes.len()));
                self.append(bytes);
                if !d.data.is_empty() {
                    self.parts.push(match d.data {
                        Payload::Buf(b) => Part::Bytes(b),
                        Payload::Piped(p) => Part::Piped(p),
                    });
                    self.open = false;
                }
                tail
            }
            None => bytes,
        };
        self.append(tail);
    }

    /// Adds `bytes` to the last merged buffer, or as a new one. The first
    /// buffer of a batch is taken as it is (no copy); a detached data
    /// buffer is never appended to.
    fn append(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        match self.parts.last_mut() {
            Some(Part::Bytes(last)) if self.open => last.extend_from_slice(&bytes),
            _ => {
                self.parts.push(Part::Bytes(bytes));
                self.open = true;
            }
        }
    }

    /// The parts gathered, in order: what the connection's writer sends
    /// with as few vectored writes (and splices) as the socket allows.
    pub fn parts_mut(&mut self) -> &mut [Part] {
        &mut self.parts
    }

    /// The parts, once sent: READ buffers go back to [`ReadBuffers`].
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }
}

/// READs of at least this many bytes read into a buffer of
/// [`ReadBuffers`]; smaller ones into a buffer of their own size.
pub const POOLED_READ_MIN: usize = 128 << 10;

/// Buffers of large READs, handed back once their reply is sent and
/// reused by the next large READ; at most `keep` are kept.
///
/// Why: a 1 MiB READ buffer freed by the connection's writer went back to
/// the malloc arena of the runner that allocated it, and each arena kept
/// its own peak of freed buffers (`keep_io_buffers` in the daemon keeps
/// freed memory rather than faulting it in again). A streaming read held
/// about two peaks of READs in flight, twice Ganesha's RSS. Buffers that
/// go round through this pool are allocated once per peak whatever thread
/// frees them, and never fault in fresh pages.
#[derive(Debug)]
pub struct ReadBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

/// Capacity of a pooled buffer: one READ of the largest size served.
const POOLED_CAPACITY: usize = MAX_IO as usize;
const _: () = assert!(POOLED_READ_MIN <= POOLED_CAPACITY);

impl ReadBuffers {
    /// A pool that keeps at most `keep` buffers.
    pub fn new(keep: usize) -> ReadBuffers {
        ReadBuffers {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// An empty buffer for a READ of `count` bytes (at most `MAX_IO`): a
    /// kept one, or a new one of the pool's size for a large READ.
    pub fn take(&self, count: usize) -> Vec<u8> {
        if !(POOLED_READ_MIN..=POOLED_CAPACITY).contains(&count) {
            return Vec::new();
        }
        let kept = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        kept.unwrap_or_else(|| Vec::with_capacity(POOLED_CAPACITY))
    }

    /// Hands a sent buffer back: kept if it is of the pool's size and the
    /// pool has room, freed otherwise.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() != POOLED_CAPACITY {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.keep {
            free.push(buf);
        }
    }

    /// Buffers kept now.
    pub fn kept(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of in-memory parts, in order.
    fn concat(parts: Vec<Part>) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            match p {
                Part::Bytes(b) => v.extend_from_slice(&b),
                Part::Piped(_) => panic!("no pipes in these tests"),
            }
        }
        v
    }

    /// A record of `head` + `data` + `tail` with the data detached, and
    /// the same record flat.
    fn split_record(head: &[u8], data: &[u8], tail: &[u8]) -> (Record, Vec<u8>) {
        let mut bytes = vec![0; HEADER_LEN];
        bytes.extend_from_slice(head);
        let at = bytes.len();
        bytes.extend_from_slice(tail);
        finish_record(&mut bytes, data.len());
        let rec = Record {
            bytes: bytes.clone(),
            detached: Some(Detached {
                at,
                data: data.to_vec().into(),
            }),
        };
        let mut flat = bytes[..at].to_vec();
        flat.extend_from_slice(data);
        flat.extend_from_slice(&bytes[at..]);
        (rec, flat)
    }

    #[test]
    fn header_counts_detached_data() {
        let (rec, flat) = split_record(b"head", &[7; 1000], b"tail");
        assert_eq!(rec.len(), flat.len());
        let word = u32::from_be_bytes([flat[0], flat[1], flat[2], flat[3]]);
        assert_eq!(word, 0x8000_0000 | (flat.len() - HEADER_LEN) as u32);
        assert_eq!(rec.flatten().expect("in memory"), flat);
    }

    #[test]
    fn join_from_an_offset() {
        let (mut rec, flat) = split_record(b"head", b"DATA", b"tail");
        let joined = join(&rec.bytes, rec.detached.as_mut(), 2).expect("in memory");
        assert_eq!(joined, flat[2..].to_vec());
        // The data lies before `from`: not part of the range.
        let joined = join(&rec.bytes, rec.detached.as_mut(), 9).expect("in memory");
        assert_eq!(joined, rec.bytes[9..].to_vec());
        let mut bogus = Detached {
            at: 99,
            data: vec![4, 5].into(),
        };
        let joined = join(&[1, 2, 3], Some(&mut bogus), 1).expect("in memory");
        assert_eq!(joined, vec![2, 3, 4, 5]);
    }

    #[test]
    fn batch_writes_records_in_order() {
        let mut batch = Batch::default();
        let mut want = Vec::new();
        let small: Vec<u8> = (0..50).collect();
        batch.push(small.clone().into());
        want.extend_from_slice(&small);
        for i in 0..3u8 {
            let (rec, flat) = split_record(&[i; 13], &[i + 100; 3001], &[i; 7]);
            batch.push(rec);
            want.extend_from_slice(&flat);
            batch.push(small.clone().into());
            want.extend_from_slice(&small);
        }
        // Empty data and a bogus offset are still sent whole and in order.
        let (rec, flat) = split_record(b"x", b"", b"y");
        batch.push(rec);
        want.extend_from_slice(&flat);
        let bogus = Record {
            bytes: vec![1, 2, 3],
            detached: Some(Detached {
                at: 99,
                data: vec![4, 5].into(),
            }),
        };
        batch.push(bogus);
        want.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(batch.len(), want.len());
        assert_eq!(concat(batch.into_parts()), want);
    }

    #[test]
    fn read_buffers_are_reused_and_bounded() {
        let pool = ReadBuffers::new(2);
        assert_eq!(pool.take(4096).capacity(), 0, "small READs are not pooled");
        let a = pool.take(POOLED_READ_MIN);
        let b = pool.take(POOLED_CAPACITY);
        let c = pool.take(POOLED_CAPACITY);
        assert_eq!(a.capacity(), POOLED_CAPACITY);
        let a_at = a.as_ptr();
        let mut a = a;
        a.extend_from_slice(b"sent");
        pool.give(a);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.kept(), 2, "no more than `keep`");
        pool.give(vec![0; 100]);
        assert_eq!(pool.kept(), 2, "other sizes are freed");
        let again = pool.take(POOLED_CAPACITY);
        assert!(again.is_empty(), "a reused buffer holds no old data");
        assert_eq!(again.capacity(), POOLED_CAPACITY);
        let again2 = pool.take(POOLED_CAPACITY);
        assert!(
            [again.as_ptr(), again2.as_ptr()].contains(&a_at),
            "the first buffer came round again"
        );
        assert_eq!(pool.kept(), 0);
        let none = ReadBuffers::new(0);
        none.give(Vec::with_capacity(POOLED_CAPACITY));
        assert_eq!(none.kept(), 0, "keep 0 keeps nothing");
    }
}
