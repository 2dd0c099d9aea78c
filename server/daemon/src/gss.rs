//! RPCSEC_GSS (Kerberos 5: krb5, krb5i, krb5p) in the daemon: the engine
//! of `nfs4d_gss` built from the `[gss]` section, and what the runners do
//! with a call whose credential is RPCSEC_GSS.
//!
//! The transport (`net.rs`) only recognises such a call and queues it;
//! a runner (`exec.rs`, a blocking-pool thread) hands it to the engine,
//! because verifying a checksum or decrypting a 1 MiB WRITE takes
//! milliseconds of CPU, which must not stall a tokio worker. The engine
//! answers context creation and destruction itself, drops replays
//! silently, refuses bad calls with the RFC 2203 §5.3.3 answers, and for
//! an accepted DATA call gives the caller and the unwrapped arguments.
//! The COMPOUND runs as for any other flavor, with the caller in
//! [`RequestCtx::gss`]; its reply, built by the core with an AUTH_NONE
//! verifier, is then given the RPCSEC_GSS verifier of this call and, for
//! krb5i and krb5p, protected as a whole (RFC 2203 §5.3.3.4). Replies the
//! core sends again (the 4.1 slot cache, the 4.0 duplicate request cache)
//! are kept in that unprotected form, so each resend is protected with
//! the retransmission's own sequence number.
//!
//! Without Kerberos (no library, no keytab, `enabled = false`) the engine
//! is absent: start-up says so, AUTH_SYS and AUTH_NONE are served as
//! always, and RPCSEC_GSS calls get AUTH_BADCRED.

use std::sync::Arc;
use std::time::Duration;

use nfs4d_core::auth::{GssCaller, GssService, PrincipalKind};
use nfs4d_core::compound::{self, Followup, RequestCtx};
use nfs4d_core::config::{Config, GssConfig, GssMapRule};
use nfs4d_core::reply::{Detached, Record};
use nfs4d_core::server::Server;
use nfs4d_gss::mapping::{Pattern, Rule, Target};
use nfs4d_gss::rpc::{self as grpc, AcceptStat, AuthStat};
use nfs4d_gss::server::Accepted;
use nfs4d_gss::{Decision, GssCall, GssServer, Kind, Limits, MapConfig, ServerConfig, Service};
use nfs4d_xdr::record::HEADER_LEN;
use nfs4d_xdr::rpc::{Refusal, SUCCESS_HEADER_LEN};

/// The engine's configuration from the `[gss]` section, or why the
/// section cannot be used (a configuration error: the server does not
/// start, as for any other invalid setting).
pub fn engine_config(g: &GssConfig) -> Result<ServerConfig, String> {
    let defaults = Limits::default();
    let secs = |v: Option<u32>, default_ms: u64| v.map_or(default_ms, |s| u64::from(s) * 1000);
    let limits = Limits {
        max_contexts: g.max_contexts.map_or(defaults.max_contexts, |v| v as usize),
        max_per_client: g
            .max_contexts_per_client
            .map_or(defaults.max_per_client, |v| v as usize),
        idle_ms: secs(g.idle_time, defaults.idle_ms),
        max_lifetime_ms: secs(g.max_lifetime, defaults.max_lifetime_ms),
        init_ms: defaults.init_ms,
    };
    limits.validate().map_err(|e| format!("[gss]: {e}"))?;
    if let Some(p) = &g.principal {
        // A principal in the form the engine imports (GSS_KRB5_NT_PRINCIPAL_NAME).
        if p.is_empty() || !p.contains('@') || p.starts_with('@') {
            return Err(format!(
                "[gss] principal {p:?}: expected a Kerberos principal such as nfs/server.example.com@EXAMPLE.COM"
            ));
        }
    }
    let rules = g.map.iter().map(map_rule).collect::<Result<Vec<_>, _>>()?;
    Ok(ServerConfig {
        library: g.library.clone(),
        keytab: g.keytab.clone(),
        principal: g.principal.clone(),
        limits,
        mapping: MapConfig {
            local_realms: g.local_realms.clone(),
            rules,
            ..MapConfig::default()
        },
    })
}

