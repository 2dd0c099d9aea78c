//! Staged data of files being written: memory for small files, a file in
//! the spool for large ones, with global byte budgets for both. The data
//! reaches the store at commit, close or a stable write (store.rs).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use nfs4d_store::{StoreError, StoreResult};

use crate::client::Part;
use crate::journal::Journal;
use crate::meta::Meta;

/// Where a stage's bytes live.
pub(crate) enum Buf {
    Mem(Vec<u8>),
    File(Segs),
}

/// Staged data in the spool, cut into files of `seg` bytes (the part
/// size): file `{name}.{i}` holds the file's bytes `[i * seg, (i + 1) *
/// seg)`. A part that leaves takes its segment file with it, so sending a
/// part never moves the data behind it (the cost of a part stays one part,
/// whatever `reorder_room` is), and a segment's name always means the same
/// bytes of the file, which the journal relies on.
pub(crate) struct Segs {
    name: String,
    seg: u64,
    /// Index of the segment holding local offset 0.
    first: u64,
    /// Open segment files from `first` on; missing ones are created by
    /// the first write into them, and read as zeros until then.
    files: std::collections::VecDeque<Option<File>>,
    len: u64,
}

/// A part's data taken out of the stage: its spool segment (which stays on
/// disk until the part is safely in the store), or bytes from memory.
pub(crate) enum Taken {
    Seg { file: File, name: String },
    Mem(bytes::Bytes),
}

impl Taken {
    /// Reads the part's `len` bytes (zeros where nothing was written).
    pub fn read(&self, len: u64) -> StoreResult<bytes::Bytes> {
        match self {
            Taken::Mem(b) => Ok(b.clone()),
            Taken::Seg { file, .. } => {
                let mut v = vec![0u8; len as usize];
                read_full(file, &mut v, 0)?;
                Ok(v.into())
            }
        }
    }
}

/// Reads into `out` from `off`, zero-filling past the end of the file.
fn read_full(file: &File, out: &mut [u8], off: u64) -> StoreResult<()> {
    let mut done = 0;
    while done < out.len() {
        match file.read_at(&mut out[done..], off + done as u64) {
            Ok(0) => {
                out[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(spool_err(e)),
        }
    }
    Ok(())
}

/// Name of segment `index` of the staged data called `name`.
pub(crate) fn seg_name(name: &str, index: u64) -> String {
    format!("{name}.{index}")
}

impl Segs {
    /// Empty spooled data of stage `name` whose local offset 0 is file
    /// offset `base` (a multiple of `seg`).
    pub fn new(name: &str, seg: u64, base: u64) -> Segs {
        Segs {
            name: name.to_string(),
            seg,
            first: base / seg,
            files: Default::default(),
            len: 0,
        }
    }

    fn file(&mut self, i: usize, j: &Journal) -> StoreResult<&File> {
        while self.files.len() <= i {
            self.files.push_back(None);
        }
        let slot = &mut self.files[i];
        if slot.is_none() {
            let f = j.open_data(&seg_name(&self.name, self.first + i as u64))?;
            f.set_len(0).map_err(spool_err)?;
            *slot = Some(f);
        }
        Ok(slot.as_ref().unwrap_or_else(|| unreachable!("just opened")))
    }

    fn pieces(&self, off: u64, len: u64) -> impl Iterator<Item = (usize, u64, u64, usize)> {
        // (segment, offset in it, length, offset in the caller's buffer)
        let seg = self.seg;
        let mut at = off;
        let end = off + len;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let i = (at / seg) as usize;
            let o = at % seg;
            let n = (seg - o).min(end - at);
            let r = (i, o, n, (at - off) as usize);
            at += n;
            Some(r)
        })
    }
}

impl Buf {
    pub fn len(&self) -> u64 {
        match self {
            Buf::Mem(v) => v.len() as u64,
            Buf::File(s) => s.len,
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self, Buf::File(_))
    }

