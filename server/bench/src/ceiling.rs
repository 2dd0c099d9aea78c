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
    /// (split evenly over the streams). A file per stream is the kindest
    /// case: no two writers share an inode lock.
    IntoFile(&'a Path, u64),
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
                    if let Files::Into { files, chunks } = files {
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

/// The files of a run, opened (and for [`Ends::FromFile`] written) before
/// the clock starts.
enum Files {
    None,
    Into { files: Vec<File>, chunks: u64 },
    From { file: File, chunks: u64 },
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
            Ends::IntoFile(dir, bytes) => Files::Into {
                files: (0..streams)
                    .map(|i| create(dir, format!(".ceiling-{tag}-{i}")))
                    .collect::<io::Result<_>>()?,
                chunks: (bytes / streams as u64 / chunk as u64).max(1),
            },
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
        for (name, streams) in [("memory", 1), ("into", 3), ("from", 2)] {
            let dir = scratch(name);
            let ends = match name {
                "memory" => Ends::Memory,
                "into" => Ends::IntoFile(&dir, 4 * CHUNK as u64),
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
    fn a_missing_directory_is_an_error_not_a_hang() {
        let dir = std::env::temp_dir().join("nfs4d-ceiling-no-such-directory");
        assert!(run(1, 4096, None, Some(1), Ends::IntoFile(&dir, 1 << 20)).is_err());
        assert!(run(1, 4096, None, Some(1), Ends::FromFile(&dir, 1 << 20)).is_err());
    }
}
