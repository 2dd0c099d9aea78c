//! Compact, versioned binary encodings of what the map stores per key.
//!
//! Hand-written instead of a serde format crate: the encoding is persistent,
//! so it must not change when a dependency is upgraded, and it is small.
//! All integers are big-endian, so index keys sort by (export, parent, name)
//! and a prefix scan over `(export, dir)` lists a directory's children.

use super::{FhError, ObjKey, ObjRecord, ObjectId, MAX_NAME_LEN};

/// Version 1 stored a 32-bit per-object incarnation; version 2 stores the
/// 64-bit expiry generation instead (see `ObjRecord::generation`). Both
/// decode; only version 2 is written.
const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;

/// Key of the `objects` tree.
pub(super) fn id_key(id: ObjectId) -> [u8; 8] {
    id.0.to_be_bytes()
}

/// Key of the `names` tree: export ‖ parent ‖ name.
pub(super) fn name_key(export: u32, parent: ObjectId, name: &[u8]) -> Vec<u8> {
    let mut k = name_prefix(export, parent);
    k.extend_from_slice(name);
    k
}

/// The `names` prefix shared by all entries of one directory.
pub(super) fn name_prefix(export: u32, parent: ObjectId) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + MAX_NAME_LEN);
    k.extend_from_slice(&export.to_be_bytes());
    k.extend_from_slice(&parent.0.to_be_bytes());
    k
}

/// Key of the `inodes` tree: export ‖ dev ‖ ino (the generation is
/// deliberately left out so a reused inode number finds the dead object).
pub(super) fn inode_key(export: u32, key: &ObjKey) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&export.to_be_bytes());
    k[4..12].copy_from_slice(&key.dev.to_be_bytes());
    k[12..].copy_from_slice(&key.ino.to_be_bytes());
    k
}

/// Values of the `names` and `inodes` trees.
pub(super) fn decode_id(v: &[u8]) -> Result<ObjectId, FhError> {
    let mut c = Cursor(v);
    let id = c.u64()?;
    c.finish()?;
    Ok(ObjectId(id))
}

/// Encodes a record:
/// `v2 | export u32 | parent u64 | kind u8 | generation u64 | dev u64 |
///  ino u64 | gen u64 | name (u16 len + bytes) | n_links u32 |
///  n_links × (parent u64 | name (u16 len + bytes))`.
/// (Version 1 had `incarnation u32` where version 2 has `generation u64`.)
pub(super) fn encode_record(r: &ObjRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(52 + r.name.len() + 16 * r.extra_links.len());
    out.push(RECORD_V2);
    out.extend_from_slice(&r.export.to_be_bytes());
    out.extend_from_slice(&r.parent.0.to_be_bytes());
    out.push(r.kind);
    out.extend_from_slice(&r.generation.to_be_bytes());
    out.extend_from_slice(&r.key.dev.to_be_bytes());
    out.extend_from_slice(&r.key.ino.to_be_bytes());
    out.extend_from_slice(&r.key.gen.to_be_bytes());
    put_name(&mut out, &r.name);
    out.extend_from_slice(&(r.extra_links.len() as u32).to_be_bytes());
    for (parent, name) in &r.extra_links {
        out.extend_from_slice(&parent.0.to_be_bytes());
        put_name(&mut out, name);
    }
    out
}

fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    // Names are validated to be ≤ MAX_NAME_LEN before they get here.
    debug_assert!(name.len() <= MAX_NAME_LEN);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name);
}

