//! The `[cluster]` section of the configuration file.
//!
//! ```toml
//! [cluster]
//! etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]
//! name = "prod"        # the cluster: every head of it uses the same name
//! head = "nfs-a"       # this head's id, unique in the cluster
//! lease_secs = 10      # the head's etcd lease: a dead head is detected after this
//! request_timeout_ms = 3000
//! address_takeover = "bind"   # or "external" (keepalived, pacemaker)
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::error::{ClusterError, Result};

/// Most etcd endpoints a configuration may list.
pub const MAX_ENDPOINTS: usize = 16;
/// Longest cluster name or head id, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Shortest head lease. etcd itself never grants less than 1.5 election
/// timeouts (1.5 s with its defaults), and fencing stops serving at half
/// the lease, so shorter leases would only make a head fence itself on
/// ordinary scheduling delays.
pub const MIN_LEASE_SECS: u64 = 2;
/// Longest head lease: a dead head's clients wait this long for takeover.
pub const MAX_LEASE_SECS: u64 = 120;
/// Bounds of the per-request deadline.
pub const MIN_REQUEST_TIMEOUT_MS: u64 = 200;
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 60_000;

const _: () = assert!(MIN_LEASE_SECS * 1000 / 2 > MIN_REQUEST_TIMEOUT_MS);

/// Who moves a dead head's listen address to a survivor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressTakeover {
    /// The survivor binds the dead head's address itself (the address
    /// must be configured on one of its interfaces, or be added by it).
    #[default]
    Bind,
    /// Something else (keepalived, pacemaker) moves the address; heads
    /// only detect the death and start grace.
    External,
}

/// The `[cluster]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://host:port`), any member of one cluster.
    pub etcd: Vec<String>,
    /// The cluster's name: the prefix of every key (`/<name>/…`).
    pub name: String,
    /// This head's id.
    pub head: String,
    /// TTL of this head's etcd lease, seconds.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Deadline of one etcd request, retries included, milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Who moves a dead head's address.
    #[serde(default)]
    pub address_takeover: AddressTakeover,
    /// The server name (host name or IP address, no port) the other heads
    /// give for this head in `fs_locations` when an export moves here;
    /// default: the host part of its listen address.
    #[serde(default)]
    pub location: Option<String>,
}

fn default_lease_secs() -> u64 {
    10
}

fn default_request_timeout_ms() -> u64 {
    3000
}

impl ClusterConfig {
    /// A configuration with the defaults for everything but the three
    /// required fields.
    pub fn new(etcd: Vec<String>, name: &str, head: &str) -> ClusterConfig {
        ClusterConfig {
            etcd,
            name: name.to_string(),
            head: head.to_string(),
            lease_secs: default_lease_secs(),
            request_timeout_ms: default_request_timeout_ms(),
            address_takeover: AddressTakeover::default(),
            location: None,
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.etcd.is_empty() || self.etcd.len() > MAX_ENDPOINTS {
            return Err(ClusterError::Config(format!(
                "etcd: {} endpoints, want 1 to {MAX_ENDPOINTS}",
                self.etcd.len()
            )));
        }
        for e in &self.etcd {
            check_endpoint(e)?;
        }
        check_name("name", &self.name)?;
        check_name("head", &self.head)?;
        if let Some(l) = &self.location {
            let ok = !l.is_empty()
                && l.len() <= crate::membership::MAX_ADDR_LEN
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
            if !ok {
                return Err(ClusterError::Config(format!(
                    "location = {l:?}: want a host name or IP address"
                )));
            }
        }
        if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&self.lease_secs) {
            return Err(ClusterError::Config(format!(
                "lease_secs = {}: want {MIN_LEASE_SECS} to {MAX_LEASE_SECS}",
                self.lease_secs
            )));
        }
        if !(MIN_REQUEST_TIMEOUT_MS..=MAX_REQUEST_TIMEOUT_MS).contains(&self.request_timeout_ms) {
            return Err(ClusterError::Config(format!(
                "request_timeout_ms = {}: want {MIN_REQUEST_TIMEOUT_MS} to {MAX_REQUEST_TIMEOUT_MS}",
                self.request_timeout_ms
            )));
        }
        // A request must be able to fail before the lease is half gone, or
        // a head could keep serving on a lease it cannot renew.
        if self.request_timeout_ms > self.lease_secs * 1000 / 2 {
            return Err(ClusterError::Config(format!(
                "request_timeout_ms = {} must not exceed half of lease_secs = {}",
                self.request_timeout_ms, self.lease_secs
            )));
        }
        Ok(())
    }

