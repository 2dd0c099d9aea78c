//! The NFSv4 encodings, pinned byte for byte.
//!
//! `tests/golden/encodings.txt` holds two kinds of lines:
//!
//! * `value <type> <debug digest> <hex>`: a value of an NFSv4 type and its
//!   encoding. The test decodes the bytes, checks that it got the same
//!   value (the digest of its `Debug` text), that it consumed every byte,
//!   and that encoding the value gives the same bytes back.
//! * `corpus <file> <type> ok <used> <debug digest> <encoding digest>` or
//!   `corpus <file> <type> err <kind>`: what decoding a fuzz regression
//!   input (`fuzz/regressions/`) as `<type>` gave: the bytes it consumed,
//!   the value and its re-encoding, or the kind of error.
//!
//! Together they pin the encoder and the decoder, including their answers
//! to hostile input, independently of the runtime that implements them.
//! The file was written by commit e26eb2c, when the generated code ran on
//! the `xdr-codec` 0.4.4 runtime (its integer and boolean codecs, and
//! `crate::codec` for opaque data, arrays and optionals), from seeded
//! samples of every operation of `nfs_argop4`, `nfs_resop4`,
//! `nfs_cb_argop4`, `nfs_cb_resop4`, COMPOUNDs and CB_COMPOUNDs built from
//! them, and `fattr4`s. It must never be rewritten from the code it
//! checks: a new type gets new lines checked by hand.

use std::fmt::Debug;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use nfs4d_xdr::codec::{Error, Pack, Unpack};
use nfs4d_xdr::*;

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/encodings.txt")
}

/// FNV-1a, 64 bits: a stable digest that needs no dependency.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The error kinds, spelled as the golden file has them (it was written
/// with `xdr-codec`'s error type).
fn kind(e: &Error) -> String {
    match e {
        Error::InvalidEnum(v) => format!("InvalidEnum({v})"),
        Error::InvalidCase(v) => format!("InvalidCase({v})"),
        Error::InvalidLen(v) => format!("InvalidLen({v})"),
        Error::Io(io) => format!("Io({:?})", io.kind()),
        _ => "Other".to_string(),
    }
}

/// A successful decode: bytes consumed, digest of the value's `Debug`
/// text, and the value's encoding.
struct Decoded {
    used: usize,
    debug: u64,
    enc: Vec<u8>,
}

fn decode<T>(b: &[u8]) -> Result<Decoded, String>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>> + Pack<Vec<u8>> + Debug,
{
    let (v, used) = from_bytes_prefix::<T>(b).map_err(|e| kind(&e))?;
    let enc = try_to_bytes(&v).map_err(|e| format!("Encode{}", kind(&e)))?;
    Ok(Decoded {
        used,
        debug: fnv64(format!("{v:?}").as_bytes()),
        enc,
    })
}

/// Decodes `b` as the type named `ty`.
fn decode_as(ty: &str, b: &[u8]) -> Result<Decoded, String> {
    match ty {
        "COMPOUND4args" => decode::<COMPOUND4args>(b),
        "COMPOUND4res" => decode::<COMPOUND4res>(b),
        "CB_COMPOUND4args" => decode::<CB_COMPOUND4args>(b),
        "CB_COMPOUND4res" => decode::<CB_COMPOUND4res>(b),
        "nfs_argop4" => decode::<nfs_argop4>(b),
        "nfs_resop4" => decode::<nfs_resop4>(b),
        "nfs_cb_argop4" => decode::<nfs_cb_argop4>(b),
        "nfs_cb_resop4" => decode::<nfs_cb_resop4>(b),
        "fattr4" => decode::<fattr4>(b),
        _ => panic!("no decoder for type {ty}"),
    }
}

const OP_TYPES: [&str; 4] = ["nfs_argop4", "nfs_resop4", "nfs_cb_argop4", "nfs_cb_resop4"];

/// The input a fuzz regression file stands for, and the types it is
/// decoded as, chosen by its mode byte as in the `compound_args` and
/// `roundtrip` targets (0 and 2: arguments; 1: an operation number chosen
/// by the next byte, then the operation's body; 3: results).
fn corpus_input(data: &[u8]) -> Option<(&'static [&'static str], Vec<u8>)> {
    let (&mode, rest) = data.split_first()?;
    Some(match mode % 4 {
        0 | 2 => (&["COMPOUND4args", "CB_COMPOUND4args"], rest.to_vec()),
        1 => {
            let (&b, body) = rest.split_first()?;
            let op: u32 = if b == 255 {
                10044
            } else {
                3 + u32::from(b) % 73
            };
            let mut v = op.to_be_bytes().to_vec();
            v.extend_from_slice(body);
            (&OP_TYPES, v)
        }
        _ => (
            &["COMPOUND4res", "CB_COMPOUND4res", "fattr4"],
            rest.to_vec(),
        ),
    })
}

/// The `corpus` line for decoding `input` (from the file `name`) as `ty`.
fn corpus_line(name: &str, ty: &str, input: &[u8]) -> String {
    match decode_as(ty, input) {
        Ok(d) => format!(
            "corpus {name} {ty} ok {} {:016x} {:016x}",
            d.used,
            d.debug,
            fnv64(&d.enc)
        ),
        Err(k) => format!("corpus {name} {ty} err {k}"),
    }
}

fn golden_lines() -> Vec<String> {
    let text = std::fs::read_to_string(golden_path()).expect("tests/golden/encodings.txt");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn values_encode_as_recorded() {
    let mut n = 0;
    for line in golden_lines().iter().filter(|l| l.starts_with("value ")) {
        let f: Vec<&str> = line.split(' ').collect();
        let [_, ty, debug, bytes] = f[..] else {
            panic!("malformed line: {line}");
        };
        let bytes = unhex(bytes);
        let d = decode_as(ty, &bytes).unwrap_or_else(|k| panic!("{ty} {debug}: {k}"));
        assert_eq!(d.used, bytes.len(), "{ty} {debug}: bytes consumed");
        assert_eq!(
            format!("{:016x}", d.debug),
            debug,
            "{ty}: decoded to another value"
        );
        assert!(
            d.enc == bytes,
            "{ty} {debug}: encodes as {} instead of {}",
            hex(&d.enc),
            hex(&bytes)
        );
        n += 1;
    }
    assert!(n >= 500, "only {n} recorded values");
}

/// Every recorded outcome still holds. Inputs added to
/// `fuzz/regressions/` later are not recorded here (they are replayed by
/// `fuzz_regressions.rs`); a recorded one must not disappear.
#[test]
fn regression_inputs_decode_as_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut n = 0;
    for line in golden_lines().iter().filter(|l| l.starts_with("corpus ")) {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        let [_, name, ty, _] = f[..] else {
            panic!("malformed line: {line}");
        };
        let data = std::fs::read(root.join(name))
            .unwrap_or_else(|e| panic!("fuzz/regressions/{name}: {e}"));
        let (types, input) = corpus_input(&data).expect("a recorded input has a mode");
        assert!(types.contains(&ty), "{name} is not decoded as {ty}");
        assert_eq!(&corpus_line(name, ty, &input), line);
        n += 1;
    }
    assert!(n >= 400, "only {n} recorded outcomes");
}
