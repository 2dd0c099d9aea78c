//! SipHash-2-4 (Aumasson & Bernstein, 2012), used as the filehandle MAC.
//!
//! Implemented here rather than taken from `std`: `DefaultHasher` is
//! explicitly not stable across Rust releases and `std::hash::SipHasher` is
//! deprecated, while the MAC is persisted implicitly in every handle a client
//! holds, so the function must never change under us.

/// A 128-bit SipHash key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct SipKey {
    k0: u64,
    k1: u64,
}

impl SipKey {
    /// The reference implementation reads the key as two little-endian words.
    pub(super) fn from_bytes(bytes: &[u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&bytes[..8]);
        k1.copy_from_slice(&bytes[8..]);
        SipKey {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }
}

impl std::fmt::Debug for SipKey {
    // Never print key material into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipKey(..)")
    }
}

struct State([u64; 4]);

impl State {
    fn round(&mut self) {
        let [v0, v1, v2, v3] = &mut self.0;
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.0[3] ^= m;
        self.round();
        self.round();
        self.0[0] ^= m;
    }
}

/// SipHash-2-4 of `msg` under `key`.
pub(super) fn siphash24(key: &SipKey, msg: &[u8]) -> u64 {
    let mut s = State([
        key.k0 ^ 0x736f_6d65_7073_6575,
        key.k1 ^ 0x646f_7261_6e64_6f6d,
        key.k0 ^ 0x6c79_6765_6e65_7261,
        key.k1 ^ 0x7465_6462_7974_6573,
    ]);
    let blocks = msg.chunks_exact(8);
    let tail = blocks.remainder();
    for block in blocks {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        s.compress(u64::from_le_bytes(word));
    }
    // Final block: remaining bytes, with the message length (mod 256) on top.
    let mut last = (msg.len() as u64 & 0xff) << 56;
    for (i, b) in tail.iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    s.compress(last);
    s.0[2] ^= 0xff;
    for _ in 0..4 {
        s.round();
    }
    s.0[0] ^ s.0[1] ^ s.0[2] ^ s.0[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ref_key() -> SipKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipKey::from_bytes(&k)
    }

    #[test]
    fn reference_vectors() {
        // From the reference implementation's vectors.h (key 00..0f,
        // message 00..len-1); entries read as little-endian u64.
        let msg: Vec<u8> = (0u8..64).collect();
        let key = ref_key();
        let cases: [(usize, u64); 6] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (2, 0x0d6c_8009_d9a9_4f5a),
            (3, 0x8567_6696_d7fb_7e2d),
            (15, 0xa129_ca61_49be_45e5), // the paper's worked example
            (63, 0x958a_324c_eb06_4572),
        ];
        for (len, want) in cases {
            assert_eq!(siphash24(&key, &msg[..len]), want, "len {len}");
        }
    }

    #[test]
    #[allow(deprecated)]
    fn matches_std_siphasher() {
        use std::hash::Hasher;
        let key_bytes: [u8; 16] = *b"0123456789abcdef";
        let key = SipKey::from_bytes(&key_bytes);
        let mut msg = Vec::new();
        for len in 0..100u8 {
            let mut h = std::hash::SipHasher::new_with_keys(key.k0, key.k1);
            h.write(&msg);
            assert_eq!(siphash24(&key, &msg), h.finish(), "len {len}");
            msg.push(len.wrapping_mul(37));
        }
    }
}
