//! How the client reaches a server: a stream of RPC records (record
//! marking, RFC 5531 §11) each way. The client engine speaks only through
//! these two traits, so the same client can drive a server over TCP
//! ([`Tcp`]) or a COMPOUND core called in the same process (a transport
//! that hands each call record to the core and queues the reply record it
//! returns).

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use nfs4d_xdr::record::Reassembler;

/// The sending end of a connection.
pub trait Sender: Send {
    /// Sends `parts` in order as one stretch of the stream: normally one
    /// or more whole records back to back; tests of bad input send any
    /// bytes at all (a cut record, a lying record mark).
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()>;

    /// Ends the connection both ways, so that a thread blocked in
    /// [`Transport::recv`] on it returns.
    fn close(&mut self);
}

/// A connection to a server.
pub trait Transport: Sender {
    /// The next whole record from the server, its 4-byte record mark
    /// included (as `nfs4d_xdr::rpc::parse` wants). Waits at most `wait`:
    /// `TimedOut` when no whole record came by then (what arrived of one is
    /// kept for the next call); `UnexpectedEof` once the server closed the
    /// connection.
    fn recv(&mut self, wait: Duration) -> io::Result<Vec<u8>>;

    /// Another sending end of the same connection, for a writer thread
    /// while this end receives on another.
    fn sender(&self) -> io::Result<Box<dyn Sender>>;
}

/// Largest record accepted from a server: a 1 MiB READ reply with ample
/// headroom. A lying record mark fails the receive rather than growing a
/// buffer without bound.
pub const MAX_RECORD: usize = 16 << 20;

/// Bytes read from the socket at once while no large body is pending:
/// many small replies at a time, and no more than the start of a large
/// one, whose rest is then read straight onto its record. A larger buffer
/// would take most of a 1 MiB READ reply through the copy out of it.
const READ_BUF: usize = 64 << 10;

/// A record body with at least this much still to come is read straight
/// onto the record; less is cheaper to copy than to read on its own.
const DIRECT_MIN: usize = 16 << 10;

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    )
}

/// The socket's timeout shows as WouldBlock on Unix.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no reply in time")
}

/// A TCP connection.
pub struct Tcp {
    stream: TcpStream,
    ra: Reassembler,
    buf: Vec<u8>,
    /// Bytes of `buf` not yet fed to the reassembler.
    start: usize,
    end: usize,
    /// The socket's current receive timeout, to set it only when a caller
    /// asks for another one (one system call fewer per receive).
    wait: Option<Duration>,
}

impl Tcp {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<Tcp> {
        Tcp::new(TcpStream::connect(addr)?)
    }

    /// A transport over a connection the caller made (e.g. from a chosen
    /// source address or port).
    pub fn new(stream: TcpStream) -> io::Result<Tcp> {
        // Requests are small and each is written whole: Nagle's algorithm
        // would only hold them back.
        stream.set_nodelay(true)?;
        Ok(Tcp {
            stream,
            ra: Reassembler::new(MAX_RECORD),
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            wait: None,
        })
    }
}

