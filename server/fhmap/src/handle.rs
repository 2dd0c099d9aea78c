//! Wire format of the opaque filehandle (see the byte layouts in the parent
//! module's documentation). Pure functions: no store access, no allocation
//! beyond the returned vector.
//!
//! Two layouts share one MAC scheme. Format 1 (30 bytes) carries a 32-bit
//! generation; it is what every persistent handle uses (epoch and
//! generation 0), so those stay byte-identical to what earlier versions
//! issued. Format 2 (34 bytes) carries a 64-bit generation and is used
//! only when the generation does not fit in 32 bits, which only volatile
//! handles need (the expiry generation counter starts at 2^32).

use super::siphash::{siphash24, SipKey};
use super::{DecodedFh, FhError, HandleKind, ObjectId};

/// Versions of the layouts; add one (and keep decoding the old ones) if a
/// layout ever changes, since clients keep handles across our upgrades.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;

/// Length of a format-1 handle (well under NFS4_FHSIZE = 128).
pub(super) const FH_LEN: usize = 30;
/// Length of a format-2 handle (64-bit generation).
pub(super) const FH_LEN_V2: usize = 34;

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

/// Serializes `fh` and appends its MAC: format 1 when the generation fits
/// in 32 bits (always the case for persistent handles), else format 2.
pub(super) fn encode(key: &SipKey, fh: &DecodedFh) -> Vec<u8> {
    let short = u32::try_from(fh.generation).ok();
    let mut out = Vec::with_capacity(FH_LEN_V2);
    out.push(if short.is_some() {
        FORMAT_V1
    } else {
        FORMAT_V2
    });
    out.push(fh.kind as u8);
    out.extend_from_slice(&fh.export.to_be_bytes());
    out.extend_from_slice(&fh.id.0.to_be_bytes());
    out.extend_from_slice(&fh.epoch.to_be_bytes());
    match short {
        Some(g) => out.extend_from_slice(&g.to_be_bytes()),
        None => out.extend_from_slice(&fh.generation.to_be_bytes()),
    }
    let mac = siphash24(key, &out);
    out.extend_from_slice(&mac.to_be_bytes());
    debug_assert!(out.len() == FH_LEN || out.len() == FH_LEN_V2);
    out
}

