//! ONC RPC call header and credential parsing (RFC 5531 §9, AUTH_SYS
//! §14.2.1) on records as the transport hands them over: never a panic;
//! a call's argument slice lies inside the record; an AUTH_NONE or
//! AUTH_SYS call re-encoded with the project's encoder parses back to the
//! same header and credential; every refusal encodes to a parseable reply.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfs4d_fuzz::rpc_call::run(data));
