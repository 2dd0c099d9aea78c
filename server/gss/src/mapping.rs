//! From a Kerberos principal to the Unix identity a call runs as.
//!
//! The default, as knfsd with `rpc.idmapd`/`gssproxy` does it:
//!
//! * `user@REALM`, with REALM one of the local realms: the account `user`
//!   from the user database (NSS in the daemon: [`UserDb`] is a trait so
//!   that this crate needs no libc);
//! * `root/instance@REALM`: uid 0, reported as [`Kind::Root`];
//! * `nfs/host@REALM` and `host/host@REALM` (the machine credentials
//!   clients use for state management): uid 0, reported as
//!   [`Kind::Machine`];
//! * anything else — an unknown user, another realm, another service —
//!   the anonymous identity, reported as [`Kind::Anonymous`].
//!
//! Reporting the kind lets export rules squash root and machine
//! principals (`squash = "root"`) and give unmapped ones the export's own
//! `anonuid`. Configured [`Rule`]s are tried first, in order.
//!
//! The local realms are the configured ones; with none configured, the
//! realm of the server principal that accepted the context (so a server
//! serves its own realm's users and nobody else's by default).

/// Groups kept for one identity (a Linux process may have 65536; NFS
/// servers commonly cap lower). Further groups are dropped with a log line.
pub const MAX_GROUPS: usize = 1024;

/// A Unix account as the user database returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// The user database: the daemon implements it with NSS (`getpwnam_r` and
/// `getgrouplist`). It is called when a context is established, not per
/// call; it may block (LDAP) and must be bounded in time by the
/// implementation.
pub trait UserDb: Send + Sync {
    /// The account named `name`, or `None` when there is none.
    fn user(&self, name: &str) -> Option<UnixUser>;
}

/// A fixed user table (tests, or principals mapped in configuration only).
#[derive(Debug, Clone, Default)]
pub struct StaticUsers(pub Vec<(String, UnixUser)>);

impl UserDb for StaticUsers {
    fn user(&self, name: &str) -> Option<UnixUser> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
    }
}

/// Which kind of principal a context belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A user of a local realm found in the user database (or mapped by a
    /// rule).
    User,
    /// `root/...@LOCAL`: administrative root; squash it like AUTH_SYS
    /// uid 0.
    Root,
    /// `nfs/...@LOCAL` or `host/...@LOCAL`: a client machine's credential.
    Machine,
    /// Nobody known: the anonymous identity.
    Anonymous,
}

/// The identity a context's calls run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The client principal as GSS-API displays it (`alice@EXAMPLE.COM`).
    pub principal: String,
    /// What kind of principal it is.
    pub kind: Kind,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (at most [`MAX_GROUPS`]).
    pub groups: Vec<u32>,
}

/// Which principals a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this principal (`alice@EXAMPLE.COM`).
    Exact(String),
    /// Any single-component principal of a realm (`*@PARTNER.ORG`).
    AnyUserOf(String),
    /// Any instance of a service in a realm (`nfs/*@EXAMPLE.COM`).
    AnyInstanceOf {
        /// The first component (`nfs`, `host`, `root` …).
        service: String,
        /// The realm.
        realm: String,
    },
}

impl Pattern {
    /// Parses `name@REALM`, `*@REALM` or `service/*@REALM`.
    pub fn parse(text: &str) -> Result<Pattern, MapConfigError> {
        let (name, realm) =
            split_principal(text).ok_or_else(|| MapConfigError(text.to_string()))?;
        if realm.is_empty() || name.is_empty() {
            return Err(MapConfigError(text.to_string()));
        }
        Ok(match name {
            "*" => Pattern::AnyUserOf(realm.to_string()),
            _ => match name.split_once('/') {
                Some((svc, "*")) if !svc.is_empty() && !svc.contains('*') => {
                    Pattern::AnyInstanceOf {
                        service: svc.to_string(),
                        realm: realm.to_string(),
                    }
                }
                _ if name.contains('*') => return Err(MapConfigError(text.to_string())),
                _ => Pattern::Exact(text.to_string()),
            },
        })
    }

    fn matches(&self, principal: &str, name: &str, realm: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == principal,
            Pattern::AnyUserOf(r) => r == realm && !name.contains('/'),
            Pattern::AnyInstanceOf { service, realm: r } => {
                r == realm && name.split_once('/').is_some_and(|(s, _)| s == service)
            }
        }
    }
}

