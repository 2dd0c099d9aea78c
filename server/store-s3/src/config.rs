//! The configuration of one S3 export. Credentials are deliberately absent:
//! they come from the standard AWS chain (environment, shared profile,
//! container or instance metadata), so no secret sits in a config file.

use std::path::PathBuf;

use nfs4d_store::{StoreError, NAME_MAX};
use serde::Deserialize;

/// S3 rejects parts smaller than 5 MiB (except the last one of an upload).
pub const S3_MIN_PART: u64 = 5 << 20;
/// S3 allows at most 10,000 parts per multipart upload.
pub const S3_MAX_PARTS: u64 = 10_000;
/// S3's largest single part.
pub const S3_MAX_PART: u64 = 5 << 30;
/// S3's largest page of a listing.
pub const S3_MAX_LIST_PAGE: usize = 1000;

/// Where and how an export lives in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (must exist).
    pub bucket: String,
    /// Key prefix of the export inside the bucket (`""` for the whole
    /// bucket, `a/b` for the keys under `a/b/`).
    pub prefix: String,
    /// Endpoint URL (`http://127.0.0.1:9000`); `None` for AWS's regional
    /// endpoint.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`). Off means
    /// virtual-host style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// AWS profile to take credentials from (the shared credentials and
    /// config files); `None` takes the default chain as it is.
    pub profile: Option<String>,
    /// Owner, group and permission bits of objects that carry no s3fs
    /// metadata (written by other tools).
    pub default_uid: u32,
    pub default_gid: u32,
    pub default_file_mode: u32,
    pub default_dir_mode: u32,
    /// Longest name shown; keys with a longer component are hidden.
    pub name_max: u32,
    /// How long attributes and listing pages are trusted, in milliseconds.
    pub attr_ttl_ms: u64,
    /// Keys per listing request (at most 1000).
    pub list_page: usize,
    /// Listing pages kept in the cache.
    pub list_cache_pages: usize,
    /// Metadata requests in flight while listing with attributes.
    pub list_stat_concurrency: usize,
    /// Attribute cache entries (objects' HEAD answers, a few hundred bytes
    /// each): enough for a directory of 100,000 objects to be listed again
    /// without a HEAD per object.
    pub attr_cache_entries: usize,
    /// Directory for staged data and the journal. It must survive a
    /// restart of the daemon: the journal there finishes uploads and
    /// directory renames that a crash interrupted.
    pub spool_dir: PathBuf,
    /// A file's staged data moves from memory to the spool past this size.
    pub stage_mem_file_max: u64,
    /// All files' staged data held in memory.
    pub stage_mem_total: u64,
    /// All files' staged data in the spool.
    pub spool_max: u64,
    /// Files with staged data at once.
    pub staged_files_max: usize,
    /// Multipart part size: a file larger than this is uploaded in parts
    /// as it is written, and each part is sent once.
    pub part_size: u64,
    /// Staged bytes kept behind the highest write to a file before whole
    /// parts go out, so that writes arriving out of order still land in
    /// local data (a part with a byte never written waits until the writes
    /// are half of `spool_max` past it). A write below what was already sent as parts makes
    /// the store publish the object and read it back, so this must cover
    /// what a client keeps in flight: Linux sends up to one 1 MiB WRITE
    /// per session slot (64 slots here).
    pub reorder_room: u64,
    /// Objects a directory rename moves one by one; past it the rename
    /// fails with NFS4ERR_XDEV and the client copies.
    pub dir_rename_max: u64,
    /// Largest read-ahead window of a sequential reader.
    pub readahead_max: u64,
    /// Bytes of read-ahead data cached over all files.
    pub readahead_cache: u64,
    /// Retries of a failed request (with exponential backoff) before the
    /// client is told to retry (NFS4ERR_DELAY).
    pub retries: usize,
    /// Timeout of one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Whether the server lists zero-byte `dir/` markers. S3, MinIO, Garage
    /// and Ceph RGW do; a server that keeps markers but never lists them
    /// (s3s-fs) needs `false`, and then the directories created here stay
    /// visible from this store's memory until they hold an object.
    pub list_markers: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            profile: None,
            default_uid: 0,
            default_gid: 0,
            default_file_mode: 0o644,
            default_dir_mode: 0o755,
            name_max: NAME_MAX as u32,
            attr_ttl_ms: 1000,
            list_page: S3_MAX_LIST_PAGE,
            list_cache_pages: 256,
            list_stat_concurrency: 64,
            attr_cache_entries: 131_072,
            spool_dir: PathBuf::new(),
            stage_mem_file_max: DEFAULT_MEM_FILE,
            stage_mem_total: DEFAULT_MEM_TOTAL,
            spool_max: DEFAULT_SPOOL,
            staged_files_max: 4096,
            part_size: DEFAULT_PART,
            reorder_room: DEFAULT_REORDER,
            dir_rename_max: 1000,
            readahead_max: 4 << 20,
            readahead_cache: 64 << 20,
            retries: 4,
            request_timeout_ms: 30_000,
            list_markers: true,
        }
    }
}