    /// Writes at `off`, zero-filling a gap.
    pub fn write_at(&mut self, off: u64, data: &[u8], j: &Journal) -> StoreResult<()> {
        match self {
            Buf::Mem(v) => {
                let end = off as usize + data.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[off as usize..end].copy_from_slice(data);
                Ok(())
            }
            Buf::File(s) => {
                let pieces: Vec<_> = s.pieces(off, data.len() as u64).collect();
                for (i, o, n, at) in pieces {
                    s.file(i, j)?
                        .write_all_at(&data[at..at + n as usize], o)
                        .map_err(spool_err)?;
                }
                s.len = s.len.max(off + data.len() as u64);
                Ok(())
            }
        }
    }

    pub fn read_at(&self, off: u64, len: usize, out: &mut Vec<u8>) -> StoreResult<usize> {
        let have = self.len().saturating_sub(off).min(len as u64) as usize;
        if have == 0 {
            return Ok(0);
        }
        match self {
            Buf::Mem(v) => out.extend_from_slice(&v[off as usize..off as usize + have]),
            Buf::File(s) => {
                let start = out.len();
                out.resize(start + have, 0);
                for (i, o, n, at) in s.pieces(off, have as u64) {
                    let dst = &mut out[start + at..start + at + n as usize];
                    match s.files.get(i).and_then(Option::as_ref) {
                        Some(f) => read_full(f, dst, o)?,
                        None => dst.fill(0),
                    }
                }
            }
        }
        Ok(have)
    }

    /// Shortens the local data to `new_len` bytes (or lengthens it with
    /// zeros).
    pub fn truncate(&mut self, new_len: u64, j: &Journal) -> StoreResult<()> {
        match self {
            Buf::Mem(v) => v.resize(new_len as usize, 0),
            Buf::File(s) => {
                let keep = new_len.div_ceil(s.seg) as usize;
                while s.files.len() > keep {
                    let i = s.first + s.files.len() as u64 - 1;
                    s.files.pop_back();
                    j.remove_data(&seg_name(&s.name, i));
                }
                if new_len < s.len && !new_len.is_multiple_of(s.seg) {
                    if let Some(Some(f)) = s.files.get(keep - 1) {
                        f.set_len(new_len % s.seg).map_err(spool_err)?;
                    }
                }
                s.len = new_len;
            }
        }
        Ok(())
    }

    /// Takes the first `n` bytes out (a part about to be sent). With data
    /// in the spool, `n` is the segment size and the segment's file leaves
    /// with the part: nothing else moves.
    pub fn take_front(&mut self, n: u64, j: &Journal) -> StoreResult<Taken> {
        match self {
            Buf::Mem(v) => Ok(Taken::Mem(
                v.drain(..n as usize).collect::<Vec<u8>>().into(),
            )),
            Buf::File(s) => {
                debug_assert_eq!(n, s.seg, "parts are whole segments");
                let index = s.first;
                let name = seg_name(&s.name, index);
                let file = match s.files.pop_front().flatten() {
                    Some(f) => f,
                    // Never written: a part of zeros.
                    None => {
                        let f = j.open_data(&name)?;
                        f.set_len(0).map_err(spool_err)?;
                        f
                    }
                };
                s.first += 1;
                s.len = s.len.saturating_sub(s.seg);
                Ok(Taken::Seg { file, name })
            }
        }
    }

    /// Removes every spool file of the local data.
    pub fn remove_files(&mut self, j: &Journal) {
        if let Buf::File(s) = self {
            for k in 0..s.files.len() as u64 {
                j.remove_data(&seg_name(&s.name, s.first + k));
            }
            s.files.clear();
            s.len = 0;
        }
    }

    pub fn sync(&self) -> StoreResult<()> {
        match self {
            Buf::Mem(_) => Ok(()),
            Buf::File(s) => {
                for f in s.files.iter().flatten() {
                    f.sync_data().map_err(spool_err)?;
                }
                Ok(())
            }
        }
    }
}

pub(crate) fn spool_err(e: std::io::Error) -> StoreError {
    tracing::error!("s3 spool: {e}");
    if e.raw_os_error() == Some(28) {
        StoreError::NoSpace
    } else {
        StoreError::Io(format!("spool: {e}"))
    }
}

