//! Pipes for READs served with `splice(2)` ([`nfs4d_store::PipedData`]),
//! and for WRITE data the transport splices from a socket
//! ([`nfs4d_store::PipedSource`]).
//!
//! A READ splices the file's cached pages into a pipe; the connection's
//! writer splices them on into the socket. Neither step copies the data
//! through user space: the pipe holds page references. A WRITE's data goes
//! the other way: from the socket's buffers into a pipe, and from the pipe
//! into the file, where the page cache's copy is the only one.
//!
//! Each pipe is two descriptors and, while in use, pins the pages it
//! refers to, so both the pipes in use and the emptied ones kept for reuse
//! are bounded. With every pipe in use, a READ reads into a buffer as
//! before.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nfs4d_store::{PipedData, PipedSource};

use crate::sys;

/// Pipes in use at once, at most. Two descriptors each: 512 of the
/// server's descriptors. A streaming client has a few dozen READs in
/// flight per connection.
pub const MAX_PIPES: usize = 256;

/// Emptied pipes kept for reuse (creating one and sizing it is two system
/// calls).
pub const KEPT_PIPES: usize = 64;

const _: () = assert!(KEPT_PIPES <= MAX_PIPES);

/// The pool: kept pipes and a count of those in use.
#[derive(Debug)]
pub struct Pipes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kept: Mutex<Vec<Pipe>>,
    in_use: AtomicUsize,
    /// Cleared when the kernel refuses a pipe of `capacity` bytes (an
    /// unprivileged server past `/proc/sys/fs/pipe-max-size`): READs then
    /// read into buffers. A pipe of the default 64 KiB would cut every
    /// READ short.
    usable: AtomicBool,
    capacity: usize,
}

#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipes {
    /// A pool of pipes of `capacity` bytes each (the largest READ served
    /// from a pipe).
    pub fn new(capacity: usize) -> Pipes {
        Pipes {
            inner: Arc::new(Inner {
                kept: Mutex::new(Vec::new()),
                in_use: AtomicUsize::new(0),
                usable: AtomicBool::new(true),
                capacity,
            }),
        }
    }

    /// A pool of pipes of `capacity` bytes each, if the kernel gives this
    /// process a pipe that large (`/proc/sys/fs/pipe-max-size`, or
    /// CAP_SYS_RESOURCE beyond it); the pipe made to find out is kept.
    pub fn try_new(capacity: usize) -> io::Result<Pipes> {
        let first = new_pipe(capacity)?;
        let pipes = Pipes::new(capacity);
        pipes
            .inner
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(first);
        Ok(pipes)
    }

    /// Pipes taken and not yet dropped.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// Capacity of each pipe.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// An empty pipe, or `None` when all are in use or pipes are unusable
    /// (the caller then copies the data, as without pipes).
    pub fn take(&self) -> Option<Loaded> {
        let inner = &self.inner;
        if !inner.usable.load(Ordering::Relaxed) {
            return None;
        }
        if inner.in_use.fetch_add(1, Ordering::AcqRel) >= MAX_PIPES {
            inner.in_use.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let kept = inner
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let pipe = match kept {
            Some(p) => p,
            None => match new_pipe(inner.capacity) {
                Ok(p) => p,
                Err(e) => {
                    inner.in_use.fetch_sub(1, Ordering::AcqRel);
                    if e.raw_os_error() == Some(libc::EPERM) {
                        tracing::warn!(
                            capacity = inner.capacity,
                            "pipes of this size are refused (pipe-max-size); data is copied, not spliced"
                        );
                        inner.usable.store(false, Ordering::Relaxed);
                    } else {
                        tracing::debug!(error = %e, "no pipe to spare; the data is copied");
                    }
                    return None;
                }
            },
        };
        Some(Loaded {
            pipe: Some(pipe),
            len: 0,
            pool: self.inner.clone(),
        })
    }
}

