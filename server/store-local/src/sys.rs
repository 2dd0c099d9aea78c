//! Thin, safe wrappers over the Linux syscalls the local store needs.
//!
//! Every `unsafe` block of the store lives here. Each wrapper takes borrowed
//! fds and `&CStr`s, so the pointers handed to the kernel are valid for the
//! duration of the call, and converts `-1`/errno into `io::Error`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct open_how` from `<linux/openat2.h>` (openat2(2)). Defined here
/// because `libc::open_how` is `#[non_exhaustive]`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Resolution confined to the directory fd: no `..` escape, no symlinks at
/// all (intermediate or final), no `/proc` magic links, no mount crossing.
const RESOLVE_CONFINED: u64 = libc::RESOLVE_BENEATH
    | libc::RESOLVE_NO_SYMLINKS
    | libc::RESOLVE_NO_MAGICLINKS
    | libc::RESOLVE_NO_XDEV;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Runs `f` again while it fails with `EINTR`.
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r,
        }
    }
}

/// `openat2(dir, path, flags | O_CLOEXEC, mode)` with [`RESOLVE_CONFINED`].
/// `path` must be relative. `mode` is only passed with `O_CREAT` (openat2(2):
/// a non-zero mode otherwise is `EINVAL`).
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    let how = OpenHow {
        flags: flags as u32 as u64,
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: RESOLVE_CONFINED,
    };
    // openat2(2): EAGAIN means a concurrent rename/mount was detected while
    // resolving with RESOLVE_BENEATH; retrying is the documented remedy.
    let mut attempts = 0;
    loop {
        // SAFETY: `path` is a valid NUL-terminated string and `how` a valid
        // open_how of the size we pass; both outlive the call. The kernel
        // returns a new fd we take ownership of below, or -1.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match cvt_long(ret) {
            Ok(fd) => {
                let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("bad fd"))?;
                // SAFETY: the kernel just returned this fd; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts < 16 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// `statx(dir, name, flags, BASIC_STATS | BTIME)` (statx(2)).
pub fn statx(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<libc::statx> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    retry_eintr(|| {
        // SAFETY: `name` is NUL-terminated and `st` is a valid, writable
        // statx buffer, both live for the call.
        cvt(unsafe {
            libc::statx(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::AT_STATX_SYNC_AS_STAT,
                libc::STATX_BASIC_STATS | libc::STATX_BTIME,
                &mut st,
            )
        })
    })?;
    Ok(st)
}

/// `statx` of the object `fd` itself (works on `O_PATH` fds).
pub fn fstatx(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    statx(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
}

/// `ioctl(fd, FS_IOC_GETVERSION)`: the inode generation (ioctl_iflags(2)
/// family; ext2/3/4, xfs, btrfs). The kernel stores an `int` despite the
/// `long` in the ioctl number, so read only the first 4 bytes.
pub fn fs_ioc_getversion(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is 8 writable bytes, enough for the `long` the request
    // number declares and the `int` the filesystems actually write.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETVERSION, buf.as_mut_ptr()) })?;
    Ok(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]))
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn renameat(
    src_dir: BorrowedFd<'_>,
    src: &CStr,
    dst_dir: BorrowedFd<'_>,
    dst: &CStr,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    cvt(unsafe {
        libc::renameat(
            src_dir.as_raw_fd(),
            src.as_ptr(),
            dst_dir.as_raw_fd(),
            dst.as_ptr(),
        )
    })
    .map(drop)
}

/// `linkat` without `AT_SYMLINK_FOLLOW`: a symlink is linked itself.
pub fn linkat(
    src_dir: BorrowedFd<'_>,
    src: &CStr,
    dst_dir: BorrowedFd<'_>,
    dst: &CStr,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    cvt(unsafe {
        libc::linkat(
            src_dir.as_raw_fd(),
            src.as_ptr(),
            dst_dir.as_raw_fd(),
            dst.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `readlinkat`, growing the buffer until the whole target fits.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut cap = 256usize;
    loop {
        let mut buf = vec![0u8; cap];
        // SAFETY: `buf` has `cap` writable bytes; `name` is NUL-terminated.
        let n = cvt_size(unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })?;
        // readlink(2): a result equal to the buffer size may be truncated.
        if n < cap {
            buf.truncate(n);
            return Ok(buf);
        }
        if cap >= 1 << 20 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        cap *= 4;
    }
}

/// `fchownat(dir, name, uid, gid, flags)`; `None` leaves the id unchanged.
pub fn fchownat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    uid: Option<u32>,
    gid: Option<u32>,
    flags: i32,
) -> io::Result<()> {
    // chown(2): an id of -1 means "don't change".
    let uid = uid.unwrap_or(u32::MAX);
    let gid = gid.unwrap_or(u32::MAX);
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, flags) }).map(drop)
}

