//! The XDR → Rust generator used by `xdr/build.rs` (see its doc for the
//! language subset and the mapping rules). It is also compiled into the
//! `codegen` integration test, which checks its error messages.
//!
//! Pipeline: `lexer` (tokens with file:line:col) → `parser` (AST, one
//! list of definitions for all files) → `model` (name resolution,
//! typedef expansion into wire shapes, recursion analysis) → `emit`.

mod emit;
mod lexer;
mod model;
mod parser;

pub use lexer::Error;

/// Generates Rust source from spec files given as `(path, contents)`, in
/// the order given; they share one namespace. Errors carry the path and
/// line of the offending definition.
pub fn generate(sources: &[(String, String)]) -> Result<String, Error> {
    let mut defs = Vec::new();
    for (path, text) in sources {
        parser::parse_file(path, text, &mut defs)?;
    }
    let model = model::Model::new(defs)?;
    let paths: Vec<String> = sources.iter().map(|(p, _)| p.clone()).collect();
    emit::emit(&model, &paths)
}
