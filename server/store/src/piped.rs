//! File data left in a kernel pipe instead of a user-space buffer.
//!
//! A store whose objects are files of the local kernel can move a READ's
//! bytes from the page cache into a pipe with `splice(2)`: the pipe then
//! holds references to the cached pages, not a copy. The connection's
//! writer moves them on to the socket the same way, so the data is never
//! copied through user space (on sequential reads, the two copies were
//! about a third of the server's CPU; docs/performance.md).

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

/// Bytes of a READ waiting in a pipe ([`crate::Store::read_piped`]).
///
/// Dropping it releases the pipe (a store may reuse an emptied one).
pub trait PipedData: Send + fmt::Debug {
    /// Bytes still in the pipe.
    fn len(&self) -> usize;

    /// Whether the pipe holds nothing more.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves up to all remaining bytes into `fd` (a non-blocking stream
    /// socket) and returns how many moved. `WouldBlock` when `fd` has no
    /// room now; never blocks.
    fn splice_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize>;

    /// Reads the remaining bytes out into a buffer: for a reply that must
    /// be kept or transformed whole (a cached reply, a reply under
    /// RPCSEC_GSS integrity or privacy).
    fn read_out(&mut self) -> io::Result<Vec<u8>>;
}

/// A WRITE's data left in a kernel pipe by the transport, which spliced it
/// from the socket instead of reading it into the request's record
/// ([`crate::Store::write_piped`]). The pipe holds the socket buffer's
/// pages; a store with a file descriptor splices them on into the file,
/// so the data is copied once, into the page cache, where a record would
/// have had it copied twice.
///
/// Dropping it releases the pipe and whatever it still holds.
pub trait PipedSource: Send + fmt::Debug {
    /// Bytes still in the pipe.
    fn len(&self) -> usize;

    /// Whether the pipe holds nothing more.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves up to all remaining bytes into the regular file `fd` at
    /// `offset` and returns how many moved (at least one while bytes
    /// remain, unless an error is returned). `Unsupported` (or the
    /// kernel's EINVAL) when they cannot be spliced: the caller then takes
    /// them out with [`PipedSource::read_out`].
    fn splice_into(&mut self, fd: BorrowedFd<'_>, offset: u64) -> io::Result<usize>;

    /// Reads the remaining bytes out into a buffer, for a store that has
    /// no file descriptor to splice into.
    fn read_out(&mut self) -> io::Result<Vec<u8>>;
}
