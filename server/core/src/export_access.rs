//! Export access control: which client hosts may use an export and how
//! (read-only or read-write), which RPC security flavors it accepts,
//! whether the request must come from a privileged source port, and how
//! the caller's identity is squashed.
//!
//! The rules are the per-export options of knfsd's `exports(5)` in TOML
//! form (`clients`, `sec`, `squash` with `anonuid`/`anongid`,
//! `privileged_port`). This module only decides; the transport refuses a
//! host that no export admits (AUTH_ERROR, [`any_export_admits`]) and the
//! COMPOUND loop applies the per-export verdicts when a filehandle of an
//! export becomes current (see `compound::guard` and docs/security.md).
//!
//! AUTH_SYS identities are asserted by the client (RFC 5531 §14.2.1 /
//! RFC 8881 §2.2.1.1.1.1); these rules limit what a host may do, they do
//! not authenticate users.

use std::net::SocketAddr;

use crate::config::{Config, ExportConfig};
use nfs4d_xdr::rpc::Credential;

pub use crate::config::{
    AccessMode, Cidr, ClientRule, SecFlavor, Squash, AUTH_NONE, AUTH_SYS, NOBODY,
    PRIVILEGED_PORT_MAX,
};

/// Why a host or request may not use an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The source address matches none of the export's `clients`.
    Host,
    /// The export requires a privileged source port (`privileged_port`).
    Port,
    /// The credential's flavor is not in the export's `sec` list.
    Flavor,
}

impl Denial {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Host => "client address not allowed by the export",
            Denial::Port => "export requires a privileged source port",
            Denial::Flavor => "security flavor not allowed by the export",
        }
    }
}

/// The flavor number of a credential.
pub fn flavor_of(cred: &Credential) -> u32 {
    match cred {
        Credential::None => AUTH_NONE,
        Credential::Sys { .. } => AUTH_SYS,
        Credential::Other(n) => *n,
    }
}

/// Whether the host `peer` may use export `e` at all, and if so whether
/// read-only. The first `clients` rule containing the address decides;
/// without `clients` every host may, as `read_only` says.
pub fn host_access(e: &ExportConfig, peer: SocketAddr) -> Result<bool, Denial> {
    let read_only = match &e.clients {
        None => e.read_only,
        Some(rules) => match rules.iter().find(|r| r.addr.contains(peer.ip())) {
            Some(r) => e.read_only || r.access == AccessMode::Ro,
            None => return Err(Denial::Host),
        },
    };
    if e.privileged_port && peer.port() > PRIVILEGED_PORT_MAX {
        return Err(Denial::Port);
    }
    Ok(read_only)
}

/// Whether the export accepts the credential's flavor.
pub fn flavor_allowed(e: &ExportConfig, cred: &Credential) -> bool {
    let f = flavor_of(cred);
    e.sec.iter().any(|s| s.number() == f)
}

/// The full per-request verdict for export `e`: host and port first (no
/// flavor can help a host that is not admitted), then the flavor.
pub fn check(e: &ExportConfig, peer: SocketAddr, cred: &Credential) -> Result<bool, Denial> {
    let ro = host_access(e, peer)?;
    if !flavor_allowed(e, cred) {
        return Err(Denial::Flavor);
    }
    Ok(ro)
}

/// True when at least one export admits the host and port. A host no
/// export admits has nothing to gain from the server; its calls are
/// refused at the RPC level so it cannot create client state either.
pub fn any_export_admits(cfg: &Config, peer: SocketAddr) -> bool {
    cfg.exports.iter().any(|e| host_access(e, peer).is_ok())
}

/// The credential operations on export `e` run with, after squashing.
/// AUTH_NONE (and any flavor without an identity) is always the
/// anonymous identity.
pub fn effective_cred(e: &ExportConfig, cred: &Credential) -> Credential {
    let anon = || Credential::Sys {
        stamp: 0,
        machine: String::new(),
        uid: e.anonuid,
        gid: e.anongid,
        gids: Vec::new(),
    };
    match (cred, e.squash) {
        (Credential::Sys { .. }, Squash::All) | (Credential::None | Credential::Other(_), _) => {
            anon()
        }
        (
            Credential::Sys {
                stamp,
                machine,
                uid,
                gid,
                gids,
            },
            Squash::Root,
        ) => {
            let g = |x: u32| if x == 0 { e.anongid } else { x };
            Credential::Sys {
                stamp: *stamp,
                machine: machine.clone(),
                uid: if *uid == 0 { e.anonuid } else { *uid },
                gid: g(*gid),
                gids: gids.iter().map(|x| g(*x)).collect(),
            }
        }
        (c @ Credential::Sys { .. }, Squash::None) => c.clone(),
    }
}

