//! Names and paths as stores see them: validated components and paths
//! relative to the export root. No store call ever receives `.`, `..`, an
//! empty component or a `/` inside a name.

use std::fmt;
use std::sync::Arc;

/// Longest single path component, in bytes (Linux `NAME_MAX`). A store
/// with a shorter limit reports it in [`crate::FsStats::name_max`].
pub const NAME_MAX: usize = 255;

/// Why a byte string is not a valid path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name is \".\"")]
    Dot,
    #[error("name is \"..\"")]
    DotDot,
    #[error("name contains '/'")]
    Slash,
    #[error("name contains NUL")]
    Nul,
    #[error("name longer than {NAME_MAX} bytes")]
    TooLong,
}

/// One validated path component: non-empty, at most [`NAME_MAX`] bytes, no
/// `/`, no NUL, not `.` or `..`.
///
/// Kept as raw bytes: POSIX names are byte strings, and the server decides
/// separately whether it insists on UTF-8 (RFC 7530 §12). Shared rather
/// than owned, so that cloning a name, or a [`RelPath`] of them (every
/// [`RelPath::join`], e.g. once per READDIR entry), copies no bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<[u8]>);

impl Name {
    pub fn new(bytes: &[u8]) -> Result<Name, NameError> {
        Name::check(bytes)?;
        Ok(Name(Arc::from(bytes)))
    }

    /// Whether `bytes` would make a [`Name`], without making one: READDIR
    /// checks every listed name but needs only the bytes.
    pub fn check(bytes: &[u8]) -> Result<(), NameError> {
        match bytes {
            [] => return Err(NameError::Empty),
            b"." => return Err(NameError::Dot),
            b".." => return Err(NameError::DotDot),
            _ => {}
        }
        if bytes.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        // One pass for both bytes; which one it was only when one is found.
        if bytes.iter().any(|&b| b == b'/' || b == 0) {
            return Err(if bytes.contains(&b'/') {
                NameError::Slash
            } else {
                NameError::Nul
            });
        }
        Ok(())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Name, NameError> {
        Name::new(s.as_bytes())
    }
}

impl AsRef<[u8]> for Name {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// A validated path relative to the export root: a sequence of [`Name`]s.
/// The empty sequence is the root itself.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<Name>);

impl RelPath {
    /// The export root.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Parses `a/b/c`; the empty string is the root. Leading, trailing or
    /// doubled slashes are rejected (they would be empty components).
    pub fn parse(bytes: &[u8]) -> Result<RelPath, NameError> {
        if bytes.is_empty() {
            return Ok(RelPath::root());
        }
        bytes
            .split(|&b| b == b'/')
            .map(Name::new)
            .collect::<Result<Vec<_>, _>>()
            .map(RelPath)
    }

    pub fn from_names(names: Vec<Name>) -> RelPath {
        RelPath(names)
    }

    pub fn join(&self, name: &Name) -> RelPath {
        // Sized once: cloning and then pushing reallocated every time.
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        v.push(name.clone());
        RelPath(v)
    }

    /// The containing directory; `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        self.split_last().map(|(parent, _)| parent)
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&Name> {
        self.0.last()
    }

    /// `(parent, last component)`; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &Name)> {
        let (last, rest) = self.0.split_last()?;
        Some((RelPath(rest.to_vec()), last))
    }

    pub fn components(&self) -> &[Name] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of components (0 for the root).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Component-wise prefix test (`a/b` starts with `a`, not with `a/bc`).
    pub fn starts_with(&self, prefix: &RelPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// `a/b/c` as bytes; empty for the root.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .map(Name::as_bytes)
            .collect::<Vec<_>>()
            .join(&b'/')
    }
}

/// `a/b/c` (lossy UTF-8); the root displays as `.`.
impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.to_string())
    }
}
