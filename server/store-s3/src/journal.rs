//! The durable record, in the spool directory, of what a crash must not
//! lose or leave half done:
//! - an upload whose data was committed (NFS COMMIT, or a FILE_SYNC /
//!   DATA_SYNC write) but not yet published: the multipart upload id, the
//!   parts already in the store with their ETags, and the rest of the data
//!   in a local file, fsynced;
//! - a rename in progress: the (source, target) keys to move.
//!
//! Opening the store finishes each record: it uploads the tail and
//! completes the upload, or copies and deletes what is still at a source.
//! A record is written to a temporary file, fsynced, renamed into place
//! and the directory fsynced, so it is either whole or absent.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nfs4d_store::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::client::Part;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Record {
    Upload {
        key: String,
        upload_id: String,
        parts: Vec<Part>,
        /// Bytes in `parts`.
        sent: u64,
        /// Whole size; `[sent, size)` is in the tail file.
        size: u64,
        meta: Vec<(String, String)>,
        tail: String,
        /// Segment size of the tail: `[sent, size)` is in the files
        /// `{tail}.{offset / seg}`. Zero in records of earlier versions,
        /// whose tail is the one file `tail`.
        #[serde(default)]
        seg: u64,
    },
    Rename {
        /// (source key, target key); markers included.
        moves: Vec<(String, String)>,
    },
}

pub(crate) struct Journal {
    dir: PathBuf,
    data: PathBuf,
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    tracing::error!("s3 spool: {what}: {e}");
    if e.raw_os_error() == Some(28) {
        StoreError::NoSpace
    } else {
        StoreError::Io(format!("spool: {what}: {e}"))
    }
}

impl Journal {
    pub fn open(spool: &Path) -> StoreResult<Journal> {
        let dir = spool.join("journal");
        let data = spool.join("data");
        for d in [&dir, &data] {
            fs::create_dir_all(d).map_err(|e| {
                StoreError::Setup(format!("s3 spool directory {}: {e}", d.display()))
            })?;
        }
        Ok(Journal { dir, data })
    }

    /// Directory of staged data files.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Writes (or replaces) record `name` durably.
    pub fn put(&self, name: &str, rec: &Record) -> StoreResult<()> {
        let body = serde_json::to_vec(rec).map_err(|e| StoreError::Io(format!("journal: {e}")))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let fin = self.dir.join(format!("{name}.json"));
        let mut f = File::create(&tmp).map_err(|e| io("journal create", e))?;
        f.write_all(&body).map_err(|e| io("journal write", e))?;
        f.sync_all().map_err(|e| io("journal fsync", e))?;
        fs::rename(&tmp, &fin).map_err(|e| io("journal rename", e))?;
        sync_dir(&self.dir)
    }

    pub fn remove(&self, name: &str) -> StoreResult<()> {
        match fs::remove_file(self.dir.join(format!("{name}.json"))) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("journal remove", e)),
        }
    }

    /// The records left by an earlier run, by name. A record that does not
    /// parse is moved aside with a log line, never acted on.
    pub fn records(&self) -> StoreResult<Vec<(String, Record)>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.dir).map_err(|e| io("journal list", e))?;
        for ent in rd {
            let ent = ent.map_err(|e| io("journal list", e))?;
            let fname = ent.file_name().to_string_lossy().into_owned();
            let Some(name) = fname.strip_suffix(".json") else {
                // A temporary file of a write the crash interrupted.
                let _ = fs::remove_file(ent.path());
                continue;
            };
            let parsed = fs::read(ent.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
            match parsed {
                Some(r) => out.push((name.to_string(), r)),
                None => {
                    tracing::error!("s3 journal: record {fname} is unreadable; moved aside");
                    let _ = fs::rename(ent.path(), self.dir.join(format!("{fname}.bad")));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Opens (creating) a staged-data file.
    pub fn open_data(&self, name: &str) -> StoreResult<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.data.join(name))
            .map_err(|e| io("spool file", e))
    }

    pub fn remove_data(&self, name: &str) {
        let _ = fs::remove_file(self.data.join(name));
    }
}

fn sync_dir(d: &Path) -> StoreResult<()> {
    File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("journal dir fsync", e))
}
