//! COMPOUND argument decoding as the server does it (the header through
//! `nfs4d_xdr::compound::decode_header`, which must agree with the
//! generated `COMPOUND4args` decoder, then one `nfs_argop4` at a time),
//! plus a mode that puts a chosen operation number in front of fuzzer
//! bytes so every operation's argument decoder is reached, and the other
//! messages the server or the project client decode (CB_COMPOUND,
//! replies). Never a panic; every step consumes input or stops.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfs4d_fuzz::compound_args::run(data));
