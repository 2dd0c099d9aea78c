//! RPC record marking over TCP (RFC 5531 §11), as a sans-IO reassembler.
//!
//! A record is a sequence of fragments, each preceded by a 4-byte header
//! whose top bit marks the last fragment and whose low 31 bits give the
//! fragment length. The reassembler is fed whatever bytes the socket
//! produced and hands back whole records; it never reads a socket itself,
//! so it can be unit-tested and fuzzed byte by byte.
//!
//! Each completed record is returned with 4 spare bytes in front holding a
//! synthetic single-fragment header: the `onc-rpc` crate parses only
//! unfragmented messages that start with their header, and reserving the
//! room up front spares a copy of every (possibly 1 MiB) record.

/// Bytes of a record-marking fragment header.
pub const HEADER_LEN: usize = 4;
/// Flag bit of the header marking the last fragment of a record.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Why a byte stream cannot be turned into records; the connection must be
/// closed, since record boundaries are lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The record grew past the configured maximum.
    TooLarge {
        /// Size the record would have reached.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A record made of too many empty or tiny fragments (a slow-loris
    /// pattern that would otherwise cost a wakeup per 4 bytes forever).
    TooManyFragments,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::TooLarge { size, max } => {
                write!(
                    f,
                    "record of at least {size} bytes exceeds the limit of {max}"
                )
            }
            RecordError::TooManyFragments => write!(f, "record has too many fragments"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Fragments one record may have. Real clients send one fragment per
/// record; a generous bound still stops a peer dribbling empty fragments.
pub const MAX_FRAGMENTS: usize = 1024;

/// Reassembles records from a TCP byte stream.
#[derive(Debug)]
pub struct Reassembler {
    max_record: usize,
    header: [u8; HEADER_LEN],
    header_fill: usize,
    /// Bytes still to copy for the fragment being read; `None` while a header is read.
    remaining: Option<usize>,
    last: bool,
    fragments: usize,
    record: Vec<u8>,
    /// Length of `record` when [`Reassembler::body_buf`] handed it out.
    direct_from: Option<usize>,
}

impl Reassembler {
    /// A reassembler refusing records whose payload exceeds `max_record` bytes.
    pub fn new(max_record: usize) -> Self {
        Reassembler {
            max_record,
            header: [0; HEADER_LEN],
            header_fill: 0,
            remaining: None,
            last: false,
            fragments: 0,
            record: vec![0; HEADER_LEN],
            direct_from: None,
        }
    }

    /// Bytes of the fragment in progress still to come; 0 while a header
    /// is read. A caller may read up to this many straight onto
    /// [`Reassembler::body_buf`] instead of feeding them: a large WRITE
    /// then lands in its record without a copy through a read buffer.
    pub fn body_pending(&self) -> usize {
        self.remaining.unwrap_or(0)
    }

    /// The record being assembled, to append at most
    /// [`Reassembler::body_pending`] bytes to (its capacity has room for
    /// them); then call [`Reassembler::body_read`].
    pub fn body_buf(&mut self) -> &mut Vec<u8> {
        self.direct_from = Some(self.record.len());
        &mut self.record
    }

    /// Takes account of the bytes appended to [`Reassembler::body_buf`];
    /// returns the record if that completed it. Appending more than was
    /// pending, or anything while no body was pending, is an error.
    pub fn body_read(&mut self) -> Result<Option<Vec<u8>>, RecordError> {
        let from = self.direct_from.take().unwrap_or(self.record.len());
        let n = self.record.len().saturating_sub(from);
        let rem = self.remaining.unwrap_or(0);
        if n > rem || self.record.len() < from {
            return Err(RecordError::TooLarge {
                size: self.record.len() - HEADER_LEN,
                max: self.max_record,
            });
        }
        if rem > n {
            self.remaining = Some(rem - n);
            return Ok(None);
        }
        if self.remaining.is_none() {
            return Ok(None);
        }
        self.remaining = None;
        Ok(self.last.then(|| self.finish()))
    }

    /// The record in progress so far, its 4 spare header bytes first.
    pub fn partial(&self) -> &[u8] {
        &self.record
    }

    /// The size the record in progress will have (spare header bytes
    /// included) when it is a single, last fragment whose body is being
    /// read; `None` otherwise.
    pub fn whole_len(&self) -> Option<usize> {
        let rem = self.remaining?;
        (self.fragments == 1 && self.last).then(|| self.record.len() + rem)
    }

    /// Takes the bytes of the record in progress from `at` on out of it,
    /// for the caller to keep elsewhere ([`Reassembler::skip_body`]).
    pub fn cut(&mut self, at: usize) -> Vec<u8> {
        self.record
            .split_off(at.clamp(HEADER_LEN, self.record.len()))
    }

    /// Puts back bytes [`Reassembler::cut`] took.
    pub fn uncut(&mut self, bytes: &[u8]) {
        self.record.extend_from_slice(bytes);
    }

    /// Overwrites the 4 bytes at `at` of the record in progress with `v`
    /// (big-endian), as the caller that cut data out of it rewrites the
    /// length that described it.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(w) = self.record.get_mut(at..at + 4) {
            if at >= HEADER_LEN {
                w.copy_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// Counts `n` bytes of the pending body as received by the caller
    /// without appending them; returns the record if that completed it.
    /// More than is pending is an error.
    pub fn skip_body(&mut self, n: usize) -> Result<Option<Vec<u8>>, RecordError> {
        let rem = self.remaining.unwrap_or(0);
        if n > rem || self.remaining.is_none() {
            return Err(RecordError::TooLarge {
                size: self.record.len() - HEADER_LEN + n,
                max: self.max_record,
            });
        }
        if rem > n {
            self.remaining = Some(rem - n);
            return Ok(None);
        }
        self.remaining = None;
        Ok(self.last.then(|| self.finish()))
    }

    /// True when no partial record is buffered (a clean point to close).
    pub fn is_idle(&self) -> bool {
        self.header_fill == 0 && self.remaining.is_none() && self.record.len() == HEADER_LEN
    }

    /// Consumes bytes from `input` (advancing it) until one record is
    /// complete or the input is exhausted. Returns the record, prefixed with
    /// a synthetic last-fragment header, when one completed; call again with
    /// the rest of the input for further records.
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, RecordError> {
        loop {
            match self.remaining {
                None => {
                    let take = (HEADER_LEN - self.header_fill).min(input.len());
                    self.header[self.header_fill..self.header_fill + take]
                        .copy_from_slice(&input[..take]);
                    self.header_fill += take;
                    *input = &input[take..];
                    if self.header_fill < HEADER_LEN {
                        return Ok(None);
                    }
                    self.header_fill = 0;
                    let word = u32::from_be_bytes(self.header);
                    let len = (word & !LAST_FRAGMENT) as usize;
                    self.last = word & LAST_FRAGMENT != 0;
                    self.fragments += 1;
                    if self.fragments > MAX_FRAGMENTS {
                        return Err(RecordError::TooManyFragments);
                    }
                    let size = self.record.len() - HEADER_LEN + len;
                    if size > self.max_record {
                        return Err(RecordError::TooLarge {
                            size,
                            max: self.max_record,
                        });
                    }
                    self.record.reserve(len);
                    self.remaining = Some(len);
                }
                Some(rem) => {
                    let take = rem.min(input.len());
                    self.record.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    let rem = rem - take;
                    if rem > 0 {
                        self.remaining = Some(rem);
                        return Ok(None);
                    }
                    self.remaining = None;
                    if self.last {
                        return Ok(Some(self.finish()));
                    }
                }
            }
            if input.is_empty() && self.remaining.is_none() && self.header_fill == 0 {
                return Ok(None);
            }
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut rec = std::mem::replace(&mut self.record, vec![0; HEADER_LEN]);
        let len = (rec.len() - HEADER_LEN) as u32;
        rec[..HEADER_LEN].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
        self.fragments = 0;
        self.last = false;
        rec
    }
}

/// Writes the single-fragment record header for a payload of `len` bytes
/// into the first four bytes of `buf` (which the caller reserved).
pub fn write_header(buf: &mut [u8], len: usize) {
    let word = (len as u32 & !LAST_FRAGMENT) | LAST_FRAGMENT;
    buf[..HEADER_LEN].copy_from_slice(&word.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(last: bool, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() as u32) | if last { LAST_FRAGMENT } else { 0 })
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(body);
        v
    }

    /// Bodies read straight onto the record give the records feeding
    /// gives, also across fragments and with a header and part of a body
    /// fed first; appending more than is pending is refused.
    #[test]
    fn bodies_read_in_place() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = frag(false, &body[..30_000]);
        stream.extend_from_slice(&frag(true, &body[30_000..]));
        let mut r = Reassembler::new(1 << 20);
        let mut input = &stream[..1000];
        assert_eq!(r.feed(&mut input), Ok(None));
        let mut at = 1000;
        let mut got = None;
        while got.is_none() {
            if r.body_pending() == 0 {
                let mut input = &stream[at..at + 4];
                at += 4;
                assert_eq!(r.feed(&mut input), Ok(None));
                continue;
            }
            // At most 7,000 bytes a read, as a socket might give them.
            let k = r.body_pending().min(7000);
            r.body_buf().extend_from_slice(&stream[at..at + k]);
            at += k;
            got = r.body_read().unwrap();
        }
        assert_eq!(at, stream.len());
        assert_eq!(
            got.unwrap(),
            feed_all(&mut Reassembler::new(1 << 20), &stream).unwrap()[0]
        );
        assert!(r.is_idle());

        let mut r = Reassembler::new(1 << 20);
        let mut input = &frag(true, &[1; 10])[..6];
        assert_eq!(r.feed(&mut input), Ok(None));
        assert_eq!(r.body_pending(), 8);
        r.body_buf().extend_from_slice(&[0; 9]);
        assert!(r.body_read().is_err(), "more than was pending");
        let mut idle = Reassembler::new(1 << 20);
        assert_eq!(idle.body_pending(), 0);
        idle.body_buf().push(1);
        assert!(idle.body_read().is_err(), "nothing was pending");
    }

    fn feed_all(r: &mut Reassembler, mut input: &[u8]) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut out = vec![];
        while !input.is_empty() {
            if let Some(rec) = r.feed(&mut input)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_body_cut_out_and_skipped_leaves_the_rest_of_the_record() {
        let body: Vec<u8> = (0..100u8).collect();
        let mut r = Reassembler::new(1 << 20);
        let mut input = &frag(true, &body)[..HEADER_LEN + 40];
        assert_eq!(r.feed(&mut input), Ok(None));
        assert_eq!(r.whole_len(), Some(HEADER_LEN + 100));
        assert_eq!(&r.partial()[HEADER_LEN..], &body[..40]);
        // Bytes 30..80 are taken elsewhere: 10 already read, 40 skipped.
        assert_eq!(r.cut(HEADER_LEN + 30), body[30..40].to_vec());
        r.patch_u32(HEADER_LEN + 26, 0);
        assert_eq!(r.skip_body(40), Ok(None));
        let mut rest = &body[80..];
        let rec = r.feed(&mut rest).unwrap().expect("complete");
        let mut want = body[..30].to_vec();
        want[26..30].copy_from_slice(&[0; 4]);
        want.extend_from_slice(&body[80..]);
        assert_eq!(&rec[HEADER_LEN..], &want[..]);
        assert_eq!(
            rec[..HEADER_LEN],
            ((want.len() as u32) | LAST_FRAGMENT).to_be_bytes()
        );
        assert!(r.is_idle());
        // Skipping more than is pending is refused.
        let mut input = &frag(true, &body)[..HEADER_LEN + 10];
        r.feed(&mut input).unwrap();
        assert!(r.skip_body(91).is_err());
    }

    #[test]
    fn only_a_single_last_fragment_has_a_whole_length() {
        let mut r = Reassembler::new(1 << 20);
        let mut input = &frag(false, &[1; 8])[..HEADER_LEN + 4];
        r.feed(&mut input).unwrap();
        assert_eq!(r.whole_len(), None);
    }

    #[test]
    fn single_fragment_record() {
        let mut r = Reassembler::new(1024);
        let recs = feed_all(&mut r, &frag(true, b"hello")).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(&recs[0][4..], b"hello");
        assert_eq!(
            u32::from_be_bytes(recs[0][..4].try_into().unwrap()),
            5 | LAST_FRAGMENT
        );
        assert!(r.is_idle());
    }

    #[test]
    fn multi_fragment_record_byte_by_byte() {
        let mut stream = frag(false, b"ab");
        stream.extend(frag(false, b""));
        stream.extend(frag(true, b"cde"));
        stream.extend(frag(true, b"second"));
        let mut r = Reassembler::new(1024);
        let mut recs = vec![];
        for b in &stream {
            let mut one: &[u8] = std::slice::from_ref(b);
            if let Some(rec) = r.feed(&mut one).unwrap() {
                recs.push(rec);
            }
            assert!(one.is_empty());
        }
        assert_eq!(recs.len(), 2);
        assert_eq!(&recs[0][4..], b"abcde");
        assert_eq!(&recs[1][4..], b"second");
    }

    #[test]
    fn several_records_in_one_read() {
        let mut stream = frag(true, b"one");
        stream.extend(frag(true, b"two"));
        let mut r = Reassembler::new(16);
        let recs = feed_all(&mut r, &stream).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(&recs[1][4..], b"two");
    }

    #[test]
    fn oversized_record_is_refused_before_buffering() {
        let mut r = Reassembler::new(8);
        let hdr = (9u32 | LAST_FRAGMENT).to_be_bytes();
        let mut input: &[u8] = &hdr;
        assert_eq!(
            r.feed(&mut input),
            Err(RecordError::TooLarge { size: 9, max: 8 })
        );
        // The limit covers the whole record, not one fragment.
        let mut r = Reassembler::new(8);
        let mut stream = frag(false, b"12345");
        stream.extend(frag(true, b"6789"));
        assert!(matches!(
            feed_all(&mut r, &stream),
            Err(RecordError::TooLarge { size: 9, .. })
        ));
    }

    #[test]
    fn endless_empty_fragments_are_refused() {
        let mut r = Reassembler::new(8);
        let stream: Vec<u8> = (0..=MAX_FRAGMENTS).flat_map(|_| frag(false, b"")).collect();
        assert_eq!(
            feed_all(&mut r, &stream),
            Err(RecordError::TooManyFragments)
        );
    }
}