// Relations between the defaults and the protocol limits.
const DEFAULT_PART: u64 = 8 << 20;
const DEFAULT_MEM_FILE: u64 = 1 << 20;
const DEFAULT_MEM_TOTAL: u64 = 64 << 20;
const DEFAULT_SPOOL: u64 = 4 << 30;
const DEFAULT_REORDER: u64 = 64 << 20;
const _: () = assert!(DEFAULT_PART >= S3_MIN_PART && DEFAULT_PART <= S3_MAX_PART);
const _: () = assert!(DEFAULT_MEM_FILE <= DEFAULT_MEM_TOTAL);
const _: () = assert!(DEFAULT_SPOOL >= 2 * DEFAULT_PART);
const _: () = assert!(DEFAULT_SPOOL >= DEFAULT_PART + DEFAULT_REORDER);

impl S3Config {
    /// Checks the values; a bad one is a [`StoreError::Setup`] naming it.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |what: &str| Err(StoreError::Setup(format!("s3 config: {what}")));
        if self.bucket.is_empty() {
            return bad("bucket is empty");
        }
        if self.prefix.split('/').any(|c| c == "." || c == "..") || self.prefix.contains("//") {
            return bad("prefix has an empty, '.' or '..' component");
        }
        if self.spool_dir.as_os_str().is_empty() {
            return bad("spool_dir is not set");
        }
        if self.name_max == 0 || self.name_max as usize > NAME_MAX {
            return bad("name_max must be 1..=255");
        }
        if self.list_page == 0 || self.list_page > S3_MAX_LIST_PAGE {
            return bad("list_page must be 1..=1000");
        }
        if self.part_size < S3_MIN_PART || self.part_size > S3_MAX_PART {
            return bad("part_size must be between 5 MiB and 5 GiB");
        }
        if self.stage_mem_file_max > self.stage_mem_total {
            return bad("stage_mem_file_max exceeds stage_mem_total");
        }
        if self.spool_max < 2 * self.part_size {
            return bad("spool_max must hold at least two parts");
        }
        if self.reorder_room < self.part_size
            || self.spool_max < self.part_size.saturating_add(self.reorder_room)
        {
            return bad("reorder_room must be at least part_size, and spool_max hold a part more");
        }
        if self.staged_files_max == 0
            || self.list_cache_pages == 0
            || self.attr_cache_entries == 0
            || self.list_stat_concurrency == 0
        {
            return bad("cache and concurrency bounds must be positive");
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms must be positive");
        }
        for (what, m) in [
            ("default_file_mode", self.default_file_mode),
            ("default_dir_mode", self.default_dir_mode),
        ] {
            if m & !0o7777 != 0 {
                return bad(&format!("{what} has bits beyond 0o7777"));
            }
        }
        Ok(())
    }

    /// The key prefix with a trailing `/`, or empty for the whole bucket.
    pub(crate) fn root_prefix(&self) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    }
}