    /// The head lease.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// The per-request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Cluster names and head ids become path components of etcd keys, so
/// they are restricted to a safe alphabet (no `/`, which would let one
/// name's keys fall under another's prefix).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Config(format!(
            "{what} = {name:?}: want 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 - _ ."
        )))
    }
}

fn check_endpoint(e: &str) -> Result<()> {
    let Some(rest) = e.strip_prefix("http://") else {
        return Err(ClusterError::Config(format!(
            "etcd endpoint {e:?}: only http:// URLs are supported (TLS to etcd is not built in)"
        )));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || authority.contains('/') {
        return Err(ClusterError::Config(format!(
            "etcd endpoint {e:?}: want http://HOST:PORT"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<ClusterConfig, toml::de::Error> {
        #[derive(Deserialize)]
        struct File {
            cluster: ClusterConfig,
        }
        toml::from_str::<File>(text).map(|f| f.cluster)
    }

    #[test]
    fn the_documented_section_parses_with_defaults() {
        let c = parse(
            "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nname = \"prod\"\nhead = \"nfs-a\"\n",
        )
        .expect("parse");
        assert_eq!(c.lease_secs, 10);
        assert_eq!(c.request_timeout_ms, 3000);
        assert_eq!(c.address_takeover, AddressTakeover::Bind);
        c.validate().expect("valid");
        let c = parse(
            "[cluster]\netcd = [\"http://a:1\"]\nname = \"p\"\nhead = \"h\"\naddress_takeover = \"external\"\n",
        )
        .expect("parse");
        assert_eq!(c.address_takeover, AddressTakeover::External);
        let c = parse(
            "[cluster]\netcd = [\"http://a:1\"]\nname = \"p\"\nhead = \"h\"\nlocation = \"10.0.2.2\"\n",
        )
        .expect("parse");
        assert_eq!(c.location.as_deref(), Some("10.0.2.2"));
        c.validate().expect("valid");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(parse("[cluster]\netcd = []\nname = \"p\"\nhead = \"h\"\nleese = 3\n").is_err());
        let good = ClusterConfig::new(vec!["http://127.0.0.1:2379".into()], "p", "h");
        good.validate().expect("valid");
        let bad = [
            ClusterConfig {
                etcd: vec![],
                ..good.clone()
            },
            ClusterConfig {
                etcd: vec!["https://a:1".into()],
                ..good.clone()
            },
            ClusterConfig {
                etcd: vec!["http://a".into()],
                ..good.clone()
            },
            ClusterConfig {
                etcd: vec!["http://a:0".into()],
                ..good.clone()
            },
            ClusterConfig {
                etcd: vec!["http://a:1/x".into()],
                ..good.clone()
            },
            ClusterConfig {
                etcd: vec!["http://a:1".into(); MAX_ENDPOINTS + 1],
                ..good.clone()
            },
            ClusterConfig {
                name: "a/b".into(),
                ..good.clone()
            },
            ClusterConfig {
                name: "..".into(),
                ..good.clone()
            },
            ClusterConfig {
                head: String::new(),
                ..good.clone()
            },
            ClusterConfig {
                head: "x".repeat(MAX_NAME_LEN + 1),
                ..good.clone()
            },
            ClusterConfig {
                lease_secs: 1,
                ..good.clone()
            },
            ClusterConfig {
                lease_secs: MAX_LEASE_SECS + 1,
                ..good.clone()
            },
            ClusterConfig {
                request_timeout_ms: 10,
                ..good.clone()
            },
            ClusterConfig {
                lease_secs: 4,
                request_timeout_ms: 2001,
                ..good.clone()
            },
            ClusterConfig {
                location: Some(String::new()),
                ..good.clone()
            },
            ClusterConfig {
                location: Some("a b\nc".into()),
                ..good.clone()
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(ClusterError::Config(_))),
                "accepted {c:?}"
            );
        }
    }
}
