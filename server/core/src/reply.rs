//! A reply record as the connection's writer sends it: the encoded bytes,
//! optionally with one large buffer (a READ's data) that belongs at a
//! position inside them but was never copied there.
//!
//! Copying a 1 MiB READ's data into the encoded reply was a tenth of the
//! server's CPU on sequential reads (plus page faults on the reply buffer);
//! the writer sends the three parts with one vectored write instead.

use nfs4d_xdr::record::{write_header, HEADER_LEN};

/// Data kept out of the encoded bytes: it belongs at offset `at` of them.
#[derive(Debug, Default)]
pub struct Detached {
    /// Offset in the encoded bytes where `data` goes.
    pub at: usize,
    /// The bytes themselves.
    pub data: Vec<u8>,
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

    /// The record as one contiguous buffer (a copy only if data is detached).
    pub fn flatten(self) -> Vec<u8> {
        match self.detached {
            None => self.bytes,
            Some(d) => join(&self.bytes, Some(&d), 0),
        }
    }
}

/// `bytes[from..]` with `detached` inserted where it belongs (a detached
/// part before `from` is not included, as it is not in that range).
pub fn join(bytes: &[u8], detached: Option<&Detached>, from: usize) -> Vec<u8> {
    // An offset past the end (never built) puts the data at the end, as
    // `Batch::push` does.
    match detached.map(|d| (d.at.min(bytes.len()), d)) {
        Some((at, d)) if at >= from => {
            let mut v = Vec::with_capacity(bytes.len() - from + d.data.len());
            v.extend_from_slice(&bytes[from..at]);
            v.extend_from_slice(&d.data);
            v.extend_from_slice(&bytes[at..]);
            v
        }
        _ => bytes.get(from..).unwrap_or_default().to_vec(),
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

/// Records gathered for one vectored write: runs of small records are
/// merged into one buffer (one copy of a few hundred bytes each, as
/// before), detached data stays a buffer of its own.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<Vec<u8>>,
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
                    self.parts.push(d.data);
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
            Some(last) if self.open => last.extend_from_slice(&bytes),
            _ => {
                self.parts.push(bytes);
                self.open = true;
            }
        }
    }

    /// The parts gathered, in order: what the connection's writer sends
    /// with as few vectored writes as the socket allows.
    pub fn parts(&self) -> &[Vec<u8>] {
        &self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                data: data.to_vec(),
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
        assert_eq!(rec.flatten(), flat);
    }

    #[test]
    fn join_from_an_offset() {
        let (rec, flat) = split_record(b"head", b"DATA", b"tail");
        let d = rec.detached.as_ref();
        assert_eq!(join(&rec.bytes, d, 2), flat[2..].to_vec());
        // The data lies before `from`: not part of the range.
        assert_eq!(join(&rec.bytes, d, 9), rec.bytes[9..].to_vec());
        let bogus = Detached {
            at: 99,
            data: vec![4, 5],
        };
        assert_eq!(join(&[1, 2, 3], Some(&bogus), 1), vec![2, 3, 4, 5]);
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
                data: vec![4, 5],
            }),
        };
        batch.push(bogus);
        want.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(batch.len(), want.len());
        assert_eq!(batch.parts().concat(), want);
    }
}