fn map_rule(r: &GssMapRule) -> Result<Rule, String> {
    let pattern = Pattern::parse(&r.principal).map_err(|e| format!("[[gss.map]]: {e}"))?;
    let fixed = r.uid.is_some() || r.gid.is_some() || !r.groups.is_empty();
    let chosen = [r.user.is_some(), r.short_name, fixed, r.anonymous]
        .into_iter()
        .filter(|b| *b)
        .count();
    if chosen != 1 {
        return Err(format!(
            "[[gss.map]] {:?}: give exactly one of user, short_name, uid/gid/groups, anonymous",
            r.principal
        ));
    }
    let target = if let Some(u) = &r.user {
        Target::User(u.clone())
    } else if r.short_name {
        Target::ShortName
    } else if r.anonymous {
        Target::Anonymous
    } else {
        match (r.uid, r.gid) {
            (Some(uid), Some(gid)) => Target::Ids {
                uid,
                gid,
                groups: r.groups.clone(),
            },
            _ => {
                return Err(format!(
                    "[[gss.map]] {:?}: fixed ids need both uid and gid",
                    r.principal
                ))
            }
        }
    };
    Ok(Rule { pattern, target })
}

/// Exports whose `sec` list names a Kerberos flavor.
fn kerberos_exports(cfg: &Config) -> Vec<&str> {
    cfg.exports
        .iter()
        .filter(|e| e.sec.iter().any(|f| f.is_kerberos()))
        .map(|e| e.path.as_str())
        .collect()
}

/// Builds the engine, or says at start-up why Kerberos is not served (an
/// error when some export asks for it, a notice otherwise). The server
/// starts either way and serves AUTH_SYS.
pub fn start(cfg: &Config) -> Option<Arc<GssServer>> {
    let wanted = kerberos_exports(cfg);
    let unavailable = |why: &str| {
        if wanted.is_empty() {
            tracing::info!(reason = %why, "Kerberos (RPCSEC_GSS) not available; serving AUTH_SYS and AUTH_NONE only");
        } else {
            tracing::error!(reason = %why, exports = ?wanted, "Kerberos (RPCSEC_GSS) not available: these exports cannot be served with krb5, krb5i or krb5p; their other flavors are still served");
        }
    };
    if !cfg.gss.enabled {
        unavailable("disabled by the configuration ([gss] enabled = false)");
        return None;
    }
    // Checked when the configuration was read; a failure here is a bug.
    let ecfg = match engine_config(&cfg.gss) {
        Ok(c) => c,
        Err(e) => {
            unavailable(&e);
            return None;
        }
    };
    match GssServer::new(&ecfg, Arc::new(crate::nss::NssUsers::default())) {
        Ok(engine) => {
            tracing::info!(
                principal = ecfg.principal.as_deref().unwrap_or("any key of the keytab"),
                keytab = %ecfg.keytab.as_ref().map_or("default".to_string(), |k| k.display().to_string()),
                max_contexts = ecfg.limits.max_contexts,
                max_contexts_per_client = ecfg.limits.max_per_client,
                "serving Kerberos: krb5, krb5i and krb5p"
            );
            Some(Arc::new(engine))
        }
        Err(e) => {
            unavailable(&e.to_string());
            None
        }
    }
}

/// How often expired contexts are swept (besides on demand when the table
/// is full).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a runner does with an RPCSEC_GSS call.
pub enum Outcome {
    /// Send this record; then run the followups.
    Reply(Record, Vec<Followup>),
    /// Send nothing (a replayed or too old sequence number, RFC 2203
    /// §5.3.3.1): the client retransmits with a new one.
    Drop,
}

fn reply(rec: Vec<u8>) -> Outcome {
    Outcome::Reply(rec.into(), Vec::new())
}

fn caller(acc: &Accepted<'_>) -> GssCaller {
    let id = &acc.identity;
    GssCaller {
        principal: id.principal.clone(),
        kind: match id.kind {
            Kind::User => PrincipalKind::User,
            Kind::Root => PrincipalKind::Root,
            Kind::Machine => PrincipalKind::Machine,
            Kind::Anonymous => PrincipalKind::Anonymous,
        },
        service: match acc.service {
            Service::None => GssService::None,
            Service::Integrity => GssService::Integrity,
            Service::Privacy => GssService::Privacy,
        },
        uid: id.uid,
        gid: id.gid,
        groups: id.groups.clone(),
    }
}

