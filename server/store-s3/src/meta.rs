//! Object metadata as s3fs-fuse writes it, so that a bucket looks the same
//! under s3fs and under nfs4d:
//! - `x-amz-meta-uid`, `x-amz-meta-gid`: decimal ids;
//! - `x-amz-meta-mode`: the decimal `st_mode`, file-type bits included
//!   (`33188` is a regular file `0644`, `41471` a symlink `0777`);
//! - `x-amz-meta-mtime`, `-ctime`, `-atime`: seconds since the epoch, with
//!   `.` and nine digits of nanoseconds when those are not zero.
//!
//! nfs4d adds `x-amz-meta-nfs4d-id` and `x-amz-meta-nfs4d-inc` (16 hex
//! digits each): the object's identity, kept when nfs4d rewrites or
//! renames it. S3 returns metadata names in lower case.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use nfs4d_store::{Attrs, FileKind, Identity, Timespec};

use crate::config::S3Config;

pub(crate) const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFLNK: u32 = 0o120000;
const S_IFIFO: u32 = 0o010000;
const S_IFSOCK: u32 = 0o140000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

pub(crate) const K_UID: &str = "uid";
pub(crate) const K_GID: &str = "gid";
pub(crate) const K_MODE: &str = "mode";
pub(crate) const K_MTIME: &str = "mtime";
pub(crate) const K_CTIME: &str = "ctime";
pub(crate) const K_ATIME: &str = "atime";
pub(crate) const K_ID: &str = "nfs4d-id";
pub(crate) const K_INC: &str = "nfs4d-inc";

/// The POSIX attributes and identity stamps an object carries. `None` is
/// "absent": defaults or values derived from the object apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Full `st_mode`, type bits included.
    pub mode: Option<u32>,
    pub mtime: Option<Timespec>,
    pub ctime: Option<Timespec>,
    pub atime: Option<Timespec>,
    pub id: Option<u64>,
    pub inc: Option<u64>,
    /// Metadata of other tools, carried along unchanged.
    pub other: Vec<(String, String)>,
}

impl Meta {
    /// Reads the user metadata (names without `x-amz-meta-`). Values that do
    /// not parse count as absent.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Meta {
        let mut m = Meta::default();
        for (k, v) in pairs {
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                K_UID => m.uid = v.parse().ok(),
                K_GID => m.gid = v.parse().ok(),
                K_MODE => m.mode = parse_mode(v),
                K_MTIME => m.mtime = parse_time(v),
                K_CTIME => m.ctime = parse_time(v),
                K_ATIME => m.atime = parse_time(v),
                K_ID => m.id = u64::from_str_radix(v, 16).ok(),
                K_INC => m.inc = u64::from_str_radix(v, 16).ok(),
                other => m.other.push((other.to_string(), v.to_string())),
            }
        }
        m
    }

    /// The user metadata to write (names without `x-amz-meta-`).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = self.other.clone();
        let mut put = |k: &str, val: Option<String>| {
            if let Some(val) = val {
                v.push((k.to_string(), val));
            }
        };
        put(K_UID, self.uid.map(|x| x.to_string()));
        put(K_GID, self.gid.map(|x| x.to_string()));
        put(K_MODE, self.mode.map(|x| x.to_string()));
        put(K_MTIME, self.mtime.map(format_time));
        put(K_CTIME, self.ctime.map(format_time));
        put(K_ATIME, self.atime.map(format_time));
        put(K_ID, self.id.map(|x| format!("{x:016x}")));
        put(K_INC, self.inc.map(|x| format!("{x:016x}")));
        v
    }
}

