//! Why a value cannot be encoded or decoded.

use super::depth::MAX_DEPTH;

/// Result of the XDR runtime.
pub type Result<T> = std::result::Result<T, Error>;

/// An XDR encoding or decoding failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a value (kind `UnexpectedEof`), or the
    /// output could not be written.
    #[error("XDR: {0}")]
    Io(#[from] std::io::Error),
    /// An enum value outside the enum, or a boolean other than 0 or 1
    /// (RFC 4506 §4.3, §4.4).
    #[error("XDR: invalid enum value {0}")]
    InvalidEnum(i32),
    /// A union discriminant that selects no arm (RFC 4506 §4.15), or a
    /// `default` arm value carrying an explicit case's discriminant.
    #[error("XDR: invalid union discriminant {0}")]
    InvalidCase(i32),
    /// A length or count above the declared `<N>` maximum, or above
    /// 2^32 - 1 (RFC 4506 §4.10, §4.11, §4.13).
    #[error("XDR: length {0} exceeds the declared maximum")]
    InvalidLen(usize),
    /// Recursive types nested deeper than [`MAX_DEPTH`].
    #[error("XDR: recursive types nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A whole-buffer decode (`from_bytes`) left bytes unread.
    #[error("XDR: {0} trailing bytes after the value")]
    TrailingBytes(usize),
}
