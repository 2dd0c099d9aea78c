//! A local process's byte-range locks on the server's backing files, for
//! checks where a real NFS client and a process on the server's host
//! contend for the same bytes (docs/locking.md).
//!
//! [`HostLocker`] listens on 127.0.0.1 only. A client inside a qemu guest
//! reaches it as 10.0.2.2 and sends one request line per connection; the
//! reply is one line, then the connection closes (busybox `nc` exits on
//! that):
//!
//! | request                    | reply                                  |
//! |----------------------------|----------------------------------------|
//! | `try r\|w START LEN PATH`  | `GRANTED` (released at once) or `DENIED`: a classic `fcntl(F_SETLK)` lock of this process |
//! | `get r\|w START LEN PATH`  | `FREE` or `HELD r\|w START LEN` (`F_GETLK`) |
//! | `hold r\|w START LEN PATH` | `HELD` or `DENIED`: an open-file-description lock kept until `release` |
//! | `release PATH`             | `RELEASED` |
//! | `release-after SECS PATH`  | `OK`; releases SECS seconds later |
//!
//! LEN 0 is "to the end of the file", as in fcntl(2). PATH is relative to
//! the export directory and may not contain `..`. Anything else is
//! answered `ERROR <why>`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Descriptions held at once (`hold`).
const MAX_HELD: usize = 64;
/// Longest request line.
const MAX_LINE: u64 = 4096;
/// Longest `release-after` delay, in seconds.
const MAX_DELAY: u64 = 60;

/// The agent; stops when dropped.
pub struct HostLocker {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

type Held = Arc<Mutex<HashMap<PathBuf, File>>>;

impl HostLocker {
    /// Starts serving requests about files under `export`.
    pub fn start(export: &Path) -> HostLocker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the host lock agent");
        let port = listener.local_addr().expect("agent address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let export = export.to_path_buf();
        let held: Held = Arc::default();
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                serve(conn, &export, &held);
            }
        });
        HostLocker {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The agent's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for HostLocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, export: &Path, held: &Held) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let Ok(read) = conn.try_clone() else { return };
    if BufReader::new(read.take(MAX_LINE))
        .read_line(&mut line)
        .is_err()
    {
        return;
    }
    let reply = handle(line.trim(), export, held).unwrap_or_else(|e| format!("ERROR {e}"));
    eprintln!("host lock agent: {} -> {reply}", line.trim());
    let mut conn = conn;
    let _ = writeln!(conn, "{reply}");
}

fn handle(req: &str, export: &Path, held: &Held) -> Result<String, String> {
    let words: Vec<&str> = req.split_whitespace().collect();
    let path = |rel: &str| -> Result<PathBuf, String> {
        let rel = Path::new(rel);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("bad path {}", rel.display()));
        }
        Ok(export.join(rel))
    };
    match words.as_slice() {
        ["release", rel] => {
            held.lock().unwrap().remove(&path(rel)?);
            Ok("RELEASED".into())
        }
        ["release-after", secs, rel] => {
            let secs: u64 = secs.parse().map_err(|_| "bad delay")?;
            if secs > MAX_DELAY {
                return Err("delay too long".into());
            }
            let p = path(rel)?;
            let held = Arc::clone(held);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(secs));
                held.lock().unwrap().remove(&p);
            });
            Ok("OK".into())
        }
        [verb, kind, start, len, rel] => {
            let ty = match *kind {
                "r" => libc::F_RDLCK,
                "w" => libc::F_WRLCK,
                _ => return Err("type must be r or w".into()),
            };
            let start: i64 = start.parse().map_err(|_| "bad start")?;
            let len: i64 = len.parse().map_err(|_| "bad length")?;
            let p = path(rel)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .map_err(|e| format!("open {}: {e}", p.display()))?;
            let mut fl = flock(ty, start, len);
            match *verb {
                "try" => {
                    if fcntl(&file, libc::F_SETLK, &mut fl)? {
                        // Closing the file drops this process's classic
                        // locks on it, this one included.
                        Ok("GRANTED".into())
                    } else {
                        Ok("DENIED".into())
                    }
                }
                "get" => {
                    fcntl(&file, libc::F_GETLK, &mut fl)?;
                    if i32::from(fl.l_type) == libc::F_UNLCK {
                        Ok("FREE".into())
                    } else {
                        let k = if i32::from(fl.l_type) == libc::F_WRLCK {
                            "w"
                        } else {
                            "r"
                        };
                        Ok(format!("HELD {k} {} {}", fl.l_start, fl.l_len))
                    }
                }
                "hold" => {
                    let mut h = held.lock().unwrap();
                    if h.len() >= MAX_HELD && !h.contains_key(&p) {
                        return Err("too many held files".into());
                    }
                    if !fcntl(&file, libc::F_OFD_SETLK, &mut fl)? {
                        return Ok("DENIED".into());
                    }
                    h.insert(p, file);
                    Ok("HELD".into())
                }
                _ => Err(format!("unknown request {verb}")),
            }
        }
        _ => Err("unknown request".into()),
    }
}

fn flock(ty: i32, start: i64, len: i64) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is valid (and l_pid must
    // be zero for the F_OFD_* commands).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl
}

/// `fcntl(file, cmd, fl)`: `Ok(false)` for a conflict (EAGAIN/EACCES).
fn fcntl(file: &File, cmd: i32, fl: &mut libc::flock) -> Result<bool, String> {
    // SAFETY: `fl` is a valid flock for the duration of the call and the
    // fd is open.
    if unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(format!("fcntl: {e}")),
    }
}
