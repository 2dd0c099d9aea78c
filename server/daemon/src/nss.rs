//! Owner and group names from the system's user and group databases
//! (NSS: files, LDAP, SSSD, whatever nsswitch.conf says), for the core's
//! [`nfs4d_core::idmap::IdMap`], and the accounts Kerberos principals map
//! to, for the RPCSEC_GSS engine's [`nfs4d_gss::UserDb`].

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
/// NSS_BUF_MAX, and returns `id(entry)`. Only ids leave: the entry's
/// strings point into the buffer.
fn nss_id<T, R>(name: &str, lookup: NssLookup<T>, id: fn(&T) -> R) -> Option<R> {
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

/// How long a Kerberos principal's account lookup may take (NSS may ask a
/// directory server); past it the principal maps to the anonymous
/// identity, with a log line.
pub const NSS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Account lookups running at once; more (a directory server that stopped
/// answering while clients keep creating contexts) map to the anonymous
/// identity at once instead of piling up threads.
pub const MAX_NSS_LOOKUPS: usize = 16;
/// Most supplementary groups read for an account (the RPCSEC_GSS engine
/// keeps at most `nfs4d_gss::mapping::MAX_GROUPS` of them).
const MAX_GROUPS_READ: usize = 1 << 16;
const _: () = assert!(nfs4d_gss::mapping::MAX_GROUPS <= MAX_GROUPS_READ);

/// The accounts Kerberos principals map to: getpwnam_r(3) for the ids,
/// getgrouplist(3) for the groups. Each lookup runs on a thread of its
/// own and is waited for at most [`NSS_TIMEOUT`].
#[derive(Debug, Default)]
pub struct NssUsers {
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl nfs4d_gss::UserDb for NssUsers {
    fn user(&self, name: &str) -> Option<nfs4d_gss::UnixUser> {
        use std::sync::atomic::Ordering;
        let running = self.running.clone();
        if running.fetch_add(1, Ordering::SeqCst) >= MAX_NSS_LOOKUPS {
            running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                user = name,
                "too many account lookups waiting for NSS; using the anonymous identity"
            );
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let owned = name.to_string();
        let spawned = std::thread::Builder::new()
            .name("nss-lookup".into())
            .spawn(move || {
                let _ = tx.send(unix_user(&owned));
                running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(user = name, error = %e, "cannot start an account lookup; using the anonymous identity");
            return None;
        }
        // NSS may ask a directory server (nfs4d_blocking).
        match nfs4d_blocking::region(|| rx.recv_timeout(NSS_TIMEOUT)) {
            Ok(u) => u,
            Err(_) => {
                tracing::warn!(
                    user = name,
                    timeout_s = NSS_TIMEOUT.as_secs(),
                    "account lookup did not finish in time; using the anonymous identity"
                );
                None
            }
        }
    }
}

/// The account `name`: its ids and supplementary groups.
pub fn unix_user(name: &str) -> Option<nfs4d_gss::UnixUser> {
    let (uid, gid) = nss_id(name, libc::getpwnam_r, |pw: &libc::passwd| {
        (pw.pw_uid, pw.pw_gid)
    })?;
    let groups = group_list(name, gid);
    Some(nfs4d_gss::UnixUser { uid, gid, groups })
}

/// getgrouplist(3): the groups of `name`, its primary group `gid`
/// included, growing the buffer as the call asks up to [`MAX_GROUPS_READ`].
fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return vec![gid];
    };
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `n` entries, which is what the
        // call may write; it sets `n` to the number found (or needed).
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(n.min(groups.len()));
            return groups;
        }
        if n <= groups.len() || groups.len() >= MAX_GROUPS_READ {
            tracing::warn!(
                user = name,
                "group list too long or unreadable; keeping the primary group only"
            );
            return vec![gid];
        }
        groups.resize(n.min(MAX_GROUPS_READ), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_gss::UserDb;

    #[test]
    fn root_account_and_unknown_names() {
        // Every Linux system has root (uid 0, gid 0) in its user database.
        let root = NssUsers::default().user("root").expect("root account");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "the primary group is listed");
        assert_eq!(NssUsers::default().user("no-such-user-nfs4d-test"), None);
        assert_eq!(NssUsers::default().user("nul\0byte"), None);
    }
}
