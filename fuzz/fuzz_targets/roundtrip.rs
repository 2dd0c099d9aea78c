//! Decode → encode → decode: whatever the decoders accept must encode
//! (no bound is broken), take exactly as many bytes as were consumed, and
//! decode back to an equal value whose encoding is identical.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfs4d_fuzz::roundtrip::run(data));
