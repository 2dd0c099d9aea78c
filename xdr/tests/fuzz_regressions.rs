//! Replays the inputs kept in `fuzz/regressions/<target>/` through the
//! fuzz targets' checks (`fuzz/src/lib.rs`), so `cargo test` on the stable
//! toolchain guards against every input the fuzzers ever flagged, plus the
//! seeds and limit cases written by `fuzz/examples/seeds.rs`. A crashing
//! input found by `cargo fuzz` is copied there (docs/fuzzing.md).

#[allow(dead_code, clippy::all)]
#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            path.display()
        );
        n += 1;
    }
    assert!(n > 0, "no inputs under {}", dir.display());
}

#[test]
fn record_regressions() {
    replay("record", checks::record::run);
}

#[test]
fn rpc_call_regressions() {
    replay("rpc_call", checks::rpc_call::run);
}

#[test]
fn compound_args_regressions() {
    replay("compound_args", checks::compound_args::run);
}

#[test]
fn roundtrip_regressions() {
    replay("roundtrip", checks::roundtrip::run);
}
