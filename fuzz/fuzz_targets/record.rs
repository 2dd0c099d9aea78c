//! Record-marking reassembly (RFC 5531 §11): the stream is fed in
//! fuzzer-chosen chunk sizes and must yield exactly the records, and the
//! error, that a whole-stream reference parser finds — never a panic and
//! never a record past the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfs4d_fuzz::record::run(data));