/// chmod of `dir/name` without following a final symlink; a symlink gives
/// `EOPNOTSUPP` (Linux symlink permissions are fixed).
///
/// Uses `fchmodat2(2)` (Linux ≥ 6.6), which honours `AT_SYMLINK_NOFOLLOW`
/// race-free; on older kernels falls back to the C library's
/// `fchmodat(AT_SYMLINK_NOFOLLOW)`, which glibc ≥ 2.32 and musl implement
/// race-free via an `O_PATH` fd and `/proc/self/fd`.
pub fn fchmodat_nofollow(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    let r = retry_eintr(|| {
        // SAFETY: `name` is NUL-terminated and outlives the call; the syscall
        // takes (int dirfd, const char *path, mode_t mode, int flags).
        cvt_long(unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                mode,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    });
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // SAFETY: `name` is NUL-terminated and outlives the call.
            cvt(unsafe {
                libc::fchmodat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    mode,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })
            .map(drop)
        }
        r => r.map(drop),
    }
}

/// `utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW)`. Each time is `None`
/// (leave alone, `UTIME_OMIT`), `Some(None)` (now, `UTIME_NOW`) or
/// `Some(Some((sec, nsec)))`.
pub fn utimensat_nofollow(
    dir: BorrowedFd<'_>,
    name: &CStr,
    atime: Option<Option<(i64, u32)>>,
    mtime: Option<Option<(i64, u32)>>,
) -> io::Result<()> {
    let ts = |t: Option<Option<(i64, u32)>>| match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(None) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(Some((sec, nsec))) => libc::timespec {
            tv_sec: sec as libc::time_t,
            // nsec < 10⁹ (checked by the caller) fits any c_long.
            tv_nsec: nsec as libc::c_long,
        },
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: `name` is NUL-terminated and `times` is an array of two
    // timespecs, as utimensat(2) requires; both outlive the call.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `pread(2)` into possibly uninitialised memory: returns how many bytes
/// the kernel wrote at the start of `buf` (0 = end of file). Reading into
/// uninitialised memory spares zeroing a buffer the kernel overwrites
/// anyway (a 1 MiB memset per READ otherwise). An `offset` beyond
/// `i64::MAX` is `EINVAL`, as pread(2) gives for a negative offset.
pub fn pread_uninit(fd: &File, buf: &mut [MaybeUninit<u8>], offset: u64) -> io::Result<usize> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is writable for `buf.len()` bytes and outlives the call;
    // the kernel only writes into it (never reads), so its contents need not
    // be initialised. `MaybeUninit<u8>` has the layout of `u8`.
    let n =
        cvt_size(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) })?;
    // pread(2) never reports more than it was given room for; checked
    // anyway, as callers rely on it to mark the bytes initialised.
    if n > buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(n)
}

