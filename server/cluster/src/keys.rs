//! Where everything lives in etcd. Every key of a cluster starts with
//! `/<cluster>/`; the layout is described in docs/cluster.md.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `/<c>/identity` | server owner major id and scope | the first head, once |
//! | `/<c>/heads/<head>` | [`crate::HeadRecord`], bound to the head's lease | that head |
//! | `/<c>/owners/<head>` | id of the head serving `<head>`'s address, bound to its lease | that head, or a survivor |
//! | `/<c>/grace` | [`crate::GraceDb`] | any head, read-modify-write |
//! | `/<c>/clients/<head>/<epoch>/<client>` | stable client record | the head serving the client |
//! | `/<c>/kv/<tree>/<key>` | the [`nfs4d_kv::Kv`] trees (handle map) | any head |
//! | `/<c>/applied/<head>` | revision of the trees the head's caches reflect, bound to its lease | that head |

pub(crate) fn identity(cluster: &str) -> Vec<u8> {
    format!("/{cluster}/identity").into_bytes()
}

pub(crate) fn heads(cluster: &str) -> Vec<u8> {
    format!("/{cluster}/heads/").into_bytes()
}

pub(crate) fn head(cluster: &str, head: &str) -> Vec<u8> {
    format!("/{cluster}/heads/{head}").into_bytes()
}

/// Who serves head `head`'s address (bound to the owner's lease).
pub(crate) fn owner(cluster: &str, head: &str) -> Vec<u8> {
    format!("/{cluster}/owners/{head}").into_bytes()
}

pub(crate) fn grace(cluster: &str) -> Vec<u8> {
    format!("/{cluster}/grace").into_bytes()
}

/// Epochs are fixed-width hex so a head's databases sort by epoch.
pub(crate) fn clients(cluster: &str, head: &str, epoch: u64) -> Vec<u8> {
    format!("/{cluster}/clients/{head}/{epoch:016x}/").into_bytes()
}

pub(crate) fn clients_of_head(cluster: &str, head: &str) -> Vec<u8> {
    format!("/{cluster}/clients/{head}/").into_bytes()
}

/// The revision of the shared trees a head has applied to its caches
/// (bound to its lease).
pub(crate) fn applied(cluster: &str, head: &str) -> Vec<u8> {
    format!("/{cluster}/applied/{head}").into_bytes()
}

pub(crate) fn applied_prefix(cluster: &str) -> Vec<u8> {
    format!("/{cluster}/applied/").into_bytes()
}

pub(crate) fn kv_tree(cluster: &str, tree: &str) -> Vec<u8> {
    format!("/{cluster}/kv/{tree}/").into_bytes()
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `range_end`): the prefix with its last byte below 0xff incremented
/// and what follows dropped; `\0` (to the end of the key space) if every
/// byte is 0xff.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_covers_exactly_the_prefix() {
        assert_eq!(prefix_end(b"/c/kv/t/"), b"/c/kv/t0".to_vec());
        assert_eq!(prefix_end(b"a\xff\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
        assert!(b"/c/kv/t/\xff\xff".as_slice() < prefix_end(b"/c/kv/t/").as_slice());
    }

    #[test]
    fn epochs_sort_numerically() {
        assert!(clients("c", "h", 9) < clients("c", "h", 10));
        assert!(clients("c", "h", 0xff) < clients("c", "h", 0x100));
    }
}
