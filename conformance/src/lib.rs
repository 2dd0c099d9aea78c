//! Helpers shared by the real-client tests in `tests/`.
