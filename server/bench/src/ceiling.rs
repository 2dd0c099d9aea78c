//! The loopback TCP ceiling: how fast plain TCP moves bytes between two
//! threads over 127.0.0.1 on this machine, with the same 1 MiB writes the
//! streaming workloads use. Streaming NFS figures are reported as a
//! fraction of it: an NFS server on loopback cannot beat the bare socket.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hist::Histogram;
use crate::pipeline::Tally;

/// Streams 1 MiB writes over `streams` connections until `duration` passed
/// or `max_writes` writes were issued; returns bytes received (as tally
/// `bytes`, one op per write) and the elapsed time.
pub fn run(
    streams: usize,
    chunk: usize,
    duration: Option<Duration>,
    max_writes: Option<u64>,
) -> io::Result<(Tally, Duration)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> io::Result<()> {
        let mut handles = Vec::new();
        for _ in 0..streams {
            let tx = TcpStream::connect(addr)?;
            let (rx, _) = listener.accept()?;
            let (stop, writes, received) = (&stop, &writes, &received);
            handles.push(s.spawn(move || -> io::Result<()> {
                let mut tx = tx;
                let buf = vec![0x5au8; chunk];
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let Some(m) = max_writes {
                        if writes.fetch_add(1, Ordering::Relaxed) >= m {
                            return Ok(());
                        }
                    }
                    tx.write_all(&buf)?;
                }
            }));
            handles.push(s.spawn(move || -> io::Result<()> {
                let mut rx = rx;
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = rx.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
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
