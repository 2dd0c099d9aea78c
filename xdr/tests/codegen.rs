//! Tests of the XDR generator itself (the code `build.rs` runs): spec
//! errors must stop the build with `file:line:col` and a clear message.
//! What the generated code does is tested in `src/tests.rs`.

#[path = "../codegen/mod.rs"]
mod codegen;

/// Generates from one in-memory file named `t.x`.
fn gen(src: &str) -> Result<String, String> {
    codegen::generate(&[("t.x".to_string(), src.to_string())]).map_err(|e| e.to_string())
}

/// Asserts that `src` fails with a message starting with `t.x:<line>:`
/// and containing `needle`.
fn fails(src: &str, line: u32, needle: &str) {
    let e = gen(src).expect_err("expected a spec error");
    assert!(
        e.starts_with(&format!("t.x:{line}:")),
        "wrong location: {e}"
    );
    assert!(e.contains(needle), "{e:?} does not mention {needle:?}");
}

const BASE: &str = "typedef unsigned int uint32_t;\nenum color { RED = 0, BLUE = 1 };\n";

#[test]
fn unsupported_constructs_are_rejected_with_location() {
    fails("const A = 1;\n%#include <rpc/rpc.h>\n", 2, "pass-through");
    fails(
        "const A = 1;\n\nprogram NFS4 { version V { void NULL(void) = 0; } = 4; } = 100003;\n",
        3,
        "program",
    );
    fails("struct s { float f; };", 1, "floating point");
}

#[test]
fn syntax_errors_have_locations() {
    fails("struct s {\n  int a\n};", 3, "expected `;`");
    fails("const A = ;", 1, "a number or constant name");
    fails("/* never closed", 1, "unterminated");
    fails("const A = 0x1ffffffffffffffff;", 1, "out-of-range");
    fails("struct s { opaque o; };", 1, "needs a size");
    fails("struct s { string s[3]; };", 1, "variable-length");
    fails("typedef int x;\n@", 2, "unexpected character");
}

#[test]
fn semantic_errors_have_locations() {
    fails("struct s { nosuch x; };", 1, "unknown type `nosuch`");
    fails("typedef opaque o<MAXLEN>;", 1, "unknown constant `MAXLEN`");
    fails("const A = 1;\nconst A = 2;", 2, "already defined");
    fails(
        "struct s { int a; };\nstruct s { int b; };",
        2,
        "already defined",
    );
    fails("enum e { A = 1, B = 1 };", 1, "also used by `A`");
    fails("enum e { A = 0x80000000 };", 1, "does not fit in an int");
    fails("struct s { int a; int a; };", 1, "duplicate field");
    fails("struct s { int a; s b; };", 1, "infinite size");
    fails("struct Vec { int a; };", 1, "prelude");
    fails("struct s { int self; };", 1, "cannot be used");
    fails("typedef a b;\ntypedef b a;", 1, "typedef chain loops");
}

#[test]
fn union_errors() {
    let src = |body: &str| format!("{BASE}{body}");
    fails(
        &src("union u switch (color c) { case 7: void; };"),
        3,
        "not a member",
    );
    fails(
        &src("union u switch (uint32_t c) { case -1: void; };"),
        3,
        "does not fit",
    );
    fails(
        &src("union u switch (bool c) { case 1: void; };"),
        3,
        "does not fit",
    );
    fails(
        &src("union u switch (color c) { case RED: void; case RED: void; };"),
        3,
        "duplicate case",
    );
    fails(
        &src("const Z = 0;\nunion u switch (uint32_t c) { case Z: void; case RED: void; };"),
        4,
        "also the value of case `Z`",
    );
    fails(
        &src("union u switch (hyper c) { case 1: void; };"),
        3,
        "discriminant must be",
    );
}

#[test]
fn output_follows_the_naming_conventions() {
    let out = gen(&format!(
        "{BASE}struct s {{ int type; color c; uint32_t *next; }};\n\
         union u switch (uint32_t d) {{ case RED: s v; case 5: void; default: void; }};\n"
    ))
    .unwrap();
    for expected in [
        "pub struct s {",
        "pub r#type: i32,",
        "pub c: color,",
        "pub next: Option<Box<uint32_t>>,",
        "pub enum u {",
        "    RED(s),",
        "    V5,",
        "    default(u32),",
        "pub const RED: i32 = 0;",
        "pub type uint32_t = u32;",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn files_share_one_namespace_in_order() {
    // A file may use names defined by a later one.
    let out = codegen::generate(&[
        ("a.x".into(), "struct s { later_t x; };".into()),
        (
            "b.x".into(),
            "typedef opaque later_t<LATER_MAX>;\nconst LATER_MAX = 4;".into(),
        ),
    ])
    .unwrap();
    assert!(out.contains("unpack_opaque_var(input, Some(4))"), "{out}");
    // Errors name the right file.
    let e = codegen::generate(&[
        ("a.x".into(), "const A = 1;".into()),
        ("b.x".into(), "\nconst A = 1;".into()),
    ])
    .unwrap_err();
    assert!(e.to_string().starts_with("b.x:2:"), "{e}");
}

#[test]
fn test_and_real_specs_generate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["tests/spec", "spec"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "x"))
            .collect();
        files.sort();
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
            .collect();
        codegen::generate(&sources).unwrap_or_else(|e| panic!("{e}"));
    }
}