/// cachestat(2), Linux 6.5: added after the system call tables of the
/// architectures were unified, so its number is the same on all of them.
pub(crate) const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether the page cache holds every page of the `len` bytes at `offset`
/// of `fd`, so that reading them does not wait for the disk. Whatever
/// cannot be told (a kernel before 6.5, a range past the end of the file)
/// counts as not held.
pub fn cached(fd: BorrowedFd<'_>, offset: u64, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf has no preconditions.
    let page = match u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }) {
        Ok(p) if p > 0 => p,
        _ => return false,
    };
    let Some(last) = offset.checked_add(len as u64 - 1) else {
        return false;
    };
    let pages = last / page - offset / page + 1;
    let range = CachestatRange {
        off: offset,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: `range` and `stat` are live, properly laid out (repr(C), as
    // the kernel's structs) for the duration of the call; the kernel only
    // reads `range` and writes `stat`. flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    r == 0 && stat.nr_cache >= pages
}

/// One [`pread_uninit`] of up to `max` bytes at `offset`, appended to
/// `buf` (its length grows by exactly the count returned, its capacity by
/// at least `max`). Nothing is appended on an error.
pub fn pread_append(fd: &File, buf: &mut Vec<u8>, max: usize, offset: u64) -> io::Result<usize> {
    append_uninit(buf, max, |spare| pread_uninit(fd, spare, offset))
}

/// Appends to `buf` the bytes `fill` writes at the start of the `max`
/// bytes of spare capacity it is given, `fill` returning their count.
/// Nothing is appended on an error.
fn append_uninit(
    buf: &mut Vec<u8>,
    max: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<usize>,
) -> io::Result<usize> {
    buf.reserve(max);
    let len = buf.len();
    let n = fill(&mut buf.spare_capacity_mut()[..max])?;
    // A system call never reports more than it was given room for;
    // checked anyway, as the bytes are marked initialised below.
    if n > max {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    // SAFETY: `reserve` made room for `max` bytes past `len`, and every
    // `fill` of this module is a system call that wrote `n <= max` bytes at
    // `len..len + n`, so all bytes up to the new length are initialised.
    unsafe { buf.set_len(len + n) };
    Ok(n)
}

/// `getdents64(2)` into `buf`; returns the number of bytes filled (0 = end).
pub fn getdents64(dir: &File, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: `buf` is writable for `buf.len()` bytes and outlives the call.
        let n = cvt_long(unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        })?;
        usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
    })
}

/// `lseek(fd, offset, SEEK_SET)` with a raw signed offset (directory
/// positions are opaque cookies, not byte counts).
pub fn lseek_set(fd: &File, offset: i64) -> io::Result<()> {
    // SAFETY: lseek only takes integers.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset as libc::off_t, libc::SEEK_SET) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Clears `O_NONBLOCK` (set at open to avoid blocking on a fifo swapped in
/// under us) once we know the fd is a regular file.
pub fn clear_nonblock(fd: &File) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL/F_SETFL) only takes integers.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    }
    Ok(())
}

pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid writable statvfs. fstatfs(2) accepts O_PATH fds
    // since Linux 3.12.
    retry_eintr(|| cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) }))?;
    Ok(st)
}

/// `fgetxattr`; `buf` empty asks for the size only.
pub fn fgetxattr(fd: &File, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `name` is NUL-terminated; `buf` is writable for its length
    // (a zero length makes the kernel only report the size).
    cvt_size(unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

pub fn fsetxattr(fd: &File, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `value` is readable for its length.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// `flistxattr`; `buf` empty asks for the size only.
pub fn flistxattr(fd: &File, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    cvt_size(unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn fremovexattr(fd: &File, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) }).map(drop)
}

// --- space management and server-side copy (NFSv4.2) -------------------------

/// `fallocate(fd, mode, offset, len)`.
pub fn fallocate(fd: &File, mode: i32, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: fallocate only takes integers.
    retry_eintr(|| cvt(unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset, len) })).map(drop)
}

/// `lseek(fd, offset, whence)` returning the new position (SEEK_DATA /
/// SEEK_HOLE probes).
pub fn lseek(fd: &File, offset: i64, whence: i32) -> io::Result<u64> {
    // SAFETY: lseek only takes integers.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset as libc::off_t, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u64)
    }
}

