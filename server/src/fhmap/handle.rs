//! Wire format of the opaque filehandle (see the byte layout in the parent
//! module's documentation). Pure functions: no sled access, no allocation
//! beyond the returned vector.

use super::siphash::{siphash24, SipKey};
use super::{DecodedFh, FhError, HandleKind, ObjectId};

/// Version of the layout below; bump it (and keep decoding the old one) if
/// the layout ever changes, since clients keep handles across our upgrades.
const FORMAT_V1: u8 = 1;

/// Length of every handle we issue (well under NFS4_FHSIZE = 128).
pub(super) const FH_LEN: usize = 30;
const MAC_OFFSET: usize = FH_LEN - 8;

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

/// Serializes `fh` and appends its MAC.
pub(super) fn encode(key: &SipKey, fh: &DecodedFh) -> Vec<u8> {
    let mut out = Vec::with_capacity(FH_LEN);
    out.push(FORMAT_V1);
    out.push(fh.kind as u8);
    out.extend_from_slice(&fh.export.to_be_bytes());
    out.extend_from_slice(&fh.id.0.to_be_bytes());
    out.extend_from_slice(&fh.epoch.to_be_bytes());
    out.extend_from_slice(&fh.incarnation.to_be_bytes());
    let mac = siphash24(key, &out);
    out.extend_from_slice(&mac.to_be_bytes());
    debug_assert_eq!(out.len(), FH_LEN);
    out
}

/// Parses and authenticates a handle. Any byte string we did not produce
/// with this key yields `BadHandle` (RFC 7530 §13.1.2.1), never a panic and
/// never another object.
pub(super) fn decode(key: &SipKey, fh: &[u8]) -> Result<DecodedFh, FhError> {
    if fh.len() != FH_LEN || fh[0] != FORMAT_V1 {
        return Err(FhError::BadHandle);
    }
    let expected = siphash24(key, &fh[..MAC_OFFSET]).to_be_bytes();
    // Constant-time comparison, so response timing does not help forge a MAC.
    let diff = expected
        .iter()
        .zip(&fh[MAC_OFFSET..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(FhError::BadHandle);
    }
    let kind = HandleKind::from_u8(fh[1]).ok_or(FhError::BadHandle)?;
    let decoded = DecodedFh {
        kind,
        export: be_u32(fh, 2),
        id: ObjectId(be_u64(fh, 6)),
        epoch: be_u32(fh, 14),
        incarnation: be_u32(fh, 18),
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
            incarnation: 9,
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
                incarnation: 0,
            },
            DecodedFh {
                kind: HandleKind::Pseudo,
                export: 0,
                id: ObjectId(5),
                epoch: u32::MAX,
                incarnation: u32::MAX,
            },
        ];
        for fh in cases {
            let bytes = encode(&k, &fh);
            assert_eq!(bytes.len(), FH_LEN);
            assert!(bytes.len() <= super::super::NFS4_FHSIZE);
            assert_eq!(decode(&k, &bytes), Ok(fh));
        }
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let k = key(1);
        let bytes = encode(&k, &sample());
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&k, &b), Err(FhError::BadHandle), "bit {bit}");
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
            let len = if i % 2 == 0 {
                FH_LEN
            } else {
                (rng.next() % 160) as usize
            };
            let mut b = rng.bytes(len);
            if i % 2 == 0 {
                b[0] = FORMAT_V1; // get past the cheap checks to the MAC
            }
            assert_eq!(decode(&k, &b), Err(FhError::BadHandle));
        }
    }
}