/// The flavors SECINFO reports for export `e`, in configuration order.
pub fn flavors(e: &ExportConfig) -> Vec<u32> {
    e.sec.iter().map(|s| s.number()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(toml_fields: &str) -> ExportConfig {
        let text = format!("[[export]]\ndir = \"/x\"\n{toml_fields}\n");
        Config::parse(&text).unwrap().exports.remove(0)
    }

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let c: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.9".parse().unwrap()), "mapped v4");
        assert!(!c.contains("::1".parse().unwrap()));
        let h: Cidr = "10.0.0.5".parse().unwrap();
        assert!(h.contains("10.0.0.5".parse().unwrap()));
        assert!(!h.contains("10.0.0.6".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains("2001:db8::1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host.example",
            "1.2.3.4/x",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_admit_everyone_read_write() {
        let e = export("");
        assert_eq!(host_access(&e, at("192.0.2.1:40000")), Ok(false));
        assert!(flavor_allowed(&e, &Credential::None));
        assert_eq!(e.squash, Squash::None);
        assert_eq!((e.anonuid, e.anongid), (NOBODY, NOBODY));
    }

    #[test]
    fn first_matching_rule_decides() {
        let e = export(
            r#"clients = [{ addr = "127.0.0.2", access = "ro" }, { addr = "127.0.0.0/8", access = "rw" }]"#,
        );
        assert_eq!(host_access(&e, at("127.0.0.2:1000")), Ok(true));
        assert_eq!(host_access(&e, at("127.0.0.1:1000")), Ok(false));
        assert_eq!(host_access(&e, at("10.0.0.1:1000")), Err(Denial::Host));
        let ro = export("read_only = true\nclients = [{ addr = \"127.0.0.0/8\" }]");
        assert_eq!(
            host_access(&ro, at("127.0.0.1:1000")),
            Ok(true),
            "export-wide read_only wins"
        );
    }

    #[test]
    fn privileged_port_and_flavors() {
        let e = export("privileged_port = true\nsec = [\"sys\"]");
        assert_eq!(host_access(&e, at("127.0.0.1:1023")), Ok(false));
        assert_eq!(host_access(&e, at("127.0.0.1:1024")), Err(Denial::Port));
        let sys = Credential::Sys {
            stamp: 0,
            machine: "m".into(),
            uid: 5,
            gid: 5,
            gids: vec![],
        };
        assert_eq!(check(&e, at("127.0.0.1:700"), &sys), Ok(false));
        assert_eq!(
            check(&e, at("127.0.0.1:700"), &Credential::None),
            Err(Denial::Flavor)
        );
        assert_eq!(
            check(&e, at("127.0.0.1:7000"), &Credential::None),
            Err(Denial::Port),
            "host first"
        );
        assert_eq!(flavors(&e), vec![AUTH_SYS]);
    }

    #[test]
    fn squashing() {
        let root = Credential::Sys {
            stamp: 1,
            machine: "m".into(),
            uid: 0,
            gid: 0,
            gids: vec![0, 10],
        };
        let user = Credential::Sys {
            stamp: 1,
            machine: "m".into(),
            uid: 1000,
            gid: 100,
            gids: vec![0, 10],
        };
        let ids = |c: &Credential| match c {
            Credential::Sys { uid, gid, gids, .. } => (*uid, *gid, gids.clone()),
            _ => panic!("no identity"),
        };
        let none = export("");
        assert_eq!(ids(&effective_cred(&none, &root)), (0, 0, vec![0, 10]));
        assert_eq!(
            ids(&effective_cred(&none, &Credential::None)),
            (NOBODY, NOBODY, vec![])
        );
        let rs = export("squash = \"root\"\nanonuid = 99\nanongid = 98");
        assert_eq!(ids(&effective_cred(&rs, &root)), (99, 98, vec![98, 10]));
        assert_eq!(ids(&effective_cred(&rs, &user)), (1000, 100, vec![98, 10]));
        let all = export("squash = \"all\"\nanonuid = 7\nanongid = 8");
        assert_eq!(ids(&effective_cred(&all, &user)), (7, 8, vec![]));
        assert_eq!(
            ids(&effective_cred(&all, &Credential::None)),
            (7, 8, vec![])
        );
    }

    #[test]
    fn validation() {
        assert!(crate::config::validate_access(&export("sec = []")).is_err());
        assert!(crate::config::validate_access(&export("clients = []")).is_err());
        assert!(crate::config::validate_access(&export("sec = [\"none\"]")).is_ok());
        assert!(Config::parse("[[export]]\ndir = \"/x\"\nsquash = \"some\"").is_err());
        assert!(
            Config::parse("[[export]]\ndir = \"/x\"\nclients = [{ addr = \"1.2.3.4/40\" }]")
                .is_err()
        );
    }
}