/// Runs one RPCSEC_GSS call (the whole record, record mark included) of
/// procedure NULL or COMPOUND. `req` carries the transport's facts; the
/// caller is filled in once the engine accepted the call.
pub fn run_call(
    srv: &Server,
    engine: &GssServer,
    mut req: RequestCtx,
    xid: u32,
    rec: &[u8],
) -> Outcome {
    let raw = match grpc::parse_call(rec) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(peer = %req.peer, xid, error = %e, "undecodable RPCSEC_GSS call (AUTH_BADCRED)");
            return reply(grpc::auth_error_record(xid, AuthStat::BadCred));
        }
    };
    let call = GssCall::from_raw(&raw, req.peer.ip());
    let acc = match engine.accept(&call, srv.clock.now_ms()) {
        Decision::Data(acc) => acc,
        Decision::Drop => return Outcome::Drop,
        d => {
            return match d.reply_record(xid) {
                Some(r) => reply(r),
                None => Outcome::Drop,
            }
        }
    };
    if raw.proc_ == 0 {
        // NULL under an established context: a ping with a verifier.
        return reply(acc.reply_record(xid, &[]));
    }
    req.gss = Some(Arc::new(caller(&acc)));
    match compound::process(srv, &req, xid, &acc.args, None) {
        Ok((rec, followups)) => Outcome::Reply(protect(&acc, xid, rec), followups),
        Err(why) => {
            let stat = match why {
                Refusal::GarbageArgs => AcceptStat::GarbageArgs,
                _ => AcceptStat::SystemErr,
            };
            let verifier = match acc.reply_verifier() {
                Ok(v) => v,
                Err(e) => return reply(e.record(xid)),
            };
            reply(grpc::accepted_record(xid, &verifier, stat, &[]))
        }
    }
}

/// A SYSTEM_ERR reply to `xid`, with the context's verifier.
fn system_err(acc: &Accepted<'_>, xid: u32) -> Record {
    match acc.reply_verifier() {
        Ok(v) => grpc::accepted_record(xid, &v, AcceptStat::SystemErr, &[]).into(),
        Err(e) => e.record(xid).into(),
    }
}

