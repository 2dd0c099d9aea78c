//! Build script of `nfs4d-xdr`: generates the NFSv4 wire types from the
//! XDR definitions in `xdr/spec/*.x`.
//!
//! # Why our own generator
//!
//! Every generated type implements the crate's own runtime traits,
//! `nfs4d_xdr::codec::Pack<Out: Write>` and `Unpack<In: Read>` (shaped
//! like those of the `xdr-codec` crate, which docs/xdr.md explains we set
//! aside). `xdrgen` 0.4.4, the generator that goes with `xdr-codec`,
//! cannot process the NFSv4 specification of RFC 7530/5661/7862/8276:
//! its number parser does `i64::from_str_radix(..).unwrap()`, so it
//! panics on hexadecimal constants above `i64::MAX` (such as
//! `NFS4_UINT64_MAX = 0xffffffffffffffff`); it has no grammar for
//! `program` blocks and silently drops `%` lines; and it fails on unions
//! discriminated by `uint32_t` whose case labels are constants it does not
//! know (`secinfo4`, `callback_sec_parms4`). Its output also decodes
//! variable-length arrays through `xdr_codec::unpack_flex`, i.e.
//! `Vec::with_capacity(count)` straight from the wire, which lets four
//! bytes of hostile input request gigabytes. So we generate the code
//! ourselves with a small, dependency-free generator (`xdr/codegen/`):
//! a hand-written lexer and recursive-descent parser, a resolver and an
//! emitter.
//!
//! # Input
//!
//! Every `xdr/spec/*.x` file, in sorted file-name order, forming one
//! namespace (a file may use names defined in a later one). The language
//! is RFC 4506 section 6 without `program`/`version` blocks and `%`
//! pass-through lines (both are rejected with a file:line error):
//! `/* */` and `//` comments; `const`; `typedef`; `enum`; `struct`;
//! `union switch`; declarations `int`, `unsigned int`, `unsigned`,
//! `hyper`, `unsigned hyper`, `bool`, `opaque x[N]`, `opaque x<N>`,
//! `string x<N>`, `T x[N]`, `T x<N>`, `T *x` (`N` a number or constant,
//! `<>` unbounded); numbers in decimal, `0x` hex or leading-`0` octal.
//! `int32_t` & co. are ordinary typedefs the spec declares itself.
//! Anonymous inline `struct {…}`/`enum {…}`/`union switch …` types are
//! accepted and named after their declaration (`typedef struct {…} foo;`
//! defines `foo`; a field `x` of struct `s` gets type `s_x`). Any error
//! stops the build with `path:line:col: error: …`.
//!
//! # Output: `$OUT_DIR/nfs4_generated.rs`, included by `src/nfs4.rs`
//!
//! Names are exactly the XDR names; Rust keywords become raw identifiers
//! (a field `type` is `r#type`).
//!
//! | XDR | Rust |
//! |-----|------|
//! | `const N = v;` | `pub const N: u32` (0 ≤ v < 2^32), `u64` (larger), `i32`/`i64` (negative) |
//! | `int` / `unsigned int` / `hyper` / `unsigned hyper` / `bool` | `i32` / `u32` / `i64` / `u64` / `bool` |
//! | `opaque x[N]` | `[u8; N]` |
//! | `opaque x<N>`, `string x<N>` | `Vec<u8>` (strings are not checked for UTF-8: the server validates them) |
//! | `T x[N]` / `T x<N>` / `T *x` | `[T; N]` / `Vec<T>` / `Option<Box<T>>` |
//! | `typedef D name;` | `pub type name = <type of D>;` |
//! | `enum E { A = 1 }` | `#[repr(i32)] pub enum E { A = 1 }` + `Default` (first member), `TryFrom<i32>`, `From<E> for i32`; plus `pub const A: i32 = 1;` when no other const or member is named `A` |
//! | `struct S { … }` | `pub struct S { pub field: T, … }`, deriving `Debug, Clone, PartialEq, Eq, Hash` and `Default` (unless it holds a fixed array longer than 32) |
//! | `union U switch (D d) { case A: T a; case B: case C: void; default: …; }` | `pub enum U { A(T), B, C, default(D) }` — one variant per label (numbers: `V<n>`, negative `Vm<n>`; bool: `TRUE`/`FALSE`), `default(D)` or `default(D, T)` holding the actual discriminant; `U::discriminant()`; `Default` = first case |
//!
//! `D`, the discriminant type, is the enum, `i32`, `u32` or `bool`
//! (typedef chains resolved). Only structs, unions and enums implement
//! `Pack`/`Unpack`; typedefs are aliases. Because an `opaque<N>` and a
//! `uint32_t<N>` are both `Vec`s in Rust but differ on the wire, and the
//! `<N>` maximum must be checked, the emitter never relies on trait
//! dispatch for fields: it expands each
//! field's typedef chain into its wire *shape* and calls the matching
//! function of `nfs4d_xdr::codec` (opaque: length + bytes + padding;
//! arrays: count + elements; optional: bool + value …).
//!
//! # Safety rules of the generated decoders
//!
//! * A count or length above the declared `<N>` is `InvalidLen` before
//!   anything is allocated; no more than 16 KiB (and 1024 elements) are
//!   reserved up front whatever the count says, the rest grows as
//!   elements actually decode; opaque bodies are read through `take`.
//! * Truncated input is an I/O `UnexpectedEof` error; unknown enum values
//!   are `InvalidEnum`; a union discriminant matching no case and no
//!   `default` is `InvalidCase`. No input can panic the decoder.
//! * A struct whose last field is an optional pointer to itself (a list,
//!   e.g. `entry4 *nextentry`) gets loops instead of recursion in pack,
//!   unpack, drop, clone, eq, hash and debug. Any other recursive type
//!   decodes under a per-thread depth limit (`codec::DepthGuard`).
//! * Packing a value longer than its `<N>` fails with `InvalidLen`;
//!   packing `U::default(d, …)` with `d` equal to an explicit case fails
//!   with `InvalidCase` (it would decode as that case).
//!
//! The same generator also turns `xdr/tests/spec/*.x` into
//! `$OUT_DIR/test_generated.rs`, used by the crate's unit tests.

