//! The namespace layer: exports, the pseudo filesystem and filehandles
//! ([`vfs`]), files removed while open ([`orphans`]).
pub mod orphans;
pub mod vfs;