/// A principal pattern in the configuration is not of a supported form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a principal pattern (name@REALM, *@REALM or service/*@REALM)")]
pub struct MapConfigError(pub String);

/// What a matching rule maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Fixed ids.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
        /// Supplementary groups.
        groups: Vec<u32>,
    },
    /// This account of the user database.
    User(String),
    /// The account named like the principal's first component.
    ShortName,
    /// The anonymous identity.
    Anonymous,
}

/// One mapping rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The principals it applies to.
    pub pattern: Pattern,
    /// What they map to.
    pub target: Target,
}

/// The mapping configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    /// Realms whose users are looked up by short name; empty: the realm of
    /// the accepting server principal.
    pub local_realms: Vec<String>,
    /// Tried first, in order.
    pub rules: Vec<Rule>,
    /// The anonymous user id.
    pub anon_uid: u32,
    /// The anonymous group id.
    pub anon_gid: u32,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            local_realms: Vec::new(),
            rules: Vec::new(),
            anon_uid: 65534,
            anon_gid: 65534,
        }
    }
}

/// Splits `name@REALM` at the last unescaped `@`.
fn split_principal(p: &str) -> Option<(&str, &str)> {
    p.rsplit_once('@')
}

/// The realm of a principal (empty when it has none).
pub fn realm_of(principal: &str) -> &str {
    split_principal(principal).map_or("", |(_, r)| r)
}

impl MapConfig {
    /// The identity of `principal`, accepted by server principal
    /// `acceptor` (whose realm is local when none are configured).
    pub fn map(&self, principal: &str, acceptor: &str, users: &dyn UserDb) -> Identity {
        let (name, realm) = split_principal(principal).unwrap_or((principal, ""));
        let local = if self.local_realms.is_empty() {
            !realm.is_empty() && realm == realm_of(acceptor)
        } else {
            self.local_realms.iter().any(|r| r == realm)
        };
        let rule = self
            .rules
            .iter()
            .find(|r| r.pattern.matches(principal, name, realm));
        let (kind, ids) = match rule.map(|r| &r.target) {
            Some(Target::Ids { uid, gid, groups }) => (
                Kind::User,
                Some(UnixUser {
                    uid: *uid,
                    gid: *gid,
                    groups: groups.clone(),
                }),
            ),
            Some(Target::User(account)) => (Kind::User, users.user(account)),
            Some(Target::ShortName) => (Kind::User, short_user(name, users)),
            Some(Target::Anonymous) => (Kind::Anonymous, None),
            None if !local => (Kind::Anonymous, None),
            None => match name.split_once('/') {
                Some(("root", _)) => (Kind::Root, Some(root())),
                Some(("nfs" | "host", _)) => (Kind::Machine, Some(root())),
                Some(_) => (Kind::Anonymous, None),
                None => (Kind::User, users.user(name)),
            },
        };
        match ids {
            Some(u) => {
                let mut groups = u.groups;
                if groups.len() > MAX_GROUPS {
                    tracing::warn!(
                        principal,
                        groups = groups.len(),
                        kept = MAX_GROUPS,
                        "too many groups; dropping the rest"
                    );
                    groups.truncate(MAX_GROUPS);
                }
                Identity {
                    principal: principal.to_string(),
                    kind,
                    uid: u.uid,
                    gid: u.gid,
                    groups,
                }
            }
            None => {
                tracing::info!(
                    principal,
                    "principal maps to no account; using the anonymous identity"
                );
                Identity {
                    principal: principal.to_string(),
                    kind: Kind::Anonymous,
                    uid: self.anon_uid,
                    gid: self.anon_gid,
                    groups: Vec::new(),
                }
            }
        }
    }
}

fn short_user(name: &str, users: &dyn UserDb) -> Option<UnixUser> {
    let short = name.split_once('/').map_or(name, |(s, _)| s);
    users.user(short)
}

