//! RPCSEC_GSS decoding (RFC 2203 §5: credential, creation argument and
//! result, integrity and privacy bodies, the RPC envelope around them) and
//! the sequence window on hostile bytes: never a panic, every slice inside
//! its input, bounds held, re-encodings decode equal, and the window
//! agrees with a plain model. The check is `fuzz/src/gss_wire.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/gss_wire.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::run(data));
