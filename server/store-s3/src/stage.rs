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
    File { file: File, name: String, len: u64 },
}

impl Buf {
    pub fn len(&self) -> u64 {
        match self {
            Buf::Mem(v) => v.len() as u64,
            Buf::File { len, .. } => *len,
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self, Buf::File { .. })
    }

    /// Writes at `off`, zero-filling a gap.
    pub fn write_at(&mut self, off: u64, data: &[u8]) -> StoreResult<()> {
        match self {
            Buf::Mem(v) => {
                let end = off as usize + data.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[off as usize..end].copy_from_slice(data);
                Ok(())
            }
            Buf::File { file, len, .. } => {
                file.write_all_at(data, off).map_err(spool_err)?;
                *len = (*len).max(off + data.len() as u64);
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
            Buf::File { file, .. } => {
                let start = out.len();
                out.resize(start + have, 0);
                file.read_exact_at(&mut out[start..], off)
                    .map_err(spool_err)?;
            }
        }
        Ok(have)
    }

    pub fn truncate(&mut self, new_len: u64) -> StoreResult<()> {
        match self {
            Buf::Mem(v) => v.resize(new_len as usize, 0),
            Buf::File { file, len, .. } => {
                file.set_len(new_len).map_err(spool_err)?;
                *len = new_len;
            }
        }
        Ok(())
    }

    /// Drops the first `n` bytes (sent as parts).
    pub fn drop_front(&mut self, n: u64, j: &Journal) -> StoreResult<()> {
        match self {
            Buf::Mem(v) => {
                v.drain(..n as usize);
                Ok(())
            }
            Buf::File { file, name, len } => {
                // Move the rest into a new file: the spool keeps only the
                // tail, so its use stays bounded by the part size.
                let rest = *len - n;
                let new_name = format!("{name}+");
                let nf = j.open_data(&new_name)?;
                nf.set_len(0).map_err(spool_err)?;
                let mut off = 0;
                let mut chunk = vec![0u8; 1 << 20];
                while off < rest {
                    let k = (rest - off).min(chunk.len() as u64) as usize;
                    file.read_exact_at(&mut chunk[..k], n + off)
                        .map_err(spool_err)?;
                    nf.write_all_at(&chunk[..k], off).map_err(spool_err)?;
                    off += k as u64;
                }
                j.remove_data(name);
                let final_name = base_name(name);
                std::fs::rename(j.data_path(&new_name), j.data_path(&final_name))
                    .map_err(spool_err)?;
                *file = nf;
                *name = final_name;
                *len = rest;
                Ok(())
            }
        }
    }

    pub fn sync(&self) -> StoreResult<()> {
        match self {
            Buf::Mem(_) => Ok(()),
            Buf::File { file, .. } => file.sync_data().map_err(spool_err),
        }
    }
}

fn base_name(name: &str) -> String {
    name.trim_end_matches('+').to_string()
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
    /// Name of this stage's spool file, when it has one.
    pub data_name: String,
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
