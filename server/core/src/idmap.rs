//! Owner and group names ↔ ids (RFC 8881 §5.9). The core only asks; the
//! daemon answers from the system's user and group databases (NSS), and
//! tests answer from a table.

/// Looks up users and groups by name.
pub trait IdMap: Send + Sync {
    /// The uid of user `name`.
    fn uid_by_name(&self, name: &str) -> Option<u32>;
    /// The gid of group `name`.
    fn gid_by_name(&self, name: &str) -> Option<u32>;
}

/// Knows no names: owners travel as decimal ids only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericIds;

impl IdMap for NumericIds {
    fn uid_by_name(&self, _name: &str) -> Option<u32> {
        None
    }
    fn gid_by_name(&self, _name: &str) -> Option<u32> {
        None
    }
}

/// A fixed table of names, for tests.
#[derive(Debug, Clone, Default)]
pub struct TableIds {
    /// (name, uid) pairs.
    pub users: Vec<(String, u32)>,
    /// (name, gid) pairs.
    pub groups: Vec<(String, u32)>,
}

impl IdMap for TableIds {
    fn uid_by_name(&self, name: &str) -> Option<u32> {
        self.users
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }
    fn gid_by_name(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }
}
