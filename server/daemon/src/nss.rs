//! Owner and group names from the system's user and group databases
//! (NSS: files, LDAP, SSSD, whatever nsswitch.conf says), for the core's
//! [`nfs4d_core::idmap::IdMap`].

use nfs4d_core::idmap::IdMap;

/// Looks names up with getpwnam_r(3) and getgrnam_r(3).
#[derive(Debug, Default, Clone, Copy)]
pub struct NssIds;

impl IdMap for NssIds {
    fn uid_by_name(&self, name: &str) -> Option<u32> {
        nss_id(name, libc::getpwnam_r, |pw: &libc::passwd| pw.pw_uid)
    }

    fn gid_by_name(&self, name: &str) -> Option<u32> {
        nss_id(name, libc::getgrnam_r, |gr: &libc::group| gr.gr_gid)
    }
}

/// Upper bound for the passwd/group record buffer (a group with many
/// members needs more than the first guess).
const NSS_BUF_MAX: usize = 1 << 20;

/// The signature shared by getpwnam_r(3) and getgrnam_r(3).
type NssLookup<T> = unsafe extern "C" fn(
    *const libc::c_char,
    *mut T,
    *mut libc::c_char,
    libc::size_t,
    *mut *mut T,
) -> libc::c_int;

/// Looks `name` up with a reentrant NSS call (`libc::passwd` or
/// `libc::group` entries), growing the string buffer on ERANGE up to
/// NSS_BUF_MAX, and returns `id(entry)`. Only the id leaves: the entry's
/// strings point into the buffer.
fn nss_id<T>(name: &str, lookup: NssLookup<T>, id: fn(&T) -> u32) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: T is `passwd` or `group`, for which all-zero is valid
        // (null pointers, zero ids); the lookup only writes into it and
        // into `buf`, whose true length is passed, and `res` is either
        // null or points to `entry`.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut res: *mut T = std::ptr::null_mut();
        let rc = unsafe {
            lookup(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut res,
            )
        };
        if rc == libc::ERANGE && buf.len() < NSS_BUF_MAX {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !res.is_null()).then(|| id(&entry));
    }
}