/// `copy_file_range(src, &src_off, dst, &dst_off, len, 0)`; returns the
/// bytes copied (0 at the source's end of file). The offsets are passed
/// explicitly, so the fds' own positions are neither used nor changed.
pub fn copy_file_range(
    src: &File,
    src_off: i64,
    dst: &File,
    dst_off: i64,
    len: usize,
) -> io::Result<usize> {
    let mut off_in: libc::off64_t = src_off;
    let mut off_out: libc::off64_t = dst_off;
    retry_eintr(|| {
        // SAFETY: the offset pointers refer to live locals for the duration
        // of the call; the fds are open files.
        cvt_size(unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                len,
                0,
            )
        })
    })
}

/// `ioctl(dst, FICLONERANGE, {src, src_off, len, dst_off})`: shares the
/// source's extents with the destination (reflink).
pub fn ficlonerange(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
) -> io::Result<()> {
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: `arg` is a valid `file_clone_range` that outlives the call;
    // the kernel only reads it.
    retry_eintr(|| cvt(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) })).map(drop)
}

/// `fcntl(F_SETLEASE)`: takes (`F_RDLCK`, `F_WRLCK`) or releases
/// (`F_UNLCK`) a file lease on `fd` (fcntl(2) "Leases").
pub fn set_lease(fd: &File, kind: i32) -> io::Result<()> {
    // SAFETY: fcntl on a valid, owned descriptor; no pointers involved.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, kind) }).map(drop)
}

/// `fcntl(F_GETLEASE)`: the lease held on `fd`. While a lease is being
/// broken this is the type it is being downgraded to.
pub fn get_lease(fd: &File) -> io::Result<i32> {
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLEASE) })
}

/// An inotify instance (inotify(7)) that never blocks and raises SIGIO
/// in this process whenever events are queued: the same signal a lease
/// break raises, so one handler serves both.
pub fn inotify_signalled() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; a valid fd is returned or -1.
    let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on the valid descriptor above; integer arguments only.
    unsafe {
        cvt(libc::fcntl(fd.as_raw_fd(), libc::F_SETOWN, libc::getpid()))?;
        let fl = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        cvt(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            fl | libc::O_ASYNC,
        ))?;
    }
    Ok(fd)
}

/// Watches the inode `file` is open on (`O_PATH` will do) for the events
/// in `mask`; returns the watch descriptor. The inode is named through `/proc/self/fd`, so
/// it is the very object open, whatever its names are now.
pub fn inotify_watch(ino: &OwnedFd, file: BorrowedFd<'_>, mask: u32) -> io::Result<i32> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is a valid C string for the duration of the call.
    cvt(unsafe { libc::inotify_add_watch(ino.as_raw_fd(), path.as_ptr(), mask) })
}

/// Removes watch `wd` (the kernel then queues IN_IGNORED for it).
pub fn inotify_unwatch(ino: &OwnedFd, wd: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::inotify_rm_watch(ino.as_raw_fd(), wd) }).map(drop)
}

/// Reads every event queued on `ino` without blocking: (watch, mask)
/// pairs. Names are skipped (watches on files themselves carry none).
pub fn inotify_drain(ino: &OwnedFd) -> io::Result<Vec<(i32, u32)>> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    // Room for many events plus one with the longest name (inotify(7)).
    let mut buf = vec![0u8; 64 * HEADER + libc::NAME_MAX as usize + 1];
    let mut out = Vec::new();
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = retry_eintr(|| {
            cvt_size(unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
        });
        let n = match n {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut at = 0;
        while at + HEADER <= n {
            let field = |i: usize| {
                let b = &buf[at + 4 * i..at + 4 * i + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            // struct inotify_event: wd, mask, cookie, len, then `len` name bytes.
            out.push((field(0) as i32, field(1)));
            at += HEADER + field(3) as usize;
        }
    }
}

/// A byte-range lock as `fcntl(2)` describes it, from `l_start` for `l_len`
/// bytes (`l_len == 0`: to the largest offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flock {
    /// `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    pub ty: libc::c_short,
    /// First byte.
    pub start: i64,
    /// Length; 0 means "to the largest offset".
    pub len: i64,
    /// Holder's pid for a classic process-associated lock; -1 for an
    /// open-file-description lock (fcntl(2) "Open file description locks").
    pub pid: libc::pid_t,
}

fn flock_of(l: &Flock) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value, and
    // F_OFD_* requires `l_pid` to be zero on input.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l.ty;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = l.start;
    fl.l_len = l.len;
    fl
}

