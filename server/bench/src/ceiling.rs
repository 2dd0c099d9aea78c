//! The loopback TCP ceiling: how fast plain TCP moves bytes between two
//! threads over 127.0.0.1 on this machine, with the same 1 MiB writes the
//! streaming workloads use. Streaming NFS figures are reported as a
//! fraction of it: an NFS server on loopback cannot beat the bare socket.
//!
//! The same streams with a file at one end ([`Ends`]) are the ceilings of
//! a file server: a stream whose receiver writes every MiB into a file
//! (what seqwrite asks of a server, with no RPC at all), and one whose
//! sender sends a file with `sendfile(2)` (what seqread asks). Each costs
//! the machine what the bare stream does plus the page cache's work, so
//! on a machine whose cores or memory bandwidth are the limit they sit
//! below the bare ceiling by that much.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hist::Histogram;
use crate::pipeline::Tally;

/// What is at the two ends of each stream.
#[derive(Clone, Copy)]
pub enum Ends<'a> {
    /// Memory to memory: the bare stream.
    Memory,
    /// The receiver gathers each chunk and writes it into a file of its
    /// own in the directory, at sequential offsets wrapping at `bytes`
    /// (split evenly over the streams), written through once before the
    /// clock starts. A file per stream is the kindest case: no two
    /// writers share an inode lock.
    IntoFile(&'a Path, u64),
    /// As `IntoFile`, but the receiver moves the bytes with `splice(2)`,
    /// from the socket into a pipe and from the pipe into the file, as a
    /// server could once a WRITE's header is parsed: the socket's pages
    /// are not copied out to user space.
    IntoFileSpliced(&'a Path, u64),
    /// The sender sends a file of the directory, `bytes` long, chunk by
    /// chunk with `sendfile(2)`, at sequential offsets shared by all
    /// streams and wrapping at its end.
    FromFile(&'a Path, u64),
}

/// Streams 1 MiB writes over `streams` connections until `duration` passed
/// or `max_writes` writes were issued; returns bytes received (as tally
/// `bytes`, one op per write) and the elapsed time.
pub fn run(
    streams: usize,
    chunk: usize,
    duration: Option<Duration>,
    max_writes: Option<u64>,
    ends: Ends<'_>,
) -> io::Result<(Tally, Duration)> {
    let files = Files::open(ends, streams, chunk)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> io::Result<()> {
        let mut handles = Vec::new();
        for i in 0..streams {
            let tx = TcpStream::connect(addr)?;
            let (rx, _) = listener.accept()?;
            let (stop, writes, received, files) = (&stop, &writes, &received, &files);
            handles.push(s.spawn(move || -> io::Result<()> {
                let mut tx = tx;
                let buf = vec![0x5au8; chunk];
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let n = writes.fetch_add(1, Ordering::Relaxed);
                    if max_writes.is_some_and(|m| n >= m) {
                        return Ok(());
                    }
                    match files {
                        Files::From { file, chunks } => {
                            send_file(&tx, file, (n % chunks) * chunk as u64, chunk)?;
                        }
                        _ => tx.write_all(&buf)?,
                    }
                }
            }));
            handles.push(s.spawn(move || -> io::Result<()> {
                if let Files::Into {
                    files,
                    chunks,
                    spliced: true,
                } = files
                {
                    return receive_spliced(&rx, &files[i], *chunks, chunk, received);
                }
                let mut rx = rx;
                let mut buf = vec![0u8; chunk];
                let mut filled = 0;
                let mut k = 0u64;
                loop {
                    let n = rx.read(&mut buf[filled..])?;
                    if n == 0 {
                        return Ok(());
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                    if let Files::Into { files, chunks, .. } = files {
                        // Written once whole, as a server writes a WRITE's data.
                        filled += n;
                        if filled == chunk {
                            files[i].write_all_at(&buf, (k % chunks) * chunk as u64)?;
                            k += 1;
                            filled = 0;
                        }
                    }
                }
            }));
        }
        if let Some(d) = duration {
            while start.elapsed() < d && !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
        }
        for h in handles {
            h.join()
                .map_err(|_| io::Error::other("ceiling thread panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    let bytes = received.load(Ordering::Relaxed);
    let tally = Tally {
        ops: bytes / chunk as u64,
        bytes,
        latency: Histogram::default(),
        ..Tally::default()
    };
    Ok((tally, elapsed))
}

/// How fast this machine copies memory it does not have in its caches:
/// `threads` threads each copying 1 MiB blocks between two regions of
/// `region` bytes, for `duration`; returns MiB copied per second by all.
/// A streaming WRITE copies each byte three times (the client's send, the
/// server's receive, the page cache), each from and to memory a stream of
/// files does not keep cached, so three of its copies must fit in this.
pub fn cold_copy(threads: usize, region: usize, duration: Duration) -> f64 {
    const BLOCK: usize = 1 << 20;
    let region = region.max(BLOCK);
    let start = Instant::now();
    let copied: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    // Written first, so every page is mapped before timing.
                    let src = vec![0x5au8; region];
                    let mut dst = vec![0xa5u8; region];
                    let t = Instant::now();
                    let (mut off, mut n) = (0, 0u64);
                    while t.elapsed() < duration {
                        dst[off..off + BLOCK].copy_from_slice(&src[off..off + BLOCK]);
                        off = (off + BLOCK) % (region - region % BLOCK);
                        n += BLOCK as u64;
                    }
                    std::hint::black_box(&dst);
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    copied as f64 / start.elapsed().as_secs_f64().max(1e-9) / BLOCK as f64
}

/// The files of a run, opened (and for [`Ends::FromFile`] written) before
/// the clock starts.
enum Files {
    None,
    Into {
        files: Vec<File>,
        chunks: u64,
        spliced: bool,
    },
    From {
        file: File,
        chunks: u64,
    },
}

impl Files {
    fn open(ends: Ends<'_>, streams: usize, chunk: usize) -> io::Result<Self> {
        let create = |dir: &Path, name: String| {
            let path = dir.join(name);
            let f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            // Unlinked at once: the run leaves nothing behind, even killed.
            std::fs::remove_file(&path)?;
            Ok::<_, io::Error>(f)
        };
        let tag = std::process::id();
        Ok(match ends {
            Ends::Memory => Files::None,
            Ends::IntoFile(dir, bytes) | Ends::IntoFileSpliced(dir, bytes) => {
                let chunks = (bytes / streams as u64 / chunk as u64).max(1);
                let files = (0..streams)
                    .map(|i| create(dir, format!(".ceiling-{tag}-{i}")))
                    .collect::<io::Result<Vec<_>>>()?;
                // Written through once before the clock starts: the timed
                // streams overwrite cached pages, as most of a seqwrite
                // run does (its file is written over and over), rather
                // than allocating them.
                let data = vec![0xa5u8; chunk];
                for f in &files {
                    for c in 0..chunks {
                        f.write_all_at(&data, c * chunk as u64)?;
                    }
                }
                Files::Into {
                    files,
                    chunks,
                    spliced: matches!(ends, Ends::IntoFileSpliced(..)),
                }
            }
            Ends::FromFile(dir, bytes) => {
                let file = create(dir, format!(".ceiling-{tag}"))?;
                let chunks = (bytes / chunk as u64).max(1);
                let data = vec![0x5au8; chunk];
                for c in 0..chunks {
                    file.write_all_at(&data, c * chunk as u64)?;
                }
                Files::From { file, chunks }
            }
        })
    }
}

/// Receives a stream into `file` with `splice(2)` through a pipe: each
/// chunk's bytes go to its offset as they arrive (the pipe is drained
/// after every splice from the socket, so it never fills).
fn receive_spliced(
    rx: &TcpStream,
    file: &File,
    chunks: u64,
    chunk: usize,
    received: &AtomicU64,
) -> io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (pr, pw) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // As large as the system allows (pipe-max-size, 1 MiB by default); a
    // smaller pipe only means more calls.
    // SAFETY: F_SETPIPE_SZ on an open pipe; a refusal leaves it as it was.
    unsafe { libc::fcntl(pw.as_raw_fd(), libc::F_SETPIPE_SZ, chunk as libc::c_int) };
    let splice = |from: i32, to: i32, off: *mut libc::off_t, len: usize| loop {
        // SAFETY: open descriptors; `off` is null or a valid off_t.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                off,
                len,
                libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let (mut filled, mut k) = (0usize, 0u64);
    loop {
        let n = splice(
            rx.as_raw_fd(),
            pw.as_raw_fd(),
            std::ptr::null_mut(),
            chunk - filled,
        )?;
        if n == 0 {
            return Ok(());
        }
        received.fetch_add(n as u64, Ordering::Relaxed);
        let mut off = ((k % chunks) * chunk as u64 + filled as u64) as libc::off_t;
        let mut left = n;
        while left > 0 {
            match splice(pr.as_raw_fd(), file.as_raw_fd(), &mut off, left)? {
                0 => return Err(io::Error::other("splice into the file wrote nothing")),
                m => left -= m,
            }
        }
        filled += n;
        if filled == chunk {
            k += 1;
            filled = 0;
        }
    }
}

/// Sends `len` bytes of `file` from `offset` with `sendfile(2)`: the page
/// cache's pages go to the socket without a copy in user space, as a
/// server's spliced READ.
fn send_file(tx: &TcpStream, file: &File, offset: u64, len: usize) -> io::Result<()> {
    let mut off = offset as libc::off_t;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open for the call; `off` is a
        // valid off_t the kernel advances.
        let n = unsafe { libc::sendfile(tx.as_raw_fd(), file.as_raw_fd(), &mut off, left) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        left -= n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nfs4d-ceiling-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_end_moves_every_byte_and_leaves_no_file() {
        const CHUNK: usize = 64 << 10;
        for (name, streams) in [("memory", 1), ("into", 3), ("spliced", 2), ("from", 2)] {
            let dir = scratch(name);
            let ends = match name {
                "memory" => Ends::Memory,
                "into" => Ends::IntoFile(&dir, 4 * CHUNK as u64),
                "spliced" => Ends::IntoFileSpliced(&dir, 4 * CHUNK as u64),
                _ => Ends::FromFile(&dir, 4 * CHUNK as u64),
            };
            // 10 writes over the streams: more than the files' chunks, so
            // offsets wrap.
            let (tally, _) = run(streams, CHUNK, None, Some(10), ends).unwrap();
            assert_eq!(tally.bytes, 10 * CHUNK as u64, "{name}");
            assert_eq!(tally.ops, 10, "{name}");
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{name}");
            std::fs::remove_dir(&dir).unwrap();
        }
    }

    #[test]
    fn cold_copy_counts_what_it_copied() {
        let rate = cold_copy(2, 4 << 20, Duration::from_millis(50));
        assert!(rate > 0.0 && rate.is_finite());
    }

    #[test]
    fn a_spliced_receive_puts_each_byte_at_its_offset() {
        const CHUNK: usize = 64 << 10;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        let sent: Vec<u8> = (0..3 * CHUNK).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || tx.write_all(&sent))
        };
        let dir = scratch("spliced-bytes");
        let path = dir.join("f");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let received = AtomicU64::new(0);
        receive_spliced(&rx, &file, 4, CHUNK, &received).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(received.load(Ordering::Relaxed), sent.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), sent);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_hang() {
        let dir = std::env::temp_dir().join("nfs4d-ceiling-no-such-directory");
        assert!(run(1, 4096, None, Some(1), Ends::IntoFile(&dir, 1 << 20)).is_err());
        assert!(run(1, 4096, None, Some(1), Ends::FromFile(&dir, 1 << 20)).is_err());
    }
}