fn root() -> UnixUser {
    UnixUser {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> StaticUsers {
        StaticUsers(vec![
            (
                "alice".into(),
                UnixUser {
                    uid: 1000,
                    gid: 100,
                    groups: vec![100, 27],
                },
            ),
            (
                "svc".into(),
                UnixUser {
                    uid: 2000,
                    gid: 2000,
                    groups: vec![],
                },
            ),
        ])
    }

    const ACCEPTOR: &str = "nfs/server@EXAMPLE.COM";

    #[test]
    fn default_mapping() {
        let m = MapConfig::default();
        let u = users();
        let alice = m.map("alice@EXAMPLE.COM", ACCEPTOR, &u);
        assert_eq!(
            (alice.kind, alice.uid, alice.gid, alice.groups.clone()),
            (Kind::User, 1000, 100, vec![100, 27])
        );
        let root = m.map("root/admin@EXAMPLE.COM", ACCEPTOR, &u);
        assert_eq!((root.kind, root.uid, root.gid), (Kind::Root, 0, 0));
        for p in ["nfs/client@EXAMPLE.COM", "host/client@EXAMPLE.COM"] {
            let mach = m.map(p, ACCEPTOR, &u);
            assert_eq!((mach.kind, mach.uid), (Kind::Machine, 0));
        }
        // Unknown user, another realm, another service, no realm at all.
        for p in [
            "bob@EXAMPLE.COM",
            "alice@OTHER.ORG",
            "HTTP/web@EXAMPLE.COM",
            "alice",
            "root/x@OTHER.ORG",
        ] {
            let id = m.map(p, ACCEPTOR, &u);
            assert_eq!(
                (id.kind, id.uid, id.gid),
                (Kind::Anonymous, 65534, 65534),
                "{p}"
            );
            assert_eq!(id.principal, p);
        }
    }

    #[test]
    fn configured_realms_and_rules() {
        let m = MapConfig {
            local_realms: vec!["CORP.EXAMPLE".into()],
            rules: vec![
                Rule {
                    pattern: Pattern::parse("svc-backup@EXAMPLE.COM").unwrap(),
                    target: Target::User("svc".into()),
                },
                Rule {
                    pattern: Pattern::parse("*@PARTNER.ORG").unwrap(),
                    target: Target::ShortName,
                },
                Rule {
                    pattern: Pattern::parse("nfs/*@EXAMPLE.COM").unwrap(),
                    target: Target::Anonymous,
                },
                Rule {
                    pattern: Pattern::parse("ops@EXAMPLE.COM").unwrap(),
                    target: Target::Ids {
                        uid: 5,
                        gid: 6,
                        groups: vec![7],
                    },
                },
            ],
            anon_uid: 99,
            anon_gid: 98,
        };
        let u = users();
        assert_eq!(m.map("svc-backup@EXAMPLE.COM", ACCEPTOR, &u).uid, 2000);
        assert_eq!(m.map("alice@PARTNER.ORG", ACCEPTOR, &u).uid, 1000);
        assert_eq!(m.map("alice@CORP.EXAMPLE", ACCEPTOR, &u).uid, 1000);
        // The acceptor's realm is no longer local once realms are configured.
        assert_eq!(
            m.map("alice@EXAMPLE.COM", ACCEPTOR, &u).kind,
            Kind::Anonymous
        );
        let nfs = m.map("nfs/client@EXAMPLE.COM", ACCEPTOR, &u);
        assert_eq!((nfs.kind, nfs.uid, nfs.gid), (Kind::Anonymous, 99, 98));
        let ops = m.map("ops@EXAMPLE.COM", ACCEPTOR, &u);
        assert_eq!(
            (ops.kind, ops.uid, ops.gid, ops.groups),
            (Kind::User, 5, 6, vec![7])
        );
    }

    #[test]
    fn patterns_are_validated() {
        for bad in ["alice", "@REALM", "a*b@R", "*/x@R", "x/*@", "nfs/a*@R"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Pattern::parse("host/*@R").unwrap(),
            Pattern::AnyInstanceOf {
                service: "host".into(),
                realm: "R".into()
            }
        );
    }

    #[test]
    fn groups_are_capped() {
        let u = StaticUsers(vec![(
            "many".into(),
            UnixUser {
                uid: 1,
                gid: 1,
                groups: (0..5000).collect(),
            },
        )]);
        let id = MapConfig::default().map("many@EXAMPLE.COM", ACCEPTOR, &u);
        assert_eq!(id.groups.len(), MAX_GROUPS);
    }
}