/// `fcntl(fd, F_OFD_SETLK, l)`: sets, converts or clears an
/// open-file-description lock without waiting (`EAGAIN` on a conflict).
pub fn ofd_setlk(fd: BorrowedFd<'_>, l: &Flock) -> io::Result<()> {
    let fl = flock_of(l);
    // SAFETY: `fl` is a valid `struct flock` that outlives the call; the
    // kernel only reads it for F_OFD_SETLK.
    retry_eintr(|| cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) })).map(drop)
}

/// `fcntl(fd, F_OFD_GETLK, l)`: the first lock of another open file
/// description or process that would conflict with `l`, or `None`.
pub fn ofd_getlk(fd: BorrowedFd<'_>, l: &Flock) -> io::Result<Option<Flock>> {
    let mut fl = flock_of(l);
    // SAFETY: `fl` is a valid `struct flock` that outlives the call; the
    // kernel overwrites it with the conflicting lock, if any.
    retry_eintr(|| cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) }))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(Flock {
        ty: fl.l_type,
        start: fl.l_start,
        len: fl.l_len,
        pid: fl.l_pid,
    }))
}

/// A pipe (`pipe2(2)`, close-on-exec): `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets the capacity of the pipe `fd` to at least `bytes`
/// (`fcntl(F_SETPIPE_SZ)`); returns the capacity the kernel chose.
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let want =
        libc::c_int::try_from(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain fcntl on a borrowed, open descriptor.
    let got = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, want) })?;
    usize::try_from(got).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
}

/// Bytes waiting in the pipe `fd` (`ioctl(FIONREAD)`).
pub fn pipe_pending(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer, which is valid.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) })?;
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
}

/// `splice(2)` of up to `len` bytes from `from` to `to`, one of them a
/// pipe, never waiting on the pipe (`SPLICE_F_NONBLOCK`). `offset` is where
/// to read in `from` when it is a file; `None` for a pipe.
pub fn splice(
    from: BorrowedFd<'_>,
    offset: Option<u64>,
    to: BorrowedFd<'_>,
    len: usize,
) -> io::Result<usize> {
    let mut off = match offset {
        Some(o) => {
            Some(libc::loff_t::try_from(o).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?)
        }
        None => None,
    };
    retry_eintr(|| {
        let off_in = off
            .as_mut()
            .map_or(std::ptr::null_mut(), |o| o as *mut libc::loff_t);
        // SAFETY: both descriptors are borrowed and open; `off_in` is null
        // or points to a live loff_t the kernel may update.
        cvt_size(unsafe {
            libc::splice(
                from.as_raw_fd(),
                off_in,
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK,
            )
        })
    })
}

/// `splice(2)` of up to `len` bytes from the pipe `from` into the file
/// `to` at `offset`. May wait for the file (it is a write into the page
/// cache), never for the pipe.
pub fn splice_into_file(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off =
        libc::loff_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    retry_eintr(|| {
        // SAFETY: both descriptors are borrowed and open; `off` is a live
        // loff_t the kernel may update.
        cvt_size(unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                &mut off,
                len,
                libc::SPLICE_F_NONBLOCK,
            )
        })
    })
}

/// `write(2)` of all of `data` into `fd` (a pipe with room for it).
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is readable for its length during the call.
        let n = retry_eintr(|| {
            cvt_size(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })
        })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

/// `read(2)` from `fd` of up to `max` bytes, appended to `buf` (as
/// [`pread_append`]).
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    append_uninit(buf, max, |spare| {
        retry_eintr(|| {
            // SAFETY: `spare` is writable for its length and outlives the
            // call; the kernel only writes into it.
            cvt_size(unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) })
        })
    })
}