impl Sender for Tcp {
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        write_parts(&mut &self.stream, parts)
    }

    fn close(&mut self) {
        // Already closed or reset: nothing left to end.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Transport for Tcp {
    fn recv(&mut self, wait: Duration) -> io::Result<Vec<u8>> {
        // A zero timeout means "none" to the socket: wait at least a tick.
        let wait = wait.max(Duration::from_millis(1));
        if self.wait != Some(wait) {
            self.stream.set_read_timeout(Some(wait))?;
            self.wait = Some(wait);
        }
        loop {
            if self.start < self.end {
                let mut input = &self.buf[self.start..self.end];
                let got = self
                    .ra
                    .feed(&mut input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                self.start = self.end - input.len();
                if let Some(rec) = got {
                    return Ok(rec);
                }
            }
            self.start = 0;
            self.end = 0;
            // The rest of a large body (a READ reply's data) is read
            // straight onto the record: through `buf` every byte would be
            // copied once more, and at streaming rates that copy is a good
            // part of the generator's CPU on the cores it shares with the
            // server.
            let pending = self.ra.body_pending();
            if pending >= DIRECT_MIN {
                let read = (&self.stream)
                    .take(pending as u64)
                    .read_to_end(self.ra.body_buf());
                // What was read before an error is on the record already.
                let got = self
                    .ra
                    .body_read()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                match read {
                    Ok(0) => return Err(closed()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
                    Err(e) => return Err(e),
                }
                if let Some(rec) = got {
                    return Ok(rec);
                }
                continue;
            }
            self.end = match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(closed()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
                Err(e) => return Err(e),
            };
        }
    }

    fn sender(&self) -> io::Result<Box<dyn Sender>> {
        Ok(Box::new(TcpSender(self.stream.try_clone()?)))
    }
}

/// A second sending end of a [`Tcp`] connection.
struct TcpSender(TcpStream);

impl Sender for TcpSender {
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        write_parts(&mut &self.0, parts)
    }

    fn close(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// Writes all of `parts`: one part with `write_all`, several with vectored
/// writes (a large WRITE payload goes out from its own buffer, after the
/// call header, without being copied next to it).
fn write_parts(w: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    if let [one] = parts {
        return w.write_all(one);
    }
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice> = parts[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut n = w.write_vectored(&slices)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the socket accepted no bytes",
            ));
        }
        while n > 0 {
            let len = parts[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                parts[first] = &parts[first][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut left = self.max;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(self.max - left)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_vectored_writes_send_every_byte_in_order() {
        for max in [1, 2, 3, 5, 7, 64] {
            let mut w = Trickle {
                got: Vec::new(),
                max,
            };
            write_parts(&mut w, &[b"head", b"", b"payload", b"\0\0"]).unwrap();
            assert_eq!(w.got, b"headpayload\0\0", "max {max}");
        }
    }

    #[test]
    fn a_socket_that_takes_nothing_is_an_error_not_a_spin() {
        let mut w = Trickle {
            got: Vec::new(),
            max: 0,
        };
        let err = write_parts(&mut w, &[b"a", b"b"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn large_bodies_read_onto_the_record_arrive_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = Tcp::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
        a.extend_from_slice(&body);
        let b = [&0x8000_0004u32.to_be_bytes()[..], b"next"].concat();
        // A small head goes through the read buffer; the rest of the body
        // is pending when a timeout ends the direct read part way.
        peer.write_all(&a[..1000]).unwrap();
        let err = t.recv(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.ra.body_pending() >= DIRECT_MIN);
        peer.write_all(&a[1000..100_000]).unwrap();
        let err = t.recv(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        peer.write_all(&[&a[100_000..], &b[..]].concat()).unwrap();
        assert!(t.recv(Duration::from_secs(5)).unwrap() == a);
        assert_eq!(t.recv(Duration::from_secs(5)).unwrap(), b);
        // The server closing in the middle of a body is an end, not a hang.
        peer.write_all(&a[..50_000]).unwrap();
        drop(peer);
        let err = t.recv(Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn records_split_across_reads_and_timeouts_arrive_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = Tcp::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        // Nothing sent yet: a timeout, not a hang.
        let err = t.recv(Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Half a record, a timeout, then the rest and a second record.
        let rec = |body: &[u8]| {
            let mut r = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
            r.extend_from_slice(body);
            r
        };
        let (a, b) = (rec(b"first..."), rec(b"second.."));
        peer.write_all(&a[..6]).unwrap();
        let err = t.recv(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        peer.write_all(&[&a[6..], &b[..]].concat()).unwrap();
        assert_eq!(t.recv(Duration::from_secs(5)).unwrap(), a);
        assert_eq!(t.recv(Duration::from_secs(5)).unwrap(), b);
        // A record mark announcing more than the limit fails the receive.
        peer.write_all(&(0x8000_0000u32 | (MAX_RECORD as u32 + 1)).to_be_bytes())
            .unwrap();
        let err = t.recv(Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // The peer gone: end of stream.
        let mut t = Tcp::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap());
        let err = t.recv(Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn closing_a_sender_unblocks_the_receiver() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = Tcp::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        let mut s = t.sender().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s.close();
        });
        let started = std::time::Instant::now();
        let err = t.recv(Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(started.elapsed() < Duration::from_secs(5));
        closer.join().unwrap();
    }
}