/// s3fs writes the mode in decimal; `0`-prefixed octal (as `strtol` with
/// base 0 reads it) is accepted too.
fn parse_mode(v: &str) -> Option<u32> {
    if v.len() > 1 && v.starts_with('0') {
        u32::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

/// `sec` or `sec.fraction`; the fraction is read as nanoseconds when it
/// has nine digits and scaled otherwise (rclone writes fewer).
pub(crate) fn parse_time(v: &str) -> Option<Timespec> {
    let (s, frac) = match v.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (v, None),
    };
    let sec: i64 = s.parse().ok()?;
    let nsec = match frac {
        None | Some("") => 0,
        Some(f) => {
            let digits: String = f.chars().take(9).collect();
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = digits.parse().ok()?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
    };
    Some(Timespec { sec, nsec })
}

pub(crate) fn format_time(t: Timespec) -> String {
    if t.nsec == 0 {
        t.sec.to_string()
    } else {
        format!("{}.{:09}", t.sec, t.nsec)
    }
}

pub(crate) fn now() -> Timespec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

/// FNV-1a, 64 bits: a fixed hash, so identities derived from keys and
/// ETags stay the same across restarts and versions (std's hasher does not
/// promise that).
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fresh 64-bit value for new objects' identity stamps: the process's
/// random hasher seed mixed with the time and a counter.
pub(crate) fn fresh_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(now().as_nanos_wrapping());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    match h.finish() {
        0 => 1,
        v => v,
    }
}

/// What a HEAD (or a listing plus HEAD) tells about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Timespec,
    pub meta: Meta,
}

/// The kind an object's mode bits say (a `dir/` marker is a directory
/// whatever its mode says).
pub(crate) fn kind_of(mode: Option<u32>) -> FileKind {
    match mode.map(|m| m & S_IFMT) {
        Some(S_IFLNK) => FileKind::Symlink,
        Some(S_IFIFO) => FileKind::Fifo,
        Some(S_IFSOCK) => FileKind::Socket,
        Some(S_IFCHR) => FileKind::CharDev,
        Some(S_IFBLK) => FileKind::BlockDev,
        _ => FileKind::Regular,
    }
}

/// Identity of an object: the stamps when nfs4d wrote them, else the key's
/// hash (object) and the ETag's hash (incarnation), so another client's
/// replacement of an unstamped object shows as a new incarnation.
pub(crate) fn identity(key: &str, etag: &str, meta: &Meta) -> Identity {
    Identity {
        space: 0,
        object: meta
            .id
            .unwrap_or_else(|| nonzero(stable_hash(&[b"obj", key.as_bytes()]))),
        incarnation: meta
            .inc
            .unwrap_or_else(|| nonzero(stable_hash(&[b"etag", etag.as_bytes()]))),
    }
}

fn nonzero(v: u64) -> u64 {
    if v == 0 {
        1
    } else {
        v
    }
}