/// Decodes a record; damaged bytes give `FhError::Corrupt`, never a panic
/// or an attacker-sized allocation.
pub(super) fn decode_record(v: &[u8]) -> Result<ObjRecord, FhError> {
    let mut c = Cursor(v);
    let version = c.u8()?;
    if version != RECORD_V1 && version != RECORD_V2 {
        return Err(corrupt("unknown record version"));
    }
    let export = c.u32()?;
    let parent = ObjectId(c.u64()?);
    let kind = c.u8()?;
    // A version-1 incarnation is a small per-object counter; the global
    // generation counter starts above every such value (`FIRST_GENERATION`),
    // so reading it as a generation keeps the ordering the rules need.
    let generation = if version == RECORD_V1 {
        u64::from(c.u32()?)
    } else {
        c.u64()?
    };
    let key = ObjKey {
        dev: c.u64()?,
        ino: c.u64()?,
        gen: c.u64()?,
    };
    let name = c.name()?;
    let n_links = c.u32()? as usize;
    // Each link takes at least 10 bytes: bound the allocation by the input.
    if n_links > c.0.len() / 10 {
        return Err(corrupt("link count exceeds record size"));
    }
    let mut extra_links = Vec::with_capacity(n_links);
    for _ in 0..n_links {
        let p = ObjectId(c.u64()?);
        extra_links.push((p, c.name()?));
    }
    c.finish()?;
    Ok(ObjRecord {
        export,
        parent,
        name,
        key,
        kind,
        generation,
        extra_links,
    })
}

fn corrupt(what: &str) -> FhError {
    FhError::Corrupt(what.to_string())
}

/// Bounds-checked big-endian reader.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FhError> {
        if self.0.len() < n {
            return Err(corrupt("truncated value"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FhError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FhError> {
        let mut w = [0u8; 2];
        w.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(w))
    }

    fn u32(&mut self) -> Result<u32, FhError> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(w))
    }

    fn u64(&mut self) -> Result<u64, FhError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(w))
    }

    fn name(&mut self) -> Result<Vec<u8>, FhError> {
        let len = usize::from(self.u16()?);
        if len > MAX_NAME_LEN {
            return Err(corrupt("name too long"));
        }
        Ok(self.take(len)?.to_vec())
    }

    fn finish(&self) -> Result<(), FhError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjRecord {
        ObjRecord {
            export: 3,
            parent: ObjectId(1 << 40),
            name: b"hello.txt".to_vec(),
            key: ObjKey {
                dev: 1,
                ino: 2,
                gen: 3,
            },
            kind: 1,
            generation: (1 << 32) + 77,
            extra_links: vec![(ObjectId(5), b"a".to_vec()), (ObjectId(6), vec![0xff; 255])],
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(decode_record(&encode_record(&r)), Ok(r));
        let bare = ObjRecord {
            extra_links: vec![],
            name: vec![],
            ..sample()
        };
        assert_eq!(decode_record(&encode_record(&bare)), Ok(bare));
    }

    #[test]
    fn version_1_records_still_decode() {
        // What version 1 wrote for `sample()` with incarnation 77.
        let r = sample();
        let mut v1 = vec![RECORD_V1];
        v1.extend_from_slice(&r.export.to_be_bytes());
        v1.extend_from_slice(&r.parent.0.to_be_bytes());
        v1.push(r.kind);
        v1.extend_from_slice(&77u32.to_be_bytes());
        let v2 = encode_record(&r);
        v1.extend_from_slice(&v2[1 + 4 + 8 + 1 + 8..]);
        let got = decode_record(&v1).expect("v1 record");
        assert_eq!(
            got,
            ObjRecord {
                generation: 77,
                ..r
            }
        );
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encode_record(&sample());
        for len in 0..bytes.len() {
            assert!(matches!(
                decode_record(&bytes[..len]),
                Err(FhError::Corrupt(_))
            ));
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_record(&long).is_err());
        // A huge link count must not allocate gigabytes.
        let mut huge = encode_record(&ObjRecord {
            extra_links: vec![],
            ..sample()
        });
        let at = huge.len() - 4;
        huge[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_record(&huge).is_err());
        // Every single-byte corruption decodes to something or errors; no panic.
        for i in 0..bytes.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = decode_record(&b);
            }
        }
        assert!(decode_id(&[1, 2, 3]).is_err());
        assert_eq!(decode_id(&7u64.to_be_bytes()), Ok(ObjectId(7)));
    }

    #[test]
    fn name_keys_group_by_directory() {
        let a = name_key(1, ObjectId(2), b"x");
        assert!(a.starts_with(&name_prefix(1, ObjectId(2))));
        assert!(!name_key(1, ObjectId(3), b"x").starts_with(&name_prefix(1, ObjectId(2))));
    }
}