fn new_pipe(capacity: usize) -> io::Result<Pipe> {
    let (read, write) = sys::pipe()?;
    let got = sys::set_pipe_size(write.as_fd(), capacity)?;
    if got < capacity {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(Pipe { read, write })
}

/// A pipe taken from the pool and the count of bytes it holds.
#[derive(Debug)]
pub struct Loaded {
    /// Always `Some` until dropped.
    pipe: Option<Pipe>,
    len: usize,
    pool: Arc<Inner>,
}

impl Loaded {
    /// Splices up to `max` bytes of `file` at `offset` into the pipe,
    /// stopping short when the pipe is full or at end of file; returns the
    /// count added. `Unsupported` when the file system cannot splice.
    pub fn fill(&mut self, file: BorrowedFd<'_>, offset: u64, max: usize) -> io::Result<usize> {
        let Some(p) = &self.pipe else {
            return Ok(0);
        };
        let mut n = 0;
        while n < max {
            match sys::splice(file, Some(offset + n as u64), p.write.as_fd(), max - n) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    self.len += k;
                }
                // The pipe is full (a READ whose pages need more slots than
                // it has, at an unaligned offset), or the kernel would wait
                // for the file: the READ ends short, or with nothing read
                // the caller reads into a buffer instead.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && n == 0 => {
                    return Err(io::ErrorKind::Unsupported.into());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

impl Loaded {
    /// Appends `bytes` to the pipe (the start of a WRITE's data that
    /// arrived with its header). The pipe must have room for them.
    pub fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(p) = &self.pipe else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        sys::write_all(p.write.as_fd(), bytes)?;
        self.len += bytes.len();
        Ok(())
    }

    /// Splices up to `max` bytes from the non-blocking stream socket
    /// `sock` into the pipe; returns the count (0 at end of stream).
    /// `WouldBlock` when the socket has nothing now, or when the pipe is
    /// full: [`socket_pending`] tells the two apart.
    pub fn fill_from_socket(&mut self, sock: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
        let Some(p) = &self.pipe else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let k = sys::splice(sock, None, p.write.as_fd(), max)?;
        self.len += k;
        Ok(k)
    }
}

/// Bytes waiting to be read in the socket `sock` (`FIONREAD`).
pub fn socket_pending(sock: BorrowedFd<'_>) -> io::Result<usize> {
    sys::pipe_pending(sock)
}

impl PipedSource for Loaded {
    fn len(&self) -> usize {
        self.len
    }

    fn splice_into(&mut self, fd: BorrowedFd<'_>, offset: u64) -> io::Result<usize> {
        let Some(p) = &self.pipe else {
            return Ok(0);
        };
        if self.len == 0 {
            return Ok(0);
        }
        let k = sys::splice_into_file(p.read.as_fd(), fd, offset, self.len)?;
        self.len -= k.min(self.len);
        Ok(k)
    }

    fn read_out(&mut self) -> io::Result<Vec<u8>> {
        PipedData::read_out(self)
    }
}

impl PipedData for Loaded {
    fn len(&self) -> usize {
        self.len
    }

    fn splice_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let Some(p) = &self.pipe else {
            return Ok(0);
        };
        if self.len == 0 {
            return Ok(0);
        }
        let k = sys::splice(p.read.as_fd(), None, fd, self.len)?;
        self.len -= k.min(self.len);
        Ok(k)
    }

    fn read_out(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        let Some(p) = &self.pipe else {
            return Ok(out);
        };
        while self.len > 0 {
            match sys::read_append(p.read.as_fd(), &mut out, self.len)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                k => self.len -= k.min(self.len),
            }
        }
        Ok(out)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let pool = &self.pool;
        pool.in_use.fetch_sub(1, Ordering::AcqRel);
        let Some(p) = self.pipe.take() else {
            return;
        };
        // A pipe still holding bytes (a connection that failed mid-send)
        // is closed, releasing its pages; only an empty one is reused.
        if self.len != 0 || !matches!(sys::pipe_pending(p.read.as_fd()), Ok(0)) {
            return;
        }
        let mut kept = pool.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_PIPES {
            kept.push(p);
        }
    }
}