/// Parses and authenticates a handle. Any byte string we did not produce
/// with this key yields `BadHandle` (RFC 7530 §13.1.2.1), never a panic and
/// never another object.
pub(super) fn decode(key: &SipKey, fh: &[u8]) -> Result<DecodedFh, FhError> {
    let len = match fh.first() {
        Some(&FORMAT_V1) => FH_LEN,
        Some(&FORMAT_V2) => FH_LEN_V2,
        _ => return Err(FhError::BadHandle),
    };
    if fh.len() != len {
        return Err(FhError::BadHandle);
    }
    let mac_at = len - 8;
    let expected = siphash24(key, &fh[..mac_at]).to_be_bytes();
    // Constant-time comparison, so response timing does not help forge a MAC.
    let diff = expected
        .iter()
        .zip(&fh[mac_at..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(FhError::BadHandle);
    }
    let kind = HandleKind::from_u8(fh[1]).ok_or(FhError::BadHandle)?;
    let generation = if len == FH_LEN {
        u64::from(be_u32(fh, 18))
    } else {
        be_u64(fh, 18)
    };
    let decoded = DecodedFh {
        kind,
        export: be_u32(fh, 2),
        id: ObjectId(be_u64(fh, 6)),
        epoch: be_u32(fh, 14),
        generation,
    };
    // Authentic but self-contradictory handles can only come from a glue bug
    // (encoding an id under the wrong export); refuse them all the same.
    let consistent = match kind {
        HandleKind::Pseudo => decoded.export == 0,
        HandleKind::ExportRoot => decoded.id == ObjectId::export_root(decoded.export),
        HandleKind::Object => !decoded.id.is_export_root(),
    };
    if consistent {
        Ok(decoded)
    } else {
        Err(FhError::BadHandle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SipKey {
        SipKey::from_bytes(&[seed; 16])
    }

    fn sample() -> DecodedFh {
        DecodedFh {
            kind: HandleKind::Object,
            export: 7,
            id: ObjectId(super::super::FIRST_DYNAMIC_ID + 12345),
            epoch: 3,
            generation: 9,
        }
    }

    /// xorshift64*: deterministic pseudo-random bytes without a new crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn round_trip_all_kinds() {
        let k = key(1);
        let cases = [
            sample(),
            DecodedFh {
                kind: HandleKind::ExportRoot,
                export: 42,
                id: ObjectId::export_root(42),
                epoch: 0,
                generation: 0,
            },
            DecodedFh {
                kind: HandleKind::Pseudo,
                export: 0,
                id: ObjectId(5),
                epoch: u32::MAX,
                generation: u64::from(u32::MAX),
            },
        ];
        for fh in cases {
            let bytes = encode(&k, &fh);
            assert_eq!(bytes.len(), FH_LEN);
            assert!(bytes.len() <= super::super::MAX_HANDLE_LEN);
            assert_eq!(decode(&k, &bytes), Ok(fh));
        }
        // Generations past 32 bits take the longer format.
        let long = DecodedFh {
            generation: (1 << 32) + 5,
            ..sample()
        };
        let bytes = encode(&k, &long);
        assert_eq!((bytes.len(), bytes[0]), (FH_LEN_V2, FORMAT_V2));
        assert_eq!(decode(&k, &bytes), Ok(long));
    }

    #[test]
    fn persistent_layout_is_unchanged() {
        // A persistent handle (epoch and generation 0) must stay
        // byte-identical to what format 1 always produced: clients keep
        // them across restarts and upgrades (RFC 7530 §4.2.2).
        let k = key(1);
        let fh = DecodedFh {
            epoch: 0,
            generation: 0,
            ..sample()
        };
        let mut want = vec![FORMAT_V1, HandleKind::Object as u8];
        want.extend_from_slice(&7u32.to_be_bytes());
        want.extend_from_slice(&fh.id.0.to_be_bytes());
        want.extend_from_slice(&[0; 8]);
        let mac = siphash24(&k, &want);
        want.extend_from_slice(&mac.to_be_bytes());
        assert_eq!(encode(&k, &fh), want);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let k = key(1);
        let long = DecodedFh {
            generation: 1 << 40,
            ..sample()
        };
        for bytes in [encode(&k, &sample()), encode(&k, &long)] {
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(decode(&k, &b), Err(FhError::BadHandle), "bit {bit}");
            }
        }
    }

    #[test]
    fn foreign_key_is_rejected() {
        let bytes = encode(&key(1), &sample());
        assert_eq!(decode(&key(2), &bytes), Err(FhError::BadHandle));
    }

    #[test]
    fn inconsistent_kind_is_rejected_even_with_valid_mac() {
        let k = key(1);
        let mut fh = sample();
        fh.kind = HandleKind::ExportRoot; // id is not export 7's root
        assert_eq!(decode(&k, &encode(&k, &fh)), Err(FhError::BadHandle));
        let mut fh = sample();
        fh.id = ObjectId::export_root(7); // Object kind with a root id
        assert_eq!(decode(&k, &encode(&k, &fh)), Err(FhError::BadHandle));
    }

    #[test]
    fn truncated_oversized_and_garbage_never_panic() {
        let k = key(1);
        let good = encode(&k, &sample());
        for len in 0..good.len() {
            assert_eq!(decode(&k, &good[..len]), Err(FhError::BadHandle));
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&k, &long), Err(FhError::BadHandle));
        assert_eq!(decode(&k, &[0xff; 128]), Err(FhError::BadHandle));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..100_000 {
            let len = match i % 3 {
                0 => FH_LEN,
                1 => FH_LEN_V2,
                _ => (rng.next() % 160) as usize,
            };
            let mut b = rng.bytes(len);
            // Get past the cheap checks to the MAC.
            match i % 3 {
                0 => b[0] = FORMAT_V1,
                1 => b[0] = FORMAT_V2,
                _ => {}
            }
            assert_eq!(decode(&k, &b), Err(FhError::BadHandle));
        }
    }
}