/// The reply the core built (AUTH_NONE verifier, SUCCESS, results) with
/// this call's RPCSEC_GSS verifier and, for krb5i and krb5p, its results
/// protected. Under krb5 the results go out as they are, a READ's data
/// from its own buffer; under krb5i and krb5p they are joined into one
/// buffer first, since the checksum or encryption covers them all.
fn protect(acc: &Accepted<'_>, xid: u32, mut rec: Record) -> Record {
    let head = &rec.bytes;
    // xid, REPLY (1), MSG_ACCEPTED, AUTH_NONE, empty body, SUCCESS (0).
    let mut expected = [0u8; SUCCESS_HEADER_LEN - HEADER_LEN];
    expected[..4].copy_from_slice(&xid.to_be_bytes());
    expected[4..8].copy_from_slice(&1u32.to_be_bytes());
    let plain = head.get(HEADER_LEN..SUCCESS_HEADER_LEN) == Some(&expected[..]);
    if !plain {
        tracing::error!(
            xid,
            "COMPOUND reply without the expected header; answering SYSTEM_ERR"
        );
        return system_err(acc, xid);
    }
    if acc.service != Service::None {
        let results = match nfs4d_core::reply::join(head, rec.detached.as_mut(), SUCCESS_HEADER_LEN)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(xid, error = %e, "READ data could not be read out of its pipe; answering SYSTEM_ERR");
                return system_err(acc, xid);
            }
        };
        return acc.reply_record(xid, &results).into();
    }
    let verifier = match acc.reply_verifier() {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(xid, error = %e, "RPCSEC_GSS reply verifier failed");
            return e.record(xid).into();
        }
    };
    let mut bytes = Vec::with_capacity(head.len() + verifier.body.len() + 8);
    grpc::begin_accepted(&mut bytes, xid, &verifier, AcceptStat::Success);
    let shift = bytes.len() as isize - SUCCESS_HEADER_LEN as isize;
    bytes.extend_from_slice(&head[SUCCESS_HEADER_LEN..]);
    let detached = rec.detached.map(|d| Detached {
        at: (d.at as isize + shift) as usize,
        data: d.data,
    });
    let extra = detached.as_ref().map_or(0, |d| d.data.len());
    nfs4d_core::reply::finish_record(&mut bytes, extra);
    Record { bytes, detached }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<ServerConfig, String> {
        let cfg = Config::parse(text).map_err(|e| e.to_string())?;
        engine_config(&cfg.gss)
    }

    #[test]
    fn defaults_are_the_engines() {
        let c = section("").unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!((c.keytab, c.principal, c.library), (None, None, None));
        assert!(c.mapping.rules.is_empty() && c.mapping.local_realms.is_empty());
        assert!(Config::default().gss.enabled);
    }

    #[test]
    fn example_configuration_is_valid_with_its_kerberos_lines_on() {
        let text = include_str!("../../../etc/nfs4d.toml");
        engine_config(&Config::parse(text).unwrap().gss).unwrap();
        // Uncomment every `# key = value` line after [gss] (the alternatives
        // given after a second `#` stay comments).
        let (head, tail) = text.split_at(text.find("\n[gss]").unwrap());
        let on: String = tail
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv) if kv.contains(" = ") || kv.starts_with("[[") => kv,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = Config::parse(&format!("{head}\n{on}\n")).unwrap();
        assert!(!cfg.gss.map.is_empty() && cfg.gss.principal.is_some());
        let e = engine_config(&cfg.gss).unwrap();
        assert_eq!(e.limits, Limits::default(), "the defaults as documented");
    }

    #[test]
    fn section_is_read_and_checked() {
        let c = section(
            r#"
            [gss]
            keytab = "/etc/nfs4d.keytab"
            principal = "nfs/server.example.com@EXAMPLE.COM"
            local_realms = ["EXAMPLE.COM", "CORP.EXAMPLE.COM"]
            max_contexts = 100
            max_contexts_per_client = 10
            idle_time = 60
            max_lifetime = 3600
            [[gss.map]]
            principal = "backup/*@EXAMPLE.COM"
            user = "backup"
            [[gss.map]]
            principal = "*@PARTNER.ORG"
            short_name = true
            [[gss.map]]
            principal = "ops@EXAMPLE.COM"
            uid = 5
            gid = 6
            groups = [7]
            [[gss.map]]
            principal = "HTTP/*@EXAMPLE.COM"
            anonymous = true
            "#,
        )
        .unwrap();
        assert_eq!(c.keytab.unwrap().to_str(), Some("/etc/nfs4d.keytab"));
        assert_eq!((c.limits.max_contexts, c.limits.max_per_client), (100, 10));
        assert_eq!(
            (c.limits.idle_ms, c.limits.max_lifetime_ms),
            (60_000, 3_600_000)
        );
        assert_eq!(c.mapping.local_realms.len(), 2);
        let targets: Vec<_> = c.mapping.rules.iter().map(|r| r.target.clone()).collect();
        assert_eq!(
            targets,
            vec![
                Target::User("backup".into()),
                Target::ShortName,
                Target::Ids {
                    uid: 5,
                    gid: 6,
                    groups: vec![7]
                },
                Target::Anonymous
            ]
        );
        for bad in [
            "[gss]\nmax_contexts = 0",
            "[gss]\nmax_contexts = 10\nmax_contexts_per_client = 11",
            "[gss]\nidle_time = 0",
            "[gss]\nprincipal = \"nfs\"",
            "[gss]\nbogus = 1",
            "[[gss.map]]\nprincipal = \"a@R\"",
            "[[gss.map]]\nprincipal = \"a@R\"\nuser = \"x\"\nanonymous = true",
            "[[gss.map]]\nprincipal = \"a@R\"\nuid = 5",
            "[[gss.map]]\nprincipal = \"a*b@R\"\nuser = \"x\"",
        ] {
            assert!(section(bad).is_err(), "{bad}");
        }
    }
}