/// One file's staged state. The file's content is `[0, sent)` in the
/// parts of the multipart upload `mpu`, then `buf`.
pub(crate) struct Stage {
    pub key: String,
    pub meta: Meta,
    pub size: u64,
    pub mpu: Option<(String, Vec<Part>)>,
    pub sent: u64,
    pub buf: Buf,
    /// Differs from what the store holds.
    pub dirty: bool,
    /// Opens the server holds (open/close).
    pub opens: u32,
    /// A journal record exists under this name.
    pub journal: Option<String>,
    /// Name of this stage's spool files, when it has them.
    pub data_name: String,
    /// End of the highest WRITE since the stage was filled: a part leaves
    /// only once the client's writes are `reorder_room` past it, so data
    /// loaded from the object but not yet rewritten does not leave early.
    pub high: u64,
    /// Ranges `[start, end)` of the file at or past `sent` that hold data
    /// (written, or loaded from the object), sorted and disjoint: a part
    /// with a gap waits longer for the WRITE still in flight.
    pub written: Vec<(u64, u64)>,
    /// Size at the last commit: what a journal record must bring back.
    pub committed: u64,
    /// Parts taken out of the stage whose upload is under way, on threads
    /// that do not hold the stage's lock.
    pub uploading: u32,
    /// Parts whose upload failed, kept (with their data) to be sent again.
    pub failed: Vec<(u32, Taken)>,
    /// Sent parts whose spool segment stays until the journal record lists
    /// the part (part number, segment name).
    pub held: std::collections::BTreeMap<u32, String>,
    /// Signalled whenever an upload ends.
    pub cv: std::sync::Arc<std::sync::Condvar>,
}

/// Global byte budgets of staged data.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub mem: u64,
    pub spool: u64,
}

pub(crate) struct Budgets {
    pub used: Mutex<Budget>,
    pub mem_max: u64,
    pub spool_max: u64,
}

impl Budgets {
    /// Reserves `n` more bytes of memory (`file == false`) or spool.
    pub fn take(&self, file: bool, n: u64) -> bool {
        let mut u = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if file {
            if u.spool + n > self.spool_max {
                return false;
            }
            u.spool += n;
        } else {
            if u.mem + n > self.mem_max {
                return false;
            }
            u.mem += n;
        }
        true
    }

    pub fn give(&self, file: bool, n: u64) {
        let mut u = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if file {
            u.spool = u.spool.saturating_sub(n);
        } else {
            u.mem = u.mem.saturating_sub(n);
        }
    }

    pub fn snapshot(&self) -> (u64, u64) {
        let u = self.used.lock().unwrap_or_else(|p| p.into_inner());
        (u.mem, u.spool)
    }
}

/// Most ranges a stage tracks; past it they are merged into one (a gap is
/// then taken as written, which at worst sends a part early).
const RANGES_MAX: usize = 1024;

impl Stage {
    /// Records that `[off, end)` holds data.
    pub fn mark_written(&mut self, off: u64, end: u64) {
        if off >= end {
            return;
        }
        let w = &mut self.written;
        // First range that ends at or after `off` (may merge).
        let i = w.partition_point(|r| r.1 < off);
        let mut j = i;
        let (mut a, mut b) = (off, end);
        while j < w.len() && w[j].0 <= b {
            a = a.min(w[j].0);
            b = b.max(w[j].1);
            j += 1;
        }
        w.splice(i..j, [(a, b)]);
        if w.len() > RANGES_MAX {
            let (a, b) = (w[0].0, w[w.len() - 1].1);
            w.clear();
            w.push((a, b));
        }
    }

    /// Whether every byte of `[off, end)` holds data.
    pub fn is_written(&self, off: u64, end: u64) -> bool {
        let i = self.written.partition_point(|r| r.1 <= off);
        self.written
            .get(i)
            .is_some_and(|r| r.0 <= off && r.1 >= end)
    }

    /// Forgets the ranges below `off` (sent as parts).
    pub fn forget_below(&mut self, off: u64) {
        self.written.retain(|r| r.1 > off);
        if let Some(first) = self.written.first_mut() {
            first.0 = first.0.max(off);
        }
    }
}
