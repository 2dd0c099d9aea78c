//! Replays the inputs kept in `fuzz/regressions/gss_wire/` through the
//! `gss_wire` fuzz target's check (`fuzz/src/gss_wire.rs`), so `cargo
//! test` on the stable toolchain guards against every input the fuzzer
//! ever flagged, plus the seeds written by `fuzz/examples/seeds.rs`
//! (docs/fuzzing.md).

#[allow(dead_code, clippy::all)]
#[path = "../../../fuzz/src/gss_wire.rs"]
mod check;

use std::path::Path;

#[test]
fn gss_wire_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/gss_wire");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::run(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
        n += 1;
    }
    assert!(n > 0, "no inputs under {}", dir.display());
}