use std::path::{Path, PathBuf};

#[path = "codegen/mod.rs"]
mod codegen;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run by cargo"));
    for p in ["build.rs", "codegen", "spec", "tests/spec"] {
        println!("cargo:rerun-if-changed={}", manifest.join(p).display());
    }
    generate(&manifest.join("spec"), &out_dir.join("nfs4_generated.rs"));
    generate(
        &manifest.join("tests/spec"),
        &out_dir.join("test_generated.rs"),
    );
}

/// Generates `out` from the `*.x` files of `dir`; exits with the spec
/// error (file:line:col) on failure.
fn generate(dir: &Path, out: &Path) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
                    .path()
            })
            .filter(|p| p.extension().is_some_and(|x| x == "x"))
            .collect(),
        Err(e) => fail(&format!("{}: {e}", dir.display())),
    };
    files.sort();
    if files.is_empty() {
        fail(&format!("{}: no *.x files", dir.display()));
    }
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", f.display())));
            (f.display().to_string(), text)
        })
        .collect();
    let code = codegen::generate(&sources).unwrap_or_else(|e| fail(&e.to_string()));
    // Rewrite only on change, so that an unrelated rerun does not
    // recompile the crate.
    if std::fs::read_to_string(out).ok().as_deref() != Some(code.as_str()) {
        std::fs::write(out, code).unwrap_or_else(|e| fail(&format!("{}: {e}", out.display())));
    }
}

/// Stops the build with a message cargo shows verbatim (a panic would
/// bury it under a backtrace).
fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    println!("cargo:warning=XDR generation failed: {msg}");
    std::process::exit(1);
}
