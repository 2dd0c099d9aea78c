//! The store conformance suite: the behaviour every store must show,
//! whatever it is built on. Each store crate runs it from its own tests.