/// The `change` attribute: moves with the data (ETag) and with every
/// metadata value.
pub(crate) fn change_of(etag: &str, size: u64, meta: &Meta, extra: u64) -> u64 {
    let pairs = meta.to_pairs();
    let mut parts: Vec<Vec<u8>> = vec![
        etag.as_bytes().to_vec(),
        size.to_le_bytes().to_vec(),
        extra.to_le_bytes().to_vec(),
    ];
    for (k, v) in pairs {
        parts.push(k.into_bytes());
        parts.push(v.into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    stable_hash(&refs)
}

/// Attributes of a file object (regular file or symlink).
pub(crate) fn file_attrs(info: &ObjInfo, cfg: &S3Config) -> Attrs {
    let kind = kind_of(info.meta.mode);
    let default_mode = if kind == FileKind::Symlink {
        0o777
    } else {
        cfg.default_file_mode
    };
    let mtime = info.meta.mtime.unwrap_or(info.last_modified);
    Attrs {
        kind,
        mode: info.meta.mode.map(|m| m & 0o7777).unwrap_or(default_mode),
        nlink: 1,
        uid: info.meta.uid.unwrap_or(cfg.default_uid),
        gid: info.meta.gid.unwrap_or(cfg.default_gid),
        size: info.size,
        space_used: info.size.div_ceil(512) * 512,
        rdev: (0, 0),
        atime: info.meta.atime.unwrap_or(mtime),
        mtime,
        ctime: info.meta.ctime.unwrap_or(mtime),
        btime: None,
        change: change_of(&info.etag, info.size, &info.meta, 0),
        identity: identity(&info.key, &info.etag, &info.meta),
    }
}

/// Attributes of a directory: from its marker's metadata when there is
/// one, else the defaults. `bump` is this store's count of its own changes
/// in the directory, so `change` moves when nfs4d adds or removes entries.
pub(crate) fn dir_attrs(
    prefix: &str,
    marker: Option<&ObjInfo>,
    bump: u64,
    cfg: &S3Config,
) -> Attrs {
    let empty = Meta::default();
    let meta = marker.map(|m| &m.meta).unwrap_or(&empty);
    let etag = marker.map(|m| m.etag.as_str()).unwrap_or("");
    let t = meta
        .mtime
        .or(marker.map(|m| m.last_modified))
        .unwrap_or_default();
    let mut id = identity(prefix, etag, meta);
    // Without listed markers the stamps are only known while this process
    // runs; a directory's identity must not change with a restart, so
    // there it is its path alone (a rename gives it a new identity).
    let meta_id = if cfg.list_markers { meta.id } else { None };
    let meta_inc = if cfg.list_markers { meta.inc } else { None };
    if meta_id.is_none() {
        id.object = nonzero(stable_hash(&[b"dir", prefix.as_bytes()]));
    }
    if meta_inc.is_none() {
        // An implicit directory has nothing that tells one incarnation
        // from the next.
        id.incarnation = 0;
    }
    Attrs {
        kind: FileKind::Directory,
        mode: meta
            .mode
            .map(|m| m & 0o7777)
            .unwrap_or(cfg.default_dir_mode),
        nlink: 2,
        uid: meta.uid.unwrap_or(cfg.default_uid),
        gid: meta.gid.unwrap_or(cfg.default_gid),
        size: 4096,
        space_used: 4096,
        rdev: (0, 0),
        atime: meta.atime.unwrap_or(t),
        mtime: t,
        ctime: meta.ctime.unwrap_or(t),
        btime: None,
        change: change_of(etag, 0, meta, bump),
        identity: id,
    }
}

/// The mode word to store for a new object of `kind` with permission bits
/// `perm`.
pub(crate) fn full_mode(kind: FileKind, perm: u32) -> u32 {
    let t = match kind {
        FileKind::Directory => S_IFDIR,
        FileKind::Symlink => S_IFLNK,
        _ => S_IFREG,
    };
    t | (perm & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3fs_formats_round_trip() {
        let m = Meta::parse([
            ("uid", "1000"),
            ("gid", "100"),
            ("mode", "33188"),
            ("mtime", "1700000000.000000123"),
            ("ctime", "1700000001"),
            ("x-other", "kept"),
        ]);
        assert_eq!(m.uid, Some(1000));
        assert_eq!(m.mode, Some(0o100644));
        assert_eq!(kind_of(m.mode), FileKind::Regular);
        assert_eq!(
            m.mtime,
            Some(Timespec {
                sec: 1_700_000_000,
                nsec: 123
            })
        );
        assert_eq!(
            m.ctime,
            Some(Timespec {
                sec: 1_700_000_001,
                nsec: 0
            })
        );
        let pairs = m.to_pairs();
        assert!(pairs.contains(&("mode".into(), "33188".into())));
        assert!(pairs.contains(&("mtime".into(), "1700000000.000000123".into())));
        assert!(pairs.contains(&("ctime".into(), "1700000001".into())));
        assert!(pairs.contains(&("x-other".into(), "kept".into())));
        assert_eq!(
            Meta::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            m
        );
        // Symlinks as s3fs writes them.
        assert_eq!(full_mode(FileKind::Symlink, 0o777), 41471);
        assert_eq!(kind_of(Some(41471)), FileKind::Symlink);
    }

    #[test]
    fn odd_values_are_absent_not_fatal() {
        let m = Meta::parse([
            ("uid", "-1"),
            ("mode", "rwx"),
            ("mtime", "1.5x"),
            ("nfs4d-id", "zz"),
        ]);
        assert_eq!(m, Meta::default());
        // rclone's shorter fractions scale to nanoseconds.
        assert_eq!(
            parse_time("12.5"),
            Some(Timespec {
                sec: 12,
                nsec: 500_000_000
            })
        );
        // Octal with a leading zero, as strtol(…, 0) reads it.
        assert_eq!(parse_mode("0644"), Some(0o644));
    }

    #[test]
    fn identity_rules() {
        let m = Meta::default();
        let a = identity("k", "\"e1\"", &m);
        assert_eq!(a, identity("k", "\"e1\"", &m));
        assert_ne!(a.incarnation, identity("k", "\"e2\"", &m).incarnation);
        assert_eq!(a.object, identity("k", "\"e2\"", &m).object);
        let stamped = Meta {
            id: Some(7),
            inc: Some(9),
            ..Meta::default()
        };
        let b = identity("other-key", "\"e3\"", &stamped);
        assert_eq!((b.object, b.incarnation), (7, 9));
        assert_ne!(fresh_id(), fresh_id());
    }
}
